"""Loading weights: embedded, cached in torch's hub folder, or refused with a sentence (never random)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from cnnviewer.core.catalog import Availability, checkpoints_dir, get_entry
from cnnviewer.core.errors import CnnviewerError, WeightsMissingError
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import (
    WeightsFileError,
    bf16_supported,
    build_architecture,
    fold_batchnorm,
    load_model,
    read_state_dict,
)
from cnnviewer.core.ways import BF16, FP32, ONNXRUNTIME
from tests.helpers import PHOTOS_13
from tests.weights_server import save_code_pickle


@pytest.fixture(scope="module")
def lite0():
    """The embedded Lite0 as load_model gives it by default, loaded once for this module."""
    return Classifier(load_model(get_entry("efficientnet_lite0")))


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
    # The sentence names the action; each face names its own command or menu.
    assert "--" not in message and "cnnviewer weights" not in message and "File >" not in message
    assert "cnnviewer weights download resnet50" in caught.value.for_cli()
    assert "File > Import weights" in caught.value.for_window() and "--" not in caught.value.for_window()


def test_cached_torchvision_file_is_loaded_exactly():
    entry = get_entry("resnet18")
    reference = torchvision.models.resnet18(weights=None)
    _cache(entry, reference.state_dict())
    assert entry.availability() is Availability.CACHED
    loaded = load_model(entry, fold=False)  # as in the file: no BatchNorm folded away
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
    assert torch.equal(load_model(entry, fold=False).module.state_dict()["features.denseblock1.denselayer1.norm1.weight"],
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


def test_embedded_model_classifies_a_real_photo(lite0):
    result = lite0.classify_file(PHOTOS_13 / "polar_bear.jpg", top_k=5)
    assert result.ok and len(result.predictions) == 5 and result.way == FP32 == lite0.loaded.way
    assert result.predictions[0].index == 296 and result.predictions[0].name == "ice bear"
    probabilities = [p.probability for p in result.predictions]
    assert probabilities == sorted(probabilities, reverse=True) and 0.5 < probabilities[0] <= 1.0
    assert result.timings.inference_ms > 0


def test_a_bad_file_among_good_ones_keeps_order_and_reason(lite0, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    paths = [PHOTOS_13 / "polar_bear.jpg", bad, PHOTOS_13 / "banana_0.jpg"]
    results = list(lite0.classify_files(paths, batch_size=2))
    assert [r.path for r in results] == [str(p) for p in paths]
    assert results[1].error and "not an image" in results[1].error and not results[1].predictions
    assert results[0].predictions[0].index == 296 and results[2].predictions[0].index == 954


def _with_running_statistics(module: torch.nn.Module) -> torch.nn.Module:
    """Fresh models have mean 0 / variance 1 / scale 1 / shift 0 BatchNorms; give them real-looking ones."""
    generator = torch.Generator().manual_seed(1)
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            assert layer.running_mean is not None and layer.running_var is not None
            shape = layer.running_mean.shape
            layer.running_mean.copy_(torch.rand(shape, generator=generator) * 0.4 - 0.2)
            layer.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            layer.weight.data.copy_(torch.rand(shape, generator=generator) + 0.5)
            layer.bias.data.copy_(torch.rand(shape, generator=generator) * 0.2 - 0.1)
    return module.eval()


@pytest.mark.parametrize("name", ["resnet50", "googlenet", "inception_v3", "efficientnet_lite0"])
def test_batchnorm_folding_keeps_the_outputs_and_removes_every_following_batchnorm(name):
    entry = get_entry(name)
    module = _with_running_statistics(build_architecture(entry))
    batch = torch.rand(2, 3, entry.input_size, entry.input_size, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        before = module(batch)
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())
    assert norms > 40
    assert fold_batchnorm(module) == norms
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())
    with torch.inference_mode():
        after = module(batch)
    assert torch.allclose(after, before, rtol=1e-4, atol=1e-4 * float(before.abs().max()))


def test_batchnorm_folding_leaves_what_it_cannot_prove():
    class Shared(torch.nn.Module):  # the convolution's output is also read past the BatchNorm
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.norm = torch.nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.norm(y) + y

    class DataDependent(torch.nn.Sequential):  # fx cannot trace a branch on a tensor's value
        def forward(self, x):
            return super().forward(x) if x.sum() > 0 else x

    class IgnoresBias(torch.nn.Conv2d):  # a convolution subclass whose forward drops its bias
        def forward(self, x):
            return self._conv_forward(x, self.weight, None)

    for module in (Shared(), DataDependent(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)),
                   torch.nn.Sequential(IgnoresBias(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4))):
        module = _with_running_statistics(module)
        batch = torch.rand(1, 3, 8, 8) + 0.1
        with torch.inference_mode():
            before = module(batch)
        assert fold_batchnorm(module) == 0, type(module).__name__
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())
        with torch.inference_mode():
            assert torch.equal(module(batch), before)


def test_loaded_models_fold_by_default_and_say_so(lite0):
    assert lite0.loaded.folded_batchnorms == 49
    plain = load_model(get_entry("efficientnet_lite0"), fold=False)
    assert plain.folded_batchnorms == 0
    assert plain.way == FP32 and (plain.precision, plain.engine) == ("fp32", "torch")


def test_a_large_kernel_is_folded_too():
    module = _with_running_statistics(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 11), torch.nn.BatchNorm2d(4)))
    batch = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        before = module(batch)
    assert fold_batchnorm(module) == 1
    with torch.inference_mode():
        assert torch.allclose(module(batch), before, atol=1e-5)


def test_a_way_of_running_that_cannot_work_is_refused_before_the_file_is_read():
    entry = get_entry("resnet18")
    checkpoints_dir().mkdir(parents=True, exist_ok=True)
    (checkpoints_dir() / entry.weights_filename).write_bytes(b"not a weights file")
    # Not "the file is corrupt": the way and the device are checked first.
    with pytest.raises(CnnviewerError, match="ONNX Runtime runs on the CPU only") as caught:
        load_model(entry, "meta", ONNXRUNTIME)
    assert "--" not in str(caught.value) and "Run as" not in str(caught.value)
    assert caught.value.for_cli().endswith("Use --device cpu or --run-as fp32.")
    assert caught.value.for_window().endswith("Pick cpu under Device or fp32 under Run as.")
    with pytest.raises(CnnviewerError, match="Unknown way of running 'bf16'"):  # a label where a RunAs belongs
        load_model(entry, way="bf16")
    if not bf16_supported():
        with pytest.raises(CnnviewerError, match="no native bfloat16") as caught:
            load_model(entry, way=BF16)
        assert "--" not in str(caught.value) and "--run-as fp32" in caught.value.for_cli()
    with pytest.raises(CnnviewerError, match="Unknown device 'tpu'"):
        load_model(entry, device="tpu")
    with pytest.raises(WeightsFileError):
        load_model(entry)
