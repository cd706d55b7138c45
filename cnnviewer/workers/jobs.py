"""The jobs the window runs in worker threads: thin wrappers over core calls, returning plain records."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from PySide6.QtGui import QImage

from cnnviewer.core.results import way_label
from cnnviewer.core.ways import FP32, INT8, AutoWay, RunAs
from cnnviewer.workers.base import CancelToken, Reporter

if TYPE_CHECKING:  # torch stays unimported until a job needs it: the window shows first
    from PIL.Image import Image

    from cnnviewer.core.auto import Resolved
    from cnnviewer.core.calibration import CalibrationSet
    from cnnviewer.core.images import ImageInfo
    from cnnviewer.core.inference import Classification, Classifier
    from cnnviewer.core.weights import DownloadProgress


@dataclass(frozen=True)
class CatalogRow:
    """One model as the picker shows it."""

    name: str
    title: str
    availability: str  # Availability.value
    ready: bool
    input_size: int
    file_size_mb: float
    weights_label: str = ""  # imported weights: "imported: FILE (sha256 …)", never passed off as published
    acc1: float | None = None  # published ImageNet-1k top-1 % (None: not published)
    gmacs: float = 0.0  # published multiply-accumulates per image, in billions
    images_per_s: float | None = None  # measured on this machine (first device, fp32) by a benchmark; None: never


@dataclass(frozen=True)
class ClassifyOutcome:
    """What one classification produced, with where the time went and which thread did it."""

    path: str
    model: str
    device: str
    way: RunAs  # the way that ran: auto's choice when ``auto``
    classification: Classification
    load_ms: float | None  # None when the model was already loaded
    thread_id: int
    auto: bool = False  # ``way`` was chosen by auto (the fastest way whose top-5 equals FP32's here)
    choose_ms: float | None = None  # how long auto took to measure the ways; None when its choice was known
    note: str = ""  # a fact about this result to show beside its timings (int8: the photo calibrated it)

    @property
    def way_label(self) -> str:
        """"auto: onnxruntime" when auto chose the way, else the way's own label."""
        return way_label(self.way, self.auto)


@dataclass(frozen=True)
class PreviewData:
    path: str
    image: QImage
    info: ImageInfo


def pil_to_qimage(image: Image) -> QImage:
    """An RGB Pillow image as a QImage that owns its pixels (safe to pass between threads)."""
    image = image.convert("RGB")
    data = image.tobytes("raw", "RGB")
    qimage = QImage(data, image.width, image.height, image.width * 3, QImage.Format.Format_RGB888)
    return qimage.copy()


@dataclass(frozen=True)
class CatalogInfo:
    rows: list[CatalogRow]
    devices: list[str]
    default_model: str
    ways: dict[str, list[RunAs]]  # device -> the ways this machine runs on it (fp32, and bf16 / onnxruntime)
    # device -> model -> the way auto chose for it, for the models measured before with their current weights
    auto_choices: dict[str, dict[str, RunAs]] = field(default_factory=dict)


def auto_choices(devices: list[str], names: list[str]) -> dict[str, dict[str, RunAs]]:
    """device -> model -> auto's cached choice, for those of ``names`` whose weights' digest is remembered
    (hashing a file of hundreds of MB is not done for this: such a model shows its choice once loaded)."""
    from cnnviewer.core.auto import cached_records
    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.weights import weights_identity

    digests = {name: sha for name in names if (sha := weights_identity(get_entry(name)).sha256)}
    return {device: {name: record.way for name, record in cached_records(digests, device).items()}
            for device in devices}


