"""The way called ``auto``: per model and machine, the fastest way whose top-5 equals FP32's, measured once.

The probe set is fixed: the three bundled sample photos (``resources/samples``: chelsea.jpg,
coffee.jpg, grace_hopper.jpg), each as it is, mirrored left to right, its central 80 % and its
top-left 70 % (twelve inputs). Every way this device offers that needs no calibration runs them as
one batch: a warm-up pass gives each way's top-5 for every input, then three interleaved timed
rounds give its speed (the best round). ``pick_way`` takes the fastest way whose top-5 (classes and
order) equals FP32's on every input; FP32 always qualifies. The measurement is kept in
``<cache>/auto-ways.json`` under the model, its weights' SHA-256, the device (and the CPU's or GPU's
name) and the versions of cnnviewer, torch, torchvision, the Lite models' code, onnx and onnxruntime, so
it runs once per model and machine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnviewer.core.errors import CnnviewerError
from cnnviewer.core.files import read_private, write_private
from cnnviewer.core.paths import cache_dir
from cnnviewer.core.results import way_label
from cnnviewer.core.ways import BF16, FP32, ONNXRUNTIME, AutoWay, RunAs, parse_way

if TYPE_CHECKING:
    from PIL import Image

    from cnnviewer.core.catalog import ModelEntry

log = logging.getLogger(__name__)

FORMAT = 1
MAX_CACHE_BYTES = 4 << 20  # a record takes about 1 kB
ROUNDS = 3
#: Ways auto may choose: those that need no calibration images.
CANDIDATES = (FP32, BF16, ONNXRUNTIME)
PROBE_DESCRIPTION = ("the 3 bundled sample photos (chelsea.jpg, coffee.jpg, grace_hopper.jpg), each as is, "
                     "mirrored left-right, its central 80 % and its top-left 70 %: 12 images")


class AutoCancelled(CnnviewerError):
    """Choosing the fastest way was stopped before it finished; nothing was cached."""


@dataclass(frozen=True)
class WayMeasurement:
    """One way on the probe set: images per second (best round) and the top-5 class indices of each input."""

    way: RunAs
    images_per_second: float
    top5: tuple[tuple[int, ...], ...]
    error: str | None = None  # why the way could not run (it is then never picked)


@dataclass(frozen=True)
class WayResult:
    """What the cache keeps of one way: its label, speed, and whether its top-5 equalled FP32's on every input."""

    way: str
    images_per_second: float
    top5_equal: bool
    error: str | None = None


@dataclass(frozen=True)
class AutoRecord:
    """One measurement, as cached: for which model, weights, device and versions, when, on what, and the choice."""

    model: str
    weights_sha256: str
    device: str
    device_name: str
    versions: dict[str, str]
    probe: str
    measured_at: str  # ISO 8601, UTC
    ways: tuple[WayResult, ...]
    chosen: str  # a RunAs label

    @property
    def way(self) -> RunAs:
        return parse_way(self.chosen)


@dataclass(frozen=True)
class Resolved:
    """The way that runs (``way``), whether auto chose it, and the measurement it chose from (auto only)."""

    way: RunAs
    auto: bool = False
    record: AutoRecord | None = None

    @property
    def label(self) -> str:
        """"auto: onnxruntime" when auto chose, else the way's own label: how every face shows it."""
        return way_label(self.way, self.auto)


def pick_way(measurements: Sequence[WayMeasurement]) -> RunAs:
    """The fastest way whose top-5 equals FP32's on every probe input (FP32 itself always qualifies)."""
    reference = next((m for m in measurements if m.way == FP32 and m.error is None), None)
    if reference is None:
        return FP32
    honest = [m for m in measurements if m.error is None and m.top5 == reference.top5]
    return max(honest, key=lambda m: (m.images_per_second, m.way == FP32)).way


# -- the probe set -----------------------------------------------------------------------------


def probe_images() -> list[tuple[str, Image.Image]]:
    """The twelve probe inputs (name, RGB image), in a fixed order: see PROBE_DESCRIPTION."""
    from PIL import ImageOps

    from cnnviewer.core.images import load_image
    from cnnviewer.core.paths import sample_photos

    probes: list[tuple[str, Image.Image]] = []
    for path in sample_photos():
        image = load_image(path)
        width, height = image.size
        inset_w, inset_h = round(width * 0.1), round(height * 0.1)
        probes += [
            (path.name, image),
            (f"{path.name} mirrored", ImageOps.mirror(image)),
            (f"{path.name} central 80 %", image.crop((inset_w, inset_h, width - inset_w, height - inset_h))),
            (f"{path.name} top-left 70 %", image.crop((0, 0, round(width * 0.7), round(height * 0.7)))),
        ]
    return probes


