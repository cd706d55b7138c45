"""The benchmark window: a real run with progress and cancel, and report.json back into the dashboard."""

from __future__ import annotations

import copy

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox

from cnnviewer.core.report import load_json, write_all
from tests.helpers import PHOTOS_13, VAL_100, save_screenshot, second_way


def test_report_json_round_trips_into_the_dashboard(make_window, qtbot, tmp_path, photos_13_run):
    report, _ = photos_13_run
    written = write_all(report, tmp_path)
    window = make_window()
    bench = window.open_benchmark_report(str(written["json"]))
    dashboard = bench.dashboard
    qtbot.waitUntil(lambda: dashboard.images_model.rowCount() == 13, timeout=10_000)  # drawn a turn later
    loaded = load_json(written["json"])
    assert [m.name for m in dashboard.summary_model.results] == ["efficientnet_lite0", "efficientnet_lite1"]
    assert dashboard.summary_model.index(0, 2).data() == f"{loaded.models[0].top1 * 100:.1f}"
    assert dashboard.images_model.rowCount() == 13
    assert "faster than" in dashboard.conclusions.text()
    charts = dashboard.charts
    plots = (charts.accuracy, charts.throughput, charts.memory, charts.latency, charts.scatter)
    qtbot.waitUntil(lambda: all(plot.listDataItems() for plot in plots), timeout=10_000)  # one chart per turn
    save_screenshot(bench, "08-dashboard")
    dashboard.setCurrentIndex(1)
    dashboard.filter_combo.setCurrentText("Mistakes")
    mistakes = dashboard.images_filter.rowCount()
    expected = sum(1 for r in loaded.images if any(t[0] != r.truth for t in r.top5.values()))
    assert mistakes == expected >= 1  # Grace Hopper is no "military uniform" to these models
    dashboard.filter_combo.setCurrentText("All images")
    assert dashboard.images_filter.rowCount() == 13
    first = dashboard.images_filter.index(0, 0)
    dashboard.images.clicked.emit(first)
    qtbot.waitUntil(lambda: len(dashboard.detail.shown) == 2, timeout=20_000)
    qtbot.waitUntil(lambda: dashboard.detail.picture.pixmap() is not None
                    and not dashboard.detail.picture.pixmap().isNull(), timeout=20_000)
    assert all(len(top) == 5 for top in dashboard.detail.shown.values())
    def thumbnail_shown():
        icon = dashboard.images_model.index(0, 0).data(1)  # DecorationRole; asks for it the first time
        return icon is not None and not icon.isNull()

    qtbot.waitUntil(thumbnail_shown, timeout=20_000)
    save_screenshot(bench, "09-dashboard-images")


def test_run_from_the_window_with_partial_results_and_cancel(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr("cnnviewer.gui.benchmark_window.default_out_dir", lambda folder: str(tmp_path / "run"))
    window = make_window()
    bench = window.open_benchmark(str(VAL_100))
    assert bench.checked_models() == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert "100 labelled images" in bench.folder_label.text() and "Every label matched" in bench.labels_note.text()
    bench.batch_size.setValue(8)
    bench.limit.setValue(24)  # enough for three batches per model; the folder's 100 would only take longer
    bench.start()
    # Partial results: the first model's figures appear while the others still run.
    qtbot.waitUntil(lambda: bench.report is not None and bench.report.result("efficientnet_lite0") is not None
                    and bench.report.result("efficientnet_lite0").complete, timeout=120_000)
    assert bench.is_running()
    bench.cancel()
    qtbot.waitUntil(lambda: not bench.is_running(), timeout=60_000)
    assert bench.report.cancelled
    assert "Cancelled" in bench.progress_text.text()
    on_disk = load_json(tmp_path / "run" / "report.json")
    assert on_disk.cancelled and on_disk.result("efficientnet_lite0").images == 24
    assert bench.start_button.isEnabled()


def test_charts_draw_one_per_turn_and_a_newer_report_wins(qtbot, photos_13_run):
    report, _ = photos_13_run
    one_model = copy.deepcopy(report)
    one_model.models = one_model.models[:1]
    from cnnviewer.gui.dashboard import Charts

    charts = Charts()
    qtbot.addWidget(charts)
    charts.show()
    charts.show_report(report)
    assert charts.accuracy.listDataItems() and not charts.scatter.listDataItems()  # the first chart only, so far
    charts.show_report(one_model)  # a newer snapshot before the first finished drawing
    qtbot.waitUntil(lambda: len(charts.scatter.listDataItems()) == 1, timeout=10_000)
    qtbot.wait(100)  # nothing of the older report comes back after this
    heights = charts.throughput.listDataItems()[0].opts["height"]
    assert list(heights) == [one_model.models[0].throughput_ips]
    assert len(charts.scatter.listDataItems()) == 1  # one model's point
    top1, top5 = charts.accuracy.listDataItems()  # top-1 and top-5 bars, one model's each
    assert list(top1.opts["height"]) == [one_model.models[0].top1 * 100]
    assert list(top5.opts["height"]) == [one_model.models[0].top5 * 100]


def test_the_window_compares_ways_of_running(make_window, qtbot, tmp_path, monkeypatch):
    way = second_way()
    monkeypatch.setattr("cnnviewer.gui.benchmark_window.default_out_dir", lambda folder: str(tmp_path / "ways"))
    window = make_window()
    qtbot.waitUntil(lambda: window.run_as_combo.count() > 1, timeout=60_000)  # the catalog is loaded
    bench = window.open_benchmark(str(PHOTOS_13))
    boxes = {box.text(): box for box in bench.ways.findChildren(QCheckBox)}
    assert boxes[window.run_as_combo.currentText()].isChecked() and way in boxes
    for index in range(bench.models.count()):  # one model, two ways
        item = bench.models.item(index)
        item.setCheckState(Qt.CheckState.Checked if index == 0 else Qt.CheckState.Unchecked)
    boxes["fp32"].setChecked(True)
    boxes[way].setChecked(True)
    assert bench.checked_ways() == [w for w in boxes if w in ("fp32", way)]
    bench.batch_size.setValue(4)
    bench.limit.setValue(6)
    bench.start()
    qtbot.waitUntil(lambda: bench.report is not None and bench.report.complete, timeout=120_000)
    model = bench.checked_models()[0]
    assert [m.name for m in bench.dashboard.summary_model.results] == [f"{model} (fp32)", f"{model} ({way})"]
    assert "points against FP32" in bench.dashboard.conclusions.text()
    qtbot.waitUntil(lambda: bench.start_button.isEnabled(), timeout=30_000)  # the job has returned
    qtbot.waitUntil(lambda: len(bench.dashboard.charts.scatter.listDataItems()) == 2, timeout=10_000)
    save_screenshot(bench, "13-dashboard-ways")


def test_chart_labels_drop_what_every_name_shares():
    from cnnviewer.gui.dashboard import short_names

    assert short_names(["efficientnet_lite0", "efficientnet_lite1"]) == ["lite0", "lite1"]
    assert short_names(["resnet50 (fp32)", "resnet50 (bf16)"]) == ["resnet50 (fp32)", "resnet50 (bf16)"]
    assert short_names(["resnet50", "googlenet", "inception_v3"]) == ["resnet50", "googlenet", "inception_v3"]
    assert short_names(["vgg16", "vgg16_bn"]) == ["vgg16", "vgg16_bn"]  # nothing would be left of one
    assert short_names(["efficientnet_lite0"]) == ["efficientnet_lite0"]
