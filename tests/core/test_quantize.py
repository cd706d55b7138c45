"""int8 by ONNX Runtime static quantization: it agrees with FP32, is cached by what made it, and refuses too few images."""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviewer.core.catalog import ModelEntry, get_entry
from cnnviewer.core.inference import make_transform
from cnnviewer.core.models import load_model
from cnnviewer.core.quantize import (
    MIN_CALIBRATION_IMAGES,
    CalibrationError,
    Int8Runner,
    int8_cache_path,
    int8_model,
    int8_supported,
    quantize_int8,
)
from tests.helpers import labelled_files

LITE0 = get_entry("efficientnet_lite0")
CALIBRATION = [path for path, _ in labelled_files("imagenet-samples-88")][:20]
SCORED = [path for path, _ in labelled_files("imagenet-val-100")][:25]


# A small real network for the cache tests: quantizing it takes a second, Lite0 half a minute.
TINY = dataclasses.replace(LITE0, name="tiny_cnn", preprocessing=dataclasses.replace(
    LITE0.preprocessing, resize_size=36, crop_size=32))


def _export(module: torch.nn.Module, entry: ModelEntry, folder: Path) -> Path:
    """The FP32 ONNX export, as the onnxruntime way makes it."""
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(1, 3, entry.input_size, entry.input_size),),
                          buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    path = folder / f"{entry.name}-fp32.onnx"
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Lite0's FP32 export, BatchNorm folded (its real weights)."""
    return _export(load_model(LITE0, "cpu").module, LITE0, tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten(), torch.nn.Linear(8, 1000))
    return _export(module, TINY, tmp_path_factory.mktemp("tiny"))


def _scored_batch() -> np.ndarray:
    from cnnviewer.core.images import load_image

    transform = make_transform(LITE0.preprocessing)
    return torch.stack([transform(load_image(p)) for p in SCORED]).numpy()


def test_int8_lite0_top1_matches_fp32_on_most_photos(fp32_onnx: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    model = quantize_int8(fp32_onnx, LITE0, [*CALIBRATION, broken], tmp_path / "lite0-int8.onnx")
    assert model.calibration_used == 20
    assert [Path(p).name for p, _ in model.skipped] == ["broken.jpg"]
    assert "broken.jpg" in model.skipped_sentence
    assert model.path.stat().st_size < fp32_onnx.stat().st_size / 2  # int8 weights: a quarter, plus scales
    batch = _scored_batch()
    int8_top1 = Int8Runner(model).run_array(batch).argmax(axis=1)
    fp32_top1 = Int8Runner(fp32_onnx).run_array(batch).argmax(axis=1)
    # Measured here: 25 of 25 agree (20 calibration images); 22 leaves room for another CPU's rounding.
    assert int((int8_top1 == fp32_top1).sum()) >= 22
    # And the torch entry point gives the same logits as the array one.
    runner = Int8Runner(model)
    assert torch.allclose(runner(torch.from_numpy(batch[:2])), torch.from_numpy(runner.run_array(batch[:2])))


def test_cache_is_reused_keyed_and_rebuilt_when_damaged(tiny_onnx: Path, tmp_path: Path) -> None:
    first = int8_model(tiny_onnx, TINY, CALIBRATION)
    assert first.built and first.path.parent == Path(os.environ["CNNVIEWER_CACHE_DIR"]) / "onnx"
    stamp = first.path.stat().st_mtime_ns
    again = int8_model(tiny_onnx, TINY, CALIBRATION)
    assert not again.built and again.path == first.path and again.path.stat().st_mtime_ns == stamp
    assert again.calibration_used == 20

    # Keyed by the calibration set: other images, or the same files changed, give another file.
    assert int8_cache_path(tiny_onnx, TINY, CALIBRATION[1:] + [SCORED[0]]) != first.path
    changed = [tmp_path / p.name for p in CALIBRATION]
    for source, copy in zip(CALIBRATION, changed, strict=True):
        copy.write_bytes(source.read_bytes())
    key = int8_cache_path(tiny_onnx, TINY, changed)
    os.utime(changed[0], ns=(1, 1))
    assert int8_cache_path(tiny_onnx, TINY, changed) != key
    assert int8_cache_path(tiny_onnx, TINY, list(reversed(CALIBRATION))) == first.path  # order is not identity

    # A truncated cached file is found and quantized again, whole.
    data = first.path.read_bytes()
    first.path.write_bytes(data[: len(data) // 2])
    rebuilt = int8_model(tiny_onnx, TINY, CALIBRATION)
    assert rebuilt.built and rebuilt.path == first.path and rebuilt.path.stat().st_size == len(data)
    Int8Runner(rebuilt)  # loads


def test_too_few_readable_images_is_one_sentence(tiny_onnx: Path, tmp_path: Path) -> None:
    images = []
    for number in range(MIN_CALIBRATION_IMAGES - 1):
        path = tmp_path / f"ok{number:02d}.png"
        Image.new("RGB", (40, 30), (number * 10, 80, 160)).save(path)
        images.append(path)
    bad = tmp_path / "empty.jpg"
    bad.write_bytes(b"")
    with pytest.raises(CalibrationError) as raised:
        quantize_int8(tiny_onnx, TINY, [bad, *images], tmp_path / "never.onnx")
    sentence = str(raised.value)
    assert f"at least {MIN_CALIBRATION_IMAGES} readable photos" in sentence
    assert f"only {MIN_CALIBRATION_IMAGES - 1} of the {MIN_CALIBRATION_IMAGES}" in sentence
    assert "empty.jpg" in sentence and sentence.count(".") >= 1 and "\n" not in sentence
    assert not (tmp_path / "never.onnx").exists()


def test_int8_supported_reads_the_cpu_flags() -> None:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        text = handle.read()
    assert int8_supported() == any(flag in text.split() for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))
