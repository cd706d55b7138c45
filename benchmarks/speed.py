"""End-to-end speed of cnnviewer's paths against the lab report's loop, in one process, on the same images.

    python benchmarks/speed.py [--images ../shared/datasets/imagenet-val-100] [--models resnet50,googlenet,inception_v3]

Every path goes from the file on disk to a top-5. The torchvision models run with random weights
(speed does not depend on the values); the fast path's accuracy change is measured separately on
the embedded pretrained models (benchmarks/accuracy_fast_path.py). Prints images/s per path and
model, and each path's total time as a ratio to the lab report's loop.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnviewer.core.catalog import get_entry  # noqa: E402
from cnnviewer.core.images import is_image_path  # noqa: E402
from cnnviewer.core.inference import Classifier  # noqa: E402
from cnnviewer.core.models import LoadedModel, bf16_supported, build_architecture  # noqa: E402


def image_paths(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if is_image_path(p.name))


def lab_report_loop(module, transform, paths):
    """The lab report's evaluate(): one image at a time, autograd on, softmax, top-5 (plus the decode)."""
    tops = []
    for path in paths:
        batch = transform(Image.open(path).convert("RGB")).unsqueeze(0)
        prediction = module(batch).squeeze().softmax(0)
        tops.append(torch.topk(prediction.flatten(), 5).indices.tolist())
    return tops


def plain_eager(module, transform, paths, batch_size=16):
    """Plain eager torch at batch 16, channels_last, no autograd: the usual "done right" baseline."""
    tops = []
    module = module.to(memory_format=torch.channels_last)
    for i in range(0, len(paths), batch_size):
        batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[i: i + batch_size]])
        with torch.inference_mode():
            logits = module(batch.contiguous(memory_format=torch.channels_last))
        tops += logits.softmax(1).topk(5, dim=1).indices.tolist()
    return tops


def cnnviewer_path(entry, module, paths, precision, batch_size=16):
    loaded = LoadedModel(entry, module, torch.device("cpu"), 0.0, precision=precision, channels_last=True)
    classifier = Classifier(loaded)
    module.to(memory_format=torch.channels_last)
    return [[p.index for p in r.predictions]
            for r in classifier.classify_files(paths, top_k=5, batch_size=batch_size, fast_decode=True)]


def onnx_path(module, transform, paths, size, batch_size=16):
    import io

    import onnxruntime as ort

    buffer = io.BytesIO()
    torch.onnx.export(module, torch.zeros(1, 3, size, size), buffer, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    tops = []
    for i in range(0, len(paths), batch_size):
        batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[i: i + batch_size]])
        logits = torch.from_numpy(session.run(None, {"x": batch.numpy()})[0])
        tops += logits.softmax(1).topk(5, dim=1).indices.tolist()
    return tops


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "datasets" / "imagenet-val-100"))
    parser.add_argument("--models", default="resnet50,googlenet,inception_v3")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    paths = image_paths(Path(args.images))
    names = args.models.split(",")
    torch.manual_seed(0)
    have_onnx = True
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        have_onnx = False
    paths_list = ["lab-report loop", "plain eager b16 NHWC", "cnnviewer fp32", "cnnviewer bf16"]
    if have_onnx:
        paths_list.append("ONNX Runtime b16")
    totals = {name: 0.0 for name in paths_list}
    mismatches = 0
    print(f"{len(paths)} images from {args.images}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"bf16 {'native' if bf16_supported() else 'not native'}")
    print(f"{'model':<14}" + "".join(f"{p:>22}" for p in paths_list) + "   (images/s)")
    for name in names:
        entry = get_entry(name)
        module = build_architecture(entry)  # random weights: speed only
        from cnnviewer.core.inference import make_transform
        from torchvision.models import get_model_weights

        lab_transform = get_model_weights(name).DEFAULT.transforms()
        transform = make_transform(entry.preprocessing)
        cnnviewer_path(entry, module, paths[:16], "fp32")  # warm-up for every path's kernels
        row = {}
        row["lab-report loop"], _ = timed(lab_report_loop, module, lab_transform, paths)
        row["plain eager b16 NHWC"], eager = timed(plain_eager, module, transform, paths, args.batch_size)
        row["cnnviewer fp32"], fp32 = timed(cnnviewer_path, entry, module, paths, "fp32", args.batch_size)
        if bf16_supported():
            row["cnnviewer bf16"], _ = timed(cnnviewer_path, entry, module, paths, "bf16", args.batch_size)
        if have_onnx:
            module.to(memory_format=torch.contiguous_format)
            row["ONNX Runtime b16"], _ = timed(onnx_path, module, transform, paths, entry.input_size,
                                               args.batch_size)
        mismatches += sum(a != b for a, b in zip(eager, fp32))
        for key, seconds in row.items():
            totals[key] += seconds
        print(f"{name:<14}" + "".join(f"{len(paths) / row[p]:>22.1f}" if p in row else f"{'-':>22}"
                                      for p in paths_list))
    base = totals["lab-report loop"]
    print(f"{'total s':<14}" + "".join(f"{totals[p]:>22.1f}" for p in paths_list))
    print(f"{'vs lab loop':<14}" + "".join(f"{base / totals[p]:>21.2f}x" if totals[p] else f"{'-':>22}"
                                          for p in paths_list))
    print(f"cnnviewer fp32 top-5 differs from plain fp32 eager on {mismatches} of {len(paths) * len(names)} "
          "image-model pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
