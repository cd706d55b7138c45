"""The dashboard's speed figures with error bars: the throughput interval, the claim rule and the load flag."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt

from cnnviewer.core.benchmark import BenchmarkReport, ImageRow, ModelResult, _finish_statistics
from cnnviewer.core.stats import log_t_interval
from tests.helpers import save_screenshot

LITE0, LITE1, LITE2 = "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"
FLAG = "Other programs used 37 % of the CPU while timing: speed figures may be off."


def _result(name: str, title: str, rounds: list[float], top1: float) -> ModelResult:
    interval = log_t_interval(rounds)
    assert interval is not None
    ips, low, high = interval
    return ModelResult(name=name, title=title, weights="published", model=name, images=2, top1=top1, top5=1.0,
                       top1_ci=(top1 - 0.2, min(1.0, top1 + 0.2)), top5_ci=(0.6, 1.0), complete=True,
                       throughput_rounds=rounds, throughput_ips=ips, throughput_ci=(low, high),
                       latency_ms={"p50": 1000 / ips, "p90": 1100 / ips, "p99": 1200 / ips},
                       latencies_ms=[1000 / v for v in rounds], peak_rss_mb=80.0, param_mb=18.0)


def _report(load: float) -> BenchmarkReport:
    """Lite0 clearly faster than Lite1 (tight rounds); Lite1 and Lite2 too close to tell apart."""
    models = [_result(LITE0, "EfficientNet-Lite0", [180.0, 150.0, 172.0], 1.0),
              _result(LITE1, "EfficientNet-Lite1", [98.0, 80.0, 95.0], 0.5),
              _result(LITE2, "EfficientNet-Lite2", [70.0, 95.0, 60.0], 0.5)]
    rows = [ImageRow("a.jpg", "tench", 0, {m.name: [0] for m in models}, {m.name: [0.9] for m in models}),
            ImageRow("b.jpg", "goldfish", 1, {LITE0: [1], LITE1: [0], LITE2: [0]},
                     {m.name: [0.9] for m in models})]
    env = {"cpu": "test cpu", "device": "cpu", "batch_size": 4,
           "load_while_timing": {"rounds": [{"round": r, "others_cpu_pct": load, "others_cpu_max_pct": load,
                                             "loadavg": [1.0, 1.0, 1.0]} for r in (1, 2, 3)],
                                 "others_cpu_max_pct": load, "others_cpu_mean_pct": load}}
    report = BenchmarkReport(root="val", config={"batch_size": 4}, environment=env, models=models, images=rows,
                             complete=True)
    report.timing = {"rounds": 3, "done": 3, "images": 8, "order": [], "load_s": 2.0, "cut_short": False,
                     "held": True}
    _finish_statistics(report)
    return report


@pytest.mark.parametrize("load", [37.0, 3.0])
def test_the_dashboard_draws_throughput_error_bars_and_flags_the_load(qtbot, load):
    from cnnviewer.gui.dashboard import Dashboard

    report = _report(load)
    dashboard = Dashboard()
    qtbot.addWidget(dashboard)
    dashboard.resize(1280, 800)
    dashboard.show()
    qtbot.waitExposed(dashboard)
    dashboard.show_report(report)
    charts = dashboard.charts
    qtbot.waitUntil(lambda: len(charts.scatter.listDataItems()) == 1, timeout=10_000)  # the last chart drawn
    [bars] = [item for item in charts.throughput.items if isinstance(item, pg.BarGraphItem)]
    [errors] = [item for item in charts.throughput.items if isinstance(item, pg.ErrorBarItem)]
    heights = np.array([m.throughput_ips for m in report.models])
    assert list(bars.opts["height"]) == pytest.approx(heights)
    assert errors.opts["y"] == pytest.approx(heights)
    assert errors.opts["y"] - errors.opts["bottom"] == pytest.approx([m.throughput_ci[0] for m in report.models])
    assert errors.opts["y"] + errors.opts["top"] == pytest.approx([m.throughput_ci[1] for m in report.models])
    assert "img/s whiskers: 95 % interval over the timing rounds" in charts.legend_text.text()
    text = dashboard.conclusions.text()
    assert (FLAG in text) is (load > 10)
    # The claim rule: Lite0's rounds are all well above Lite1's; Lite1 and Lite2 overlap.
    assert "EfficientNet-Lite0 is faster than EfficientNet-Lite1 (x1.8" in text
    assert "No clear speed difference between EfficientNet-Lite1 and EfficientNet-Lite2" in text
    assert "EfficientNet-Lite1 is faster than EfficientNet-Lite2" not in text
    row = [m.name for m in dashboard.summary_model.results].index(LITE0)
    tip = dashboard.summary_model.index(row, dashboard.summary_model.THROUGHPUT_COLUMN).data(
        Qt.ItemDataRole.ToolTipRole)
    assert "from 3 timing round(s): 180.0, 150.0, 172.0 img/s" in tip
    name = "dashboard-intervals" + ("-load-flag" if load > 10 else "")
    save_screenshot(dashboard, f"{name}-1280x800")
    dashboard.resize(1920, 1080)
    qtbot.wait(50)
    save_screenshot(dashboard, f"{name}-1920x1080")


def test_a_report_without_rounds_draws_no_error_bars(qtbot):
    from cnnviewer.gui.dashboard import Dashboard

    report = _report(3.0)
    for m in report.models:
        m.throughput_rounds, m.throughput_ci = [], None
    report.timing = {}
    report.environment.pop("load_while_timing")
    _finish_statistics(report)
    dashboard = Dashboard()
    qtbot.addWidget(dashboard)
    dashboard.show_report(report)
    charts = dashboard.charts
    qtbot.waitUntil(lambda: len(charts.scatter.listDataItems()) == 1, timeout=10_000)
    assert [item for item in charts.throughput.items if isinstance(item, pg.BarGraphItem)]
    assert not [item for item in charts.throughput.items if isinstance(item, pg.ErrorBarItem)]
    assert "is faster than" not in dashboard.conclusions.text()
    assert "whiskers" not in charts.legend_text.text()
