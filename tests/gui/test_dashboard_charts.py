"""The dashboard's charts: a hint before any result, one palette colour per model in every plot."""

from __future__ import annotations

import copy

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from cnnviewer.core.benchmark import ModelResult
from cnnviewer.core.palette import colour_at, lighter
from tests.helpers import save_screenshot


def _report_with_a_failed_model_first(photos_13_run):
    """The run's two results after one that did not run: their colours are those of places 1 and 2."""
    report = copy.deepcopy(photos_13_run[0])
    report.models.insert(0, ModelResult(name="resnet50", title="ResNet50", weights="w", error="weights missing",
                                        error_kind="weights_missing"))
    return report


def _hex(brush) -> str:
    return QColor(pg.mkBrush(brush).color()).name().upper()


def test_the_charts_show_a_hint_until_a_result_is_in(qtbot, photos_13_run):
    from cnnviewer.gui.dashboard import Charts, Dashboard

    dashboard = Dashboard()
    qtbot.addWidget(dashboard)
    for size in ((1280, 800), (1920, 1080)):
        dashboard.resize(*size)
        dashboard.show()
        qtbot.waitExposed(dashboard)
        hint = dashboard.charts.hint
        assert hint.isVisible() and hint.text() == Charts.HINT
        assert hint.geometry() == dashboard.charts.rect()  # covers the empty plots
        save_screenshot(dashboard, f"A1-dashboard-before-a-run-{size[0]}x{size[1]}")
    dashboard.show_report(copy.deepcopy(photos_13_run[0]))
    charts = dashboard.charts
    qtbot.waitUntil(lambda: len([i for i in charts.scatter.items if isinstance(i, pg.TextItem)]) == 2,
                    timeout=10_000)  # the last step drawn
    assert not charts.hint.isVisible()
    dashboard.clear()  # another folder: the hint again, no stale charts
    assert charts.hint.isVisible() and not charts.accuracy.listDataItems()


def test_each_model_has_its_palette_colour_in_every_plot(qtbot, photos_13_run):
    from cnnviewer.gui.dashboard import Dashboard

    report = _report_with_a_failed_model_first(photos_13_run)
    dashboard = Dashboard()
    qtbot.addWidget(dashboard)
    dashboard.charts.show_report(report, staged=False)
    charts = dashboard.charts
    ran = [m for m in report.models if m.error is None]
    colours = [colour_at(report.models.index(m)) for m in ran]
    assert colours == [colour_at(1), colour_at(2)]
    top1, top5 = charts.accuracy.listDataItems()
    assert [_hex(b) for b in top1.opts["brushes"]] == colours
    assert [_hex(b) for b in top5.opts["brushes"]] == [lighter(c) for c in colours]  # top-5 by fill, same hue
    peak, params = charts.memory.listDataItems()
    assert [_hex(b) for b in peak.opts["brushes"]] == colours
    assert [_hex(b) for b in params.opts["brushes"]] == [lighter(c) for c in colours]
    [throughput] = charts.throughput.listDataItems()
    assert [_hex(b) for b in throughput.opts["brushes"]] == colours
    dots = [item for item in charts.latency.listDataItems() if isinstance(item, pg.ScatterPlotItem)]
    for item in dots:  # one item per colour; its dots sit over the results of that colour
        owners = {int(np.rint(x)) for x in item.data["x"]}
        assert {colours[i] for i in owners} == {_hex(item.opts["brush"])}
    assert sum(len(item.data) for item in dots) == sum(len(m.latencies_ms) for m in ran)
    [points] = charts.scatter.listDataItems()
    assert [_hex(b) for b in points.data["brush"]] == colours
    for model, colour in zip(ran, colours, strict=True):
        assert charts.colour_of(model.name) == colour and f"color:{colour}" in charts.legend_text.text()


def test_scatter_labels_sit_beside_their_points(qtbot, photos_13_run):
    from cnnviewer.gui.dashboard import Dashboard

    report = copy.deepcopy(photos_13_run[0])
    second = report.models[1]  # put the two points almost on each other
    second.latency_ms = dict(report.models[0].latency_ms, p50=report.models[0].latency_ms["p50"] * 1.02)
    second.top1 = report.models[0].top1 + 0.005
    dashboard = Dashboard()
    qtbot.addWidget(dashboard)
    for size in ((1280, 800), (1920, 1080)):
        dashboard.resize(*size)
        dashboard.show()
        qtbot.waitExposed(dashboard)
        dashboard.show_report(report)
        charts = dashboard.charts
        qtbot.waitUntil(lambda: len([i for i in dashboard.charts.scatter.items if isinstance(i, pg.TextItem)]) == 2,
                        timeout=10_000)
        qtbot.wait(50)
        view = charts.scatter.getViewBox()
        [points] = charts.scatter.listDataItems()
        dots = [view.mapViewToScene(pg.Point(x, y)) for x, y in zip(points.data["x"], points.data["y"], strict=True)]
        for label in (i for i in charts.scatter.items if isinstance(i, pg.TextItem)):
            box = label.mapRectToScene(label.boundingRect())
            for dot in dots:  # the dot's 12 px disc and the label's box do not meet
                assert not box.adjusted(-6, -6, 6, 6).contains(dot), (label.toPlainText(), box, dot)
        save_screenshot(dashboard, f"A2-dashboard-charts-{size[0]}x{size[1]}")
