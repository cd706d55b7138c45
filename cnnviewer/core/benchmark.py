"""Benchmark several models on a labelled folder: accuracy, latency, throughput and memory.

``run_benchmark`` is a plain function driven by ``progress``, ``should_cancel`` and ``pause`` callables,
so the CLI, the window's job and the tests run it the same way; ``BenchmarkRun.run_model`` is the step
it takes per model. ``core.session.run_to_folder`` adds the files a run writes.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import functools
import gc
import logging
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Container
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import psutil
import torch

from cnnviewer.core.catalog import Availability, ModelEntry, get_entry
from cnnviewer.core.datasets import LabelledImage, LabelledSet
from cnnviewer.core.errors import (
    CnnviewerError,
    UnknownModelError,
    WeightsFileError,
    WeightsMissingError,
)
from cnnviewer.core.inference import Classification, Classifier, default_decode_threads
from cnnviewer.core.models import load_model
from cnnviewer.core.stats import excludes_one, log_t_interval, mcnemar_exact, ratio_interval, wilson_interval
from cnnviewer.core.ways import FP32, AutoWay, RunAs, way_of
from cnnviewer.core.weights import weights_identity

if TYPE_CHECKING:
    from collections.abc import Iterator

LAB_REPORT_MODELS = ("resnet50", "googlenet", "inception_v3")
EMBEDDED_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
SIGNIFICANCE = 0.05
MIN_CLAIM_ROUNDS = 3  # a speed claim needs at least this many timing rounds behind its interval
OTHER_LOAD_LIMIT_PCT = 10.0  # other programs' CPU share while timing above which the speed figures are flagged

#: Why a model did not run (``ModelResult.error_kind``), as the dashboard and report.md say it.
ERROR_KINDS = {
    "weights_missing": "weights missing",
    "weights_file": "weights file unusable",
    "cannot_run": "cannot run this way here",
    "unknown_model": "unknown model",
    "failed": "failed while running",
}
MEMORY_CAPTION = "peak memory above start (MB)"
OLD_MEMORY_CAPTION = "peak memory of the whole process (MB)"  # reports written before rss_before_mb

log = logging.getLogger(__name__)

#: Called between batches and before each latency sample; may block while interactive work runs, and
#: returns the seconds it waited (left out of the model's timings).
Pause = Callable[[], float]


def default_models() -> tuple[tuple[str, ...], str]:
    """The lab report's three when their weights are here, else the embedded three; and why."""
    if all(get_entry(name).availability().ready for name in LAB_REPORT_MODELS):
        return LAB_REPORT_MODELS, "the lab report's models (ResNet50, GoogLeNet, Inception V3)"
    return EMBEDDED_MODELS, ("the three embedded EfficientNet-Lite models, because the weights of the lab "
                             "report's ResNet50, GoogLeNet and Inception V3 are not all on this machine")


def model_of(key: str) -> str:
    """The catalog name in a result's key: "resnet50 (bf16)" -> "resnet50" (catalog names have no " (")."""
    return key.split(" (", 1)[0]


def error_kind(exc: BaseException) -> str:
    """The ERROR_KINDS key for what stopped a model: told by the exception's type, never by its text."""
    if isinstance(exc, WeightsMissingError):
        return "weights_missing"
    if isinstance(exc, WeightsFileError):
        return "weights_file"
    if isinstance(exc, UnknownModelError):
        return "unknown_model"
    if isinstance(exc, CnnviewerError):  # the device, the way of running or the ONNX export
        return "cannot_run"
    return "failed"


@dataclass(frozen=True)
class BenchmarkConfig:
    models: tuple[str, ...]
    batch_size: int = 8
    limit: int | None = None
    device: str = "cpu"
    latency_samples: int = 20  # batch-1 forwards per model for the latency distribution
    # Every model runs once per way, on the same images; with several, results are named "model (label)".
    # AUTO runs each model the way core.auto chooses for it here (its result records which, and that auto chose).
    ways: tuple[RunAs | AutoWay, ...] = (FP32,)
    channels_last: bool = True  # NHWC convolutions: faster on CPUs, the same classes
    fast_decode: bool = True  # large JPEGs decode at reduced size (never below the model's resize)
    decode_threads: int | None = None  # decoding overlaps inference in this many threads; None: for the machine
    # After the accuracy pass, every model is timed again in this many interleaved rounds (round r visits
    # every model before round r + 1 starts, so a burst of other load hits all alike), each round forward
    # only over the same first ``timing_batches`` batches of the set; the rounds give the speed intervals.
    timing_rounds: int = 3
    timing_batches: int = 2
    # The models stay loaded from round 1 to the last when their turns' peak memory adds up to at most this
    # (MB): reloading each for every round costs as much as its first load. Above it, each is loaded for its
    # step of a round and released after, so memory stays that of one model.
    timing_hold_mb: float = 1024.0
    # int8's calibration images: a folder of the user's (every image of the set is scored), or None: a sample
    # of the set itself, then left out of scoring for every way (core.calibration.benchmark_calibration).
    calibrate_folder: str | None = None

    def __post_init__(self) -> None:
        if self.timing_rounds < 0 or self.timing_batches < 1:
            raise CnnviewerError(f"Timing needs 0 or more rounds of at least 1 batch, not {self.timing_rounds} "
                                 f"round(s) of {self.timing_batches} batch(es).")
        if not self.ways:
            raise CnnviewerError("No way of running was chosen; choose at least one (fp32, bf16, onnxruntime).")
        for way in self.ways:
            if not isinstance(way, RunAs | AutoWay):
                raise CnnviewerError(f"'{way}' is not a way of running; choose from auto, fp32, bf16, onnxruntime, "
                                     "int8.")

    def runs(self) -> list[tuple[str, str, RunAs | AutoWay]]:
        """(result key, model, way) in the order they run: each model in every way."""
        ways = tuple(dict.fromkeys(self.ways))
        return [(f"{model} ({way.label})" if len(ways) > 1 else model, model, way)
                for model in dict.fromkeys(self.models)  # a model named twice runs once, never against itself
                for way in ways]

    def to_json(self) -> dict[str, Any]:
        """The configuration as report.json stores it: ways by their labels."""
        return {**asdict(self), "models": list(self.models), "ways": [way.label for way in self.ways]}


