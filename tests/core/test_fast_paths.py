"""The fast paths give the same classes as plain FP32 on real photos (accuracy, not time)."""

from __future__ import annotations

import pytest

from cnnviewer.core.catalog import get_entry
from cnnviewer.core.engines import onnxruntime_available
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import bf16_supported, load_model
from tests.helpers import EMBEDDED, labelled_files, top1_accuracy, top5_indices

# Each fast path is one code path for every model; by default it is checked on Lite0 (the default
# model), and `pytest -m slow` checks Lite1 and Lite2 too (100 photos each, every way of running).
MODELS = [name if name == "efficientnet_lite0" else pytest.param(name, marks=pytest.mark.slow) for name in EMBEDDED]


@pytest.mark.parametrize("name", MODELS)
def test_cnnviewer_fp32_gives_the_same_top5_on_every_image(name, top5_cache):
    # "fp32" is what cnnviewer runs; "reference" is plain eager FP32 with the weights as published.
    fast, plain = top5_cache.facts(name, "fp32"), top5_cache.facts(name, "reference")
    assert fast["folded_batchnorms"] > 0 and fast["channels_last"]
    assert plain["folded_batchnorms"] == 0 and not plain["channels_last"]
    assert top5_cache.get(name, "fp32") == top5_cache.get(name, "reference")


@pytest.mark.skipif(not bf16_supported(), reason="this CPU has no native bfloat16 (AVX-512 BF16 or AMX)")
@pytest.mark.parametrize("name", MODELS)
def test_bf16_top1_within_one_point_of_fp32(name, top5_cache):
    files = labelled_files("imagenet-val-100")
    assert top5_cache.facts(name, "bf16")["precision"] == "bf16"
    bf16, fp32 = top5_cache.get(name, "bf16"), top5_cache.get(name, "reference")
    assert abs(top1_accuracy(bf16, files) - top1_accuracy(fp32, files)) <= 1.0
    assert sum(a[0] == b[0] for a, b in zip(bf16, fp32, strict=True)) >= 95  # and mostly the very same answers


@pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime is not installed")
@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_gives_the_same_top5_on_every_image(name, top5_cache):
    assert top5_cache.facts(name, "onnxruntime")["engine"] == "onnxruntime"
    assert top5_cache.get(name, "onnxruntime") == top5_cache.get(name, "reference")


def test_reduced_size_jpeg_decoding_keeps_top1_on_samples_88():
    files = labelled_files("imagenet-samples-88")
    classifier = Classifier(load_model(get_entry("efficientnet_lite0")))
    full = top5_indices(classifier, files)
    reduced = top5_indices(classifier, files, fast_decode=True)
    same = sum(a[0] == b[0] for a, b in zip(full, reduced, strict=True))
    assert same / len(files) >= 0.99, f"{same} of {len(files)}"

