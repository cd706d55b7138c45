"""The int8 way: ONNX Runtime static quantization of a model's FP32 export, calibrated on images, cached."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnviewer.core.catalog import ModelEntry
from cnnviewer.core.errors import CnnviewerError, ImageLoadError
from cnnviewer.core.files import read_cache_record, write_private
from cnnviewer.core.paths import cache_dir

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Fewer usable calibration images than this give activation ranges that one odd photo can set.
MIN_CALIBRATION_IMAGES = 16

#: The CPU features that give int8 dot products their own instructions (Intel/AMD VNNI, Intel AMX).
INT8_CPU_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")

# Calibration images go through the model this many at a time: calibration keeps every intermediate
# tensor of a batch, so a small batch bounds its memory (ResNet50: about 100 MB per image).
_CALIBRATION_BATCH = 8


#: What each face adds to a calibration sentence (CnnviewerError.for_cli / for_window).
CALIBRATE_CLI_HINT = "Use --calibrate FOLDER with 16 or more photos."
CALIBRATE_GUI_HINT = "Choose a calibration folder with 16 or more photos."


class CalibrationError(CnnviewerError):
    """Calibration images that cannot calibrate: none given, too few readable ones, or the scored ones."""

    def __init__(self, *args: object, cli_hint: str = CALIBRATE_CLI_HINT, gui_hint: str = CALIBRATE_GUI_HINT):
        super().__init__(*args, cli_hint=cli_hint, gui_hint=gui_hint)


class QuantizeCancelled(CnnviewerError):
    """Quantization was stopped before it finished; nothing was cached."""


def cpu_int8_flags() -> tuple[str, ...]:
    """Which of INT8_CPU_FLAGS this CPU has (read from /proc/cpuinfo; none where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((set(line.split(":", 1)[1].split()) for line in handle if line.startswith("flags")), set())
    except OSError as exc:
        log.info("cannot read /proc/cpuinfo (%s); taking the CPU as without int8 instructions", exc)
        return ()
    return tuple(flag for flag in INT8_CPU_FLAGS if flag in flags)


def int8_supported() -> bool:
    """Whether int8 is worth offering on this CPU: it has VNNI or AMX.

    int8 models *run* wherever ONNX Runtime runs; without these instructions ONNX Runtime emulates the
    int8 dot products with wider AVX2 ones, and int8 is then no faster than FP32, often slower.
    """
    return bool(cpu_int8_flags())


@dataclass(frozen=True)
class Int8Recipe:
    """How the FP32 model is quantized (part of the cache key).

    The defaults were chosen by measurement (benchmarks/int8.py, EfficientNet-Lite0 on
    imagenet-val-100, calibrated on imagenet-samples-88, FP32 88.0 % top-1): QDQ format, per-channel
    signed int8 weights, unsigned activations, MinMax calibration with 7-bit weights
    (``reduce_range``: 87.0 %; 85.0 % without it, because CPUs without VNNI saturate 8-bit x 8-bit
    sums; signed activations 86.0 %). Percentile calibration kept 88.0 % but took 5x longer to
    calibrate (112 s against 22 s on 2 cores), and leaving the first and last layers in FP32 gained
    nothing (86.0 %). ONNX Runtime's quantization pre-processing (graph optimisation first) changed
    nothing measurable and is kept, as its documentation asks.
    """

    method: str = "MinMax"  # "MinMax", "Percentile" or "Entropy"
    activations: str = "QUInt8"  # "QUInt8" or "QInt8"
    weights: str = "QInt8"
    quant_format: str = "QDQ"  # "QDQ" or "QOperator"
    per_channel: bool = True
    reduce_range: bool = True  # 7-bit weights: no saturation without VNNI
    preprocess: bool = True
    exclude_first_last: bool = False  # keep the stem convolution and the classifier in FP32
    activation_symmetric: bool = False  # activation ranges centred on zero

    @property
    def key(self) -> str:
        return (f"{self.method}-{self.activations}-{self.weights}-{self.quant_format}-pc{int(self.per_channel)}"
                f"-rr{int(self.reduce_range)}-pp{int(self.preprocess)}-x{int(self.exclude_first_last)}"
                f"-as{int(self.activation_symmetric)}")


DEFAULT_RECIPE = Int8Recipe()


@dataclass(frozen=True)
class Int8Model:
    """An int8 model file and what it was calibrated on, for the report."""

    path: Path
    model: str
    calibration_used: int  # images that calibrated it
    skipped: tuple[tuple[str, str], ...]  # (file, reason) for calibration images that could not be read
    recipe: Int8Recipe
    built: bool  # quantized by this call; False when it came from the cache

    @property
    def skipped_sentence(self) -> str:
        """'2 calibration images skipped (a.jpg: not an image, ...)' or ''."""
        if not self.skipped:
            return ""
        shown = ", ".join(f"{Path(p).name}: {reason}" for p, reason in self.skipped[:3])
        more = ", ..." if len(self.skipped) > 3 else ""
        return f"{len(self.skipped)} calibration image(s) skipped ({shown}{more})"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def calibration_identity(calibration: Sequence[str | os.PathLike[str]]) -> str:
    """A hash of the calibration set: its files' resolved paths, sizes and modification times, sorted."""
    rows = []
    for path in calibration:
        resolved = Path(os.fspath(path)).resolve()
        try:
            info = resolved.stat()
            rows.append(f"{resolved}\0{info.st_size}\0{info.st_mtime_ns}")
        except OSError as exc:  # a file that is gone still names the set; loading it will say why
            rows.append(f"{resolved}\0{type(exc).__name__}")
    return hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()


def int8_cache_path(fp32_onnx: Path, entry: ModelEntry, calibration: Sequence[str | os.PathLike[str]],
                    recipe: Int8Recipe = DEFAULT_RECIPE) -> Path:
    """Where the int8 model for this FP32 export, calibration set and recipe is cached.

    Keyed by the FP32 file's content, the calibration set's identity, the preprocessing the calibration
    images went through, the recipe and the versions of cnnviewer, onnxruntime and onnx (a new quantizer
    may quantize differently).
    """
    from dataclasses import asdict

    key = "\n".join([entry.name, _file_sha256(fp32_onnx), calibration_identity(calibration), recipe.key,
                     json.dumps(asdict(entry.preprocessing), sort_keys=True), _version("cnnviewer"),
                     _version("onnxruntime"), _version("onnx")])
    return cache_dir() / "onnx" / f"{entry.name}-int8-{hashlib.sha256(key.encode()).hexdigest()[:20]}.onnx"


def _record_path(model: Path) -> Path:
    return model.with_suffix(".json")


def _read_cached(path: Path, entry: ModelEntry, recipe: Int8Recipe) -> Int8Model | None:
    """The cached int8 model at ``path`` if it is whole (size and SHA-256 as recorded); else None."""
    try:
        raw = read_cache_record(_record_path(path), path, 1 << 20)
        if raw is None:
            return None
        record = json.loads(raw)
        size, digest = int(record["size"]), str(record["sha256"])
        skipped = tuple((str(p), str(r)) for p, r in record["skipped"])
        used = int(record["calibration_used"])
        if path.stat().st_size != size or _file_sha256(path) != digest:
            raise ValueError("the file is not the one written (truncated or changed)")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("int8 model %s is damaged or incomplete (%s); quantizing again", path, exc)
        return None
    return Int8Model(path, entry.name, used, skipped, recipe, built=False)


def int8_model(fp32_onnx: Path, entry: ModelEntry, calibration: Sequence[str | os.PathLike[str]],
               should_cancel: Callable[[], bool] | None = None, recipe: Int8Recipe = DEFAULT_RECIPE,
               progress: Callable[[str], None] | None = None) -> Int8Model:
    """The int8 model for ``entry``: from the cache when a whole one is there, else quantized now and cached."""
    out = int8_cache_path(fp32_onnx, entry, calibration, recipe)
    cached = _read_cached(out, entry, recipe)
    if cached is not None:
        return cached
    return quantize_int8(fp32_onnx, entry, calibration, out, should_cancel, recipe, progress)


def _load_calibration(entry: ModelEntry, calibration: Sequence[str | os.PathLike[str]],
                      cancelled: Callable[[], bool]) -> tuple[list[np.ndarray], list[tuple[str, str]]]:
    """Each readable calibration image as the model sees it (cnnviewer's own loader and preprocessing)."""
    from cnnviewer.core.images import load_image
    from cnnviewer.core.inference import make_transform

    transform = make_transform(entry.preprocessing)
    arrays, skipped = [], []
    for path in calibration:
        if cancelled():
            raise QuantizeCancelled(f"Quantizing {entry.name} to int8 was cancelled.")
        try:
            image = load_image(path, min_side=entry.preprocessing.resize_size)
        except ImageLoadError as exc:
            skipped.append((os.fspath(path), exc.reason))
            continue
        arrays.append(transform(image).numpy())
    if len(arrays) < MIN_CALIBRATION_IMAGES:
        why = f"; {len(skipped)} could not be read (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        given = (f"only {len(arrays)} of the {len(calibration)} photos given could be read{why}" if skipped
                 else f"{len(calibration)} photos were given")
        raise CalibrationError(f"Calibrating {entry.name} for int8 needs at least {MIN_CALIBRATION_IMAGES} "
                               f"readable photos; {given}.")
    return arrays, skipped


