"""Classification without torch: a cached ONNX export, PIL decoding and numpy preprocessing (fast start-up)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from cnnviewer.core.catalog import Preprocessing
from cnnviewer.core.errors import ImageLoadError
from cnnviewer.core.images import load_image
from cnnviewer.core.onnx_cache import CachedExport
from cnnviewer.core.results import Classification, Prediction, Timings, classifications
from cnnviewer.core.ways import ONNXRUNTIME

# torchvision's InterpolationMode values -> PIL's filters, as torchvision maps them for PIL images.
_PIL_FILTERS = {"nearest": Image.Resampling.NEAREST, "nearest-exact": Image.Resampling.NEAREST,
                "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
                "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING,
                "lanczos": Image.Resampling.LANCZOS}


def preprocess(image: Image.Image, preprocessing: Preprocessing) -> np.ndarray:
    """One RGB image -> a normalised float32 C x H x W array, step for step as inference.make_transform:
    PIL resize of the short side (long side truncated, as torchvision computes it), centre crop with
    torchvision's rounding (zero padding if the image is smaller), /255, (x - mean) / std in float32."""
    size = preprocessing.resize_size
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), _PIL_FILTERS[preprocessing.interpolation])
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    crop = preprocessing.crop_size
    pad_h, pad_w = max(0, crop - new_h), max(0, crop - new_w)
    if pad_h or pad_w:  # torchvision pads with zeros, the odd pixel to the right and bottom
        pixels = np.pad(pixels, ((pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2), (0, 0)))
    rows, cols = pixels.shape[:2]
    top, left = int(round((rows - crop) / 2.0)), int(round((cols - crop) / 2.0))
    pixels = pixels[top:top + crop, left:left + crop]
    array = pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    mean = np.asarray(preprocessing.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(preprocessing.std, dtype=np.float32).reshape(-1, 1, 1)
    result: np.ndarray = (array - mean) / std
    return result


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


@dataclass(frozen=True)
class _Decoded:
    path: str
    array: np.ndarray | None
    error: str | None
    decode_ms: float
    preprocess_ms: float


class OnnxClassifier:
    """A cached FP32 export run by ONNX Runtime, with the same decode (core.images.load_image, every
    guard), the same preprocessing and the same records as inference.Classifier run as onnxruntime."""

    way = ONNXRUNTIME

    def __init__(self, model: str, export: CachedExport, threads: int | None = None, auto: bool = False):
        import onnxruntime as ort

        from cnnviewer.core.engines import session_options

        self.model = model
        self.export = export
        self.auto = auto
        fields: dict[str, Any] = dict(export.preprocessing)
        fields["mean"], fields["std"] = tuple(fields["mean"]), tuple(fields["std"])
        self.preprocessing = Preprocessing(**fields)
        self.session = ort.InferenceSession(export.data, session_options(threads), providers=["CPUExecutionProvider"])

    def decode(self, path: str | os.PathLike[str]) -> _Decoded:
        name = os.fspath(path)
        started = time.perf_counter()
        try:
            # Reduced JPEG decoding, never below what the resize needs: as Classifier(fast_decode=True).
            image = load_image(name, min_side=self.preprocessing.resize_size)
        except ImageLoadError as exc:
            return _Decoded(name, None, exc.reason, (time.perf_counter() - started) * 1000, 0.0)
        decoded = time.perf_counter()
        array = preprocess(image, self.preprocessing)
        return _Decoded(name, array, None, (decoded - started) * 1000, (time.perf_counter() - decoded) * 1000)

    def predict_batch(self, batch: np.ndarray, top_k: int = 5) -> list[tuple[Prediction, ...]]:
        """The top-k of the softmax for each row of a preprocessed N x C x H x W batch."""
        probabilities = _softmax(self.session.run(None, {"x": np.ascontiguousarray(batch, np.float32)})[0])
        k = max(1, min(top_k, probabilities.shape[1]))
        # A stable sort of the negated row keeps the lower index first among equal values, as torch.topk does.
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        names = self.export.categories
        return [tuple(Prediction(int(i), names[int(i)], float(row[i])) for i in indices)
                for row, indices in zip(probabilities, order, strict=True)]

    def classify_files(self, paths: Iterable[str | os.PathLike[str]], top_k: int = 5, batch_size: int = 8,
                       should_cancel: Callable[[], bool] | None = None) -> Iterator[Classification]:
        """Classify files in batches, one Classification per file in input order (a bad file gives ``error``)."""
        names = [os.fspath(p) for p in paths]
        size = max(1, batch_size)
        for start in range(0, len(names), size):
            if should_cancel and should_cancel():
                return
            decoded = [self.decode(path) for path in names[start:start + size]]
            arrays = [d.array for d in decoded if d.array is not None]
            results: list[tuple[Prediction, ...]] = []
            inference_ms = 0.0
            if arrays:
                started = time.perf_counter()
                results = self.predict_batch(np.stack(arrays), top_k)
                inference_ms = (time.perf_counter() - started) * 1000 / len(arrays)
            files = [(d.path, d.error, Timings(d.decode_ms) if d.array is None
                      else Timings(d.decode_ms, d.preprocess_ms, inference_ms)) for d in decoded]
            yield from classifications(self.model, self.way, self.auto, files, results)
