"""End-to-end speed of cnnviewer's paths against the lab report's loop, in one process, on the same images.

    python benchmarks/speed.py [--images ../shared/datasets/imagenet-val-100] [--models resnet50,googlenet,inception_v3]

Every path goes from the file on disk to a top-5. The torchvision models run with random weights
(speed does not depend on the values); the fast paths' accuracy against FP32 is checked on the
embedded pretrained models by tests/core/test_fast_paths.py and printed by benchmarks/fast_path_accuracy.py. Prints images/s per path and
model, and each path's total time as a ratio to the lab report's loop.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnviewer.core.catalog import get_entry
from cnnviewer.core.images import is_image_path
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import bf16_supported, build_architecture, prepare_module
from cnnviewer.core.ways import parse_way


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


def cnnviewer_classifier(entry, state, run_as):
    """What load_model makes for each "Run as" choice, with these (random) weights instead of a file."""
    module = build_architecture(entry)
    module.load_state_dict(state)
    return Classifier(prepare_module(entry, module, "cpu", parse_way(run_as), channels_last=True))


def cnnviewer_path(classifier, paths, batch_size=16):
    return [[p.index for p in r.predictions]
            for r in classifier.classify_files(paths, top_k=5, batch_size=batch_size)]


def onnx_session(module, size):
    """A plain ONNX Runtime session, made before the timing (export is load time, as for cnnviewer)."""
    import io
    import warnings

    import onnxruntime as ort

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.zeros(1, 3, size, size), buffer, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    return ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])


def onnx_path(session, transform, paths, batch_size=16):
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
    parser.add_argument("--rounds", type=int, default=3,
                        help="every path runs this many times, interleaved; the fastest round counts")
    args = parser.parse_args()
    paths = image_paths(Path(args.images))
    names = args.models.split(",")
    torch.manual_seed(0)
    from cnnviewer.core.engines import onnxruntime_available

    have_onnx = onnxruntime_available()
    paths_list = ["lab-report loop", "plain eager b16 NHWC", "cnnviewer fp32"]
    if have_onnx:
        paths_list += ["plain ONNX Runtime b16", "cnnviewer onnxruntime"]
    if bf16_supported():
        paths_list.append("cnnviewer bf16")
    totals = {name: 0.0 for name in paths_list}
    mismatches = ort_mismatches = 0
    print(f"{len(paths)} images from {args.images}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"bf16 {'native' if bf16_supported() else 'not native'}")
    print(f"{'model':<14}" + "".join(f"{p:>24}" for p in paths_list) + "   (images/s, best of rounds)")
    for name in names:
        entry = get_entry(name)
        module = build_architecture(entry)  # random weights: speed only
        from torchvision.models import get_model_weights

        from cnnviewer.core.inference import make_transform

        lab_transform = get_model_weights(name).DEFAULT.transforms()
        transform = make_transform(entry.preprocessing)
        state = module.state_dict()
        classifiers = {"cnnviewer fp32": cnnviewer_classifier(entry, state, "fp32")}
        if have_onnx:
            classifiers["cnnviewer onnxruntime"] = cnnviewer_classifier(entry, state, "onnxruntime")
        if bf16_supported():
            classifiers["cnnviewer bf16"] = cnnviewer_classifier(entry, state, "bf16")
        for classifier in classifiers.values():  # warm-up (one-time kernel selection; the load time)
            cnnviewer_path(classifier, paths[:args.batch_size], args.batch_size)
        eager_module = build_architecture(entry)
        eager_module.load_state_dict(state)
        # partial binds this model's objects now (a closure would see whatever the names hold later).
        runs: dict[str, Callable[[], Any]] = {
            "lab-report loop": partial(lab_report_loop, module, lab_transform, paths),
            "plain eager b16 NHWC": partial(plain_eager, eager_module, transform, paths, args.batch_size)}
        if have_onnx:
            session = onnx_session(module, entry.input_size)
            runs["plain ONNX Runtime b16"] = partial(onnx_path, session, transform, paths, args.batch_size)
        for label, classifier in classifiers.items():
            runs[label] = partial(cnnviewer_path, classifier, paths, args.batch_size)
        row: dict[str, float] = {}
        results: dict[str, Any] = {}
        for _ in range(max(1, args.rounds)):  # interleaved, so a slow spell of the machine hits every path
            for label, run in runs.items():
                seconds, results[label] = timed(run)
                row[label] = min(seconds, row.get(label, float("inf")))
        eager, fp32 = results["plain eager b16 NHWC"], results["cnnviewer fp32"]
        mismatches += sum(a != b for a, b in zip(eager, fp32, strict=True))
        if "cnnviewer onnxruntime" in results:
            ort_mismatches += sum(a != b for a, b in zip(eager, results["cnnviewer onnxruntime"], strict=True))
        for key, seconds in row.items():
            totals[key] += seconds
        print(f"{name:<14}" + "".join(f"{len(paths) / row[p]:>24.1f}" if p in row else f"{'-':>24}"
                                      for p in paths_list))
    base = totals["lab-report loop"]
    print(f"{'total s':<14}" + "".join(f"{totals[p]:>24.2f}" for p in paths_list))
    print(f"{'vs lab loop':<14}" + "".join(f"{base / totals[p]:>23.2f}x" if totals[p] else f"{'-':>24}"
                                          for p in paths_list))
    pairs = len(paths) * len(names)
    print(f"top-5 differing from plain fp32 eager: cnnviewer fp32 {mismatches} of {pairs}, cnnviewer onnxruntime "
          f"{ort_mismatches if have_onnx else '-'} of {pairs} (random weights; pretrained: "
          "tests/core/test_fast_paths.py, benchmarks/fast_path_accuracy.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