# -- measuring ---------------------------------------------------------------------------------


def measure_ways(entry: ModelEntry, device: str = "cpu", ways: Sequence[RunAs] | None = None,
                 progress: Callable[[str], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None) -> list[WayMeasurement]:
    """Run ``ways`` (default: every candidate this device offers) on the probe set; see the module's text."""
    import torch

    from cnnviewer.core.inference import Classifier
    from cnnviewer.core.models import load_model
    from cnnviewer.core.ways import available_ways

    cancelled = should_cancel or (lambda: False)
    say = progress or (lambda text: None)
    offered = available_ways(device)
    ways = [w for w in (ways or CANDIDATES) if w in offered]
    if FP32 not in ways:
        ways.insert(0, FP32)  # the reference
    classifiers: dict[RunAs, Classifier] = {}
    failed: dict[RunAs, str] = {}
    top5: dict[RunAs, tuple[tuple[int, ...], ...]] = {}
    batch: torch.Tensor | None = None
    for number, way in enumerate(ways, 1):
        if cancelled():
            raise AutoCancelled(f"Choosing the fastest way for {entry.name} was cancelled.")
        say(f"Loading {entry.name} as {way.label} ({number} of {len(ways)})")
        try:
            classifier = Classifier(load_model(entry, device, way, channels_last=True))
            if batch is None:
                batch = torch.stack([classifier.preprocess(image) for _, image in probe_images()])
            rows = classifier.predict_batch(batch, top_k=5)  # also the warm-up pass
        except CnnviewerError as exc:  # a way this model cannot run (an export that fails) is never picked
            if way == FP32:
                raise
            log.info("auto: %s cannot run as %s: %s", entry.name, way.label, exc)
            failed[way] = str(exc)
            continue
        classifiers[way] = classifier
        top5[way] = tuple(tuple(p.index for p in row) for row in rows)
    assert batch is not None  # FP32 always loads, or raised
    best: dict[RunAs, float] = {way: float("inf") for way in classifiers}
    for round_number in range(ROUNDS):  # interleaved, so a burst of other load hits every way alike
        for way, classifier in classifiers.items():
            if cancelled():
                raise AutoCancelled(f"Choosing the fastest way for {entry.name} was cancelled.")
            say(f"Timing {entry.name} as {way.label} (round {round_number + 1} of {ROUNDS})")
            started = time.perf_counter()
            classifier.forward(batch)
            best[way] = min(best[way], time.perf_counter() - started)
    measured = [WayMeasurement(way, len(batch) / best[way], top5[way]) for way in classifiers]
    return measured + [WayMeasurement(way, 0.0, (), error) for way, error in failed.items()]


# -- the cache ---------------------------------------------------------------------------------


def cache_file() -> Path:
    """``<cache>/auto-ways.json``: every measurement; deleting it makes auto measure again."""
    return cache_dir() / "auto-ways.json"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        import platform

        return platform.processor()


def device_identity(device: str = "cpu") -> tuple[str, str]:
    """(device, its hardware's name): the CPU's model name for "cpu" (read without torch), the GPU's for CUDA."""
    text = str(device).strip().lower()
    if text == "cpu":
        return "cpu", _cpu_name()
    import torch

    from cnnviewer.core.models import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        index = resolved.index if resolved.index is not None else torch.cuda.current_device()
        return f"cuda:{index}", torch.cuda.get_device_name(index)
    return str(resolved), _cpu_name() if resolved.type == "cpu" else ""


def cache_key(model: str, weights_sha256: str, device: str = "cpu") -> dict[str, Any]:
    """What a measurement holds for: model, weights, device and its name, and the versions that run it."""
    from cnnviewer.core.onnx_cache import GRAPH_PACKAGES, versions

    name, hardware = device_identity(device)
    return {"format": FORMAT, "model": model, "weights_sha256": weights_sha256, "device": name,
            "device_name": hardware, "versions": versions(*GRAPH_PACKAGES)}


def _key_text(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _read_cache() -> dict[str, Any]:
    """The cache's records by key; a missing, damaged or foreign file reads as none (with a log line)."""
    path = cache_file()
    try:
        data = json.loads(read_private(path, MAX_CACHE_BYTES))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        log.warning("the measurements in %s are not used (%s); auto measures again", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("records"), dict):
        log.warning("the measurements in %s are not cnnviewer's of this version; auto measures again", path)
        return {}
    records: dict[str, Any] = data["records"]
    return records


def _record_from(data: Any, key: dict[str, Any]) -> AutoRecord | None:
    try:
        if data["key"] != key:  # a digest collision or an edited file: never trusted
            return None
        ways = tuple(WayResult(str(w["way"]), float(w["images_per_second"]), bool(w["top5_equal"]),
                               w.get("error")) for w in data["ways"])
        record = AutoRecord(key["model"], key["weights_sha256"], key["device"], key["device_name"],
                            dict(key["versions"]), str(data["probe"]), str(data["measured_at"]), ways,
                            str(data["chosen"]))
        chosen = next((w for w in ways if w.way == record.chosen), None)
        # An edited record must not make auto run a way it never chose: only a candidate whose top-5 matched.
        if chosen is None or not chosen.top5_equal or record.way not in CANDIDATES:
            raise ValueError(f"its choice {record.chosen!r} is not a measured way with fp32's top-5")
        return record
    except (KeyError, TypeError, ValueError, CnnviewerError) as exc:
        log.warning("a measurement in %s is damaged (%s); auto measures again", cache_file(), exc)
        return None


def cached_record(model: str, weights_sha256: str, device: str = "cpu") -> AutoRecord | None:
    """The cached measurement for this model, weights, device and versions, or None (needs no torch on the CPU)."""
    return cached_records({model: weights_sha256}, device).get(model)


def cached_records(digests: dict[str, str], device: str = "cpu") -> dict[str, AutoRecord]:
    """cached_record of each model in ``digests`` (model -> weights SHA-256) that has one; the file read once."""
    cache = _read_cache()
    found = {}
    for model, weights_sha256 in digests.items():
        key = cache_key(model, weights_sha256, device)
        data = cache.get(_key_text(key))
        record = _record_from(data, key) if data is not None else None
        if record is not None:
            found[model] = record
    return found


def save_record(record: AutoRecord) -> None:
    """Add ``record`` to the cache (replacing the one with the same key); a write failure is logged only."""
    key = cache_key(record.model, record.weights_sha256, record.device)
    records = _read_cache()
    records[_key_text(key)] = {"key": key, "probe": record.probe, "measured_at": record.measured_at,
                               "chosen": record.chosen, "ways": [asdict(w) for w in record.ways]}
    text = json.dumps({"format": FORMAT, "records": records}, indent=1)
    try:
        write_private(cache_file(), text.encode(), cache_dir())
    except CnnviewerError as exc:  # the next run measures again; this one goes on
        log.warning("the measurement of %s is not kept: %s", record.model, exc)


def measure_and_record(entry: ModelEntry, weights_sha256: str, device: str = "cpu",
                       progress: Callable[[str], None] | None = None,
                       should_cancel: Callable[[], bool] | None = None) -> AutoRecord:
    """Measure the candidate ways, pick one (pick_way) and cache the measurement; returns the record."""
    measurements = measure_ways(entry, device, progress=progress, should_cancel=should_cancel)
    chosen = pick_way(measurements)
    reference = next(m for m in measurements if m.way == FP32)
    key = cache_key(entry.name, weights_sha256, device)
    record = AutoRecord(
        entry.name, weights_sha256, key["device"], key["device_name"], key["versions"], PROBE_DESCRIPTION,
        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        tuple(WayResult(m.way.label, round(m.images_per_second, 2), m.error is None and m.top5 == reference.top5,
                        m.error) for m in measurements),
        chosen.label)
    log.info("auto for %s on %s: %s (%s)", entry.name, device, chosen.label,
             ", ".join(f"{w.way} {w.images_per_second:.1f} img/s{'' if w.top5_equal else ' top-5 differs'}"
                       for w in record.ways))
    save_record(record)
    return record


def resolve_way(entry: ModelEntry, device: str, choice: RunAs | AutoWay,
                progress: Callable[[str], None] | None = None,
                should_cancel: Callable[[], bool] | None = None) -> Resolved:
    """The way to run: ``choice`` itself when it is a RunAs; for auto, the cached choice for this model,
    weights, device and versions, else a fresh measurement (once: it is then cached)."""
    if isinstance(choice, RunAs):
        return Resolved(choice)
    from cnnviewer.core.catalog import Availability
    from cnnviewer.core.weights import file_sha256

    if entry.availability() is Availability.MISSING:
        from cnnviewer.core.models import missing_weights_error

        raise missing_weights_error(entry)
    sha = file_sha256(entry.weights_path())
    record = cached_record(entry.name, sha, device)
    if record is None:
        record = measure_and_record(entry, sha, device, progress, should_cancel)
    return Resolved(record.way, auto=True, record=record)
