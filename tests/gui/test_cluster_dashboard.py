"""The dashboard of a run on a cluster: a Workers tab with each worker's own speed, "per worker" in the summary."""

from __future__ import annotations

import copy

import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt

from tests.core.test_cluster_report import LITE0, LITE1, WORKERS, as_cluster_run
from tests.helpers import save_screenshot

SIZES = ((1280, 800), (1920, 1080))


def _tabs(dashboard) -> list[str]:
    return [dashboard.tabText(i) for i in range(dashboard.count())]


def _notes(plot) -> list[str]:
    """The text a chart shows instead of bars or dots."""
    return [item.textItem.toPlainText() for item in plot.items if isinstance(item, pg.TextItem)]


def _summary_row(dashboard, name: str) -> dict[str, str]:
    model = dashboard.summary_model
    row = next(r for r in range(model.rowCount()) if model.data(model.index(r, 0)) == name)
    return {model.headerData(c, Qt.Orientation.Horizontal): model.data(model.index(row, c))
            for c in range(model.columnCount())}


def test_a_local_report_has_no_workers_tab(bench):
    dashboard = bench.dashboard
    assert _tabs(dashboard) == ["Dashboard", "Images", "Classes", "Confusions"] and dashboard.workers_tab() == -1
    row = _summary_row(dashboard, LITE0)
    assert row["img/s"] == f"{bench.report.result(LITE0).throughput_ips:.1f}" and row["p50 ms"] != "per worker"


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_cluster_report_shows_each_worker_and_no_summed_speed(bench, qtbot, photos_13_run, width, height):
    dashboard = bench.dashboard
    cluster_run = as_cluster_run(photos_13_run[0])
    bench.show_report(cluster_run)
    assert _tabs(dashboard) == ["Dashboard", "Images", "Classes", "Confusions", "Workers"]
    workers = dashboard.workers.model
    cells = [[workers.data(workers.index(r, c)) for c in range(workers.columnCount())]
             for r in range(workers.rowCount())]
    assert cells == [[name, host, node, str(pid), "cpu", "fp32", "1", str(images), "1", f"{forward:.1f}",
                      f"{whole:.1f}", "512", "1.25"] for name in (LITE0, LITE1) for host, node, pid, images, forward, whole
                     in WORKERS]
    assert workers.headerData(9, Qt.Orientation.Horizontal) == "Forward img/s"
    about = dashboard.workers.about.text()
    assert "Ray at 127.0.0.1:6390" in about and "are not summed" in about
    assert "host-c (pid 3456, attempt 1); ran next on host-b" in dashboard.workers.notes.text()
    for name in (LITE0, LITE1):  # the speed columns point at the workers: no figure that looks like a failure
        row = _summary_row(dashboard, name)
        assert [row[h] for h in ("img/s", "p50 ms", "p90 ms", "p99 ms", "Load s")] == ["per worker"] * 5
        assert row["Status"] == "done" and row["Top-1 %"] == f"{cluster_run.result(name).top1 * 100:.1f}"
    assert "2 node(s) of a cluster" in dashboard.conclusions.text()
    assert "machine(s)" not in dashboard.conclusions.text()
    # The pair's sentence is whole: no speed figure to compare, so the pair is named and the accuracy follows.
    assert "EfficientNet-Lite0 against EfficientNet-Lite1: their top-1 difference" in dashboard.conclusions.text()

    bench.resize(width, height)
    bench.show()
    qtbot.waitExposed(bench)
    dashboard.setCurrentIndex(0)
    charts = dashboard.charts
    # Empty speed axes would look like a failure: each speed chart says where the speed is, the memory chart why
    # it is empty (the charts are drawn one per turn of the event loop).
    qtbot.waitUntil(lambda: _notes(charts.scatter) == [charts.PER_WORKER_NOTE], timeout=10_000)
    assert _notes(charts.throughput) == _notes(charts.latency) == [charts.PER_WORKER_NOTE]
    # Memory was measured, by each worker process: the chart points at the Workers tab's column, as the tooltip does.
    assert _notes(charts.memory) == ["Each worker's own:\nsee the Workers tab"]
    assert workers.headerData(11, Qt.Orientation.Horizontal) == "Process peak MB"
    assert "peak resident memory" in about
    # Nor "MB above start" on its axis, or keys for bars and dots that are not drawn.
    assert charts.memory.getAxis("left").labelText == "MB"
    assert "above start" not in charts.legend_text.text() and "latency: dots" not in charts.legend_text.text()
    summary = dashboard.summary_model
    memory_cell = summary.index(0, summary.HEADERS.index("Peak MB above start"))
    assert "not measured" not in summary.data(memory_cell, Qt.ItemDataRole.ToolTipRole).lower()
    assert not any(isinstance(item, pg.BarGraphItem) for item in charts.memory.items)
    save_screenshot(bench, f"cluster-summary-{width}x{height}")
    dashboard.setCurrentIndex(dashboard.workers_tab())
    qtbot.wait(50)
    table = dashboard.workers.table
    # Every column whole at 1280 px: no header or cell cut off, no sideways scrolling.
    assert table.horizontalHeader().length() <= table.viewport().width()
    save_screenshot(bench, f"cluster-workers-{width}x{height}")

    bench.show_report(copy.deepcopy(photos_13_run[0]))  # a local report again: the tab goes
    assert "Workers" not in _tabs(dashboard) and dashboard.workers_tab() == -1
    assert _summary_row(dashboard, LITE1)["img/s"] != "per worker"
    qtbot.waitUntil(lambda: any(isinstance(item, pg.ScatterPlotItem) for item in charts.scatter.items), timeout=10_000)
    for plot in (charts.throughput, charts.latency, charts.scatter, charts.memory):
        assert not _notes(plot) or plot is charts.scatter  # the scatter's own labels are text items too
        assert plot.getAxis("left").style["showValues"]
    assert charts.throughput.getViewBox().autoRangeEnabled()[1]
    assert charts.memory.getAxis("left").labelText == "MB above start"
    assert "peak memory above start" in charts.legend_text.text() and "latency: dots" in charts.legend_text.text()


def test_a_cluster_report_opened_with_no_worker_yet_says_so(bench, photos_13_run):
    cluster_run = as_cluster_run(photos_13_run[0])
    cluster_run.environment["cluster"].update(workers=[], shards=[], retries=[], resumed=[])
    bench.show_report(cluster_run)
    assert bench.dashboard.workers.model.rowCount() == 0
    assert bench.dashboard.workers.notes.text() == "No worker has finished a shard yet."
    # As during a run: the note says where the speed will be, not "ran on 0 machine(s)".
    text = bench.dashboard.conclusions.text()
    assert "The models run on a cluster: each worker's own speed is listed as its shards come back." in text
    assert "0 node(s)" not in text and "0 machine(s)" not in text
    bench.dashboard.clear()
    assert bench.dashboard.workers_tab() == -1
