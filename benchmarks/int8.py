"""int8 against the other ways: forward-only speed, and top-1/top-5 of EfficientNet-Lite against FP32.

    python benchmarks/int8.py [--part speed,accuracy] [--models resnet50,googlenet,inception_v3,efficientnet_lite0]
                              [--accuracy-models efficientnet_lite0,efficientnet_lite1,efficientnet_lite2]
                              [--recipes default] [--rounds 3] [--batches 3]

Speed: each model's FP32 ONNX export (BatchNorm folded) quantized with the recipe(s) named, then
forward-only images/s at batch 16 for int8 ONNX Runtime, FP32 ONNX Runtime, torch FP32 and torch
bf16 (where the CPU has it), in interleaved rounds, best of ``--rounds``; the ratios follow. The
torchvision models run with random weights (_random_weights.py), calibrated on imagenet-samples-88:
speed only. Accuracy: Lite0/1/2 (their real embedded weights) on imagenet-val-100, int8 calibrated on
imagenet-samples-88 (other images, never scored), against FP32 ONNX Runtime; and how many top-1
answers differ. Recipes (``--recipes a,b``): default, qoperator, s8s8, full_range, percentile,
entropy, no_preprocess, exclude_first_last, symmetric, or several joined by + (full_range+s8s8).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASETS = ROOT.parent / "shared" / "datasets"

from benchmarks._random_weights import random_weights_cache
from cnnviewer.core.catalog import EMBEDDED_SOURCE, ModelEntry, get_entry
from cnnviewer.core.datasets import load_labelled_folder
from cnnviewer.core.images import load_image
from cnnviewer.core.inference import make_transform
from cnnviewer.core.models import bf16_supported, load_model
from cnnviewer.core.quantize import (
    DEFAULT_RECIPE,
    Int8Recipe,
    Int8Runner,
    cpu_int8_flags,
    quantize_int8,
)
from cnnviewer.core.ways import BF16, FP32

RECIPES = {
    "default": DEFAULT_RECIPE,
    "qoperator": dataclasses.replace(DEFAULT_RECIPE, quant_format="QOperator"),
    "s8s8": dataclasses.replace(DEFAULT_RECIPE, activations="QInt8"),
    "full_range": dataclasses.replace(DEFAULT_RECIPE, reduce_range=False),
    "percentile": dataclasses.replace(DEFAULT_RECIPE, method="Percentile"),
    "entropy": dataclasses.replace(DEFAULT_RECIPE, method="Entropy"),
    "no_preprocess": dataclasses.replace(DEFAULT_RECIPE, preprocess=False),
    "exclude_first_last": dataclasses.replace(DEFAULT_RECIPE, exclude_first_last=True),
    "symmetric": dataclasses.replace(DEFAULT_RECIPE, activation_symmetric=True),
}


def recipe_of(label: str) -> Int8Recipe:
    """"full_range+s8s8": the default recipe with each named variant's changes applied."""
    changes: dict[str, object] = {}
    for part in label.split("+"):
        variant = RECIPES[part]
        changes.update({f.name: getattr(variant, f.name) for f in dataclasses.fields(variant)
                        if getattr(variant, f.name) != getattr(DEFAULT_RECIPE, f.name)})
    return dataclasses.replace(DEFAULT_RECIPE, **changes)  # type: ignore[arg-type]


def export_fp32(entry: ModelEntry, folder: Path) -> Path:
    """The model's FP32 ONNX export, BatchNorm folded, as the onnxruntime way exports it."""
    module = load_model(entry, "cpu", FP32).module
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 3, entry.input_size, entry.input_size),),
                          buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    path = folder / f"{entry.name}-fp32.onnx"
    path.write_bytes(buffer.getvalue())
    return path


def images_of(folder: Path) -> list[Path]:
    return [Path(image.path) for image in load_labelled_folder(folder).images]


def batch_of(entry: ModelEntry, paths: list[Path]) -> torch.Tensor:
    transform = make_transform(entry.preprocessing)
    return torch.stack([transform(load_image(p, min_side=entry.preprocessing.resize_size)) for p in paths])


def quantize(entry: ModelEntry, fp32: Path, calibration: list[Path], recipe: Int8Recipe, folder: Path,
             label: str) -> Int8Runner:
    started = time.perf_counter()
    model = quantize_int8(fp32, entry, calibration, folder / f"{entry.name}-{label}.onnx", recipe=recipe)
    print(f"  {entry.name} {label}: quantized in {time.perf_counter() - started:.1f} s on "
          f"{model.calibration_used} images, {model.path.stat().st_size / 1e6:.1f} MB "
          f"(fp32 {fp32.stat().st_size / 1e6:.1f} MB)", flush=True)
    return Int8Runner(model, threads=torch.get_num_threads())