def load_catalog(token: CancelToken, report: Reporter) -> CatalogInfo:
    """Import torch and torchvision and list every model (done once, off the GUI thread)."""
    from cnnviewer.core.catalog import Availability, catalog
    from cnnviewer.core.measured import speeds
    from cnnviewer.core.models import available_devices
    from cnnviewer.core.settings import default_model_name
    from cnnviewer.core.ways import available_ways
    from cnnviewer.core.weights import weights_identity

    rows = []
    devices = available_devices()
    measured = speeds(devices[0], FP32.label)
    for entry in catalog():
        availability = entry.availability()
        label = weights_identity(entry).label if availability is Availability.IMPORTED else ""
        rows.append(CatalogRow(entry.name, entry.title, availability.value, availability.ready,
                               entry.input_size, entry.file_size_mb, label, entry.acc1, entry.gmacs,
                               measured.get(entry.name)))
    return CatalogInfo(rows=rows, devices=devices, default_model=default_model_name(),
                       ways={device: available_ways(device) for device in devices},
                       auto_choices=auto_choices(devices, [row.name for row in rows if row.ready]))


class _Loading:
    """One load in flight: whoever asks for the same model meanwhile waits for it instead of loading it twice."""

    def __init__(self) -> None:
        self.done = threading.Event()


