"""The jobs the window runs in worker threads: thin wrappers over core calls, returning plain records."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtGui import QImage

from cnnviewer.core.ways import FP32, RunAs
from cnnviewer.workers.base import CancelToken, Reporter

if TYPE_CHECKING:  # torch stays unimported until a job needs it: the window shows first
    from PIL.Image import Image

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
    way: RunAs
    classification: Classification
    load_ms: float | None  # None when the model was already loaded
    thread_id: int


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
                       ways={device: available_ways(device) for device in devices})


class ModelCache:
    """Loaded models shared by the window's jobs; keeps the few most recently used (memory is finite)."""

    def __init__(self, capacity: int = 3):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple[str, str, RunAs], Classifier] = OrderedDict()  # (name, device, way)

    def get(self, name: str, device: str, way: RunAs = FP32) -> tuple[Classifier, float | None]:
        """(Classifier, load time in ms or None if it was already loaded) of ``name`` run ``way`` on ``device``."""
        from cnnviewer.core.catalog import get_entry
        from cnnviewer.core.inference import Classifier
        from cnnviewer.core.models import load_model

        key = (name, device, way)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key], None
            started = time.perf_counter()
            classifier = Classifier(load_model(get_entry(name), device, way, channels_last=True))
            self._models[key] = classifier
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return classifier, (time.perf_counter() - started) * 1000

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    def forget(self, name: str) -> None:
        """Drop ``name`` however it was loaded: its weights were imported, downloaded or removed."""
        with self._lock:
            for key in [key for key in self._models if key[0] == name]:
                del self._models[key]


def classify_job(token: CancelToken, report: Reporter, cache: ModelCache, path: str, model: str, device: str,
                 top_k: int, way: RunAs = FP32) -> ClassifyOutcome | None:
    report(0, 1, f"loading {model}…")
    classifier, load_ms = cache.get(model, device, way)
    if token.cancelled:
        return None
    report(0, 1, f"classifying with {model}…")
    result = next(classifier.classify_files([path], top_k=top_k, batch_size=1))
    return ClassifyOutcome(path=os.fspath(path), model=model, device=device, way=way, classification=result,
                           load_ms=load_ms, thread_id=threading.get_ident())


def compare_job(token: CancelToken, report: Reporter, cache: ModelCache, path: str, models: list[str], device: str,
                top_k: int, way: RunAs = FP32) -> Iterator[tuple[str, ClassifyOutcome | None | Exception]]:
    """Classify one image with several models, one result at a time (a generator: partial results show)."""
    for done, model in enumerate(models):
        if token.cancelled:
            return
        report(done, len(models), f"{model}…")
        try:
            outcome = classify_job(token, report, cache, path, model, device, top_k, way)
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
                 way: RunAs, class_index: int | None, thumbnail: int) -> ExplainOutcome:
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
    classifier, _ = cache.get(model, device, way)
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
                model: str, device: str, way: RunAs, class_index: int | None) -> ExplainOutcome:
    """The map for the window's preview: ``class_index`` is the class the table shows (its top-1 by default)."""
    report(0, 1, f"Grad-CAM with {model}…")
    return _explain_one(cache, explanations, path, model, device, way, class_index, 320)


def save_explanation_job(token: CancelToken, report: Reporter, cache: ModelCache, path: str, model: str,
                         device: str, way: RunAs, class_index: int, out: str, opacity: float,
                         stamp: int | None = None) -> tuple[str, str]:
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
    classifier, _ = cache.get(model, device, way)
    gradients = None if way.has_gradients else cache.get(model, device, FP32)[0]
    explanation = explain_file(classifier, path, class_index, gradients=gradients)
    picture, heatmap = save_explanation(explanation, out, opacity, image=load_image(path))
    assert heatmap is not None  # keep_map: the window always keeps the map beside the picture
    return os.fspath(picture), os.fspath(heatmap)


def explain_many_job(token: CancelToken, report: Reporter, cache: ModelCache, explanations: ExplanationCache,
                     path: str, models: list[str], device: str, thumbnail: int = 320,
                     way: RunAs = FP32) -> Iterator[tuple[str, ExplainOutcome | Exception]]:
    """One map per model (each model's own top-1), one at a time: (model, outcome or exception).

    ``models`` may be benchmark result keys ("resnet50 (bf16)"): the map is then that model's run the way
    the key names (the run the dashboard shows), else ``way``."""
    from cnnviewer.core.benchmark import model_of
    from cnnviewer.core.ways import WAYS

    for model in models:
        if token.cancelled:
            return
        label = model[len(model_of(model)):].strip(" ()")
        try:
            yield model, _explain_one(cache, explanations, path, model_of(model), device, WAYS.get(label, way), None,
                                      thumbnail)
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
