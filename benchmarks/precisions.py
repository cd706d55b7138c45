"""Which precision runs fastest on this machine's device: ``cnnviewer bench``'s own loop, per model.

    python benchmarks/precisions.py [--device cuda] [--precisions fp32,bf16] [--models resnet50,googlenet,inception_v3]
                                    [--images ../shared/datasets/imagenet-val-100] [--batch-size 64]

Runs run_benchmark (the code behind ``cnnviewer bench`` and the window's benchmark) once per
precision over the same images and prints, per model, forward-only and end-to-end images/s, the
batch-1 latency and the peak memory (GPU allocations on a GPU). The torchvision models run with
random weights (_random_weights.py): speed only, no accuracy is printed from them.
"""

from __future__ import annotations

import argparse
import sys
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
    args = parser.parse_args()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
