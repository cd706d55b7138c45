"""Memory: each model's peak above its start from `cnnviewer bench` and from a process like the window's,
growth over runs in one process, and growth over 5000 small images.

    python benchmarks/memory.py [--images ../shared/datasets/imagenet-val-100] [--models a,b,c] [--limit 16]
                                [--repeat 3] [--runs 5] [--small 5000]

Every figure comes from a process of its own, the two kinds alternated and repeated: `cnnviewer bench`
(a fresh process, as a user runs it) and a process that first does what the window does before a
benchmark (Qt up, a photo classified with the window's model) and then runs the same core session.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EMBEDDED = "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"


def _figures(report_json: Path) -> dict[str, float]:
    data = json.loads(report_json.read_text(encoding="utf-8"))
    return {m["name"]: m["peak_rss_mb"] for m in data["models"] if m.get("error") is None}


def _cli_run(args: argparse.Namespace, out: Path) -> dict[str, float]:
    subprocess.run([sys.executable, "-m", "cnnviewer", "bench", args.images, "--models", args.models, "--limit",
                    str(args.limit), "--batch-size", str(args.batch_size), "--out", str(out)],
                   check=True, capture_output=True, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    return _figures(out / "report.json")


def _window_like_run(args: argparse.Namespace, out: Path) -> list[dict[str, float]]:
    subprocess.run([sys.executable, __file__, "--as-window", str(out), "--images", args.images, "--models",
                    args.models, "--limit", str(args.limit), "--batch-size", str(args.batch_size)],
                   check=True, capture_output=True, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    return [_figures(out / str(number) / "report.json") for number in (1, 2)]


def as_window(args: argparse.Namespace) -> int:
    """What the window does before a benchmark, then two runs of the core session, as its job runs them."""
    from PySide6.QtWidgets import QApplication

    from cnnviewer.core.benchmark import BenchmarkConfig
    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.datasets import load_labelled_folder
    from cnnviewer.core.inference import Classifier
    from cnnviewer.core.models import load_model
    from cnnviewer.core.session import run_to_folder

    app = QApplication([])
    dataset = load_labelled_folder(args.images)
    classifier = Classifier(load_model(get_entry("efficientnet_lite0"), channels_last=True))
    list(classifier.classify_files([item.path for item in dataset.images[:4]], batch_size=1))  # a double-click
    config = BenchmarkConfig(models=tuple(args.models.split(",")), batch_size=args.batch_size, limit=args.limit)
    for number in (1, 2):
        run_to_folder(dataset, config, Path(args.as_window) / str(number))
    del classifier, app
    return 0


def compare(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cnnviewer-memory-"))
    cli: list[dict[str, float]] = []
    first: list[dict[str, float]] = []
    second: list[dict[str, float]] = []
    for repeat in range(args.repeat):  # alternated, so a drift of the machine falls on both kinds
        cli.append(_cli_run(args, folder / f"cli-{repeat}"))
        one, two = _window_like_run(args, folder / f"window-{repeat}")
        first.append(one)
        second.append(two)

    def spread(runs: list[dict[str, float]], name: str) -> tuple[float, str]:
        values = [run[name] for run in runs if name in run]
        return statistics.median(values), f"{statistics.median(values):6.0f} ({min(values):.0f}-{max(values):.0f})"

    print(f"peak memory above start (MB), median (min-max) of {args.repeat} processes of each kind, "
          f"{args.limit} images, batch {args.batch_size}:")
    print(f"{'model':<20}{'cnnviewer bench':>18}{'window-like, run 1':>21}{'run 2':>16}{'largest gap':>13}")
    for name in cli[0]:
        c, c_text = spread(cli, name)
        w1, w1_text = spread(first, name)
        w2, w2_text = spread(second, name)
        gap = max(abs(w1 - c), abs(w2 - c)) / c * 100 if c else 0.0
        print(f"{name:<20}{c_text:>18}{w1_text:>21}{w2_text:>16}{gap:>12.1f}%")


def growth(args: argparse.Namespace) -> None:
    from cnnviewer.core.benchmark import BenchmarkConfig
    from cnnviewer.core.datasets import load_labelled_folder
    from cnnviewer.core.session import run_to_folder

    process = psutil.Process()
    dataset = load_labelled_folder(args.images)
    config = BenchmarkConfig(models=("efficientnet_lite0",), batch_size=args.batch_size, limit=args.limit)
    folder = Path(tempfile.mkdtemp(prefix="cnnviewer-runs-"))
    after = []
    for number in range(args.runs):
        report = run_to_folder(dataset, config, folder / str(number))
        after.append((process.memory_info().rss / 2**20, report.models[0].peak_rss_mb))
    print(f"{args.runs} runs of efficientnet_lite0 in one process: resident memory after each "
          + ", ".join(f"{rss:.0f}" for rss, _ in after) + f" MB (growth {after[-1][0] - after[0][0]:+.0f} MB); "
          "peak above start " + ", ".join(f"{peak:.0f}" for _, peak in after) + " MB")


def small_images(args: argparse.Namespace) -> None:
    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.inference import Classifier
    from cnnviewer.core.models import load_model

    process = psutil.Process()
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "datasets" / "imagenet-val-100"))
    parser.add_argument("--models", default=EMBEDDED)
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--small", type=int, default=5000, help="0 leaves the small-images measurement out")
    parser.add_argument("--as-window", metavar="DIR", help=argparse.SUPPRESS)  # the window-like child process
    args = parser.parse_args()
    if args.as_window:
        return as_window(args)
    compare(args)
    growth(args)
    if args.small:
        small_images(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
