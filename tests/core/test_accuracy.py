"""Real accuracy of the embedded pretrained models on real photos, against the shared reference figures."""

from __future__ import annotations

import dataclasses

import pytest

from cnnviewer.core.catalog import IMAGENET_MEAN, IMAGENET_STD, get_entry
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import load_model
from tests.helpers import EMBEDDED, labelled_files, top1_accuracy, top5_accuracy, top5_indices

# ../shared/datasets/README.md, "Reference figures": top-1 / top-5 in % on imagenet-val-100.
REFERENCE_VAL_100 = {"efficientnet_lite0": (88.0, 98.0), "efficientnet_lite1": (88.0, 98.0),
                     "efficientnet_lite2": (87.0, 98.0)}
WRONG_NORMALISATION_LITE0 = (82.0, 96.0)
# Lite0 and Lite1 on the 100 photos by default (the benchmark tests compare against the same cached
# answers); Lite2, the slowest of the three, with `pytest -m slow`: by default its weights are
# checked on photos-13 below.
VAL_100_MODELS = [name if name != "efficientnet_lite2" else pytest.param(name, marks=pytest.mark.slow)
                  for name in EMBEDDED]


@pytest.mark.parametrize("name", VAL_100_MODELS)
def test_embedded_model_reproduces_reference_on_val_100(name, top5_cache):
    files = labelled_files("imagenet-val-100")
    assert len(files) == 100
    answers = top5_cache.get(name, "fp32")  # as cnnviewer runs it: the window, the CLI and bench
    top1, top5 = top1_accuracy(answers, files), top5_accuracy(answers, files)
    ref1, ref5 = REFERENCE_VAL_100[name]
    assert abs(top1 - ref1) <= 2.0, f"{name} top-1 {top1} vs reference {ref1}"
    assert abs(top5 - ref5) <= 2.0, f"{name} top-5 {top5} vs reference {ref5}"


def test_imagenet_normalisation_is_measurably_wrong_for_lite(top5_cache):
    """The weights carry TF's normalisation; ImageNet's mean/std gives the reference's lower figure."""
    files = labelled_files("imagenet-val-100")
    right = top1_accuracy(top5_cache.get("efficientnet_lite0", "reference"), files)
    loaded = load_model(get_entry("efficientnet_lite0"), fold=False)  # the reference way, but for the mean/std
    wrong_entry = dataclasses.replace(
        loaded.entry,
        preprocessing=dataclasses.replace(loaded.entry.preprocessing, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    )
    wrong = top1_accuracy(top5_indices(Classifier(dataclasses.replace(loaded, entry=wrong_entry)), files), files)
    assert abs(wrong - WRONG_NORMALISATION_LITE0[0]) <= 2.0
    assert right - wrong >= 4.0, (right, wrong)


@pytest.mark.parametrize("name", EMBEDDED)
def test_photos_13_everyday_photos(name, top5_cache):
    files = labelled_files("photos-13")
    answers = top5_cache.get(name, "fp32", "photos-13")
    # 12 of the 13 are ImageNet photos (each model: 100 % top-1 on those); Grace Hopper is not.
    assert top1_accuracy(answers, files) >= 12 / 13 * 100 - 0.01
    assert top5_accuracy(answers, files) == 100.0
