"""Forward-only images/s of every way of running, and each as a share of the GEMM ceiling, in one run.

    python benchmarks/engines.py [--models resnet50,googlenet,inception_v3,efficientnet_lite0]
                                 [--rounds 3] [--batches 3] [--batch-size 16]

Per model, the same batch of real photos (preprocessed once) through: cnnviewer fp32, bf16 (where
native) and onnxruntime, loaded by cnnviewer's own load_model; OpenVINO f32 and bf16 when the
``openvino`` package is importable (not a dependency of cnnviewer: ``pip install openvino`` to add
the columns); cnnviewer's int8 (ONNX Runtime static quantization, calibrated on imagenet-samples-88)
when ``cnnviewer.core.quantize`` is there. The ways run in interleaved rounds (a slow spell of the
machine hits them all); each cell is the best round and the range. The GEMM ceiling of each
precision (benchmarks/gemm.py) is measured in the same run, and every cell is also printed as a
share of it: images/s x GFLOP per image (the catalog's GMACs x 2) / ceiling GFLOP/s. The
torchvision models run with random weights (_random_weights.py): speed only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._random_weights import random_weights_cache
from benchmarks.gemm import fraction_of_ceiling, measure_ceiling, precision_of
from cnnviewer.core.catalog import EMBEDDED_SOURCE, ModelEntry, get_entry
from cnnviewer.core.images import is_image_path, load_image
from cnnviewer.core.inference import Classifier, make_transform
from cnnviewer.core.models import bf16_supported, load_model
from cnnviewer.core.ways import BF16, FP32, ONNXRUNTIME

DATASETS = ROOT.parent / "shared" / "datasets"


def photos(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if is_image_path(p.name))


def input_batch(entry: ModelEntry, paths: list[str], size: int) -> torch.Tensor:
    """``size`` real photos as the model sees them (cnnviewer's loader and the weights' preprocessing)."""
    transform = make_transform(entry.preprocessing)
    return torch.stack([transform(load_image(p)) for p in paths[:size]])


def openvino_ways(entry: ModelEntry, batch: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """OpenVINO's CPU plugin on the same FP32 module (BatchNorm folded by cnnviewer, as the others)."""
    try:
        import openvino as ov  # an optional package, only to measure it beside ONNX Runtime
    except ImportError:
        return {}
    module = load_model(entry, "cpu", FP32).module
    with torch.no_grad():
        model = ov.convert_model(module, example_input=batch[:1])
    core = ov.Core()
    hints = ["f32"]
    if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        hints.append("bf16")
    array = batch.numpy()
    runs: dict[str, Callable[[], Any]] = {}
    for hint in hints:
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                     "INFERENCE_NUM_THREADS": torch.get_num_threads()})
        request = compiled.create_infer_request()
        runs[f"OpenVINO {hint}"] = partial(request.infer, {0: array})
    return runs


def int8_way(entry: ModelEntry, batch: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """cnnviewer's int8 way, calibrated on imagenet-samples-88 (not the images timed)."""
    try:
        from cnnviewer.core.onnx_cache import fp32_export_path
        from cnnviewer.core.quantize import Int8Runner, int8_model
    except ImportError:
        return {}
    calibration = photos(DATASETS / "imagenet-samples-88")[:32]
    runner = Int8Runner(int8_model(fp32_export_path(entry), entry, calibration), threads=torch.get_num_threads())
    return {"cnnviewer int8": lambda: runner(batch)}


def ways_for(entry: ModelEntry, batch: torch.Tensor) -> tuple[dict[str, Callable[[], Any]], list[str]]:
    """Each way's forward pass on ``batch``, by column label; and why any optional column is missing."""
    runs: dict[str, Callable[[], Any]] = {}
    notes = []
    ways = [("cnnviewer fp32", FP32), ("cnnviewer bf16", BF16), ("cnnviewer onnxruntime", ONNXRUNTIME)]
    for label, way in ways:
        if way is BF16 and not bf16_supported():
            notes.append("bf16: not native on this CPU")
            continue
        classifier = Classifier(load_model(entry, "cpu", way, channels_last=True))
        runs[label] = partial(classifier.forward, batch)
    for extra in (openvino_ways, int8_way):
        try:
            runs.update(extra(entry, batch))
        except Exception as exc:  # noqa: BLE001 - an optional column that fails is reported, the rest still run
            notes.append(f"{extra.__name__}: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}")
    return runs, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet50,googlenet,inception_v3,efficientnet_lite0")
    parser.add_argument("--images", default=str(DATASETS / "imagenet-val-100"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best counts, the range is shown")
    parser.add_argument("--batches", type=int, default=3, help="forward passes per way per round")
    args = parser.parse_args()
    names = args.models.split(",")
    random_weights_cache([n for n in names if get_entry(n).source != EMBEDDED_SOURCE])
    os.environ.setdefault("CNNVIEWER_CACHE_DIR", tempfile.mkdtemp(prefix="cnnviewer-engines-"))  # fresh exports
    paths = photos(Path(args.images))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"batch {args.batch_size} of {Path(args.images).name}, forward only, {args.rounds} interleaved rounds "
          f"of {args.batches} batches; images/s best (range), share of the GEMM ceiling", flush=True)
    ceiling = measure_ceiling(repeat=3)
    print("GEMM ceiling (benchmarks/gemm.py): " + ", ".join(f"{p} {g:.1f} G(FL)OP/s" for p, g in ceiling.items()),
          flush=True)
    rows: dict[str, dict[str, list[float]]] = {}
    columns: list[str] = []
    for name in names:
        entry = get_entry(name)
        batch = input_batch(entry, paths, args.batch_size)
        runs, notes = ways_for(entry, batch)
        for note in notes:
            print(f"  {name}: {note}")
        for run in runs.values():  # warm-up: oneDNN's kernel choice, ORT's first run
            run()
        rates: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(max(1, args.rounds)):
            for label, run in runs.items():
                started = time.perf_counter()
                for _ in range(max(1, args.batches)):
                    run()
                rates[label].append(args.batches * len(batch) / (time.perf_counter() - started))
        rows[name] = rates
        columns += [label for label in runs if label not in columns]
        print(f"  {name}: " + ", ".join(f"{label} {max(r):.1f}" for label, r in rates.items()), flush=True)
    print()
    print("| model | " + " | ".join(columns) + " |")
    print("| --- " * (len(columns) + 1) + "|")
    for name, rates in rows.items():
        entry = get_entry(name)
        cells = []
        for label in columns:
            values = rates.get(label)
            if not values:
                cells.append("-")
                continue
            best = max(values)
            top = ceiling.get(precision_of(label))
            share = f", {fraction_of_ceiling(best, entry.gmacs, top):.0%}" if top else ""
            cells.append(f"{best:.1f} ({min(values):.1f}-{best:.1f}{share})")
        print(f"| {entry.title} ({2 * entry.gmacs:.2f} GFLOP) | " + " | ".join(cells) + " |")
    print()
    print("Share: images/s x GFLOP per image / the GEMM ceiling of the way's precision "
          "(OpenVINO bf16 against bf16, int8 against int8, the rest against fp32).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