@dataclass(frozen=True)
class Progress:
    model: str
    model_number: int  # 1-based
    models: int
    done: int  # images of this model
    total: int
    text: str = ""

    @property
    def fraction(self) -> float:
        """Of the whole run."""
        per_model = self.done / self.total if self.total else 1.0
        return ((self.model_number - 1) + per_model) / max(1, self.models)


@dataclass
class ModelResult:
    name: str  # the result's key: the model's name, or "model (run as)" when a run compares ways of running
    title: str
    weights: str  # what the weights are: the published ones, or "imported: FILE (sha256 …)"
    model: str = ""  # the catalog name (from_json fills it in for reports written before this field)
    run_as: str = "fp32"  # the RunAs label: how this result was computed
    auto: bool = False  # run_as was chosen by auto (the fastest way with fp32's top-5 here)
    images: int = 0  # images that loaded and were classified (a partial result: those it saw)
    failed: int = 0
    top1: float = 0.0
    top5: float = 0.0
    top1_ci: tuple[float, float] = (0.0, 1.0)
    top5_ci: tuple[float, float] = (0.0, 1.0)
    # Speed figures: None where they were not measured (a model that did not run, or a partial one).
    throughput_ips: float | None = None  # model forward only, at the chosen batch size (the rounds' mean, if any)
    # Forward-only images/s in each timing round (in round order), and the 95 % t-interval of their
    # geometric mean worked out on log throughput; None with fewer than two rounds (or reports before rounds).
    throughput_rounds: list[float] = field(default_factory=list)
    throughput_ci: tuple[float, float] | None = None
    end_to_end_ips: float | None = None  # file on disk to top-5, decode included, pauses left out
    latency_ms: dict[str, float] | None = None  # p50, p90, p99 at batch 1
    latencies_ms: list[float] = field(default_factory=list)
    decode_ms_mean: float = 0.0
    peak_rss_mb: float = 0.0  # peak resident memory above rss_before_mb (the whole process's in older reports)
    rss_before_mb: float | None = None  # the process's resident memory just before the model loaded
    peak_gpu_mb: float = 0.0  # torch's peak allocation on the GPU, when the run was on one
    param_mb: float = 0.0
    folded_batchnorms: int = 0  # BatchNorm layers folded into the convolution before them
    load_s: float = 0.0
    seconds: float = 0.0  # the model's turn, pauses left out
    paused_s: float = 0.0  # time its turn waited for interactive work (not in any figure)
    published: dict[str, Any] = field(default_factory=dict)  # acc1, acc5 (None: not published), gmacs, params
    error: str | None = None  # the model could not run at all (weights missing, ...)
    error_kind: str | None = None  # an ERROR_KINDS key, set with error
    partial: bool = False  # cut short by Cancel: accuracy over the images it saw, no speed figures
    complete: bool = False
    weights_sha256: str = ""  # the SHA-256 of the weights file, so a figure traces to the exact file

    @property
    def timed(self) -> bool:
        """Whether it has speed figures: ran to the end of its turn."""
        return self.error is None and not self.partial and self.latency_ms is not None


@dataclass
class ImageRow:
    """One image of the set with every model's top-5 (indices and probabilities)."""

    file: str
    label: str
    truth: int
    top5: dict[str, list[int]] = field(default_factory=dict)  # model -> [index, ...]
    probabilities: dict[str, list[float]] = field(default_factory=dict)  # model -> [p, ...]


@dataclass
class BenchmarkReport:
    root: str
    config: dict[str, Any]  # BenchmarkConfig.to_json()
    environment: dict[str, Any]  # environment(): what the figures were measured on
    models: list[ModelResult] = field(default_factory=list)
    images: list[ImageRow] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {file, reason}
    label_problems: list[str] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    per_class: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # model -> {truth index: [correct, total]}
    confusions: dict[str, list[list[int]]] = field(default_factory=dict)  # model -> [[truth, predicted, count], ...]
    # The timing rounds: {"rounds": planned, "done": finished, "images": per model and round,
    # "order": [[round, result key], ...] as they were timed, "load_s": what reloading the models cost,
    # "cut_short": Cancel stopped them}; empty in reports written before rounds.
    timing: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False
    complete: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> BenchmarkReport:
        """A report from parsed report.json. Every field is checked first (check_report), so nothing that
        shows the report meets a wrong type; ReportFormatError names the first bad field. Fields this
        version does not know are ignored, and ones added since a report was written take their defaults."""
        from cnnviewer.core.report_check import check_report

        checked = check_report(data, ModelResult.__dataclass_fields__)
        env = checked["environment"]
        way = _way_label(env.get("precision", "fp32"), env.get("engine", "torch"))  # reports before run_as
        models = [ModelResult(**{"run_as": way, **m, "model": m.get("model") or model_of(m["name"])})
                  for m in checked["models"]]
        images = [ImageRow(**row) for row in checked["images"]]
        fields = {k: v for k, v in checked.items() if k in cls.__dataclass_fields__ and k not in ("models", "images")}
        report = cls(**fields)
        report.models, report.images = models, images
        return report

    def result(self, name: str) -> ModelResult | None:
        return next((m for m in self.models if m.name == name), None)

    def partial_note(self, result: ModelResult) -> str:
        """"partial: 48 of 100 images" for a result cut short."""
        return f"partial: {result.images + result.failed} of {len(self.images)} images"


def _way_label(precision: object, engine: object) -> str:
    """The label of an old report's precision and engine, or "engine precision" when no way has them."""
    try:
        return way_of(str(precision), str(engine)).label
    except CnnviewerError:
        return f"{engine} {precision}"


