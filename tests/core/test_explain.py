"""Grad-CAM on real photos with the embedded model, the target layer of each family, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviewer.core.catalog import get_entry
from cnnviewer.core.errors import ImageLoadError
from cnnviewer.core.explain import (
    ExplainError,
    can_explain,
    explain_file,
    grad_cam,
    heatmap_at,
    overlay,
    target_layer,
)
from cnnviewer.core.images import load_image
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import LoadedModel, build_architecture, load_model
from cnnviewer.core.paths import sample_photos
from cnnviewer.core.ways import FP32, parse_way
from tests.helpers import PHOTOS_13, cli, second_way


@pytest.fixture(scope="module")
def lite0():
    """Loaded as the window and the CLI load it: BatchNorm folded, NHWC."""
    return Classifier(load_model(get_entry("efficientnet_lite0"), channels_last=True))


def test_map_has_the_image_size_and_values_in_0_1(lite0):
    image = load_image(PHOTOS_13 / "black_bear.jpg")
    explanation = grad_cam(lite0, image)
    assert explanation.class_index == 295 and explanation.class_name == "American black bear"
    assert explanation.heatmap.shape == (image.height, image.width)
    assert explanation.heatmap.min() >= 0 and explanation.heatmap.max() == pytest.approx(1.0, abs=0.02)
    assert not any(p.grad is not None for p in lite0.loaded.module.parameters())  # no gradients left behind


@pytest.mark.parametrize("photo, index", [("polar_bear.jpg", 296), ("banana_0.jpg", 954),
                                          ("jellyfish.jpg", 107)])
def test_the_map_lies_on_the_object_not_on_grey(lite0, photo, index):
    """A photo in one half of a neutral grey canvas twice its width: most of the mass is on the photo."""
    picture = load_image(PHOTOS_13 / photo)
    for side in ("left", "right"):
        canvas = Image.new("RGB", (picture.width * 2, picture.height), (128, 128, 128))
        canvas.paste(picture, (0 if side == "left" else picture.width, 0))
        heat = grad_cam(lite0, canvas, index).heatmap
        half = heat[:, : picture.width] if side == "left" else heat[:, picture.width:]
        assert half.sum() / heat.sum() > 0.7, (photo, side)


def test_another_class_gives_another_map(lite0):
    image = load_image(PHOTOS_13 / "polar_bear.jpg")
    bear = grad_cam(lite0, image, 296)
    other = grad_cam(lite0, image, 954)
    assert other.class_index == 954 and other.probability < bear.probability
    assert not np.allclose(bear.heatmap, other.heatmap)
    with pytest.raises(ExplainError, match="0-999"):
        grad_cam(lite0, image, 1000)


def test_a_way_without_gradients_explains_its_own_top1_with_a_fp32_map(lite0):
    way = parse_way(second_way())  # bf16 where the hardware has it, else onnxruntime
    other = Classifier(load_model(get_entry("efficientnet_lite0"), way=way, channels_last=True))
    photo = PHOTOS_13 / "polar_bear.jpg"
    with pytest.raises(ExplainError, match="needs gradients"):
        explain_file(other, photo)
    with pytest.raises(ExplainError, match="needs gradients"):  # nor in memory
        grad_cam(other, load_image(photo))
    with pytest.raises(ExplainError, match="needs gradients"):  # another model's gradients will not do
        explain_file(other, photo, gradients=Classifier(LoadedModel(get_entry("resnet18"),
                                                                    build_architecture(get_entry("resnet18")),
                                                                    torch.device("cpu"), 0.0)))
    explanation = explain_file(other, photo, gradients=lite0)
    top = other.classify_file(photo).predictions[0]
    assert explanation.way == FP32 and other.loaded.way == way != FP32
    assert (explanation.class_index, f"{explanation.probability:.4f}") == (top.index, f"{top.probability:.4f}")
    assert explanation.heatmap.max() == pytest.approx(1.0, abs=0.02)


def test_a_file_that_cannot_be_read_is_one_sentence(lite0, tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"not a photo")
    with pytest.raises(ImageLoadError, match="holiday.jpg: not an image"):
        explain_file(lite0, bad)


def test_the_map_stretches_to_another_copy_of_the_photo():
    heat = np.zeros((4, 6), np.float32)
    heat[:, 3:] = 1.0
    assert heatmap_at(heat, (6, 4)) is heat
    big = heatmap_at(heat, (12, 8))
    assert big.shape == (8, 12) and big[:, :5].max() < 0.5 and big[:, 7:].min() > 0.5


@pytest.mark.parametrize("name, stage", [
    ("resnet50", "layer4"), ("googlenet", "inception5b"), ("inception_v3", "Mixed_7c"), ("vgg16", "features"),
    ("alexnet", "features"), ("mobilenet_v3_large", "features"), ("efficientnet_b0", "features"),
    ("efficientnet_lite0", "_bn1"),
])
def test_each_family_reads_its_last_convolutional_stage(name, stage):
    entry = get_entry(name)
    module = build_architecture(entry)  # random weights: the layer choice and shapes only
    assert target_layer(name, module) is getattr(module, stage)
    classifier = Classifier(LoadedModel(entry, module, torch.device("cpu"), 0.0))
    image = load_image(PHOTOS_13 / "coral.jpg")
    heat = grad_cam(classifier, image, 973).heatmap
    assert heat.shape == (image.height, image.width) and 0 <= heat.min() and heat.max() <= 1


def test_a_transformer_says_it_cannot_be_explained():
    assert not can_explain("vit_b_16") and can_explain("resnet50")
    with pytest.raises(ExplainError, match="vit_b_16 cannot be explained"):
        target_layer("vit_b_16", None)


def test_overlay_keeps_the_photo_where_the_map_is_zero():
    image = Image.new("RGB", (8, 4), (10, 20, 30))
    heat = np.zeros((4, 8), np.float32)
    heat[:, 4:] = 1.0
    out = np.asarray(overlay(image, heat, 0.6))
    assert (out[:, :4] == (10, 20, 30)).all() and not (out[:, 4:] == (10, 20, 30)).all()


def test_cli_explain_says_what_classify_says_and_writes_overlay_and_heatmap(tmp_path):
    """grace_hopper: mortarboard 25.10 % in classify once read academic gown 25.7 % in explain."""
    photo = str(next(p for p in sample_photos() if p.name == "grace_hopper.jpg"))
    out, heat = tmp_path / "overlay.png", tmp_path / "heat.npy"
    proc = cli("explain", photo, "--model", "efficientnet_lite0", "--out", str(out), "--heatmap", str(heat))
    assert proc.returncode == 0, proc.stderr
    classified = cli("classify", photo, "--model", "efficientnet_lite0", "-k", "1")
    assert classified.returncode == 0, classified.stderr
    rank, index, *name, percent, _ = classified.stdout.splitlines()[-1].split()
    assert rank == "1" and f"class {index} {' '.join(name)} ({percent} %)" in proc.stdout
    with Image.open(out) as picture:  # at the photo's size, though the model saw it decoded at half size
        assert picture.size == (512, 600)
    array = np.load(heat)
    assert array.shape == (600, 512) and 0 <= array.min() and array.max() <= 1
    refused = cli("explain", str(PHOTOS_13 / "polar_bear.jpg"), "-m", "swin_t", "--out", str(tmp_path / "x.png"))
    assert refused.returncode == 1 and "cannot be explained" in refused.stderr
    assert cli("explain", str(PHOTOS_13 / "polar_bear.jpg"), "--class", "1000", "--out", str(out)).returncode == 2