def speed(args: argparse.Namespace, folder: Path) -> None:
    names = args.models.split(",")
    random_weights_cache([n for n in names if get_entry(n).source != EMBEDDED_SOURCE])
    calibration = images_of(DATASETS / "imagenet-samples-88")
    scored = images_of(DATASETS / "imagenet-val-100")[:16]
    rows = []
    for name in names:
        entry = get_entry(name)
        fp32 = export_fp32(entry, folder)
        batch = batch_of(entry, scored)
        ways: dict[str, Callable[[torch.Tensor], object]] = {}
        for label in args.recipes.split(","):
            ways[f"int8 {label}"] = quantize(entry, fp32, calibration, recipe_of(label), folder, label)
        ways["fp32 ORT"] = Int8Runner(fp32, threads=torch.get_num_threads())  # the same session settings
        eager = load_model(entry, "cpu", FP32).module
        ways["torch fp32"] = eager
        if bf16_supported():
            half = load_model(entry, "cpu", BF16).module

            def bf16(x: torch.Tensor, module: torch.nn.Module = half) -> object:
                return module(x.to(torch.bfloat16))

            ways["torch bf16"] = bf16
        best = {label: 0.0 for label in ways}
        with torch.inference_mode():
            for run in ways.values():
                run(batch)  # warm-up
            for _ in range(args.rounds):  # interleaved: a slow moment hits every way alike
                for label, run in ways.items():
                    started = time.perf_counter()
                    for _ in range(args.batches):
                        run(batch)
                    best[label] = max(best[label], args.batches * len(batch) / (time.perf_counter() - started))
        rows.append((name, best))
        print(f"{name:<20}" + "  ".join(f"{label} {ips:6.1f}" for label, ips in best.items()), flush=True)
    print(f"\nforward-only images/s, batch 16, best of {args.rounds} interleaved rounds of {args.batches} batches")
    for name, best in rows:
        base = best.get("torch bf16") or best["torch fp32"]
        against = "bf16" if "torch bf16" in best else "torch fp32 (no bf16 here)"
        for label in (k for k in best if k.startswith("int8")):
            print(f"{name:<20}{label:<24} {best[label] / base:5.2f}x {against}, "
                  f"{best[label] / best['fp32 ORT']:5.2f}x fp32 ORT")


def top(logits: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-logits, axis=1)[:, :k]


def accuracy(args: argparse.Namespace, folder: Path) -> None:
    calibration = images_of(DATASETS / "imagenet-samples-88")
    scored = load_labelled_folder(DATASETS / "imagenet-val-100").images
    assert not {Path(p).resolve() for p in calibration} & {Path(i.path).resolve() for i in scored}
    labels = np.array([image.index for image in scored])
    print(f"\n{len(scored)} images of imagenet-val-100 scored; int8 calibrated on {len(calibration)} images of "
          "imagenet-samples-88 (not scored)")
    print(f"{'model':<20}{'way':<24}{'top-1':>7}{'top-5':>7}  top-1 differs from fp32")
    for name in args.accuracy_models.split(","):
        entry = get_entry(name)
        fp32 = export_fp32(entry, folder)
        batch = batch_of(entry, [Path(i.path) for i in scored]).numpy()
        reference = Int8Runner(fp32, threads=torch.get_num_threads()).run_array(batch)
        results = {"fp32 ORT": reference}
        for label in args.recipes.split(","):
            runner = quantize(entry, fp32, calibration, recipe_of(label), folder, label)
            results[f"int8 {label}"] = np.concatenate([runner.run_array(batch[i:i + 16])
                                                      for i in range(0, len(batch), 16)])
        for label, logits in results.items():
            top1 = float(np.mean(top(logits, 1)[:, 0] == labels) * 100)
            top5 = float(np.mean((top(logits, 5) == labels[:, None]).any(axis=1)) * 100)
            differs = int(np.sum(top(logits, 1)[:, 0] != top(reference, 1)[:, 0]))
            print(f"{name:<20}{label:<24}{top1:7.1f}{top5:7.1f}  {differs}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="speed,accuracy")
    parser.add_argument("--models", default="resnet50,googlenet,inception_v3,efficientnet_lite0")
    parser.add_argument("--accuracy-models", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2")
    parser.add_argument("--recipes", default="default")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=3, help="batches of 16 per way per round")
    args = parser.parse_args()
    unknown = [r for r in args.recipes.replace("+", ",").split(",") if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    flags = ", ".join(cpu_int8_flags()) or "none: int8 is emulated with AVX2 here, expect no gain"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"int8 CPU instructions: {flags}; bf16: {'yes' if bf16_supported() else 'no'}")
    with tempfile.TemporaryDirectory(prefix="cnnviewer-int8-bench-") as work:
        os.environ.setdefault("CNNVIEWER_CACHE_DIR", work)
        if "speed" in args.part:
            speed(args, Path(work))
        if "accuracy" in args.part:
            accuracy(args, Path(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