class ModelCache:
    """Loaded models shared by the window's jobs; keeps the few most recently used (memory is finite).

    ``_lock`` guards the dictionaries only, never a load or a measurement (quantizing to int8 or measuring
    auto's ways takes up to minutes): ``forget`` and ``clear`` are called on the GUI thread and return at once.
    A load or a measurement that began before ``forget``/``clear`` still answers its own caller, but is not kept:
    it came from the weights (or the calibration images) of before.
    """

    def __init__(self, capacity: int = 3):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple[str, str, RunAs], Classifier] = OrderedDict()  # (name, device, way)
        # (name, device, way, calibration of an int8 load) -> the load in flight
        self._loading: dict[tuple[str, str, RunAs, CalibrationSet | None], _Loading] = {}
        # (name, device) -> auto's choice, read or measured once while the weights stay the same
        self._chosen: dict[tuple[str, str], Resolved] = {}
        # Bumped by forget (per model) and clear (all): a load or measurement begun before is not kept.
        self._generations: dict[str, int] = {}
        self._epoch = 0
        # One measurement at a time: two windows asking for the same model measure it once.
        self._choosing = threading.Lock()
        self.calibration: CalibrationSet | None = None  # what int8 models are calibrated on (the window's folder)

    def _generation(self, name: str) -> tuple[int, int]:
        """Which weights of ``name`` this cache holds now (call with ``_lock`` held)."""
        return self._epoch, self._generations.get(name, 0)

    def resolve(self, name: str, device: str, choice: RunAs | AutoWay,
                progress: Callable[[str], None] | None = None,
                should_cancel: Callable[[], bool] | None = None) -> tuple[Resolved, float | None]:
        """(the way ``choice`` runs ``name`` on ``device``, measurement time in ms or None when none ran):
        a RunAs is itself; auto is its cached choice, else measured now (core.auto.resolve_way; seconds to
        a minute, reported through ``progress``, stopped by ``should_cancel``)."""
        from cnnviewer.core.auto import Resolved, resolve_way
        from cnnviewer.core.catalog import get_entry

        if isinstance(choice, RunAs):
            return Resolved(choice), None
        with self._choosing:
            with self._lock:
                known = self._chosen.get((name, device))
                generation = self._generation(name)
            if known is not None:
                return known, None
            entry = get_entry(name)
            started = time.perf_counter()
            measured = False

            def said(text: str) -> None:
                nonlocal measured
                measured = True
                if progress is not None:
                    progress(text)

            resolved = resolve_way(entry, device, choice, said, should_cancel)
            with self._lock:
                if self._generation(name) == generation:  # else measured for the weights of before: not kept
                    self._chosen[(name, device)] = resolved
            return resolved, (time.perf_counter() - started) * 1000 if measured else None

    def use_calibration(self, calibration: CalibrationSet | None) -> None:
        """int8 is calibrated on ``calibration`` from now on: int8 models calibrated on other images go."""
        with self._lock:
            if calibration != self.calibration:
                self.calibration = calibration
                for key in [key for key in self._models if key[2] == INT8]:
                    del self._models[key]

    def get(self, name: str, device: str, way: RunAs = FP32, progress: Callable[[str], None] | None = None,
            should_cancel: Callable[[], bool] | None = None,
            calibration: CalibrationSet | None = None) -> tuple[Classifier, float | None]:
        """(Classifier, load time in ms or None if it was already loaded) of ``name`` run ``way`` on ``device``;
        int8 is calibrated on ``calibration`` when given (it becomes ``self.calibration``), else on
        ``self.calibration`` (``progress`` hears it when it is quantized: once, then cached). A caller asking
        for a model another is loading waits for that load."""
        from cnnviewer.core.catalog import get_entry
        from cnnviewer.core.inference import Classifier
        from cnnviewer.core.models import load_model

        if way == INT8 and calibration is not None:
            self.use_calibration(calibration)
        key = (name, device, way)
        while True:
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key], None
                used = self.calibration if way == INT8 else None
                flight = (name, device, way, used)
                pending = self._loading.get(flight)
                if pending is None:
                    pending = self._loading[flight] = _Loading()
                    generation = self._generation(name)
                    break
            # Loaded by another caller: look again once it ends (kept; else it failed or was forgotten: load here).
            pending.done.wait()
        started = time.perf_counter()
        try:
            classifier = Classifier(load_model(get_entry(name), device, way, channels_last=True,
                                               calibration=used, progress=progress, should_cancel=should_cancel))
        except BaseException:
            self._landed(flight, pending)
            raise
        self._landed(flight, pending, key, classifier, generation)
        return classifier, (time.perf_counter() - started) * 1000

    def _landed(self, flight: tuple[str, str, RunAs, CalibrationSet | None], pending: _Loading,
                key: tuple[str, str, RunAs] | None = None, classifier: Classifier | None = None,
                generation: tuple[int, int] | None = None) -> None:
        """A load ended: keep ``classifier`` unless its model was forgotten or recalibrated meanwhile; wake the waiters."""
        with self._lock:
            if (key is not None and classifier is not None and self._generation(key[0]) == generation
                    and flight[3] == (self.calibration if key[2] == INT8 else None)):
                self._models[key] = classifier
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            if self._loading.get(flight) is pending:
                del self._loading[flight]
        pending.done.set()

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._models.clear()
            self._chosen.clear()
            self._loading.clear()

    def forget(self, name: str) -> None:
        """Drop ``name`` however it was loaded, and auto's choice for it: its weights were imported,
        downloaded or removed (core.auto keys its measurements by the weights' digest: new weights
        are measured again). Returns at once: a load or measurement of ``name`` still running is not kept."""
        with self._lock:
            self._generations[name] = self._generations.get(name, 0) + 1
            for key in [key for key in self._models if key[0] == name]:
                del self._models[key]
            for chosen in [chosen for chosen in self._chosen if chosen[0] == name]:
                del self._chosen[chosen]
            for flight in [flight for flight in self._loading if flight[0] == name]:
                del self._loading[flight]  # asked again, it loads the new weights rather than wait for the old

    def chosen(self, name: str, device: str) -> RunAs | None:
        """The way auto runs ``name`` on ``device`` once it was resolved here; None before."""
        with self._lock:
            known = self._chosen.get((name, device))
        return known.way if known is not None else None


#: How the window's status bar begins a sentence of auto's measurement (the rest is core.auto's progress).
CHOOSING = "Choosing the fastest way for"


def choosing_text(title: str, text: str, name: str) -> str:
    """"Choosing the fastest way for EfficientNet-Lite0 (once): timing onnxruntime (round 2 of 3)" from
    core.auto's "Timing efficientnet_lite0 as onnxruntime (round 2 of 3)"."""
    step = text.replace(f" {name} as ", " ")
    return f"{CHOOSING} {title} (once): {step[:1].lower()}{step[1:]}"


