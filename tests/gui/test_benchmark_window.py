"""The benchmark window: a real run with progress and cancel, and report.json back into the dashboard."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QGroupBox

from cnnviewer.core.report import load_json, write_all
from cnnviewer.gui.benchmark_window import default_out_dir
from tests.helpers import PHOTOS_13, VAL_100, save_screenshot, second_way, wait_for_outcome


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
    # A speed claim only where the interval of the ratio excludes 1 (it depends on the machine's load).
    assert "faster than" in dashboard.conclusions.text() or "No clear speed difference" in dashboard.conclusions.text()
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
    qtbot.mouseClick(dashboard.images.viewport(), Qt.MouseButton.LeftButton,
                     pos=dashboard.images.visualRect(first).center())
    qtbot.waitUntil(lambda: len(dashboard.detail.shown) == 2, timeout=20_000)
    qtbot.keyClick(dashboard.images, Qt.Key.Key_Down)  # the keyboard moves the detail along, as a click does
    second = dashboard.images_filter.index(1, 0).data(Qt.ItemDataRole.UserRole)
    qtbot.waitUntil(lambda: f"<b>{Path(second.file).name}</b>" in dashboard.detail.caption.text(), timeout=20_000)
    qtbot.waitUntil(lambda: dashboard.detail.picture.pixmap() is not None
                    and not dashboard.detail.picture.pixmap().isNull(), timeout=20_000)
    assert all(len(top) == 5 for top in dashboard.detail.shown.values())
    def thumbnail_shown():
        icon = dashboard.images_model.index(0, 0).data(1)  # DecorationRole; asks for it the first time
        return icon is not None and not icon.isNull()

    qtbot.waitUntil(thumbnail_shown, timeout=20_000)
    save_screenshot(bench, "09-dashboard-images")


def test_cancel_while_running_ends_in_cancelled_and_says_what_was_kept(make_window, qtbot):
    window = make_window()
    bench = window.open_benchmark(str(VAL_100))
    assert bench.checked_models() == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert "100 labelled images" in bench.folder_label.text() and "Every label matched" in bench.labels_note.text()
    bench.batch_size.setValue(8)
    bench.limit.setValue(24)  # enough for three batches per model; the folder's 100 would only take longer
    bench.start()
    assert not bench.start_button.isEnabled()
    # Partial results: the first model's figures appear while the others still run.
    qtbot.waitUntil(lambda: bench.report is not None and bench.report.result("efficientnet_lite0") is not None
                    and bench.report.result("efficientnet_lite0").complete, timeout=120_000)
    assert bench.is_running()
    with qtbot.waitSignal(bench.run_ended, timeout=60_000) as ended:
        assert bench.cancel()
    assert ended.args == ["cancelled"]
    assert bench.start_button.isEnabled() and not bench.cancel_button.isEnabled() and not bench.is_running()
    # What was kept is read back from the run's own report.json, and said in one sentence.
    qtbot.waitUntil(lambda: bench.progress_text.text().startswith("Cancelled: "), timeout=30_000)
    text = bench.progress_text.text()
    assert text.startswith("Cancelled: ") and " finished" in text, text
    assert text.endswith(f"; report in {bench.out_dir}"), text  # the folder last: read whole in the panel
    on_disk = load_json(Path(bench.out_dir) / "report.json")
    assert on_disk.cancelled and on_disk.result("efficientnet_lite0").images == 24
    assert bench.report.cancelled and bench.dashboard.report is bench.report
    cut = [m for m in on_disk.models if not m.complete and not m.error]
    assert all(m.partial for m in cut)
    for m in cut:  # the model that was running is partial, never "running" with invented 0 ms figures
        assert f"{m.name} cut short" in text
        summary = bench.dashboard.summary_model
        row = next(r for r in range(summary.rowCount()) if summary.index(r, 0).data() == m.name)
        shown = [str(summary.index(row, c).data()) for c in range(summary.columnCount())]
        assert not any("running" in cell for cell in shown), shown
    charts = bench.dashboard.charts
    qtbot.waitUntil(lambda: bool(charts.scatter.listDataItems()), timeout=10_000)  # the last chart drawn
    save_screenshot(bench, "14-benchmark-cancelled")


def test_cancel_while_queued_ends_in_cancelled_and_brings_start_back(make_window, qtbot):
    window = make_window()
    started, release = threading.Event(), threading.Event()

    def occupy(token, report):  # another owner's run holds the benchmark lane, so this window's waits
        started.set()
        while not release.wait(0.01) and not token.cancelled:
            pass

    window.runner.submit("test", "occupy", occupy, lane="benchmark")
    try:
        assert started.wait(10)
        bench = window.open_benchmark(str(PHOTOS_13))
        assert bench.start() is not None
        out_dir = Path(bench.out_dir)
        assert out_dir.is_dir() and bench.is_running() and not bench.start_button.isEnabled()
        with qtbot.waitSignal(bench.run_ended, timeout=10_000) as ended:
            assert bench.cancel()
        assert ended.args == ["cancelled"]
        assert bench.start_button.isEnabled() and not bench.cancel_button.isEnabled() and not bench.is_running()
        assert bench.progress_text.text() == "Cancelled before it started; nothing was run and no folder was kept."
        assert not out_dir.exists()  # made for the run, and empty: removed again
    finally:
        release.set()


def test_closing_the_window_cancels_its_run(make_window, qtbot):
    window = make_window()
    bench = window.open_benchmark(str(PHOTOS_13))
    for index in range(bench.models.count()):  # one model is enough to be running
        item = bench.models.item(index)
        item.setCheckState(Qt.CheckState.Checked if index == 0 else Qt.CheckState.Unchecked)
    bench.batch_size.setValue(1)
    bench.start()
    qtbot.waitUntil(lambda: bench.progress.value() > 0, timeout=60_000)  # running, past the model's load
    with qtbot.waitSignal(bench.run_ended, timeout=60_000) as ended:
        bench.close()
    assert ended.args == ["cancelled"] and bench.start_button.isEnabled()
    report = load_json(Path(bench.out_dir) / "report.json")
    assert report.cancelled and not report.complete


def test_a_run_never_replaces_an_earlier_one(make_window, tmp_path, monkeypatch):
    first = default_out_dir(str(PHOTOS_13))
    Path(first).mkdir(parents=True)
    assert default_out_dir(str(PHOTOS_13)) != first  # a taken name gets -2, -3...
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "report.json").write_text("{}", encoding="utf-8")
    monkeypatch.setattr("cnnviewer.gui.benchmark_window.default_out_dir", lambda folder: str(earlier))
    window = make_window()
    bench = window.open_benchmark(str(PHOTOS_13))
    assert bench.start() is None
    assert bench.progress_text.text().startswith(f"The benchmark did not start: {earlier}: already holds an earlier run")
    assert not bench.is_running() and bench.start_button.isEnabled()
    assert (earlier / "report.json").read_text(encoding="utf-8") == "{}"
    # The disk, not the choices, stopped it: ticking a model does not make the sentence go.
    bench.models.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert not bench.error_note.isHidden() and "already holds an earlier run" in bench.error_note.text()


def test_a_classification_asked_during_a_benchmark_is_answered_within_5_s(make_window, qtbot):
    window = make_window()
    photos = sorted(str(p) for p in PHOTOS_13.glob("*.jpg"))
    window.open_path(photos[0])
    wait_for_outcome(qtbot, window, photos[0])  # the window's model is loaded: what is timed is the wait
    bench = window.open_benchmark(str(VAL_100))
    bench.batch_size.setValue(16)
    bench.start()
    qtbot.waitUntil(lambda: bench.progress.value() > 0, timeout=60_000)
    assert bench.is_running()
    window.open_path(photos[1])  # a double-click's path: preview, then classify
    # On its own lane, and the benchmark waits at its next batch: not behind the whole run (70-90 s).
    wait_for_outcome(qtbot, window, photos[1], timeout=5_000)
    assert bench.is_running()
    with qtbot.waitSignal(bench.run_ended, timeout=60_000):
        bench.cancel()


def test_a_model_runs_in_one_thread_while_another_thread_loads_one():
    """The benchmark lane loads its next model while the interactive lane classifies: loading folds
    BatchNorms through a torch.fx trace, which patches every module's call in every thread meanwhile."""
    import torch

    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.models import load_model

    running = load_model(get_entry("efficientnet_lite0")).module
    probe = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        expected = running(probe)
    stop, errors, answers = threading.Event(), [], []

    def classify_meanwhile() -> None:
        with torch.no_grad():
            while not stop.is_set():
                try:
                    answers.append(torch.equal(running(probe), expected))
                except Exception as exc:  # noqa: BLE001 - what a click would have shown
                    errors.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=classify_meanwhile)
    thread.start()
    try:
        loaded = load_model(get_entry("efficientnet_lite1"))
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:1]
    assert answers and all(answers)
    assert loaded.folded_batchnorms > 0  # the trace still saw its own model


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
    qtbot.waitUntil(lambda: len(window.ways_offered()) > 1, timeout=60_000)  # the catalog is loaded
    bench = window.open_benchmark(str(PHOTOS_13))
    boxes = {box.text(): box for box in bench.ways.findChildren(QCheckBox)}
    assert boxes[str(window.current_way())].isChecked() and way in boxes
    for index in range(bench.models.count()):  # one model, two ways
        item = bench.models.item(index)
        item.setCheckState(Qt.CheckState.Checked if index == 0 else Qt.CheckState.Unchecked)
    boxes["fp32"].setChecked(True)
    boxes[way].setChecked(True)
    assert [w.label for w in bench.checked_ways()] == [w for w in boxes if w in ("fp32", way)]
    bench.batch_size.setValue(4)
    bench.limit.setValue(6)
    bench.start()
    qtbot.waitUntil(lambda: bench.report is not None and bench.report.complete, timeout=120_000)
    model = bench.checked_models()[0]
    assert [m.name for m in bench.dashboard.summary_model.results] == [f"{model} (fp32)", f"{model} ({way})"]
    assert "points against FP32" in bench.dashboard.conclusions.text()
    qtbot.waitUntil(lambda: bench.start_button.isEnabled(), timeout=30_000)  # the job has returned
    qtbot.waitUntil(lambda: sum(len(item.points()) for item in bench.dashboard.charts.scatter.listDataItems()
                                if hasattr(item, "points")) == 2, timeout=10_000)
    save_screenshot(bench, "13-dashboard-ways")