def memory_caption(models: list[ModelResult]) -> str:
    """What the memory figures of these results are: above the start of each model's turn, or (reports
    written before that) the whole process's peak."""
    ran = [m for m in models if m.error is None and memory_measured(m)]
    return OLD_MEMORY_CAPTION if any(m.rss_before_mb is None for m in ran) else MEMORY_CAPTION


def choosing(text: str, name: str) -> str:
    """"choosing the fastest way: timing onnxruntime (round 2 of 3)" from core.auto's "Timing efficientnet_lite0
    as onnxruntime (round 2 of 3)": the benchmark's own timing rounds come later, in other words."""
    step = text.replace(f" {name} as ", " ")
    return f"choosing the fastest way: {step[:1].lower()}{step[1:]}"


def memory_measured(m: ModelResult) -> bool:
    """Whether this process measured the result's memory: not for a model it never loaded (a cluster's workers
    measure their own), whose 0 is no figure at all."""
    return m.rss_before_mb is not None or m.peak_rss_mb > 0


def environment(config: BenchmarkConfig) -> dict[str, Any]:
    import torchvision

    ways = list(dict.fromkeys(config.ways))
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError as exc:  # not Linux, or /proc hidden: the platform's own name will do
        log.info("cannot read the CPU model from /proc/cpuinfo (%s); using %r", exc, cpu)
    return {
        "cpu": cpu,
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "torch_threads": torch.get_num_threads(),
        "decode_threads": default_decode_threads() if config.decode_threads is None else config.decode_threads,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": config.device,
        "gpu": _gpu_name(config.device),
        # precision and engine of the one way of running; "mixed" when the run compares several
        "precision": ways[0].precision if len(ways) == 1 and isinstance(ways[0], RunAs) else "mixed",
        "engine": ways[0].engine if len(ways) == 1 and isinstance(ways[0], RunAs) else "mixed",
        "run_as": [way.label for way in ways],
        "channels_last": config.channels_last,
        "fast_decode": config.fast_decode,
        "batch_size": config.batch_size,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _gpu_name(device: str) -> str | None:
    try:
        return torch.cuda.get_device_name(torch.device(device)) if torch.device(device).type == "cuda" else None
    except (RuntimeError, AssertionError, ValueError) as exc:  # CUDA asked for but absent: load_model says so
        log.info("no GPU name for device %r: %s", device, exc)
        return None


# -- memory ----------------------------------------------------------------------------------------


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where there is none (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
        trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError) as exc:
        log.info("no malloc_trim here (%s): freed memory goes back to the system when the allocator decides", exc)
        return None
    return cast("Callable[[int], int]", trim)


def _trim_heap() -> None:
    """Hand the heap's free pages back to the system (glibc keeps freed memory resident otherwise)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def release_memory() -> None:
    """Collect what nothing refers to any more and hand freed heap pages back to the system, so the next
    model's turn starts from a low baseline."""
    gc.collect()
    _trim_heap()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # a no-op where CUDA was never used


def _high_water_mark() -> int | None:
    """The process's peak resident memory since it was last reset (Linux's VmHWM), in bytes; None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            line = next((line for line in handle if line.startswith("VmHWM:")), None)
    except OSError:
        return None
    return int(line.split()[1]) * 1024 if line else None


def _reset_high_water_mark() -> bool:
    """Sets VmHWM to the memory resident now (Linux 4.0 and later); False where that cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


@functools.cache
def _settle_process() -> None:
    """Pays, once per process, what the first model of any kind costs and keeps for good (oneDNN's and the
    thread pool's set-up, the tracer that folds BatchNorm): a tiny network is folded and run. Otherwise the
    first model's figure would carry it, and a fresh ``cnnviewer bench`` would say more than the window."""
    from torch import nn

    from cnnviewer.core.models import fold_batchnorm

    network = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
                            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    fold_batchnorm(network)
    network = network.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        for size in (8, 1):
            network(torch.zeros(size, 3, 32, 32).contiguous(memory_format=torch.channels_last))


class _PeakMemory:
    """This process's peak resident memory while a model runs, above ``before`` (what it held at the start).

    On Linux the kernel's high-water mark is read, so no peak between two looks is missed; elsewhere a
    thread samples every 10 ms. While the run is paused for interactive work, that work's memory is not
    the model's: what the process gained or lost meanwhile is taken off what comes after."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self._exact = _reset_high_water_mark() and _high_water_mark() is not None
        self.before = _rss()
        self.peak = self.before
        self._offset = 0  # memory that came or went while paused
        self._paused_at: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def _sample(self) -> None:
        now = (_high_water_mark() or 0) if self._exact else _rss()
        with self._lock:
            if self._paused_at is None:
                self.peak = max(self.peak, now - self._offset)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def suspend(self) -> None:
        self._sample()
        with self._lock:
            self._paused_at = _rss()

    def resume(self) -> None:
        with self._lock:
            if self._paused_at is not None:
                self._offset += _rss() - self._paused_at
                self._paused_at = None
                if self._exact:
                    _reset_high_water_mark()  # the paused work's own peak is not the model's

    @property
    def increase_mb(self) -> float:
        return max(0, self.peak - self.before) / 2**20

    def __enter__(self) -> _PeakMemory:
        if not self._exact:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._exact:
            self._stop.set()
            self._thread.join()
        self._sample()


# -- the figures -----------------------------------------------------------------------------------


class _OtherLoad:
    """The share of all CPU cores that other programs used while it was entered: the system's busy time
    less this process's own CPU time, over the cores' time (psutil), in %."""

    def __enter__(self) -> _OtherLoad:
        self._process = psutil.Process()
        self._system, self._own, self._wall = psutil.cpu_times(), self._process.cpu_times(), time.perf_counter()
        self.others_pct, self.seconds = 0.0, 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        system, own = psutil.cpu_times(), self._process.cpu_times()
        self.seconds = time.perf_counter() - self._wall
        total = _cpu_total(system) - _cpu_total(self._system)
        if total <= 0:  # too short for the kernel's clock ticks to have moved
            return
        busy = total - (_cpu_idle(system) - _cpu_idle(self._system))
        ours = (own.user + own.system) - (self._own.user + self._own.system)
        self.others_pct = max(0.0, min(100.0, (busy - ours) / total * 100))


def _cpu_total(times: Any) -> float:
    # guest time is counted in user time already (Linux), so it is left out once
    return float(sum(times)) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _cpu_idle(times: Any) -> float:
    return float(times.idle + getattr(times, "iowait", 0.0))


def _record_load(env: dict[str, Any], number: int, shares: list[tuple[float, float]]) -> None:
    """Round ``number``'s other-program CPU share (each model's step, weighted by its seconds) and load
    average into ``env["load_while_timing"]``, with the max and mean over the rounds so far."""
    seconds = sum(s for _, s in shares)
    mean = sum(p * s for p, s in shares) / seconds if seconds > 0 else 0.0
    try:
        loadavg: list[float] | None = [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):  # Windows has no load average
        loadavg = None
    record = env.setdefault("load_while_timing", {"rounds": []})
    record["rounds"].append({"round": number, "others_cpu_pct": round(mean, 1),
                             "others_cpu_max_pct": round(max((p for p, _ in shares), default=0.0), 1),
                             "loadavg": loadavg})
    rounds = record["rounds"]
    record["others_cpu_max_pct"] = max(r["others_cpu_max_pct"] for r in rounds)
    record["others_cpu_mean_pct"] = round(sum(r["others_cpu_pct"] for r in rounds) / len(rounds), 1)


def load_warning(env: dict[str, Any]) -> str | None:
    """The sentence that flags the speed figures when other programs used more than OTHER_LOAD_LIMIT_PCT of
    the CPU while timing (the highest share of any model's step); None otherwise, and for older reports."""
    record = env.get("load_while_timing")
    share = record.get("others_cpu_max_pct") if isinstance(record, dict) else None
    if not isinstance(share, (int, float)) or share <= OTHER_LOAD_LIMIT_PCT:
        return None
    return f"Other programs used {share:.0f} % of the CPU while timing: speed figures may be off."


def _percentiles(values: list[float]) -> dict[str, float]:
    p50, p90, p99 = np.percentile(np.asarray(values), [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def _first_tensors(classifier: Classifier, items: list[LabelledImage], count: int,
                   skip: Container[str] = ()) -> list[torch.Tensor]:
    """Up to ``count`` preprocessed images of the set (the ones that load), passing over the files in
    ``skip``: the run already knows it cannot read them, and each try costs a decode up to its limits."""
    tensors: list[torch.Tensor] = []
    for item in items:
        if len(tensors) >= count:
            break
        if item.path in skip:
            continue
        decoded = classifier.decode(item.path)  # as the run decoded it
        if decoded.tensor is not None:
            tensors.append(decoded.tensor)
    return tensors


def _warm_up(classifier: Classifier, items: list[LabelledImage], batch_size: int) -> None:
    """Untimed forwards at every batch shape the run will time (allocator, oneDNN and cuDNN kernel
    choice, CUDA's lazy loading): the batch size, 1 for the latencies, and on a GPU the last partial batch.
    A blank picture is as good as a photo for that, and decodes no file of the set once more per model."""
    if not items:
        return
    from PIL import Image

    side = classifier.decode_min_side
    tensors = [classifier.preprocess(Image.new("RGB", (side, side), (128, 128, 128)))]
    sizes = {max(1, min(batch_size, len(items))), 1}
    if classifier.loaded.device.type == "cuda" and len(items) % batch_size:
        sizes.add(len(items) % batch_size)
    for size in sorted(sizes, reverse=True):
        classifier.predict_batch(torch.stack(tensors * size), top_k=5)


class BenchmarkRun:
    """One run over a labelled set: the report, the image rows every model fills in, the files that could
    not be read. ``run_model`` is the step taken per model; ``run_all`` loops over ``config.runs()``.

    ``pause`` is called between batches and before each latency sample; the time it waits is left out of
    the model's timings and recorded as ``paused_s``. ``on_rows`` gets each batch's image rows.
    """

    def __init__(self, dataset: LabelledSet, config: BenchmarkConfig, *,
                 progress: Callable[[Progress], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None,
                 pause: Pause | None = None,
                 on_rows: Callable[[str, list[ImageRow]], None] | None = None) -> None:
        self.config = config
        from cnnviewer.core.calibration import benchmark_calibration

        items = dataset.images[: config.limit] if config.limit else list(dataset.images)
        # With int8 among the ways, its calibration images (a sample of the set, unless a folder was given) are
        # scored by no way at all: every way is compared on the same images, and none on what calibrated int8.
        runs_as = [way for way in config.ways if isinstance(way, RunAs)]
        self.calibration, scored = benchmark_calibration(runs_as, [item.path for item in items], dataset.root,
                                                         config.calibrate_folder)
        kept = set(scored)
        self.items = [item for item in items if item.path in kept]
        self.report = BenchmarkReport(root=dataset.root, config=config.to_json(), environment=environment(config),
                                      label_problems=list(dataset.problems))
        if self.calibration is not None:
            self.report.environment["int8_calibration"] = self.calibration.description
        self.resolved: dict[str, RunAs] = {}  # result key -> the way it ran (auto's choice, for AUTO)
        self.rows = {item.path: ImageRow(item.path, item.label, item.index) for item in self.items}
        self.report.images = list(self.rows.values())
        self.skipped: dict[str, str] = {}
        self.runs = config.runs()
        self._progress = progress
        self._should_cancel = should_cancel
        self._pause = pause
        self._on_rows = on_rows
        self._memory: _PeakMemory | None = None
        self._running: ModelResult | None = None  # the result whose turn it is
        self._unsent: list[ImageRow] = []  # its rows of the batch under way, not yet handed to on_rows

    def cancelled(self) -> bool:
        return bool(self._should_cancel and self._should_cancel())

    def run_all(self, on_update: Callable[[BenchmarkReport], None] | None = None) -> BenchmarkReport:
        """Every model in every way, ``on_update`` after each; cancelling keeps what was done."""
        for number, (key, model, way) in enumerate(self.runs, 1):
            if self.cancelled():
                break
            self.run_model(number, key, model, way)
            self._publish(on_update)
        if not self.cancelled():
            self.time_rounds(on_update)
        return self.finish(on_update)

    def time_rounds(self, on_update: Callable[[BenchmarkReport], None] | None = None) -> None:
        """The interleaved timing rounds (``config.timing_rounds``) of every result that ran its whole turn.

        The models stay loaded from round 1 on when their turns' peak memory adds up to at most
        ``config.timing_hold_mb``; otherwise each is loaded for its step of a round and released after it, as
        in the accuracy pass, so memory stays that of one model. The same fixed tensors (the first batches of the set, decoded once
        per result) are timed forward only after a warm-up. Only whole rounds count: Cancel during one
        keeps the rounds before it and the accuracy, and leaves the speed claims out (too few rounds)."""
        config, report = self.config, self.report
        timed = [(key, model, self.resolved[key]) for key, model, _ in self.runs
                 if (result := report.result(key)) is not None and result.timed and result.images]
        report.timing = {"rounds": config.timing_rounds, "done": 0, "images": 0, "order": [], "load_s": 0.0,
                         "cut_short": False}
        report.environment["load_while_timing"] = {"rounds": []}
        if not config.timing_rounds or not timed:
            return
        fixed: dict[str, list[torch.Tensor]] = {}  # result key -> its batches, decoded in round 1
        hold = sum(cast("ModelResult", report.result(key)).peak_rss_mb for key, _, _ in timed) <= config.timing_hold_mb
        report.timing["held"] = hold
        held: dict[str, Classifier] | None = {} if hold else None
        try:
            self._rounds(timed, fixed, held, on_update)
        finally:
            if held is not None:
                held.clear()  # every model goes before the report is finished
            release_memory()
        for key, _model, _way in timed:
            result = cast("ModelResult", report.result(key))
            interval = log_t_interval(result.throughput_rounds)
            if interval is not None:
                result.throughput_ips, low, high = interval
                result.throughput_ci = (low, high)
        _finish_statistics(report)

    def _rounds(self, timed: list[tuple[str, str, RunAs]], fixed: dict[str, list[torch.Tensor]],
                held: dict[str, Classifier] | None, on_update: Callable[[BenchmarkReport], None] | None) -> None:
        config, report = self.config, self.report
        for number in range(1, config.timing_rounds + 1):
            figures: dict[str, float] = {}
            shares: list[tuple[float, float]] = []  # (others' CPU %, seconds) of each model's step
            for key, model, way in list(timed):
                if self.cancelled():
                    break
                self._tell(len(self.runs), key, len(self.items),
                           f"timing, round {number} of {config.timing_rounds} {key}")  # the window shows the phase
                report.timing["order"].append([number, key])
                try:
                    step = self._time_once(key, model, way, fixed, held)
                except Exception:  # timed in the accuracy pass, so rare: it leaves the rounds, the others go on
                    log.exception("%s failed in timing round %d; it has no speed interval", key, number)
                    timed.remove((key, model, way))
                    fixed.pop(key, None)
                    if held is not None:
                        held.pop(key, None)
                    cast("ModelResult", report.result(key)).throughput_rounds.clear()
                    continue
                finally:
                    if held is None:
                        release_memory()
                if step is None:  # cancelled between batches
                    break
                figures[key], share, seconds, load_s = step
                shares.append((share, seconds))
                report.timing["load_s"] += load_s
            if self.cancelled() or not figures:
                report.timing["cut_short"] = self.cancelled()
                break
            for key, _model, _way in timed:
                cast("ModelResult", report.result(key)).throughput_rounds.append(figures[key])
            report.timing["done"] = number
            report.timing["images"] = max((sum(len(b) for b in batches) for batches in fixed.values()), default=0)
            _record_load(report.environment, number, shares)
            self._publish(on_update)

    def _time_once(self, key: str, model: str, way: RunAs, fixed: dict[str, list[torch.Tensor]],
                   held: dict[str, Classifier] | None) -> tuple[float, float, float, float] | None:
        """One model's step of a round: (images/s forward only, other programs' CPU %, seconds timed,
        seconds loading); None when cancelled between batches. ``held``: the models kept loaded between
        rounds (None: each is loaded here and released after)."""
        config = self.config
        started = time.perf_counter()
        classifier = held.get(key) if held is not None else None
        if classifier is None:
            loaded = load_model(get_entry(model), config.device, way, config.channels_last,
                                calibration=self.calibration)
            classifier = Classifier(loaded, fast_decode=config.fast_decode)
            del loaded
            if held is not None:
                held[key] = classifier
        load_s = time.perf_counter() - started
        if key not in fixed:
            size = max(1, config.batch_size)
            tensors = _first_tensors(classifier, self.items, size * config.timing_batches, self.skipped)
            fixed[key] = [torch.stack(tensors[i:i + size]) for i in range(0, len(tensors), size)]
        batches = fixed[key]
        if not batches:
            raise CnnviewerError(f"{key}: no image of the set loads, so there is nothing to time.")
        for batch in {len(b): b for b in batches}.values():  # every batch shape once, untimed
            classifier.predict_batch(batch, top_k=5)
        forward = 0.0
        images = 0
        with _OtherLoad() as load:
            for batch in batches:
                self._wait()
                if self.cancelled():
                    return None
                begun = time.perf_counter()
                classifier.predict_batch(batch, top_k=5)
                forward += time.perf_counter() - begun
                images += len(batch)
        del classifier
        return images / max(1e-9, forward), load.others_pct, load.seconds, load_s

    def finish(self, on_update: Callable[[BenchmarkReport], None] | None = None) -> BenchmarkReport:
        report = self.report
        report.cancelled = self.cancelled()
        report.complete = not report.cancelled and all(m.complete or m.error for m in report.models)
        _finish_statistics(report)
        self._publish(on_update)
        return report

    def cut_short(self, cancelled: bool = True) -> BenchmarkReport:
        """The report as it stands when the run stopped between two steps (a second Ctrl+C, a crash): the
        model whose turn it was is partial, with the images it had handed on."""
        result, self._running = self._running, None
        if result is not None:
            for row in self._unsent:  # not handed to on_rows (results.csv): not in the report either
                row.top5.pop(result.name, None)
                row.probabilities.pop(result.name, None)
            self._unsent = []
            if result.error is None:
                _mark_partial(result)
                _count_from_rows(result, self.report.images)
        report = self.report
        report.cancelled = report.cancelled or cancelled
        report.complete = False
        report.skipped = [{"file": f, "reason": r} for f, r in self.skipped.items()]
        _finish_statistics(report)
        return report

    def _publish(self, on_update: Callable[[BenchmarkReport], None] | None) -> None:
        self.report.skipped = [{"file": f, "reason": r} for f, r in self.skipped.items()]
        if on_update is not None:
            on_update(self.report)

    def _wait(self) -> float:
        """Let interactive work run (``pause``); the seconds waited, with the memory it used not counted."""
        if self._pause is None:
            return 0.0
        if self._memory is not None:
            self._memory.suspend()
        try:
            return max(0.0, float(self._pause()))
        finally:
            if self._memory is not None:
                self._memory.resume()

    def _tell(self, number: int, key: str, done: int, text: str = "") -> None:
        if self._progress is not None:
            self._progress(Progress(key, number, len(self.runs), done, len(self.items), text or key))

    def run_model(self, number: int, key: str, model: str, way: RunAs | AutoWay) -> ModelResult:
        """The step for one model in one way: load, warm up, classify every image, time batch-1 latencies,
        and work out the figures. Every reference to the model is dropped before it returns."""
        try:
            entry = get_entry(model)
        except UnknownModelError as exc:
            result = ModelResult(name=key, title=key, weights="", model=model, run_as=way.label,
                                 error=str(exc), error_kind=error_kind(exc))
            self.report.models.append(result)
            return result
        title = entry.title if key == model else f"{entry.title} ({way.label})"
        result = ModelResult(name=key, title=title, weights=entry.weights_id, model=model, run_as=way.label,
                             published={"acc1": entry.acc1, "acc5": entry.acc5, "gmacs": entry.gmacs,
                                        "params": entry.num_params})
        self.report.models.append(result)
        self._running, self._unsent = result, []
        try:
            if isinstance(way, AutoWay):
                from cnnviewer.core.auto import resolve_way

                self._tell(number, key, 0, f"choosing the fastest way for {key} (once; cached)")
                try:
                    way = resolve_way(entry, self.config.device, way, should_cancel=self.cancelled,
                                      progress=lambda text: self._tell(number, key, 0, choosing(text, entry.name))).way
                except CnnviewerError as exc:  # weights missing, cancelled: this model's result says so
                    result.error, result.error_kind = str(exc), error_kind(exc)
                    return result
                result.run_as, result.auto = way.label, True
            self.resolved[key] = way
            self._measure(result, entry, number, way)
        except Exception as exc:  # one model's failure is its result's; the others go on
            log.exception("%s failed while running", key)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            result.error = f"{key} failed while running ({first[:200]})."
            result.error_kind = "failed"
            result.throughput_ips = result.end_to_end_ips = result.latency_ms = None
            result.complete = False
        self._running, self._unsent = None, []
        release_memory()  # the model's memory goes back before the next turn's baseline
        _finish_statistics(self.report)
        return result

    def _measure(self, result: ModelResult, entry: ModelEntry, number: int, way: RunAs) -> None:
        config, items, key = self.config, self.items, result.name
        self._tell(number, key, 0, f"loading {key}")
        if config.device == "cpu":
            _settle_process()
        release_memory()
        on_gpu = self.report.environment["gpu"] is not None
        if on_gpu:
            torch.cuda.reset_peak_memory_stats(config.device)
        started = time.perf_counter()
        paused = 0.0
        with _PeakMemory() as memory:
            self._memory = memory
            try:
                paused += self._wait()
                try:
                    loaded = load_model(entry, config.device, way, config.channels_last, calibration=self.calibration,
                                        progress=lambda text: self._tell(number, key, 0, f"{text} (once; cached)"),
                                        should_cancel=self.cancelled)
                except CnnviewerError as exc:
                    result.error, result.error_kind = str(exc), error_kind(exc)
                    return
                identity = weights_identity(entry, loaded.weights_path, with_sha256=True)  # hashed once per file
                result.weights, result.weights_sha256 = identity.weights_id, identity.sha256
                if identity.availability is Availability.IMPORTED:  # the published accuracy is not theirs
                    result.published = {**result.published, "acc1": None, "acc5": None}
                result.load_s = loaded.load_seconds
                result.folded_batchnorms = loaded.folded_batchnorms
                result.param_mb = sum(p.numel() * p.element_size() for p in loaded.module.parameters()) / 2**20
                classifier = Classifier(loaded, fast_decode=config.fast_decode)
                del loaded
                _warm_up(classifier, items, config.batch_size)
                _trim_heap()  # the warm-up's freed blocks: the loop starts from the same heap every time
                paused += self._wait()
                loop_started = time.perf_counter()
                outcomes = classifier.classify_files([item.path for item in items], top_k=5,
                                                     batch_size=config.batch_size, should_cancel=self.cancelled,
                                                     decode_threads=config.decode_threads)
                done, forward_ms, decode_ms, loop_paused = self._classify(result, number, outcomes)
                loop_seconds = time.perf_counter() - loop_started - loop_paused
                paused += loop_paused
                latencies: list[float] = []
                measured = False
                if done == len(items) and not self.cancelled():
                    # Seconds after the last image: said, so the progress does not sit at "done" meanwhile.
                    self._tell(number, key, done, f"measuring latency ({config.latency_samples} runs at batch 1)")
                    measured, waited = self._latencies(classifier, latencies)
                    paused += waited
                del classifier, outcomes
            finally:
                self._memory = None
        result.seconds = time.perf_counter() - started - paused
        result.paused_s = paused
        result.decode_ms_mean = float(np.mean(decode_ms)) if decode_ms else 0.0
        result.rss_before_mb = memory.before / 2**20
        result.peak_rss_mb = memory.increase_mb
        if on_gpu:
            result.peak_gpu_mb = torch.cuda.max_memory_allocated(config.device) / 2**20
        n = result.images
        if not measured:  # Cancel cut the turn short: accuracy over the images it saw, and no speed figures
            _mark_partial(result)
            return
        result.complete = True
        if n:  # no image loaded: nothing was timed, so there are no speed figures
            result.throughput_ips = n / max(1e-9, forward_ms / 1000)
            result.end_to_end_ips = n / max(1e-9, loop_seconds)
        if latencies:
            result.latencies_ms = [round(v, 3) for v in latencies]
            result.latency_ms = _percentiles(latencies)

    def _classify(self, result: ModelResult, number: int,
                  outcomes: Iterator[Classification]) -> tuple[int, float, list[float], float]:
        """Every image through the model: (files done, forward ms, decode ms per file, seconds paused)."""
        items, key, batch = self.items, result.name, max(1, self.config.batch_size)
        by_path = {item.path: item for item in items}
        top1 = top5 = classified = done = 0
        forward_ms = paused = 0.0
        decode_ms: list[float] = []
        for outcome in outcomes:
            item = by_path[outcome.path]
            done += 1
            decode_ms.append(outcome.timings.decode_ms + outcome.timings.preprocess_ms)
            if not outcome.ok:
                self.skipped[item.path] = outcome.error or "could not be classified"  # ok is error is None
            else:
                indices = [p.index for p in outcome.predictions]
                row = self.rows[item.path]
                row.top5[key] = indices
                row.probabilities[key] = [round(p.probability, 6) for p in outcome.predictions]
                self._unsent.append(row)
                top1 += indices[0] == item.index
                top5 += item.index in indices
                classified += 1
                forward_ms += outcome.timings.inference_ms
            if done % batch == 0 or done == len(items):
                result.images, result.failed = classified, done - classified
                result.top1, result.top5 = top1 / max(1, classified), top5 / max(1, classified)
                result.top1_ci, result.top5_ci = wilson_interval(top1, classified), wilson_interval(top5, classified)
                if self._on_rows is not None and self._unsent:
                    self._on_rows(key, self._unsent)
                self._unsent = []  # only once on_rows has them: a stop inside it leaves them out of the report
                self._tell(number, key, done)
                if done < len(items):
                    paused += self._wait()  # between batches: the generator holds the next one until asked
        return done, forward_ms, decode_ms, paused

    def _latencies(self, classifier: Classifier, values: list[float]) -> tuple[bool, float]:
        """Batch-1 forward times (ms) into ``values`` over the first images that load; (all taken, paused s)."""
        paused = 0.0
        for tensor in _first_tensors(classifier, self.items, self.config.latency_samples, self.skipped):
            paused += self._wait()
            if self.cancelled():
                return False, paused
            started = time.perf_counter()
            classifier.predict_batch(tensor.unsqueeze(0), top_k=5)
            values.append((time.perf_counter() - started) * 1000)
        return True, paused


def _count_from_rows(result: ModelResult, rows: list[ImageRow]) -> None:
    """A result's accuracy worked out again from the image rows that hold its answers."""
    answered = [row for row in rows if result.name in row.top5]
    top1 = sum(1 for row in answered if row.top5[result.name][0] == row.truth)
    top5 = sum(1 for row in answered if row.truth in row.top5[result.name])
    n = result.images = len(answered)
    result.top1, result.top5 = top1 / max(1, n), top5 / max(1, n)
    result.top1_ci, result.top5_ci = wilson_interval(top1, n), wilson_interval(top5, n)


def _mark_partial(result: ModelResult) -> None:
    result.partial, result.complete = True, False
    result.throughput_ips = result.end_to_end_ips = result.latency_ms = None
    result.latencies_ms = []


def run_benchmark(
    dataset: LabelledSet,
    config: BenchmarkConfig,
    progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    on_update: Callable[[BenchmarkReport], None] | None = None,
    on_rows: Callable[[str, list[ImageRow]], None] | None = None,
    pause: Pause | None = None,
) -> BenchmarkReport:
    """Run every model of ``config`` over ``dataset``; ``on_update`` sees the report after each model
    and ``on_rows`` the image rows of each batch as soon as the batch is classified.

    A model that cannot run is recorded with its reason and kind, and the others go on; a file that
    cannot be read is listed in ``skipped`` and left out of the accuracy. Cancelling keeps what was
    done: the model it cut short is ``partial``.
    """
    run = BenchmarkRun(dataset, config, progress=progress, should_cancel=should_cancel, pause=pause,
                       on_rows=on_rows)
    return run.run_all(on_update)


def _compared(report: BenchmarkReport) -> list[ModelResult]:
    """The results statistics are worked out for: they ran their whole turn."""
    return [m for m in report.models if m.error is None and not m.partial and m.images]


def against_fp32(report: BenchmarkReport) -> list[dict[str, Any]]:
    """Each result run another way than FP32 beside the same model's FP32 result: the top-1 change in
    points, how many top-1 answers differ, the exact McNemar p of the pair, and the speed ratio."""
    ran = _compared(report)
    fp32 = {m.model: m for m in ran if m.run_as == FP32.label}
    rows = []
    for m in ran:
        base = fp32.get(m.model)
        if m.run_as == FP32.label or base is None:
            continue
        both = [r for r in report.images if m.name in r.top5 and base.name in r.top5]
        pair = next((c for c in report.comparisons if {c["a"], c["b"]} == {m.name, base.name}), None)
        rows.append({
            "name": m.name, "model": base.name, "run_as": m.run_as, "top1": m.top1, "fp32_top1": base.top1,
            "change_points": (m.top1 - base.top1) * 100, "images": len(both),
            "differ": sum(1 for r in both if r.top5[m.name][0] != r.top5[base.name][0]),
            "p_value": pair["p_value"] if pair else 1.0,
            **_speed_against(m, base),
        })
    return rows


def speed_comparison(a: ModelResult, b: ModelResult) -> dict[str, Any]:
    """How much faster ``a`` is than ``b``: "speed_ratio" (forward-only images/s, a over b), and from the
    timing rounds "speed_interval" (the 95 % t-interval of the paired per-round ratios, on log scale) and
    "speed_rounds"; "faster" names the faster one only when there were at least MIN_CLAIM_ROUNDS rounds
    and the interval excludes 1."""
    rounds = min(len(a.throughput_rounds), len(b.throughput_rounds))
    paired = ratio_interval(a.throughput_rounds[:rounds], b.throughput_rounds[:rounds]) if rounds else None
    if paired is None:
        ratio = a.throughput_ips / b.throughput_ips if a.throughput_ips is not None and b.throughput_ips else None
        return {"speed_ratio": ratio, "speed_interval": None, "speed_rounds": rounds, "faster": None}
    ratio, low, high = paired
    clear = rounds >= MIN_CLAIM_ROUNDS and excludes_one(low, high)
    return {"speed_ratio": ratio, "speed_interval": [low, high], "speed_rounds": rounds,
            "faster": (a.name if ratio > 1 else b.name) if clear else None}


def _speed_against(m: ModelResult, base: ModelResult) -> dict[str, Any]:
    """against_fp32's speed figures: "speed" (m over its FP32 result), "speed_interval", "speed_rounds",
    "faster" (None: no clear difference), worked out anew (the pair may be stored either way round)."""
    speed = speed_comparison(m, base)
    return {"speed": speed["speed_ratio"], **{k: v for k, v in speed.items() if k != "speed_ratio"}}


def _finish_statistics(report: BenchmarkReport) -> None:
    """Pairwise McNemar tests, per-class accuracy and the most confused pairs, from the image rows, of the
    results that ran their whole turn (a partial one saw other images than the rest)."""
    ran = _compared(report)
    report.comparisons = []
    for i, a in enumerate(ran):
        for b in ran[i + 1:]:
            if a.model != b.model and a.run_as != b.run_as:
                continue  # one model in two ways, or two models in one way: never both at once
            both = [r for r in report.images if a.name in r.top5 and b.name in r.top5]
            only_a = sum(1 for r in both if r.top5[a.name][0] == r.truth and r.top5[b.name][0] != r.truth)
            only_b = sum(1 for r in both if r.top5[b.name][0] == r.truth and r.top5[a.name][0] != r.truth)
            p = mcnemar_exact(only_a, only_b)
            report.comparisons.append({
                "a": a.name, "b": b.name, "images": len(both), "only_a_right": only_a, "only_b_right": only_b,
                "p_value": p, "significant": p < SIGNIFICANCE,
                "more_accurate": (a.name if only_a > only_b else b.name) if p < SIGNIFICANCE else None,
                **speed_comparison(a, b),
            })
    report.per_class, report.confusions = {}, {}
    for model in ran:
        per_class: dict[int, list[int]] = {}
        confused: dict[tuple[int, int], int] = {}
        for row in report.images:
            top = row.top5.get(model.name)
            if not top:
                continue
            stats = per_class.setdefault(row.truth, [0, 0])
            stats[1] += 1
            if top[0] == row.truth:
                stats[0] += 1
            else:
                confused[(row.truth, top[0])] = confused.get((row.truth, top[0]), 0) + 1
        report.per_class[model.name] = {str(k): v for k, v in sorted(per_class.items())}
        worst = sorted(confused.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        report.confusions[model.name] = [[t, p, c] for (t, p), c in worst]


def environment_line(env: dict[str, Any]) -> str:
    driver = ""
    cluster = env.get("cluster")
    if isinstance(cluster, dict):  # the figures came from the workers (the Cluster section); this is the driver
        workers = cluster.get("workers")
        nodes = {str(w.get("node")) for w in (workers if isinstance(workers, list) else []) if isinstance(w, dict)}
        # Ray nodes, not machines: two nodes may be one machine. None yet: no worker finished a shard.
        where = f"{len(nodes)} node(s) of a cluster" if nodes else "a cluster"
        driver = f"Models ran on {where}; this line is the driver's machine: "
    return driver + (
            f"{env.get('cpu')} · {env.get('physical_cores')} cores / {env.get('logical_cores')} threads · "
            f"torch {env.get('torch')} ({env.get('torch_threads')} threads) · torchvision {env.get('torchvision')} "
            f"· {env.get('device')}{' (' + env['gpu'] + ')' if env.get('gpu') else ''} "
            f"· {_ways(env)} · batch {env.get('batch_size')} "
            f"· decode threads {env.get('decode_threads')} · {env.get('date')}")


def _ways(env: dict[str, Any]) -> str:
    ways = env.get("run_as")  # reports written before ways of running have only engine and precision
    return "run as " + ", ".join(ways) if ways else f"{env.get('engine', 'torch')} {env.get('precision')}"