def calibration_of(way: RunAs, folder: str | None) -> CalibrationSet | None:
    """The photos of ``folder`` when ``way`` is int8 (what it is calibrated on), else None. None when no folder
    is given: the cache then keeps the calibration it has (a job not told one never takes it away)."""
    if way != INT8 or not folder:
        return None
    from cnnviewer.core.calibration import folder_images

    return folder_images(folder)


def classify_job(token: CancelToken, report: Reporter, cache: ModelCache, path: str, model: str, device: str,
                 top_k: int, way: RunAs | AutoWay = FP32,
                 keep_measuring: CancelToken | None = None,
                 calibration_folder: str | None = None) -> ClassifyOutcome | None:
    """Classify ``path``; ``way`` auto is resolved here first (measured on a cache miss). A measurement
    stops when this request is cancelled, unless ``keep_measuring`` is given and not cancelled: the
    window cancels that one when the model, device or way changes, not when another photo is asked
    for (that request then waits for the measurement and uses it). int8 is calibrated on ``calibration_folder``'s
    photos (quantized once per model and folder, then cached)."""
    from cnnviewer.core.catalog import get_entry

    def measurement_cancelled() -> bool:
        return token.cancelled and (keep_measuring is None or keep_measuring.cancelled)

    choose_ms = None
    auto = isinstance(way, AutoWay)
    if auto:
        title = get_entry(model).title
        resolved, choose_ms = cache.resolve(model, device, way, lambda text: report(0, 1, choosing_text(
            title, text, model)), measurement_cancelled)
        way = resolved.way
        if token.cancelled:
            return None
    assert isinstance(way, RunAs)
    note = ""
    calibration = calibration_of(way, calibration_folder)
    if way == INT8:
        calibrated_on = calibration or cache.calibration
        if calibrated_on is not None and os.path.realpath(path) in {os.path.realpath(p) for p in calibrated_on.paths}:
            note = "this photo was among the int8 calibration images"
    report(0, 1, f"loading {model}…")
    classifier, load_ms = cache.get(model, device, way, lambda text: report(0, 1, f"{text} (once; cached)…"),
                                    measurement_cancelled,  # quantizing, like measuring, outlives a newer photo
                                    calibration=calibration)
    if token.cancelled:
        return None
    report(0, 1, f"classifying with {model}…")
    result = next(classifier.classify_files([path], top_k=top_k, batch_size=1))
    # The loaded model is shared by every choice that runs this way; the result says auto chose it.
    result = replace(result, auto=auto)
    return ClassifyOutcome(path=os.fspath(path), model=model, device=device, way=way, classification=result,
                           load_ms=load_ms, thread_id=threading.get_ident(), auto=auto, choose_ms=choose_ms,
                           note=note)


def compare_job(token: CancelToken, report: Reporter, cache: ModelCache, path: str, models: list[str], device: str,
                top_k: int, way: RunAs | AutoWay = FP32,
                calibration_folder: str | None = None) -> Iterator[tuple[str, ClassifyOutcome | None | Exception]]:
    """Classify one image with several models, one result at a time (a generator: partial results show);
    int8 is calibrated on ``calibration_folder``'s photos, as the main window's."""
    for done, model in enumerate(models):
        if token.cancelled:
            return
        report(done, len(models), f"{model}…")
        try:
            outcome = classify_job(token, report, cache, path, model, device, top_k, way,
                                   calibration_folder=calibration_folder)
        except Exception as exc:  # noqa: BLE001 - one model failing (weights missing) must not hide the others
            yield model, exc
        else:
            yield model, outcome


def preview_job(token: CancelToken, report: Reporter, path: str) -> PreviewData:
    """The image as it will be classified (EXIF-corrected RGB) plus its facts."""
    from cnnviewer.core.images import image_info, load_image

    info = image_info(path)
    image = load_image(path)
    return PreviewData(path=os.fspath(path), image=pil_to_qimage(image), info=info)


