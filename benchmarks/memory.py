"""Memory: peak resident memory of the three-model benchmark, and growth over 5000 small images.

    python benchmarks/memory.py [--images ../shared/datasets/imagenet-val-100] [--small 5000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._random_weights import random_weights_cache

LAB = ["resnet50", "googlenet", "inception_v3"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "datasets" / "imagenet-val-100"))
    parser.add_argument("--small", type=int, default=5000)
    args = parser.parse_args()
    random_weights_cache(LAB)  # speed and memory only: random values, real shapes
    from cnnviewer.core.benchmark import BenchmarkConfig, run_benchmark
    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.datasets import load_labelled_folder
    from cnnviewer.core.inference import Classifier
    from cnnviewer.core.models import load_model

    process = psutil.Process()
    start = process.memory_info().rss / 2**20
    report = run_benchmark(load_labelled_folder(args.images), BenchmarkConfig(models=tuple(LAB), batch_size=16))
    peak = max(m.peak_rss_mb for m in report.models)
    print(f"three-model benchmark ({', '.join(LAB)}, batch 16) over {report.models[0].images} images: "
          f"peak resident memory {peak:.0f} MB (process started the run at {start:.0f} MB)")

    folder = Path(tempfile.mkdtemp(prefix="cnnviewer-small-"))
    rng = np.random.default_rng(0)
    for i in range(args.small):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")
    paths = sorted(str(p) for p in folder.iterdir())
    classifier = Classifier(load_model(get_entry("efficientnet_lite0"), channels_last=True))
    samples = []
    for number, _ in enumerate(classifier.classify_files(paths, batch_size=16), 1):
        if number % 250 == 0:
            samples.append(process.memory_info().rss / 2**20)
    warm = samples[1]  # after 500 images
    print(f"{args.small} small images with efficientnet_lite0: {warm:.0f} MB after warm-up (500 images), "
          f"{samples[-1]:.0f} MB at the end, growth {samples[-1] - warm:+.0f} MB, highest {max(samples):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
