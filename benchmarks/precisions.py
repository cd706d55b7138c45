"""Which precision runs fastest on this machine's device: ``cnnviewer bench``'s own loop, per model.

    python benchmarks/precisions.py [--device cuda] [--precisions fp32,bf16] [--models resnet50,googlenet,inception_v3]
                                    [--images ../shared/datasets/imagenet-val-100] [--batch-size 64]
                                    [--gpu-decode] [--check-gpu-decode]

Runs run_benchmark (the code behind ``cnnviewer bench`` and the window's benchmark) once per
precision over the same images and prints, per model, forward-only and end-to-end images/s, the
batch-1 latency and the peak memory (GPU allocations on a GPU). The torchvision models run with
random weights (_random_weights.py): speed only, no accuracy is printed from them.

``--gpu-decode`` also times, per model and precision, file to top-5 through core.gpu_decode (JPEGs
decoded in batches on the device, the next batch while this one runs) against forward only on the
same images and batch size, and prints the ratio (the aim on a GPU: at least 0.80 for ResNet50 at
batch 64). ``--check-gpu-decode`` prints how close that path's inputs are to the present
(Pillow) path's, and how many of the embedded EfficientNet-Lite0's top-5 lists agree, on
imagenet-val-100 and imagenet-samples-88; it runs with ``--device cpu`` too.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._random_weights import random_weights_cache
from cnnviewer.core.benchmark import BenchmarkConfig, environment_line, run_benchmark
from cnnviewer.core.catalog import EMBEDDED_SOURCE, get_entry
from cnnviewer.core.datasets import load_labelled_folder
from cnnviewer.core.models import bf16_supported
from cnnviewer.core.ways import way_of


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "datasets" / "imagenet-val-100"))
    parser.add_argument("--models", default="resnet50,googlenet,inception_v3")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--decode-threads", default="",
                        help="comma-separated thread counts to compare (default: the machine's choice)")
    parser.add_argument("--gpu-decode", action="store_true",
                        help="also time file to top-5 through core.gpu_decode against forward only")
    parser.add_argument("--check-gpu-decode", action="store_true",
                        help="only compare core.gpu_decode's inputs and Lite0's top-5 with the present path's")
    args = parser.parse_args()
    if args.check_gpu_decode:
        return check_gpu_decode(args.device)
    names = tuple(args.models.split(","))
    random_weights_cache([n for n in names if get_entry(n).source != EMBEDDED_SOURCE])
    dataset = load_labelled_folder(args.images)
    precisions = [p for p in args.precisions.split(",") if p == "fp32" or bf16_supported(args.device)]
    memory = "GPU MB" if torch.device(args.device).type == "cuda" else "RSS MB"
    print(f"{len(dataset.images)} images from {args.images}, batch {args.batch_size}")
    print(f"{'model':<20}{'precision':>10}{'forward img/s':>15}{'end-to-end img/s':>18}{'p50 ms':>9}{memory:>9}")
    threads: list[int | None] = [int(t) for t in args.decode_threads.split(",") if t] or [None]
    for precision in precisions:
        for count in threads:
            config = BenchmarkConfig(models=names, batch_size=args.batch_size, device=args.device,
                                     ways=(way_of(precision, "torch"),), decode_threads=count)
            report = run_benchmark(dataset, config)
            label = precision if count is None else f"{precision}/{count}t"
            for m in report.models:
                if m.error or m.latency_ms is None:
                    print(f"{m.name:<20}{label:>10}  not run: {m.error or 'no image was classified'}")
                    continue
                peak = m.peak_gpu_mb if memory == "GPU MB" else m.peak_rss_mb  # RSS: above the model's start
                print(f"{m.name:<20}{label:>10}{m.throughput_ips:>15.1f}{m.end_to_end_ips:>18.1f}"
                      f"{m.latency_ms['p50']:>9.1f}{peak:>9.0f}")
    print(environment_line(report.environment))
    if args.gpu_decode:
        gpu_decode_rates([image.path for image in dataset.images], names, precisions, args.device, args.batch_size)
    return 0


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _forward_only(classifier, inputs):
    for batch in inputs:  # from host memory, as run_benchmark's forward figure (copy and top-5 included)
        classifier.predict_batch(batch)


def _file_to_top5(classifier, paths, device, batch_size):
    from cnnviewer.core.gpu_decode import device_batches

    for batch in device_batches(paths, classifier.entry.preprocessing, device, batch_size):
        if batch.tensor is not None:
            classifier.predict_batch(batch.tensor)


def gpu_decode_rates(paths, names, precisions, device, batch_size, rounds=3):
    """File to top-5 through core.gpu_decode against forward only (the inputs already decoded), best of rounds."""
    from cnnviewer.core.gpu_decode import device_batches
    from cnnviewer.core.inference import Classifier
    from cnnviewer.core.models import load_model

    paths = [str(p) for p in paths]
    print(f"core.gpu_decode on {device}, batch {batch_size}, {len(paths)} files, best of {rounds} rounds:")
    print(f"{'model':<20}{'precision':>10}{'forward img/s':>15}{'file to top-5 img/s':>21}{'ratio':>8}"
          f"{'on device':>11}")
    for name in names:
        entry = get_entry(name)
        for precision in precisions:
            classifier = Classifier(load_model(entry, device, way_of(precision, "torch"), channels_last=True))
            batches = list(device_batches(paths, entry.preprocessing, device, batch_size))
            inputs = [b.tensor.cpu() for b in batches if b.tensor is not None]
            on_device = sum(b.on_device for b in batches)
            forward_only = partial(_forward_only, classifier, inputs)
            file_to_top5 = partial(_file_to_top5, classifier, paths, device, batch_size)

            forward_only()
            file_to_top5()  # warm-up: kernel choice for every batch shape, the decoder's first call
            best = {"forward": 0.0, "file": 0.0}
            for _ in range(rounds):  # interleaved
                for key, run in (("forward", forward_only), ("file", file_to_top5)):
                    _sync(device)
                    started = time.perf_counter()
                    run()
                    _sync(device)
                    count = sum(len(b) for b in inputs) if key == "forward" else len(paths)
                    best[key] = max(best[key], count / (time.perf_counter() - started))
            print(f"{name:<20}{precision:>10}{best['forward']:>15.1f}{best['file']:>21.1f}"
                  f"{best['file'] / best['forward']:>8.2f}{f'{on_device}/{len(paths)}':>11}")


def check_gpu_decode(device: str) -> int:
    """core.gpu_decode's inputs against the present path's, and EfficientNet-Lite0's top-5 through both."""
    from cnnviewer.core.gpu_decode import decode_batch
    from cnnviewer.core.images import is_image_path
    from cnnviewer.core.inference import Classifier, make_transform
    from cnnviewer.core.models import load_model

    entry = get_entry("efficientnet_lite0")
    classifier = Classifier(load_model(entry, device))
    whole = make_transform(entry.preprocessing)
    from cnnviewer.core.images import load_image

    steps = [1 / 255 / s for s in entry.preprocessing.std]
    print(f"core.gpu_decode on {device} against the present path (load_image + make_transform), "
          f"EfficientNet-Lite0; one level of 255 is {min(steps):.4f} after normalising")
    for folder in ("imagenet-val-100", "imagenet-samples-88"):
        paths = sorted(str(p) for p in (ROOT.parent / "shared" / "datasets" / folder).rglob("*")
                       if is_image_path(p.name))
        diffs, whole_diffs, same_top5, same_top1, on_device, compared = [], [], 0, 0, 0, 0
        for start in range(0, len(paths), 16):
            chunk = paths[start: start + 16]
            batch = decode_batch(chunk, entry.preprocessing, device)
            on_device += batch.on_device
            present = [classifier.decode(p) for p in chunk]
            rows = iter(list(batch.tensor.cpu()) if batch.tensor is not None else [])
            mine, theirs, full = [], [], []
            for path, error, decoded in zip(chunk, batch.errors, present, strict=True):
                if error is not None or decoded.tensor is None:
                    assert error == decoded.error, (path, error, decoded.error)
                    continue
                mine.append(next(rows))
                theirs.append(decoded.tensor)
                full.append(whole(load_image(path)))
            if not mine:
                continue
            a, b, c = torch.stack(mine), torch.stack(theirs), torch.stack(full)
            diffs.append((a - b).abs().flatten(1).amax(1))
            whole_diffs.append((a - c).abs().flatten(1).amax(1))
            top_a = classifier.predict_batch(a.to(device))
            top_b = classifier.predict_batch(b.to(device))
            same_top5 += sum([p.index for p in x] == [p.index for p in y] for x, y in zip(top_a, top_b, strict=True))
            same_top1 += sum(x[0].index == y[0].index for x, y in zip(top_a, top_b, strict=True))
            compared += len(mine)
        per_image = torch.cat(diffs)
        print(f"{folder}: {on_device} of {len(paths)} files decoded by decode_jpeg, the rest by load_image; "
              f"max abs diff per image against the present path: max {per_image.max():.4f}, median "
              f"{per_image.median():.4f} (against a whole-size decode: max {torch.cat(whole_diffs).max():.4f}); "
              f"top-5 lists equal (members and order) {same_top5} of {compared}, top-1 equal {same_top1} of {compared}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