def thumbnails_job(token: CancelToken, report: Reporter, paths: list[str],
                   size: int) -> Iterator[tuple[str, QImage | None]]:
    """Yield (path, QImage or None) for each file; JPEGs decode at reduced size."""
    from cnnviewer.core.errors import ImageLoadError
    from cnnviewer.core.images import load_image

    for done, path in enumerate(paths):
        if token.cancelled:
            return
        try:
            image = load_image(path, min_side=size)
            image.thumbnail((size, size))
            yield path, pil_to_qimage(image)
        except ImageLoadError:
            yield path, None
        if done % 16 == 0:
            report(done, len(paths), "thumbnails")


def download_job(token: CancelToken, report: Reporter, name: str) -> str:
    """Download a model's weights; progress is reported in thousandths (sizes pass 2 GB)."""
    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.weights import download_weights

    def on_progress(p: DownloadProgress) -> None:
        total = f" of {p.total / 2**20:.1f} MB" if p.total else ""
        left = f", {p.seconds_left:.0f} s left" if p.seconds_left is not None else ""
        permille = int(p.done * 1000 / p.total) if p.total else 0
        report(permille, 1000, f"{p.done / 2**20:.1f} MB{total} at {p.bytes_per_second / 2**20:.1f} MB/s{left}")

    return str(download_weights(get_entry(name), progress=on_progress, should_cancel=token))


def import_job(token: CancelToken, report: Reporter, path: str, model: str | None) -> str:
    from cnnviewer.core.weights import import_weights

    return str(import_weights(path, model)[1])


@dataclass(frozen=True)
class ExplainOutcome:
    """A Grad-CAM map ready to draw: RGBA at display size, and what it explains."""

    path: str
    model: str
    way: RunAs  # the way the model classified the image
    map_way: RunAs  # the way the map was computed with: FP32 when ``way`` has no gradients (bf16, ONNX Runtime)
    class_index: int
    class_name: str
    probability: float
    heat: QImage  # RGBA, alpha grows with the map's value; it fades out just past the centre crop
    overlay_thumbnail: QImage  # the map over a small copy of the photo, for side-by-side views
    device: str = "cpu"
    crop: tuple[float, float, float, float] | None = None  # the centre crop the model saw: fractions of the image
    stamp: int | None = None  # the file's modification time (ns) when the map was made
    auto: bool = False  # auto chose ``way`` for the classification the map explains

    @property
    def way_label(self) -> str:
        """How the classification ran: "auto: onnxruntime" when auto chose the way, else the way's label."""
        return way_label(self.way, self.auto)


# (image path, its modification time or None, model, device, way, class index or None for the top-1)
ExplanationKey = tuple[str, int | None, str, str, RunAs, int | None]


class ExplanationCache:
    """Maps computed once per (image, model, way, class); the newest few are kept."""

    def __init__(self, capacity: int = 48):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._items: OrderedDict[ExplanationKey, ExplainOutcome] = OrderedDict()

    def get(self, key: ExplanationKey) -> ExplainOutcome | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: ExplanationKey, value: ExplainOutcome) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def forget(self, model: str) -> None:
        """Drop every map ``model`` made: they came from the weights it had."""
        with self._lock:
            for key in [key for key in self._items if key[2] == model]:
                del self._items[key]


