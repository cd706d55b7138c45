"""Real accuracy of the embedded pretrained models on real photos, against the shared reference figures."""

from __future__ import annotations

import dataclasses

import pytest

from cnnviewer.core.catalog import IMAGENET_MEAN, IMAGENET_STD, get_entry
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import load_model
from tests.conftest import labelled_files

# ../shared/datasets/README.md, "Reference figures": top-1 / top-5 in % on imagenet-val-100.
REFERENCE_VAL_100 = {"efficientnet_lite0": (88.0, 98.0), "efficientnet_lite1": (88.0, 98.0),
                     "efficientnet_lite2": (87.0, 98.0)}
WRONG_NORMALISATION_LITE0 = (82.0, 96.0)


def accuracy(classifier: Classifier, files) -> tuple[float, float]:
    results = list(classifier.classify_files([p for p, _ in files], top_k=5, batch_size=16))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    top1 = sum(r.predictions[0].index == truth for r, (_, truth) in zip(results, files))
    top5 = sum(truth in [p.index for p in r.predictions] for r, (_, truth) in zip(results, files))
    return 100.0 * top1 / len(files), 100.0 * top5 / len(files)


@pytest.mark.parametrize("name", sorted(REFERENCE_VAL_100))
def test_embedded_model_reproduces_reference_on_val_100(name):
    files = labelled_files("imagenet-val-100")
    assert len(files) == 100
    top1, top5 = accuracy(Classifier(load_model(get_entry(name))), files)
    ref1, ref5 = REFERENCE_VAL_100[name]
    assert abs(top1 - ref1) <= 2.0, f"{name} top-1 {top1} vs reference {ref1}"
    assert abs(top5 - ref5) <= 2.0, f"{name} top-5 {top5} vs reference {ref5}"


def test_imagenet_normalisation_is_measurably_wrong_for_lite():
    """The weights carry TF's normalisation; ImageNet's mean/std gives the reference's lower figure."""
    files = labelled_files("imagenet-val-100")
    loaded = load_model(get_entry("efficientnet_lite0"))
    right = accuracy(Classifier(loaded), files)
    wrong_entry = dataclasses.replace(
        loaded.entry,
        preprocessing=dataclasses.replace(loaded.entry.preprocessing, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    )
    wrong = accuracy(Classifier(dataclasses.replace(loaded, entry=wrong_entry)), files)
    assert abs(wrong[0] - WRONG_NORMALISATION_LITE0[0]) <= 2.0
    assert right[0] - wrong[0] >= 4.0, (right, wrong)


def test_photos_13_everyday_photos():
    files = labelled_files("photos-13")
    top1, top5 = accuracy(Classifier(load_model(get_entry("efficientnet_lite0"))), files)
    # 12 of the 13 are ImageNet photos (reference 100 % top-1 on those); Grace Hopper is not.
    assert top1 >= 12 / 13 * 100 - 0.01
    assert top5 == 100.0
