"""The cached ONNX export and the torch-free classify path: made once, checked, and the same answers."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviewer.core import onnx_cache
from cnnviewer.core.catalog import get_entry
from cnnviewer.core.images import load_image
from cnnviewer.core.inference import Classifier, make_transform
from cnnviewer.core.models import load_model
from cnnviewer.core.onnx_classify import OnnxClassifier, preprocess
from cnnviewer.core.ways import ONNXRUNTIME
from cnnviewer.core.weights import file_sha256
from tests.helpers import PHOTOS_13, VAL_100, labelled_files

LITE0 = "efficientnet_lite0"


def _export_file() -> object:
    entry = get_entry(LITE0)
    return onnx_cache.fp32_export_file(LITE0, file_sha256(entry.weights_path()))


def test_the_export_is_made_once_then_loaded_from_the_cache():
    entry = get_entry(LITE0)
    first = load_model(entry, "cpu", ONNXRUNTIME)
    assert first.runner is not None and not first.runner.cached and onnx_cache.onnx_dir().is_dir()
    path = onnx_cache.fp32_export_path(entry)  # what the int8 way reads
    assert path == _export_file() and path.is_file()
    second = load_model(entry, "cpu", ONNXRUNTIME)
    assert second.runner is not None and second.runner.cached
    batch = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first.runner(batch), second.runner(batch))


@pytest.mark.parametrize("damage", ["truncated", "same size, bytes changed", "record is not JSON"])
def test_a_damaged_export_is_made_again_with_a_log_line(damage, caplog):
    entry = get_entry(LITE0)
    load_model(entry, "cpu", ONNXRUNTIME)
    path = _export_file()
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "record is not JSON":
        path.with_suffix(".json").write_bytes(b"\x00{")
    else:  # a flipped run of bytes in the middle: the size still matches, only the digest tells
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:])
    with caplog.at_level(logging.WARNING, logger="cnnviewer.core.onnx_cache"):
        again = load_model(entry, "cpu", ONNXRUNTIME)
    assert again.runner is not None and not again.runner.cached  # exported again
    assert "is not used and will be made again" in caplog.text
    assert path.read_bytes() == data and onnx_cache.load_export(LITE0, file_sha256(entry.weights_path()))


def _odd_images(tmp_path) -> list[Image.Image]:
    """Sizes torchvision's rounding is easy to get wrong on, and a greyscale file, made here."""
    made = []
    for number, (size, mode) in enumerate([((301, 257), "RGB"), ((257, 301), "L"), ((999, 13), "RGB"),
                                           ((224, 224), "RGB"), ((255, 256), "RGB"), ((3, 500), "L")]):
        pixels = np.random.default_rng(number).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        path = tmp_path / f"odd{number}.png"
        Image.fromarray(pixels).convert(mode).save(path)
        made.append(load_image(path))
    return made


@pytest.mark.parametrize("model", [LITE0, "resnet50", "inception_v3"])
def test_numpy_preprocessing_equals_the_torchvision_transform(model, tmp_path):
    preprocessing = get_entry(model).preprocessing
    transform = make_transform(preprocessing)
    photos = [load_image(p) for p, _ in labelled_files("imagenet-samples-88")[:30]]  # natural sizes, 2 greyscale
    photos += [load_image(p) for p in sorted(PHOTOS_13.glob("*.jpg"))[:4]] + _odd_images(tmp_path)
    for image in photos:
        expected = transform(image).numpy()
        got = preprocess(image, preprocessing)
        assert got.shape == expected.shape and got.dtype == np.float32
        assert float(np.abs(got - expected).max()) <= 1e-6, image.size


def test_the_torch_free_path_gives_the_onnxruntime_path_s_top5_on_imagenet_val_100():
    entry = get_entry(LITE0)
    files = [str(p) for p, _ in labelled_files("imagenet-val-100")[:20]]
    assert files and all(f.startswith(str(VAL_100)) for f in files)
    reference = Classifier(load_model(entry, "cpu", ONNXRUNTIME, channels_last=True))
    expected = [[p.index for p in r.predictions] for r in reference.classify_files(files, batch_size=8)]
    export = onnx_cache.load_export(LITE0, file_sha256(entry.weights_path()))
    assert export is not None and export.categories == entry.categories
    fast = OnnxClassifier(LITE0, export, auto=True)
    results = list(fast.classify_files(files, batch_size=8))
    assert [[p.index for p in r.predictions] for r in results] == expected
    assert all(r.way == ONNXRUNTIME and r.auto and r.way_label == "auto: onnxruntime" for r in results)
