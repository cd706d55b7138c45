"""What a classification gives back (``Prediction``, ``Timings``, ``Classification``), without torch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cnnviewer.core.ways import AUTO_LABEL, FP32, RunAs


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


def way_label(way: RunAs, auto: bool) -> str:
    """How a way is shown everywhere: "onnxruntime", or "auto: onnxruntime" when auto chose it."""
    return f"{AUTO_LABEL}: {way.label}" if auto else way.label


@dataclass(frozen=True)
class Classification:
    """The outcome for one file: its predictions, or the reason it could not be classified."""

    path: str
    model: str
    predictions: tuple[Prediction, ...] = ()
    error: str | None = None
    timings: Timings = Timings()
    way: RunAs = FP32  # how the model ran
    auto: bool = False  # whether ``way`` was chosen by auto (core.auto) rather than asked for

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def way_label(self) -> str:
        return way_label(self.way, self.auto)


def classifications(model: str, way: RunAs, auto: bool, files: Iterable[tuple[str, str | None, Timings]],
                    predictions: Iterable[tuple[Prediction, ...]]) -> Iterator[Classification]:
    """One Classification per (path, error, timings) of a batch, in order: the files without an error take
    ``predictions`` (one per such file, in the same order), the others carry their error."""
    answers = iter(predictions)
    for path, error, timings in files:
        if error is not None:
            yield Classification(path, model, error=error, timings=timings, way=way, auto=auto)
        else:
            yield Classification(path, model, next(answers), None, timings, way, auto)
