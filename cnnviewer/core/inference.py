"""Classification: file -> image -> tensor -> model -> top-k ``Prediction`` records."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from cnnviewer.core.catalog import ModelEntry, Preprocessing
from cnnviewer.core.errors import ImageLoadError
from cnnviewer.core.images import load_image
from cnnviewer.core.models import LoadedModel


@dataclass(frozen=True)
class Prediction:
    """One row of a top-k list: ImageNet class index, torchvision's class name, probability in 0..1."""

    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class Timings:
    """Where the time of one classification went, in milliseconds."""

    decode_ms: float = 0.0
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0


@dataclass(frozen=True)
class Classification:
    """The outcome for one file: its predictions, or the reason it could not be classified."""

    path: str
    model: str
    predictions: tuple[Prediction, ...] = ()
    error: str | None = None
    timings: Timings = Timings()

    @property
    def ok(self) -> bool:
        return self.error is None


def make_transform(preprocessing: Preprocessing):
    """The weights' own preprocessing as a torchvision transform (PIL image -> normalised tensor)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    return ImageClassification(
        crop_size=preprocessing.crop_size,
        resize_size=preprocessing.resize_size,
        mean=preprocessing.mean,
        std=preprocessing.std,
        interpolation=InterpolationMode(preprocessing.interpolation),
    )


class Classifier:
    """A loaded model plus its preprocessing; turns images into top-k predictions."""

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.entry: ModelEntry = loaded.entry
        self.transform = make_transform(loaded.entry.preprocessing)
        self._categories = loaded.entry.categories

    @property
    def decode_min_side(self) -> int:
        """The smallest short side an image needs for this model's resize (lets JPEGs decode smaller)."""
        return self.entry.preprocessing.resize_size

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB image -> one normalised CHW tensor of the model's input size."""
        return self.transform(image)

    @torch.inference_mode()
    def predict_batch(self, batch: torch.Tensor, top_k: int = 5) -> list[tuple[Prediction, ...]]:
        """Forward a preprocessed NCHW batch; the top-k of the softmax for each row."""
        logits = self.loaded.module(batch.to(self.loaded.device))
        probabilities = torch.softmax(logits.float(), dim=1)
        k = max(1, min(top_k, probabilities.shape[1]))
        values, indices = probabilities.topk(k, dim=1)
        return [
            tuple(
                Prediction(index=int(i), name=self._categories[int(i)], probability=float(p))
                for p, i in zip(row_values.tolist(), row_indices.tolist())
            )
            for row_values, row_indices in zip(values.cpu(), indices.cpu())
        ]

    def classify_image(self, image: Image.Image, top_k: int = 5) -> tuple[Prediction, ...]:
        """Top-k for one already-loaded image."""
        return self.predict_batch(self.preprocess(image).unsqueeze(0), top_k)[0]

    def classify_file(self, path: str | os.PathLike, top_k: int = 5) -> Classification:
        """Load, preprocess and classify one file; a bad file gives a Classification with an error."""
        return next(self.classify_files([path], top_k=top_k, batch_size=1))

    def classify_files(
        self,
        paths: Iterable[str | os.PathLike],
        top_k: int = 5,
        batch_size: int = 8,
        should_cancel: Callable[[], bool] | None = None,
    ) -> Iterator[Classification]:
        """Classify files in batches, yielding one Classification per file in input order.

        A file that cannot be read yields a Classification with ``error`` set; the rest go on.
        """
        pending: list[tuple[str, torch.Tensor | None, str | None, float, float]] = []

        def flush() -> Iterator[Classification]:
            tensors = [t for _, t, _, _, _ in pending if t is not None]
            results: list[tuple[Prediction, ...]] = []
            inference_ms = 0.0
            if tensors:
                started = time.perf_counter()
                results = self.predict_batch(torch.stack(tensors), top_k)
                inference_ms = (time.perf_counter() - started) * 1000 / len(tensors)
            good = iter(results)
            for path, tensor, error, decode_ms, preprocess_ms in pending:
                if tensor is None:
                    yield Classification(path=path, model=self.entry.name, error=error,
                                         timings=Timings(decode_ms=decode_ms))
                else:
                    yield Classification(path=path, model=self.entry.name, predictions=next(good),
                                         timings=Timings(decode_ms, preprocess_ms, inference_ms))
            pending.clear()

        for path in paths:
            if should_cancel is not None and should_cancel():
                break
            path = os.fspath(path)
            started = time.perf_counter()
            try:
                image = load_image(path)
            except ImageLoadError as exc:
                pending.append((path, None, exc.reason, (time.perf_counter() - started) * 1000, 0.0))
            else:
                decoded = time.perf_counter()
                tensor = self.preprocess(image)
                pending.append((path, tensor, None, (decoded - started) * 1000,
                                (time.perf_counter() - decoded) * 1000))
            if len(pending) >= max(1, batch_size):
                yield from flush()
        if pending:
            yield from flush()


def classify_paths(
    classifier: Classifier, paths: Sequence[str | os.PathLike], top_k: int = 5, batch_size: int = 8
) -> list[Classification]:
    """All of :meth:`Classifier.classify_files` as a list."""
    return list(classifier.classify_files(paths, top_k=top_k, batch_size=batch_size))
