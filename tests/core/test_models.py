"""Loading weights: embedded, cached in torch's hub folder, or refused with a sentence (never random)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from cnnviewer.core.catalog import Availability, checkpoints_dir, get_entry
from cnnviewer.core.errors import WeightsMissingError
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import WeightsFileError, load_model, read_state_dict
from tests.conftest import PHOTOS_13
from tests.weights_server import save_code_pickle


def _cache(entry, state_dict):
    checkpoints_dir().mkdir(parents=True, exist_ok=True)
    path = checkpoints_dir() / entry.weights_filename
    torch.save(state_dict, path)
    return path


def test_missing_weights_are_refused_with_a_useful_sentence():
    entry = get_entry("resnet50")
    with pytest.raises(WeightsMissingError) as caught:
        load_model(entry)
    message = str(caught.value)
    for part in ("resnet50", "resnet50-11ad3fa6.pth", "97.8 MB", str(checkpoints_dir()), "download", "import"):
        assert part in message


def test_cached_torchvision_file_is_loaded_exactly():
    entry = get_entry("resnet18")
    reference = torchvision.models.resnet18(weights=None)
    _cache(entry, reference.state_dict())
    assert entry.availability() is Availability.CACHED
    loaded = load_model(entry)
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], value), key
    assert not loaded.module.training


def test_googlenet_file_with_auxiliary_heads_loads_and_drops_them():
    entry = get_entry("googlenet")
    published_layout = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    _cache(entry, published_layout.state_dict())
    module = load_model(entry).module
    assert module.aux1 is None and module.aux2 is None and module.transform_input
    with torch.inference_mode():
        assert module(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_densenet_old_key_names_are_renamed():
    entry = get_entry("densenet121")
    state = torchvision.models.densenet121(weights=None).state_dict()
    # torchvision's published file: old "norm.1" names, and no num_batches_tracked counters.
    old = {k.replace("norm1", "norm.1").replace("conv2", "conv.2"): v for k, v in state.items()
           if not k.endswith("num_batches_tracked")}
    assert old.keys() != state.keys()
    _cache(entry, old)
    assert torch.equal(load_model(entry).module.state_dict()["features.denseblock1.denselayer1.norm1.weight"],
                       state["features.denseblock1.denselayer1.norm1.weight"])


def test_another_architectures_weights_are_refused_with_the_keys():
    entry = get_entry("resnet18")
    _cache(entry, torchvision.models.mobilenet_v3_small(weights=None).state_dict())
    with pytest.raises(WeightsFileError, match="do not fit resnet18.*missing key"):
        load_model(entry)


def test_pickle_with_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    save_code_pickle(path, marker)
    with pytest.raises(WeightsFileError, match="refused"):
        read_state_dict(path)
    assert not marker.exists()


def test_random_bytes_are_a_clear_error(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(WeightsFileError, match="not a readable PyTorch weights file"):
        read_state_dict(path)


def test_embedded_model_classifies_a_real_photo():
    classifier = Classifier(load_model(get_entry("efficientnet_lite0")))
    result = classifier.classify_file(PHOTOS_13 / "polar_bear.jpg", top_k=5)
    assert result.ok and len(result.predictions) == 5
    assert result.predictions[0].index == 296 and result.predictions[0].name == "ice bear"
    probabilities = [p.probability for p in result.predictions]
    assert probabilities == sorted(probabilities, reverse=True) and 0.5 < probabilities[0] <= 1.0
    assert result.timings.inference_ms > 0


def test_a_bad_file_among_good_ones_keeps_order_and_reason(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    classifier = Classifier(load_model(get_entry("efficientnet_lite0")))
    paths = [PHOTOS_13 / "polar_bear.jpg", bad, PHOTOS_13 / "banana_0.jpg"]
    results = list(classifier.classify_files(paths, batch_size=2))
    assert [r.path for r in results] == [str(p) for p in paths]
    assert results[1].error and "not an image" in results[1].error and not results[1].predictions
    assert results[0].predictions[0].index == 296 and results[2].predictions[0].index == 954
