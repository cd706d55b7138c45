"""One path from file to probabilities: Grad-CAM explains the class classification shows, with its probability."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnviewer.core.catalog import get_entry
from cnnviewer.core.explain import explain_file
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import load_model
from cnnviewer.core.paths import sample_photos
from tests.helpers import EMBEDDED, PHOTOS_13, labelled_files

SAMPLES = sorted(sample_photos())
# Lite0 (the default model) on every photo; Lite1 and Lite2 on the samples, to keep the suite fast.
PHOTOS = {
    "efficientnet_lite0": [p for p, _ in labelled_files("photos-13") + labelled_files("imagenet-val-100")[:30]]
    + SAMPLES,
    "efficientnet_lite1": SAMPLES,
    "efficientnet_lite2": SAMPLES,
}


def shown(probability: float) -> str:
    """A probability as every face prints it."""
    return f"{probability * 100:.2f}"


@pytest.fixture(scope="module", params=EMBEDDED)
def classifier(request: pytest.FixtureRequest) -> Classifier:
    """The model loaded as the window and the CLI load it (BatchNorm folded, NHWC), once per module."""
    return Classifier(load_model(get_entry(request.param), channels_last=True))


def test_every_face_explains_the_top1_it_shows_with_its_probability(classifier: Classifier) -> None:
    photos: list[Path] = PHOTOS[classifier.entry.name]
    assert len(SAMPLES) == 3 and len(photos) >= 3
    differ = []
    for photo in photos:
        top = classifier.classify_file(photo).predictions[0]  # as the window and `cnnviewer classify FILE` do
        explanation = explain_file(classifier, photo)
        if (explanation.class_index, shown(explanation.probability)) != (top.index, shown(top.probability)):
            differ.append(f"{photo.name}: classify {top.index} {shown(top.probability)} %, explain "
                          f"{explanation.class_index} {shown(explanation.probability)} %")
        assert explanation.heatmap.shape == (explanation.image.height, explanation.image.width)
    assert not differ, differ


def test_a_large_jpeg_is_explained_over_the_image_the_model_saw(classifier: Classifier, tmp_path: Path) -> None:
    from PIL import Image

    if classifier.entry.name != "efficientnet_lite0":
        pytest.skip("one model is enough: the decode policy is the classifier's, not the model's")
    large = tmp_path / "large.jpg"
    with Image.open(PHOTOS_13 / "polar_bear.jpg") as photo:
        photo.convert("RGB").resize((2252, 2260)).save(large, quality=90)
    decoded = classifier.decode(large)
    explanation = explain_file(classifier, large)
    assert decoded.image is not None and decoded.image.size == explanation.image.size
    assert max(explanation.image.size) < 2252 / 2  # decoded at reduced size, as for classification
    assert min(explanation.image.size) >= classifier.decode_min_side
    assert explanation.class_index == classifier.classify_file(large).predictions[0].index == 296