def _reader(input_name: str, arrays: list[np.ndarray], cancelled: Callable[[], bool], name: str,
            size: int) -> Any:
    from onnxruntime.quantization import CalibrationDataReader  # type: ignore[import-untyped]

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches: Iterator[dict[str, np.ndarray]] = iter(
                {input_name: np.stack(arrays[i:i + size])} for i in range(0, len(arrays), size))

        def get_next(self) -> dict[str, np.ndarray] | None:
            if cancelled():
                raise QuantizeCancelled(f"Quantizing {name} to int8 was cancelled.")
            return next(self.batches, None)

    return Reader()


def _first_and_last(model_path: Path) -> list[str]:
    """The names of the first and last Conv/Gemm/MatMul nodes (the stem and the classifier)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    heavy = [node.name for node in graph.node if node.op_type in ("Conv", "Gemm", "MatMul")]
    return [heavy[0], heavy[-1]] if heavy else []


def quantize_int8(fp32_onnx: Path, entry: ModelEntry, calibration: Sequence[str | os.PathLike[str]], out: Path,
                  should_cancel: Callable[[], bool] | None = None, recipe: Int8Recipe = DEFAULT_RECIPE,
                  progress: Callable[[str], None] | None = None) -> Int8Model:
    """Quantize the FP32 ONNX model ``fp32_onnx`` statically to int8, calibrated on ``calibration``; write ``out``.

    Calibration images are read with cnnviewer's own loader and the weights' own preprocessing; a file
    that cannot be read is skipped and counted (Int8Model.skipped). ``out`` and a small record beside it
    (its size and SHA-256, and what calibrated it) are written atomically, so a damaged file is found.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    cancelled = should_cancel or (lambda: False)
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    arrays, skipped = _load_calibration(entry, calibration, cancelled)
    say(f"Calibrating {entry.name} for int8 on {len(arrays)} images")
    input_name = onnx.load(str(fp32_onnx), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="cnnviewer-int8-") as work:
        source = Path(fp32_onnx)
        if recipe.preprocess:
            from onnxruntime.quantization.shape_inference import (  # type: ignore[import-untyped]
                quant_pre_process,
            )

            prepared = Path(work) / "prepared.onnx"
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            source = prepared
        quantized = Path(work) / "int8.onnx"
        try:
            quantize_static(
                str(source), str(quantized), _reader(input_name, arrays, cancelled, entry.name,
                                                     # histograms take one image at a time (they fail on batches)
                                                     _CALIBRATION_BATCH if recipe.method == "MinMax" else 1),
                quant_format=getattr(QuantFormat, recipe.quant_format), per_channel=recipe.per_channel,
                reduce_range=recipe.reduce_range, activation_type=getattr(QuantType, recipe.activations),
                weight_type=getattr(QuantType, recipe.weights),
                calibrate_method=getattr(CalibrationMethod, recipe.method),
                nodes_to_exclude=_first_and_last(source) if recipe.exclude_first_last else None,
                extra_options={"ActivationSymmetric": recipe.activation_symmetric},
            )
        except QuantizeCancelled:
            raise
        except Exception as exc:  # the quantizer's own failure: a sentence, the details in the log
            log.exception("quantizing %s failed", entry.name)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CnnviewerError(f"{entry.name} cannot be quantized to int8 ({first[:160]}); "
                                 "choose another way of running.") from exc
        data = quantized.read_bytes()
    write_private(out, data, cache_dir())
    record = {"model": entry.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
              "calibration_used": len(arrays), "skipped": skipped, "recipe": recipe.key,
              "seconds": round(time.perf_counter() - started, 2)}
    write_private(_record_path(out), json.dumps(record, indent=1).encode(), cache_dir())
    log.info("quantized %s to int8 in %.1f s (%d calibration images, %d skipped): %s", entry.name,
             record["seconds"], len(arrays), len(skipped), out)
    return Int8Model(out, entry.name, len(arrays), tuple(skipped), recipe, built=True)


class Int8Runner:
    """An int8 model run by ONNX Runtime's CPU provider; called like engines.OnnxRunner."""

    def __init__(self, model: Int8Model | Path, threads: int | None = None):
        import onnxruntime as ort

        path = model.path if isinstance(model, Int8Model) else Path(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # ONNX Runtime's notes on unused constants are not for users
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a file damaged after it was checked: say so, the cache check rebuilds it
            raise CnnviewerError(f"{path}: the int8 model cannot be loaded ({str(exc).splitlines()[0][:160]}); "
                                 "delete it to quantize again, or choose another way of running.") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.threads = options.intra_op_num_threads

    def run_array(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a float32 NCHW array (no torch needed)."""
        result: np.ndarray = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]
        return result

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.from_numpy(self.run_array(batch.detach().to("cpu", torch.float32).numpy()))
