"""The dashboard and a run cut short: a partial result is drawn apart and never charted for speed."""

from __future__ import annotations

import copy

import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt

from cnnviewer.core.benchmark import BenchmarkConfig, ModelResult, run_benchmark
from cnnviewer.core.datasets import load_labelled_folder
from tests.helpers import VAL_100, save_screenshot

LITE0, LITE1 = "efficientnet_lite0", "efficientnet_lite1"


@pytest.fixture(scope="module")
def cancelled_report():
    """Lite0 in full, then Cancel after Lite1's first batch (4 of 8 images): a real run, a real cancel."""
    seen: list = []
    config = BenchmarkConfig(models=(LITE0, LITE1), batch_size=4, limit=8, latency_samples=3)
    report = run_benchmark(load_labelled_folder(VAL_100), config, progress=seen.append,
                           should_cancel=lambda: any(p.model == LITE1 and p.done for p in seen))
    assert report.cancelled and report.result(LITE1).partial and report.result(LITE1).images == 4
    return report


def test_prepared_data_leaves_a_partial_result_out_of_the_speed_charts(cancelled_report):
    from cnnviewer.gui.dashboard import prepare_dashboard

    data = prepare_dashboard(cancelled_report)
    assert [m.name for m in data.charted] == [LITE0, LITE1]  # its accuracy is shown, hatched
    assert [m.name for m in data.timed] == [LITE0]
    assert len(data.latency_points) == 1 and list(data.latency_points[0]) == cancelled_report.result(LITE0).latencies_ms
    assert not any(LITE1 in (c["a"], c["b"]) for c in cancelled_report.comparisons)
    assert any("partial: 4 of 8 images" in line for line in data.lines)


def test_the_dashboard_draws_a_partial_result_apart(qtbot, cancelled_report):
    from cnnviewer.gui.dashboard import Dashboard

    dashboard = Dashboard()
    qtbot.addWidget(dashboard)
    dashboard.resize(1300, 900)
    dashboard.show()
    dashboard.show_report(cancelled_report)
    charts = dashboard.charts
    qtbot.waitUntil(lambda: len(charts.scatter.listDataItems()) == 1, timeout=10_000)  # the last chart drawn
    model = dashboard.summary_model
    row = [m.name for m in model.results].index(LITE1)
    assert model.index(row, 14).data() == "partial (4 of 8)"
    assert [model.index(row, column).data() for column in (7, 8, 9, 10)] == ["-", "-", "-", "-"]
    assert model.index(row, 0).data(Qt.ItemDataRole.ForegroundRole) is not None  # greyed
    assert "no speed figures" in model.index(row, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert model.headerData(11, Qt.Orientation.Horizontal) == "Peak MB above start"
    assert "above start" in charts.memory.getAxis("left").labelText  # the title is short; the axis says it
    [throughput] = charts.throughput.listDataItems()
    assert list(throughput.opts["height"]) == [cancelled_report.result(LITE0).throughput_ips]
    dots = sum(len(item.data) for item in charts.latency.listDataItems() if isinstance(item, pg.ScatterPlotItem))
    assert dots == len(cancelled_report.result(LITE0).latencies_ms)  # Lite1 has none
    top1, _ = charts.accuracy.listDataItems()
    styles = [brush.style() for brush in top1.opts["brushes"]]
    assert styles == [Qt.BrushStyle.SolidPattern, Qt.BrushStyle.BDiagPattern]
    assert "hatched: partial" in charts.legend_text.text()
    save_screenshot(dashboard, "14-dashboard-partial")


def test_why_a_model_did_not_run_comes_from_its_kind(qtbot, cancelled_report):
    from cnnviewer.gui.dashboard import SummaryModel

    report = copy.deepcopy(cancelled_report)
    sentence = "/cache/resnet18-f37072fd.pth: not a readable PyTorch weights file (invalid load key)"
    report.models = [
        ModelResult(name="resnet18", title="ResNet18", weights="w", error=sentence, error_kind="weights_file"),
        ModelResult(name="resnet50", title="ResNet50", weights="w", error="Weights for resnet50 are not here.",
                    error_kind="weights_missing"),
        ModelResult(name="vgg16", title="VGG16", weights="w", error="weights, weights", error_kind=None),
    ]
    model = SummaryModel()
    model.set_report(report)
    assert [model.index(row, 14).data() for row in range(3)] == [
        "not run: weights file unusable", "not run: weights missing", "not run"]


def test_a_model_cut_short_before_its_first_image_shows_no_accuracy(qtbot, cancelled_report):
    """Cancel during a model's load leaves it with 0 images: its accuracy is unknown, never "0.0"."""
    from cnnviewer.gui.dashboard import Dashboard

    report = copy.deepcopy(cancelled_report)
    cut = report.result(LITE1)
    cut.images, cut.top1, cut.top5, cut.top1_ci, cut.top5_ci = 0, 0.0, 0.0, (0.0, 1.0), (0.0, 1.0)
    dashboard = Dashboard()
    qtbot.addWidget(dashboard)
    dashboard.show_report(report)
    model = dashboard.summary_model
    row = [m.name for m in model.results].index(LITE1)
    assert [model.index(row, column).data() for column in (2, 3, 4, 5)] == ["-", "-", "-", "-"]
    lite0 = [m.name for m in model.results].index(LITE0)
    assert model.index(lite0, 2).data() == f"{cancelled_report.result(LITE0).top1 * 100:.1f}"