def test_chart_labels_drop_what_every_name_shares():
    from cnnviewer.gui.dashboard import short_names

    assert short_names(["efficientnet_lite0", "efficientnet_lite1"]) == ["lite0", "lite1"]
    assert short_names(["resnet50 (fp32)", "resnet50 (bf16)"]) == ["resnet50 (fp32)", "resnet50 (bf16)"]
    assert short_names(["resnet50", "googlenet", "inception_v3"]) == ["resnet50", "googlenet", "inception_v3"]
    assert short_names(["vgg16", "vgg16_bn"]) == ["vgg16", "vgg16_bn"]  # nothing would be left of one
    assert short_names(["efficientnet_lite0"]) == ["efficientnet_lite0"]


def test_nothing_of_an_earlier_report_lingers_after_another_report_or_folder(make_window, qtbot, tmp_path,
                                                                              photos_13_run):
    report, _ = photos_13_run
    first = write_all(report, tmp_path / "first")["json"]
    second = write_all(report, tmp_path / "second")["json"]
    bench = make_window().open_benchmark_report(str(first))
    dashboard = bench.dashboard
    qtbot.waitUntil(lambda: dashboard.images_model.rowCount() == 13, timeout=10_000)
    dashboard.setCurrentIndex(1)
    dashboard.images.setCurrentIndex(dashboard.images_filter.index(0, 0))
    qtbot.waitUntil(lambda: len(dashboard.detail.shown) == 2, timeout=20_000)
    bench._say("Done in 104 s; report in an earlier folder")

    bench.open_report(str(second))  # another report: the row shown was the first one's
    qtbot.waitUntil(lambda: str(second) in bench.folder_label.text(), timeout=10_000)
    assert dashboard.detail.shown == {} and dashboard.detail.caption.text() == ""
    assert dashboard.detail.picture.text() == dashboard.detail.PLACEHOLDER
    assert not [box for box in dashboard.detail.tables.findChildren(QGroupBox) if box.isVisible()]
    assert bench.progress_text.text() == f"Opened {second}"

    assert bench.set_folder(str(PHOTOS_13))  # another folder: nothing of the report stays until Start
    assert bench.report is None and dashboard.report is None
    assert dashboard.summary_model.rowCount() == 0 and dashboard.images_model.rowCount() == 0
    assert dashboard.detail.shown == {} and bench.progress_text.text() == "" and bench.progress.value() == 0
    assert not dashboard.charts.hint.isHidden() and dashboard.charts.hint.text() == dashboard.charts.HINT
    assert dashboard.charts.legend_text.text() == "" and dashboard.conclusions.text() == ""
    save_screenshot(bench, "09b-benchmark-new-folder")
