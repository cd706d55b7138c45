"""Benchmark several models on a labelled folder: accuracy, latency, throughput and memory.

``run_benchmark`` is a plain function driven by ``progress`` and ``should_cancel`` callables, so the
CLI, the window's worker and the tests run it the same way. Results are written as they come.
"""

from __future__ import annotations

import datetime as _dt
import logging
import platform
import threading
import time
from collections.abc import Callable, Container
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psutil
import torch

from cnnviewer.core.catalog import RUN_AS, Availability, get_entry, run_as_label
from cnnviewer.core.datasets import LabelledImage, LabelledSet
from cnnviewer.core.errors import CnnviewerError, ImageLoadError
from cnnviewer.core.images import load_image
from cnnviewer.core.inference import Classifier, default_decode_threads
from cnnviewer.core.models import load_model
from cnnviewer.core.stats import mcnemar_exact, wilson_interval
from cnnviewer.core.weights import weights_identity

LAB_REPORT_MODELS = ("resnet50", "googlenet", "inception_v3")
EMBEDDED_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
SIGNIFICANCE = 0.05

log = logging.getLogger(__name__)


def default_models() -> tuple[tuple[str, ...], str]:
    """The lab report's three when their weights are here, else the embedded three; and why."""
    if all(get_entry(name).availability().ready for name in LAB_REPORT_MODELS):
        return LAB_REPORT_MODELS, "the lab report's models (ResNet50, GoogLeNet, Inception V3)"
    return EMBEDDED_MODELS, ("the three embedded EfficientNet-Lite models, because the weights of the lab "
                             "report's ResNet50, GoogLeNet and Inception V3 are not all on this machine")


def model_of(key: str) -> str:
    """The catalog name in a result's key: "resnet50 (bf16)" -> "resnet50" (catalog names have no " (")."""
    return key.split(" (", 1)[0]


@dataclass(frozen=True)
class BenchmarkConfig:
    models: tuple[str, ...]
    batch_size: int = 8
    limit: int | None = None
    device: str = "cpu"
    latency_samples: int = 20  # batch-1 forwards per model for the latency distribution
    precision: str = "fp32"  # or "bf16" (the fast path, where the hardware has it)
    channels_last: bool = True  # NHWC convolutions: faster on CPUs, the same classes
    fast_decode: bool = True  # large JPEGs decode at reduced size (never below the model's resize)
    decode_threads: int | None = None  # decoding overlaps inference in this many threads; None: for the machine
    engine: str = "torch"  # or "onnxruntime" (FP32 on the CPU)
    # Several ways of running (RUN_AS labels): every model runs once per entry, on the same images, and
    # its results are named "model (label)"; empty: the one way given by precision and engine.
    run_as: tuple[str, ...] = ()

    def variants(self) -> list[tuple[str, str, str]]:
        """(label, precision, engine) of each way of running."""
        if not self.run_as:
            return [(run_as_label(self.precision, self.engine), self.precision, self.engine)]
        unknown = [r for r in self.run_as if r not in RUN_AS]
        if unknown:
            raise CnnviewerError(f"Unknown way of running '{unknown[0]}'; choose from {', '.join(RUN_AS)}.")
        return [(label, *RUN_AS[label]) for label in dict.fromkeys(self.run_as)]

    def runs(self) -> list[tuple[str, str, str, str, str]]:
        """(result key, model, label, precision, engine) in the order they run: each model in every way."""
        variants = self.variants()
        return [(f"{model} ({label})" if len(variants) > 1 else model, model, label, precision, engine)
                for model in dict.fromkeys(self.models)  # a model named twice runs once, never against itself
                for label, precision, engine in variants]


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
    run_as: str = "fp32"  # RUN_AS label: how this result was computed
    images: int = 0  # images that loaded and were classified
    failed: int = 0
    top1: float = 0.0
    top5: float = 0.0
    top1_ci: tuple[float, float] = (0.0, 1.0)
    top5_ci: tuple[float, float] = (0.0, 1.0)
    throughput_ips: float = 0.0  # model forward only, at the chosen batch size
    end_to_end_ips: float = 0.0  # file on disk to top-5, decode included
    latency_ms: dict[str, float] = field(default_factory=lambda: {"p50": 0.0, "p90": 0.0, "p99": 0.0})
    latencies_ms: list[float] = field(default_factory=list)
    decode_ms_mean: float = 0.0
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float = 0.0  # torch's peak allocation on the GPU, when the run was on one
    param_mb: float = 0.0
    folded_batchnorms: int = 0  # BatchNorm layers folded into the convolution before them
    load_s: float = 0.0
    seconds: float = 0.0
    published: dict[str, Any] = field(default_factory=dict)  # acc1, acc5 (None: not published), gmacs, params
    error: str | None = None  # the model could not run at all (weights missing, ...)
    complete: bool = False
    weights_sha256: str = ""  # the SHA-256 of the weights file, so a figure traces to the exact file


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
    config: dict[str, Any]  # asdict(BenchmarkConfig), as JSON
    environment: dict[str, Any]  # environment(): what the figures were measured on
    models: list[ModelResult] = field(default_factory=list)
    images: list[ImageRow] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {file, reason}
    label_problems: list[str] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    per_class: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # model -> {truth index: [correct, total]}
    confusions: dict[str, list[list[int]]] = field(default_factory=dict)  # model -> [[truth, predicted, count], ...]
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
        way = run_as_label(env.get("precision", "fp32"), env.get("engine", "torch"))  # reports before run_as
        models = [ModelResult(**{"run_as": way, **m, "model": m.get("model") or model_of(m["name"])})
                  for m in checked["models"]]
        images = [ImageRow(**row) for row in checked["images"]]
        fields = {k: v for k, v in checked.items() if k in cls.__dataclass_fields__ and k not in ("models", "images")}
        report = cls(**fields)
        report.models, report.images = models, images
        return report

    def result(self, name: str) -> ModelResult | None:
        return next((m for m in self.models if m.name == name), None)


