"""The catalog: every torchvision ImageNet-1k classifier plus the embedded models, each buildable."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from cnnviewer.core.catalog import (
    EMBEDDED_SOURCE,
    TF_MEAN,
    Availability,
    ModelEntry,
    catalog,
    checkpoints_dir,
    get_entry,
    ready_entries,
)
from cnnviewer.core.errors import UnknownModelError
from cnnviewer.core.inference import make_transform
from cnnviewer.core.labels import imagenet_categories, synsets
from cnnviewer.core.models import build_architecture
from tests.helpers import PHOTOS_13

NAMES = [entry.name for entry in catalog()]


def is_heavy(entry: ModelEntry) -> bool:
    """Seconds to minutes on two cores to build and run once (vit_h_14: a TFLOP at 518 px)."""
    return entry.gmacs > 12 or entry.num_params > 150_000_000


def family(entry: ModelEntry) -> str:
    """The torchvision module that builds it (resnet, vit, ...), or "embedded"."""
    if entry.source == EMBEDDED_SOURCE:
        return "embedded"
    from torchvision.models import get_model_builder

    return get_model_builder(entry.name).__module__


# The heavy ones run with `pytest -m slow`; every family still runs by default (test below).
ENTRIES = [pytest.param(e.name, marks=pytest.mark.slow) if is_heavy(e) else e.name for e in catalog()]


def test_catalog_holds_every_torchvision_imagenet_classifier_and_the_embedded_three():
    import torchvision
    from torchvision.models import get_model_weights, list_models

    expected = {
        name for name in list_models(module=torchvision.models)
        if "ImageNet-1K" in get_model_weights(name).DEFAULT.meta.get("_metrics", {})
    }
    assert len(expected) >= 80
    embedded = {e.name for e in catalog() if e.source == EMBEDDED_SOURCE}
    assert embedded == {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    assert set(NAMES) == expected | embedded
    assert len(NAMES) == len(set(NAMES))


def test_entries_carry_their_metadata():
    resnet = get_entry("resnet50")
    assert resnet.weights_id == "ResNet50_Weights.IMAGENET1K_V2"
    assert resnet.preprocessing.resize_size == 232 and resnet.input_size == 224
    assert resnet.num_params == 25_557_032 and resnet.gmacs > 4 and resnet.acc1 > 80 and resnet.acc5 > 95
    assert resnet.weights_filename == "resnet50-11ad3fa6.pth"
    assert get_entry("inception_v3").input_size == 299
    lite2 = get_entry("efficientnet_lite2")
    assert lite2.input_size == 260 and lite2.preprocessing.resize_size == 297
    assert lite2.preprocessing.mean == TF_MEAN and lite2.licence == "Apache-2.0"
    assert lite2.file_size_mb > 10


def test_categories_are_torchvisions_and_synsets_carry_every_lemma():
    categories = imagenet_categories()
    assert len(categories) == 1000 and categories[296] == "ice bear"
    bear = synsets()[296]
    assert bear.wnid == "n02134084" and "polar bear" in bear.lemmas
    assert get_entry("efficientnet_lite0").categories is categories


def test_lookup_is_forgiving_and_unknown_names_say_so():
    assert get_entry("ResNet-50".replace("-", "")).name == "resnet50"
    assert get_entry("EfficientNet-Lite0").name == "efficientnet_lite0"
    with pytest.raises(UnknownModelError, match="resnet"):
        get_entry("resnet5")
    with pytest.raises(UnknownModelError, match="Unknown model 'frobnicator'; it is not in the catalog") as caught:
        get_entry("frobnicator")
    assert "cnnviewer" not in str(caught.value) and "models --all" in caught.value.for_cli()


def test_availability_follows_the_cache(isolated_home):
    entry = get_entry("resnet18")
    assert checkpoints_dir().is_relative_to(isolated_home / "torch")  # TORCH_HOME respected
    assert entry.availability() is Availability.MISSING
    assert get_entry("efficientnet_lite0").availability() is Availability.EMBEDDED
    checkpoints_dir().mkdir(parents=True)
    (checkpoints_dir() / entry.weights_filename).write_bytes(b"x")
    assert entry.availability() is Availability.CACHED
    assert {e.name for e in ready_entries()} == {"resnet18", "efficientnet_lite0", "efficientnet_lite1",
                                                 "efficientnet_lite2"}


@pytest.fixture(scope="module")
def photo():
    return Image.open(PHOTOS_13 / "polar_bear.jpg").convert("RGB")


def test_the_default_run_builds_a_model_of_every_family():
    light = {family(e) for e in catalog() if not is_heavy(e)}
    assert light == {family(e) for e in catalog()}
    assert {"embedded", "torchvision.models.vision_transformer", "torchvision.models.swin_transformer",
            "torchvision.models.regnet", "torchvision.models.vgg"} <= light


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_builds_preprocesses_to_its_size_and_scores_1000_classes(name, photo):
    entry = get_entry(name)
    model = build_architecture(entry)  # random weights: shapes only
    batch = make_transform(entry.preprocessing)(photo).unsqueeze(0)
    assert tuple(batch.shape) == (1, 3, entry.input_size, entry.input_size)
    with torch.inference_mode():
        scores = model(batch)
    assert isinstance(scores, torch.Tensor), "auxiliary outputs must not reach the caller"
    assert tuple(scores.shape) == (1, 1000)
    assert not model.training
    if name == "googlenet":
        assert model.aux1 is None and model.aux2 is None
    if name == "inception_v3":
        assert model.AuxLogits is None
