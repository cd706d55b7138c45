"""Per-class accuracy, the most confused pairs and the image filters of a benchmark report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnviewer.core.labels import imagenet_categories

if TYPE_CHECKING:  # the benchmark module imports torch; these functions only read its records
    from cnnviewer.core.benchmark import BenchmarkReport


@dataclass(frozen=True)
class ClassScore:
    """One model on one class: of the ``seen`` images it classified, ``top1`` and ``top5`` were right."""

    model: str  # the result's key (ModelResult.name)
    seen: int
    top1: int
    top5: int

    @property
    def top1_fraction(self) -> float | None:
        """None when the model classified no image of the class (a partial run, a file it could not read)."""
        return self.top1 / self.seen if self.seen else None

    @property
    def top5_fraction(self) -> float | None:
        return self.top5 / self.seen if self.seen else None


@dataclass(frozen=True)
class ClassRow:
    """One true class of the set: how many images it has and how each model that ran did on them."""

    index: int
    name: str
    support: int
    scores: tuple[ClassScore, ...]  # in the report's order of results

    def score(self, model: str) -> ClassScore | None:
        return next((s for s in self.scores if s.model == model), None)


@dataclass(frozen=True)
class ConfusedPair:
    """Images of class ``truth`` that a model's top-1 called ``predicted``, ``count`` times."""

    truth: int
    truth_name: str
    predicted: int
    predicted_name: str
    count: int
    examples: tuple[str, ...]  # files of the first of those images, in the report's order


def ran_models(report: BenchmarkReport) -> list[str]:
    """The keys of the results that classified images (a model that could not load has no rows)."""
    return [m.name for m in report.models if m.error is None]


def class_table(report: BenchmarkReport) -> tuple[ClassRow, ...]:
    """One row per true class in the report, by class index."""
    models = ran_models(report)
    support: dict[int, int] = {}
    counts: dict[tuple[int, str], list[int]] = {}  # (class, model) -> [seen, top-1 right, top-5 right]
    for row in report.images:
        support[row.truth] = support.get(row.truth, 0) + 1
        for model in models:
            top = row.top5.get(model)
            if not top:
                continue  # this model never got to the image: it is neither right nor wrong on it
            tally = counts.setdefault((row.truth, model), [0, 0, 0])
            tally[0] += 1
            tally[1] += top[0] == row.truth
            tally[2] += row.truth in top
    names = imagenet_categories()
    return tuple(
        ClassRow(index=truth, name=names[truth], support=support[truth],
                 scores=tuple(ClassScore(model, *counts.get((truth, model), (0, 0, 0))) for model in models))
        for truth in sorted(support))


def confused_pairs(report: BenchmarkReport, model: str, limit: int = 20, examples: int = 3) -> tuple[ConfusedPair, ...]:
    """The (true, predicted) pairs ``model``'s top-1 got wrong most often: most first, then by class index."""
    found: dict[tuple[int, int], list[str]] = {}
    for row in report.images:
        top = row.top5.get(model)
        if top and top[0] != row.truth:
            found.setdefault((row.truth, top[0]), []).append(row.file)
    names = imagenet_categories()
    ordered = sorted(found.items(), key=lambda item: (-len(item[1]), item[0]))[:limit]
    return tuple(ConfusedPair(truth=t, truth_name=names[t], predicted=p, predicted_name=names[p], count=len(files),
                              examples=tuple(files[:examples])) for (t, p), files in ordered)


def select_rows(report: BenchmarkReport, truth: int | None = None, predicted: int | None = None,
                right: str | None = None, wrong: str | None = None, predicted_by: str | None = None) -> list[int]:
    """The numbers of the image rows that pass every filter given (None: no filter).

    ``truth``: the true class; ``predicted``: the top-1 of ``predicted_by``, or of any model when that is
    None; ``right`` / ``wrong``: a model whose top-1 is right / wrong ("A right and B wrong" is
    ``right=A, wrong=B``). A model that did not classify an image is neither right nor wrong on it.
    """
    chosen = []
    for number, row in enumerate(report.images):
        if truth is not None and row.truth != truth:
            continue
        if predicted is not None:
            tops = [row.top5.get(predicted_by) or []] if predicted_by is not None else list(row.top5.values())
            if not any(top and top[0] == predicted for top in tops):
                continue
        if right is not None:
            top = row.top5.get(right)
            if not top or top[0] != row.truth:
                continue
        if wrong is not None:
            top = row.top5.get(wrong)
            if not top or top[0] == row.truth:
                continue
        chosen.append(number)
    return chosen