def environment(config: BenchmarkConfig) -> dict[str, Any]:
    import torchvision

    ways = config.variants()

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
        "precision": ways[0][1] if len(ways) == 1 else "mixed",
        "engine": ways[0][2] if len(ways) == 1 else "mixed",
        "run_as": [label for label, _, _ in ways],
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


class _PeakMemory:
    """Samples this process's resident memory in a thread while a model runs."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> _PeakMemory:
        self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0}
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
        try:
            tensors.append(classifier.preprocess(load_image(item.path)))
        except ImageLoadError:
            continue
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


def _latencies(classifier: Classifier, items: list[LabelledImage], config: BenchmarkConfig,
               skip: Container[str] = ()) -> list[float]:
    """Batch-1 forward times (ms) over the first images that load (``skip``: those known not to)."""
    values = []
    for tensor in _first_tensors(classifier, items, config.latency_samples, skip):
        started = time.perf_counter()
        classifier.predict_batch(tensor.unsqueeze(0), top_k=5)
        values.append((time.perf_counter() - started) * 1000)
    return values


def run_benchmark(
    dataset: LabelledSet,
    config: BenchmarkConfig,
    progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    on_update: Callable[[BenchmarkReport], None] | None = None,
    on_rows: Callable[[str, list[ImageRow]], None] | None = None,
) -> BenchmarkReport:
    """Run every model of ``config`` over ``dataset``; ``on_update`` sees the report after each model
    and ``on_rows`` the image rows of each batch as soon as the batch is classified.

    A model that cannot run is recorded with its reason and the others go on; a file that cannot
    be read is listed in ``skipped`` and left out of the accuracy. Cancelling keeps what was done.
    """
    items = dataset.images[: config.limit] if config.limit else list(dataset.images)
    report = BenchmarkReport(root=dataset.root, config=asdict(config), environment=environment(config),
                             label_problems=dataset.problems)
    rows = {item.path: ImageRow(item.path, item.label, item.index) for item in items}
    report.images = list(rows.values())
    skipped: dict[str, str] = {}
    cancelled = should_cancel or (lambda: False)

    def publish() -> None:
        report.skipped = [{"file": f, "reason": r} for f, r in skipped.items()]
        if on_update is not None:
            on_update(report)

    runs = config.runs()
    for number, (name, model, label, precision, engine) in enumerate(runs, 1):
        if cancelled():
            break
        entry = get_entry(model)
        title = entry.title if name == model else f"{entry.title} ({label})"
        result = ModelResult(name=name, title=title, weights=entry.weights_id, model=model, run_as=label,
                             published={"acc1": entry.acc1, "acc5": entry.acc5, "gmacs": entry.gmacs,
                                        "params": entry.num_params})
        report.models.append(result)
        if progress:
            progress(Progress(name, number, len(runs), 0, len(items), f"loading {name}"))
        started = time.perf_counter()
        on_gpu = report.environment["gpu"] is not None
        if on_gpu:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(config.device)
        with _PeakMemory() as memory:
            try:
                loaded = load_model(entry, config.device, precision, config.channels_last, engine)
            except CnnviewerError as exc:
                result.error = str(exc)
                publish()
                continue
            identity = weights_identity(entry, loaded.weights_path, with_sha256=True)  # hashed once per file
            result.weights, result.weights_sha256 = identity.weights_id, identity.sha256
            if identity.availability is Availability.IMPORTED:  # the published accuracy is not theirs
                result.published = {**result.published, "acc1": None, "acc5": None}
            result.load_s = loaded.load_seconds
            result.folded_batchnorms = loaded.folded_batchnorms
            result.param_mb = sum(p.numel() * p.element_size() for p in loaded.module.parameters()) / 2**20
            classifier = Classifier(loaded)
            _warm_up(classifier, items, config.batch_size)
            top1 = top5 = classified = done = 0
            decode_ms: list[float] = []
            forward_ms = 0.0
            batch_rows: list[ImageRow] = []
            by_path = {item.path: item for item in items}
            loop_started = time.perf_counter()
            outcomes = classifier.classify_files([item.path for item in items], top_k=5,
                                                 batch_size=config.batch_size, should_cancel=cancelled,
                                                 fast_decode=config.fast_decode,
                                                 decode_threads=config.decode_threads)
            for outcome in outcomes:
                item = by_path[outcome.path]
                done += 1
                decode_ms.append(outcome.timings.decode_ms + outcome.timings.preprocess_ms)
                if not outcome.ok:
                    skipped[item.path] = outcome.error or "could not be classified"  # ok is error is None
                else:
                    indices = [p.index for p in outcome.predictions]
                    row = rows[item.path]
                    row.top5[name] = indices
                    row.probabilities[name] = [round(p.probability, 6) for p in outcome.predictions]
                    batch_rows.append(row)
                    top1 += indices[0] == item.index
                    top5 += item.index in indices
                    classified += 1
                    forward_ms += outcome.timings.inference_ms
                if done % max(1, config.batch_size) == 0 or done == len(items):
                    result.images, result.failed = classified, done - classified
                    result.top1, result.top5 = top1 / max(1, classified), top5 / max(1, classified)
                    if on_rows is not None and batch_rows:
                        on_rows(name, batch_rows)
                    batch_rows = []
                    if progress:
                        progress(Progress(name, number, len(runs), done, len(items), name))
            loop_seconds = time.perf_counter() - loop_started
            result.images, result.failed = classified, done - classified
            result.top1, result.top5 = top1 / max(1, classified), top5 / max(1, classified)
            if on_rows is not None and batch_rows:
                on_rows(name, batch_rows)
            latencies = [] if cancelled() else _latencies(classifier, items, config, skipped)
        forward_s = forward_ms / 1000
        n = result.images
        result.top1_ci = wilson_interval(top1, n)
        result.top5_ci = wilson_interval(top5, n)
        result.throughput_ips = n / forward_s if forward_s else 0.0
        result.seconds = time.perf_counter() - started
        result.end_to_end_ips = n / max(1e-9, loop_seconds) if n else 0.0
        result.latencies_ms = [round(v, 3) for v in latencies]
        result.latency_ms = _percentiles(latencies)
        result.decode_ms_mean = float(np.mean(decode_ms)) if decode_ms else 0.0
        result.peak_rss_mb = memory.peak / 2**20
        if on_gpu:
            result.peak_gpu_mb = torch.cuda.max_memory_allocated(config.device) / 2**20
        result.complete = done == len(items) and not cancelled()
        del classifier, loaded, outcomes
        _finish_statistics(report)
        publish()
    report.cancelled = cancelled()
    report.complete = not report.cancelled and all(m.complete or m.error for m in report.models)
    _finish_statistics(report)
    publish()
    return report


def against_fp32(report: BenchmarkReport) -> list[dict[str, Any]]:
    """Each result run another way than FP32 beside the same model's FP32 result: the top-1 change in
    points, how many top-1 answers differ, the exact McNemar p of the pair, and the speed ratio."""
    ran = [m for m in report.models if m.error is None and m.images]
    fp32 = {m.model: m for m in ran if m.run_as == "fp32"}
    rows = []
    for m in ran:
        base = fp32.get(m.model)
        if m.run_as == "fp32" or base is None:
            continue
        both = [r for r in report.images if m.name in r.top5 and base.name in r.top5]
        pair = next((c for c in report.comparisons if {c["a"], c["b"]} == {m.name, base.name}), None)
        rows.append({
            "name": m.name, "model": base.name, "run_as": m.run_as, "top1": m.top1, "fp32_top1": base.top1,
            "change_points": (m.top1 - base.top1) * 100, "images": len(both),
            "differ": sum(1 for r in both if r.top5[m.name][0] != r.top5[base.name][0]),
            "p_value": pair["p_value"] if pair else 1.0,
            "speed": m.throughput_ips / base.throughput_ips if base.throughput_ips else None,
        })
    return rows


def _finish_statistics(report: BenchmarkReport) -> None:
    """Pairwise McNemar tests, per-class accuracy and the most confused pairs, from the image rows."""
    ran = [m for m in report.models if m.error is None and m.images]
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
                "speed_ratio": (a.throughput_ips / b.throughput_ips) if b.throughput_ips else None,
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
    return (f"{env.get('cpu')} · {env.get('physical_cores')} cores / {env.get('logical_cores')} threads · "
            f"torch {env.get('torch')} ({env.get('torch_threads')} threads) · torchvision {env.get('torchvision')} "
            f"· {env.get('device')}{' (' + env['gpu'] + ')' if env.get('gpu') else ''} "
            f"· {_ways(env)} · batch {env.get('batch_size')} "
            f"· decode threads {env.get('decode_threads')} · {env.get('date')}")


def _ways(env: dict[str, Any]) -> str:
    ways = env.get("run_as")  # reports written before ways of running have only engine and precision
    return "run as " + ", ".join(ways) if ways else f"{env.get('engine', 'torch')} {env.get('precision')}"