def _explain_one(cache: ModelCache, explanations: ExplanationCache, path: str, model: str, device: str,
                 way: RunAs, class_index: int | None, thumbnail: int,
                 calibration_folder: str | None = None) -> ExplainOutcome:
    """The map of ``class_index`` (None: the top-1) by the model loaded for ``way``, through the same
    decode, preprocessing and forward pass as the classification; a way without gradients borrows
    the FP32 copy for the map, and says so in ``map_way``."""
    import numpy as np

    from cnnviewer.core.explain import drawn_map, explain_file, heat_rgba, overlay

    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = None
    key = (path, stamp, model, device, way, class_index)
    cached = explanations.get(key)
    if cached is not None:
        return cached
    classifier, _ = cache.get(model, device, way, calibration=calibration_of(way, calibration_folder))
    gradients = None if way.has_gradients else cache.get(model, device, FP32)[0]
    explanation = explain_file(classifier, path, class_index, gradients=gradients)
    rgba = np.ascontiguousarray(heat_rgba(drawn_map(explanation)))
    heat = QImage(rgba.data, rgba.shape[1], rgba.shape[0], rgba.shape[1] * 4, QImage.Format.Format_RGBA8888).copy()
    small = explanation.image.copy()  # the photo as the model saw it decoded
    small.thumbnail((thumbnail, thumbnail))
    outcome = ExplainOutcome(os.fspath(path), model, way, explanation.way, explanation.class_index,
                             explanation.class_name, explanation.probability, heat,
                             pil_to_qimage(overlay(small, drawn_map(explanation, small.size))), device,
                             explanation.crop_fractions(), stamp)
    explanations.put(key, outcome)
    if class_index is None:  # the top-1 request and the explicit class are the same map
        explanations.put((path, stamp, model, device, way, explanation.class_index), outcome)
    return outcome


def explain_job(token: CancelToken, report: Reporter, cache: ModelCache, explanations: ExplanationCache, path: str,
                model: str, device: str, way: RunAs, class_index: int | None, auto: bool = False,
                calibration_folder: str | None = None) -> ExplainOutcome:
    """The map for the window's preview: ``class_index`` is the class the table shows (its top-1 by default);
    ``auto``: auto chose ``way`` for the classification (the map is the same; its caption says so); int8 is
    calibrated on ``calibration_folder``'s photos when its model must be loaded again."""
    report(0, 1, f"Grad-CAM with {model}…")
    return replace(_explain_one(cache, explanations, path, model, device, way, class_index, 320,
                                calibration_folder), auto=auto)


def save_explanation_job(token: CancelToken, report: Reporter, cache: ModelCache, path: str, model: str,
                         device: str, way: RunAs, class_index: int, out: str, opacity: float,
                         stamp: int | None = None, calibration_folder: str | None = None) -> tuple[str, str]:
    """Save the map the window shows: the overlay picture at the photo's own size and the map beside it
    (core.explain.save_explanation); the map is computed again, as the CLI does, rather than every
    kept map holding a full-size copy. Returns the two files written."""
    from cnnviewer.core.explain import explain_file, save_explanation
    from cnnviewer.core.images import load_image

    report(0, 1, f"Saving the Grad-CAM of {model}…")
    from cnnviewer.core.errors import OutputError

    try:
        now = os.stat(path).st_mtime_ns
    except OSError:
        now = None
    if stamp is not None and now != stamp:  # the map is made again from the file: it must be the one shown
        raise OutputError(f"{path}: changed on disk since its Grad-CAM was shown; press F5 to see it as it is "
                          "now, then save")
    classifier, _ = cache.get(model, device, way, calibration=calibration_of(way, calibration_folder))
    gradients = None if way.has_gradients else cache.get(model, device, FP32)[0]
    explanation = explain_file(classifier, path, class_index, gradients=gradients)
    picture, heatmap = save_explanation(explanation, out, opacity, image=load_image(path))
    assert heatmap is not None  # keep_map: the window always keeps the map beside the picture
    return os.fspath(picture), os.fspath(heatmap)


