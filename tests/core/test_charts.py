"""The chart files: PNG and SVG of each chart, round ticks, one colour per model, labels clear of points."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviewer.core import charts
from cnnviewer.core.benchmark import BenchmarkReport, ModelResult
from cnnviewer.core.charts import CHART_FILES
from cnnviewer.core.palette import PALETTE, colour_at, lighter, model_colours, rgb
from cnnviewer.core.report import save_charts
from tests.helpers import ROOT


def result(name: str, top1: float, p50: float, ips: float, partial: bool = False) -> ModelResult:
    """A result as a run writes it (figures chosen to give awkward axis ranges: 1137 img/s, 2.54 ms)."""
    latencies = [] if partial else [p50 * (0.9 + 0.02 * i) for i in range(20)]
    return ModelResult(
        name=name, title=name, weights="published", images=100, top1=top1, top5=min(1.0, top1 + 0.15),
        top1_ci=(top1 - 0.08, min(1.0, top1 + 0.07)), top5_ci=(top1 + 0.06, min(1.0, top1 + 0.2)),
        throughput_ips=None if partial else ips,
        latency_ms=None if partial else {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5}, latencies_ms=latencies,
        peak_rss_mb=1137.4, rss_before_mb=300.0, param_mb=18.4, partial=partial, complete=not partial)


def report_of(*models: ModelResult) -> BenchmarkReport:
    return BenchmarkReport(root="/photos", config={}, environment={}, models=list(models))


@pytest.fixture
def three() -> BenchmarkReport:
    """A model that did not run first (it keeps the first colour), then three that did."""
    failed = ModelResult(name="resnet50", title="ResNet50", weights="w", error="weights missing",
                         error_kind="weights_missing")
    return report_of(failed, result("efficientnet_lite0", 0.751, 2.54, 1137.4),
                     result("efficientnet_lite1", 0.767, 5.09, 521.3), result("efficientnet_lite2", 0.776, 7.63, 90.2))


def test_every_chart_is_written_as_png_and_svg(tmp_path: Path, three: BenchmarkReport) -> None:
    written = save_charts(three, tmp_path)
    assert sorted(p.name for p in written) == sorted(CHART_FILES)
    assert {name.rsplit(".", 1)[0] for name in CHART_FILES} == {
        "accuracy", "throughput", "memory", "latency", "accuracy_vs_latency"}
    for path in written:
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.load()
                assert 1000 <= image.width <= 1400 and image.height >= 400, (path.name, image.size)
        else:
            root = ET.parse(path).getroot()
            assert root.tag.endswith("svg"), path.name


def test_the_same_report_draws_the_same_svg_bytes(three: BenchmarkReport) -> None:
    """Reports are compared and kept under version control by some: an unchanged report, unchanged files."""
    from cnnviewer.core.charts import render

    first, second = render(three), render(three)
    assert [name for name in first if first[name] != second[name] and name.endswith(".svg")] == []


def test_nothing_is_drawn_when_no_model_has_an_accuracy(tmp_path: Path) -> None:
    failed = ModelResult(name="resnet50", title="ResNet50", weights="w", error="weights missing")
    assert save_charts(report_of(failed), tmp_path) == [] and list(tmp_path.iterdir()) == []


def _is_round(labels: list[str]) -> bool:
    """Tick labels at equal steps of 1, 2, 2.5 or 5 times a power of ten, written in full."""
    if any("e" in text.lower() for text in labels):
        return False
    values = [Decimal(text.replace("−", "-")) for text in labels]
    steps = {b - a for a, b in zip(values, values[1:], strict=False)}
    if len(steps) != 1:
        return False
    step = steps.pop()
    mantissa = step.scaleb(-step.adjusted()).normalize()
    return mantissa in {Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5)} and all(v % step == 0 for v in values)


def _tick_labels(axis) -> list[str]:
    low, high = sorted(axis.get_view_interval())
    return [tick.get_text() for tick, value in zip(axis.get_ticklabels(), axis.get_ticklocs(), strict=True)
            if low - 1e-9 <= value <= high + 1e-9]


def test_ticks_are_round_numbers(three: BenchmarkReport) -> None:
    assert _is_round(["0", "250", "500"]) and not _is_round(["0.00", "2.54", "5.09"])  # the check can fail
    assert not _is_round(["0", "1.14e+03"])
    for chart in charts.CHARTS:
        figure = charts.figure(chart, three)
        figure.canvas.draw()
        [ax] = figure.axes
        assert _is_round(_tick_labels(ax.yaxis)), (chart.name, _tick_labels(ax.yaxis))
        if chart is charts.SCATTER:
            assert _is_round(_tick_labels(ax.xaxis)), _tick_labels(ax.xaxis)


def _same(colour, expected: str) -> bool:
    return tuple(round(c * 255) for c in colour[:3]) == rgb(expected)


def test_a_model_has_its_palette_colour_in_every_chart(three: BenchmarkReport) -> None:
    positions = {m.name: i for i, m in enumerate(three.models)}
    ran = [m for m in three.models if m.error is None]
    assert model_colours([m.name for m in three.models])["efficientnet_lite0"] == colour_at(1) == PALETTE[1]
    for chart in (charts.ACCURACY, charts.MEMORY):  # pairs: the first solid, the second lighter, same hue
        [ax] = charts.figure(chart, three).axes
        bars = ax.patches
        for i, m in enumerate(ran):
            colour = colour_at(positions[m.name])
            assert _same(bars[2 * i].get_facecolor(), colour), (chart.name, m.name)
            assert _same(bars[2 * i + 1].get_facecolor(), lighter(colour)), (chart.name, m.name)
            assert _same(bars[2 * i + 1].get_edgecolor(), colour), (chart.name, m.name)
    [ax] = charts.figure(charts.THROUGHPUT, three).axes
    for bar, m in zip(ax.patches, ran, strict=True):
        assert _same(bar.get_facecolor(), colour_at(positions[m.name])), m.name
    [ax] = charts.figure(charts.LATENCY, three).axes
    for m, dots in zip(ran, ax.collections[::4], strict=True):  # each result: its dots, then three lines
        assert _same(dots.get_facecolor()[0], colour_at(positions[m.name])), m.name
    [ax] = charts.figure(charts.SCATTER, three).axes
    [points] = ax.collections
    for m, face in zip(ran, points.get_facecolor(), strict=True):
        assert _same(face, colour_at(positions[m.name])), m.name


def test_a_partial_result_is_hatched_and_has_no_speed_chart(three: BenchmarkReport) -> None:
    cut = result("efficientnet_lite2", 0.7, 0, 0, partial=True)
    report = report_of(three.models[1], cut)
    [ax] = charts.figure(charts.ACCURACY, report).axes
    assert [bool(bar.get_hatch()) for bar in ax.patches] == [False, False, True, True]
    [ax] = charts.figure(charts.THROUGHPUT, report).axes
    assert len(ax.patches) == 1
    [ax] = charts.figure(charts.THROUGHPUT, report_of(cut)).axes
    assert [t.get_text() for t in ax.texts] == [charts.NO_SPEED]


def _point_boxes(ax, radius: float) -> list[tuple[float, float, float, float]]:
    [points] = ax.collections
    return [(x - radius, y - radius, x + radius, y + radius)
            for x, y in ax.transData.transform(points.get_offsets())]


def _overlaps(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_scatter_labels_cover_no_point_when_models_are_close() -> None:
    close = report_of(result("resnet50", 0.761, 10.0, 100), result("resnet101", 0.768, 10.3, 90),
                      result("resnet152", 0.753, 10.6, 80), result("wide_resnet50_2", 0.758, 9.8, 95),
                      result("alexnet", 0.565, 30.0, 300))
    figure = charts.figure(charts.SCATTER, close)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's
    [ax] = figure.axes
    dots = _point_boxes(ax, radius=np.sqrt(90) / 2 * figure.dpi / 72)
    labels = [t.get_window_extent(renderer) for t in ax.texts]
    assert [t.get_text() for t in ax.texts] == ["resnet50", "resnet101", "resnet152", "wide_resnet50_2", "alexnet"]
    boxes = [(b.x0, b.y0, b.x1, b.y1) for b in labels]
    for i, box in enumerate(boxes):
        assert not any(_overlaps(box, dot) for dot in dots), (ax.texts[i].get_text(), box, dots)
        assert not any(_overlaps(box, other) for other in boxes[i + 1:]), ax.texts[i].get_text()


def test_label_placement_moves_a_label_off_its_neighbour() -> None:
    points = [(100.0, 100.0), (118.0, 100.0)]  # a label to the right of the first would cover the second
    corners = charts.place_labels(points, [(40.0, 12.0), (40.0, 12.0)], radius=6, bounds=(0, 0, 400, 300))
    for x, y in corners:
        box = (x, y, x + 40, y + 12)
        assert not any(_overlaps(box, (px - 6, py - 6, px + 6, py + 6)) for px, py in points), box


def test_the_window_does_not_import_matplotlib() -> None:
    """The window opens before anything heavy loads: matplotlib comes only when a chart file is drawn (the
    dashboard shares the chart definitions, not the drawing)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import cnnviewer.gui.main_window, cnnviewer.gui.dashboard"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    assert "cnnviewer.gui.dashboard" in imported  # the check sees the window's modules
    assert not [name for name in imported if name.split(".")[0] == "matplotlib"]


def test_a_bar_at_100_percent_does_not_touch_the_frame(three: BenchmarkReport) -> None:
    from cnnviewer.core.charts import ACCURACY, figure

    axes = figure(ACCURACY, three).axes[0]
    low, high = axes.get_ylim()
    assert low == 0 and high > 100
    assert max(tick for tick in axes.get_yticks() if low <= tick <= high) == 100  # no tick above 100 %
