"""The fast paths give the same classes as plain FP32 on real photos (accuracy, not time)."""

from __future__ import annotations

import pytest

from cnnviewer.core.catalog import get_entry
from cnnviewer.core.engines import onnxruntime_available
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import bf16_supported, load_model
from tests.conftest import labelled_files, top1_accuracy
from tests.conftest import top5_indices as top5

EMBEDDED = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@pytest.fixture(scope="module")
def val_100():
    return labelled_files("imagenet-val-100")


@pytest.fixture(scope="module")
def fp32(val_100):
    """Plain FP32 eager: the weights as published, no BatchNorm folding, NCHW."""
    return {name: top5(Classifier(load_model(get_entry(name), fold=False)), val_100) for name in EMBEDDED}


@pytest.mark.parametrize("name", EMBEDDED)
def test_cnnviewer_fp32_gives_the_same_top5_on_every_image(name, val_100, fp32):
    loaded = load_model(get_entry(name), channels_last=True)  # BatchNorm folded, NHWC: what bench runs
    assert loaded.folded_batchnorms > 0
    assert top5(Classifier(loaded), val_100) == fp32[name]


@pytest.mark.skipif(not bf16_supported(), reason="this CPU has no native bfloat16 (AVX-512 BF16 or AMX)")
@pytest.mark.parametrize("name", EMBEDDED)
def test_bf16_top1_within_one_point_of_fp32(name, val_100, fp32):
    bf16 = top5(Classifier(load_model(get_entry(name), precision="bf16", channels_last=True)), val_100)
    assert abs(top1_accuracy(bf16, val_100) - top1_accuracy(fp32[name], val_100)) <= 1.0
    assert sum(a[0] == b[0] for a, b in zip(bf16, fp32[name])) >= 95  # and mostly the very same answers


@pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime is not installed")
@pytest.mark.parametrize("name", EMBEDDED)
def test_onnxruntime_gives_the_same_top5_on_every_image(name, val_100, fp32):
    assert top5(Classifier(load_model(get_entry(name), engine="onnxruntime")), val_100) == fp32[name]


def test_reduced_size_jpeg_decoding_keeps_top1_on_samples_88():
    files = labelled_files("imagenet-samples-88")
    classifier = Classifier(load_model(get_entry("efficientnet_lite0")))
    full = top5(classifier, files)
    reduced = top5(classifier, files, fast_decode=True)
    same = sum(a[0] == b[0] for a, b in zip(full, reduced))
    assert same / len(files) >= 0.99, f"{same} of {len(files)}"


def test_engine_and_precision_are_checked():
    from cnnviewer.core.errors import CnnviewerError

    with pytest.raises(CnnviewerError, match="Unknown precision"):
        load_model(get_entry("efficientnet_lite0"), precision="fp8")
    with pytest.raises(CnnviewerError, match="Unknown engine"):
        load_model(get_entry("efficientnet_lite0"), engine="tensorrt")
    with pytest.raises(CnnviewerError, match="FP32 on the CPU"):
        load_model(get_entry("efficientnet_lite0"), precision="bf16", engine="onnxruntime")