def explain_many_job(token: CancelToken, report: Reporter, cache: ModelCache, explanations: ExplanationCache,
                     path: str, models: list[str], device: str, thumbnail: int = 320,
                     way: RunAs = FP32,
                     calibration_folder: str | None = None) -> Iterator[tuple[str, ExplainOutcome | Exception]]:
    """One map per model (each model's own top-1), one at a time: (model, outcome or exception).

    ``models`` may be benchmark result keys ("resnet50 (bf16)"): the map is then that model's run the way
    the key names (the run the dashboard shows), else ``way``. int8 is calibrated on ``calibration_folder``'s
    photos when given, else on the cache's own."""
    from cnnviewer.core.benchmark import model_of
    from cnnviewer.core.ways import WAYS

    for model in models:
        if token.cancelled:
            return
        label = model[len(model_of(model)):].strip(" ()")
        try:
            yield model, _explain_one(cache, explanations, path, model_of(model), device, WAYS.get(label, way), None,
                                      thumbnail, calibration_folder)
        except Exception as exc:  # noqa: BLE001 - a transformer among convolutional models: say so in its column
            yield model, exc


@dataclass(frozen=True)
class WeightsRow:
    """One model as the Weights manager shows it: where its weights are and what is known of them."""

    model: str
    title: str
    state: str  # "embedded", "downloaded", "imported" or "missing"
    file: str  # the file it loads ("" when missing)
    size: int | None  # bytes; None when missing
    check: str  # "verified", "hash mismatch", "not checked", "partial download, N MB", "installed with cnnviewer" or ""
    removable: bool  # a file of this model is there to delete (embedded weights never are)
    package: str = ""  # embedded weights: the Python package that carries the file


def weights_rows_job(token: CancelToken, report: Reporter) -> list[WeightsRow]:
    """Every model of the catalog with its weights state, from the same core calls as ``cnnviewer weights list``."""
    from cnnviewer.core.catalog import EMBEDDED_SOURCE, IMPORTED_NAME, Availability, catalog
    from cnnviewer.core.weights import list_cache, recorded_check, weights_identity

    files = list_cache()
    by_path = {row.path: row for row in files}
    partial = {row.model: row.size for row in files if row.state == "partial download" and row.model}
    has_files = {row.model for row in files if row.model}
    states = {Availability.EMBEDDED: "embedded", Availability.CACHED: "downloaded",
              Availability.IMPORTED: "imported", Availability.MISSING: "missing"}
    rows = []
    for entry in catalog():
        identity = weights_identity(entry)
        availability = identity.availability
        check = ""
        if availability is Availability.EMBEDDED:
            # Verified once, the installed file says so while it is unchanged (a report's hash is no check).
            found = recorded_check(identity.path)
            check = found if found in ("verified", "hash mismatch") else "installed with cnnviewer"
        elif availability is Availability.CACHED:
            cached = by_path.get(identity.path)
            check = cached.state if cached is not None else "not checked"
        elif availability is Availability.IMPORTED:
            # The content hash is in the imported file's name; the digest remembered while the file is
            # unchanged says whether the bytes still match it.
            match = IMPORTED_NAME.match(identity.path.name)
            if not identity.sha256 or match is None:
                check = "not checked"
            else:
                check = "verified" if identity.sha256.startswith(match.group("sha256")) else "hash mismatch"
        elif entry.name in partial:
            check = f"partial download, {partial[entry.name] / 2**20:.1f} MB"
        ready = availability.ready
        rows.append(WeightsRow(
            entry.name, entry.title, states[availability], str(identity.path) if ready else "",
            identity.path.stat().st_size if ready else None, check,
            entry.source != EMBEDDED_SOURCE and entry.name in has_files, entry.weights_package or ""))
    return rows


def verify_job(token: CancelToken, report: Reporter, model: str) -> list[tuple[str, str, bool]]:
    """Hash one model's weights files against the hashes in their names (``cnnviewer weights verify NAME``):
    (file, what was found as a person reads it, whether it matches) per file."""
    from cnnviewer.core.weights import verify

    report(0, 1, f"hashing the weights of {model}…")
    return [(str(row.path), row.shown, row.state != "hash mismatch") for row in verify(model, should_cancel=token)]


def remove_job(token: CancelToken, report: Reporter, model: str) -> list[str]:
    """Delete a model's weights files (``cnnviewer weights remove NAME``); the files deleted."""
    from cnnviewer.core.weights import remove

    return [str(path) for path in remove(model)]
