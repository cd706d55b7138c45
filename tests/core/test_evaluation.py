"""Per-class accuracy, the most confused pairs and the image filters, on hand-built reports with known answers."""

from __future__ import annotations

import pytest

from cnnviewer.core.benchmark import BenchmarkReport, ImageRow, ModelResult
from cnnviewer.core.evaluation import class_table, confused_pairs, select_rows
from cnnviewer.core.labels import imagenet_categories

BEAR, ICE, BROWN, BANANA, ORANGE = 295, 296, 294, 954, 950


def _row(file: str, truth: int, **top5: list[int]) -> ImageRow:
    return ImageRow(file=file, label=str(truth), truth=truth, top5=dict(top5),
                    probabilities={model: [0.2] * len(top) for model, top in top5.items()})


@pytest.fixture
def report() -> BenchmarkReport:
    """Two models that ran and one that could not load; seven images of three classes.

    a: right on 1, 2, 4, 6 (top-1); wrong on 0 (bear -> ice, 5th is bear), 3 (bear -> ice), 5 (banana -> orange).
    b: right on 0, 3, 5; wrong on 1 (bear -> brown), 2 (ice -> bear), 4 (banana -> orange); never saw image 6.
    """
    images = [
        _row("0.jpg", BEAR, a=[ICE, 1, 2, 3, BEAR], b=[BEAR, 1, 2, 3, 4]),
        _row("1.jpg", BEAR, a=[BEAR, 1, 2, 3, 4], b=[BROWN, 1, 2, 3, 4]),
        _row("2.jpg", ICE, a=[ICE, 1, 2, 3, 4], b=[BEAR, ICE, 2, 3, 4]),
        _row("3.jpg", BEAR, a=[ICE, 1, 2, 3, 4], b=[BEAR, 1, 2, 3, 4]),
        _row("4.jpg", BANANA, a=[BANANA, 1, 2, 3, 4], b=[ORANGE, 1, 2, 3, 4]),
        _row("5.jpg", BANANA, a=[ORANGE, BANANA, 2, 3, 4], b=[BANANA, 1, 2, 3, 4]),
        _row("6.jpg", BANANA, a=[BANANA, 1, 2, 3, 4]),
    ]
    models = [ModelResult(name="a", title="A", weights="w"), ModelResult(name="b", title="B", weights="w"),
              ModelResult(name="gone", title="Gone", weights="w", error="weights missing")]
    return BenchmarkReport(root="set", config={}, environment={}, models=models, images=images)


def test_class_table_counts_support_top1_and_top5_per_model(report):
    table = class_table(report)
    assert [(row.index, row.name, row.support) for row in table] == [
        (BEAR, imagenet_categories()[BEAR], 3), (ICE, imagenet_categories()[ICE], 1), (BANANA, "banana", 3)]
    bear, ice, banana = table
    assert [score.model for score in bear.scores] == ["a", "b"]  # the model that never ran has no column
    assert (bear.score("a").seen, bear.score("a").top1, bear.score("a").top5) == (3, 1, 2)
    assert (bear.score("b").seen, bear.score("b").top1, bear.score("b").top5) == (3, 2, 2)
    assert bear.score("a").top1_fraction == pytest.approx(1 / 3) and bear.score("a").top5_fraction == pytest.approx(2 / 3)
    assert (ice.score("b").top1, ice.score("b").top5) == (0, 1)
    # b never classified 6.jpg: over the two it saw, not the three the class has.
    assert (banana.score("b").seen, banana.score("b").top1) == (2, 1)
    assert (banana.score("a").seen, banana.score("a").top1, banana.score("a").top5) == (3, 2, 3)
    assert bear.score("gone") is None


def test_a_class_a_model_never_saw_has_no_fraction(report):
    report.images.append(_row("7.jpg", 1, a=[1, 2, 3, 4, 5]))
    goldfish = class_table(report)[0]
    assert goldfish.index == 1 and goldfish.score("b").seen == 0
    assert goldfish.score("b").top1_fraction is None and goldfish.score("a").top1_fraction == 1.0


def test_confused_pairs_most_first_then_by_class_with_examples(report):
    a = confused_pairs(report, "a")
    assert [(p.truth, p.predicted, p.count) for p in a] == [(BEAR, ICE, 2), (BANANA, ORANGE, 1)]
    assert a[0].examples == ("0.jpg", "3.jpg") and a[0].predicted_name == imagenet_categories()[ICE]
    b = confused_pairs(report, "b")
    # Three pairs of one image each: by true class, then predicted class.
    assert [(p.truth, p.predicted, p.count) for p in b] == [(BEAR, BROWN, 1), (ICE, BEAR, 1), (BANANA, ORANGE, 1)]
    assert [(p.truth, p.predicted) for p in confused_pairs(report, "b", limit=2)] == [(BEAR, BROWN), (ICE, BEAR)]
    assert confused_pairs(report, "gone") == ()


def test_confused_pair_examples_are_limited(report):
    for number in range(8, 14):
        report.images.append(_row(f"{number}.jpg", BEAR, a=[ICE, 1, 2, 3, 4]))
    top = confused_pairs(report, "a", examples=3)[0]
    assert top.count == 8 and top.examples == ("0.jpg", "3.jpg", "8.jpg")


def test_select_rows_by_each_filter(report):
    assert select_rows(report) == list(range(7))
    assert select_rows(report, truth=BEAR) == [0, 1, 3]
    assert select_rows(report, predicted=ORANGE) == [4, 5]  # a on 5, b on 4: any model's top-1
    assert select_rows(report, predicted=ORANGE, predicted_by="a") == [5]
    assert select_rows(report, predicted=BEAR, predicted_by="b") == [0, 2, 3]
    assert select_rows(report, right="a") == [1, 2, 4, 6]
    assert select_rows(report, wrong="b") == [1, 2, 4]  # 6.jpg: b never saw it, so it is not wrong there
    assert select_rows(report, right="a", wrong="b") == [1, 2, 4]
    assert select_rows(report, right="b", wrong="a") == [0, 3, 5]
    assert select_rows(report, truth=BEAR, right="b", wrong="a") == [0, 3]
    assert select_rows(report, truth=BEAR, predicted=ICE, predicted_by="a") == [0, 3]
    assert select_rows(report, truth=ICE, wrong="a") == []
