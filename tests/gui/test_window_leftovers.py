"""The benchmark window's set-up panel and status as a user meets them: refusals, status, folders, first size."""

from __future__ import annotations

import copy
import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtWidgets import QApplication, QCheckBox

from cnnviewer.core.benchmark import Progress
from tests.core.test_cluster_report import LITE0, LITE1, as_cluster_run
from tests.helpers import PHOTOS_13, save_screenshot

SIZES = ((1280, 800), (1920, 1080))
ADDRESS = "head.lab:6379"
REFUSAL = (f"int8 does not run on the cluster at {ADDRESS} (its calibration and quantized model stay on this "
           "machine); untick int8 or Run on cluster.")


@pytest.fixture(autouse=True)
def no_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """A RAY_ADDRESS of the machine running the tests must not decide what the window offers."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def click(qtbot: Any, box: QCheckBox) -> None:
    """A user's click on the box's indicator."""
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(box.iconSize().width() // 2 + 2, box.height() // 2))


def way_box(bench: Any, label: str) -> QCheckBox:
    return next(box for box in bench.ways.findChildren(QCheckBox) if box.text() == label)


def laid_out(qtbot: Any, bench: Any, width: int, height: int) -> None:
    bench.resize(width, height)
    bench.show()
    qtbot.waitExposed(bench)
    qtbot.waitUntil(lambda: bench.width() == width and bench.height() == height, timeout=10_000)
    qtbot.wait(100)  # the charts draw in steps, one per turn of the event loop


def where(widget: Any, window: Any) -> QRect:
    """The widget's rectangle in the window's coordinates."""
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def drawn_lines(label: Any) -> list[str]:
    return label.shown_text().split("\n")


def shown_whole(label: Any) -> bool:
    """Every word of the label's text is drawn (lines broken at spaces or inside a long path), and every line
    fits the label: nothing cut with "…", nothing beyond its edges."""
    lines = drawn_lines(label)
    metrics, room = label.fontMetrics(), label.contentsRect()
    return ("".join(label.shown_text().split()) == "".join(label.text().split())
            and all(metrics.horizontalAdvance(line) <= room.width() for line in lines)
            and len(lines) * metrics.lineSpacing() <= room.height())


@pytest.fixture
def refusing(make_window, qtbot) -> Any:
    """A benchmark window whose Start was just refused: int8 ticked with Run on cluster."""
    window = make_window()
    qtbot.waitUntil(lambda: "int8" in [str(w) for w in window.ways_offered()], timeout=60_000)
    bench = window.open_benchmark(str(PHOTOS_13))
    for box in bench.ways.findChildren(QCheckBox):
        box.setChecked(box.text() in ("fp32", "int8"))
    qtbot.keyClicks(bench.cluster_address, ADDRESS)
    click(qtbot, bench.cluster_box)
    assert bench.runs_on_cluster()
    return bench


def refuse(bench: Any) -> None:
    assert bench.start() is None and not bench.is_running()
    assert bench.error_note.isVisible() and bench.error_note.text() == REFUSAL


# -- 1: a refusal goes as soon as what caused it changes ---------------------------------------------------------

@pytest.mark.parametrize("change", ["untick int8", "untick cluster", "clear the address", "another address",
                                    "another model", "fewer images"])
def test_the_int8_refusal_goes_when_its_cause_changes(refusing, qtbot, change):
    bench = refusing
    refuse(bench)
    if change == "untick int8":
        click(qtbot, way_box(bench, "int8"))
    elif change == "untick cluster":
        click(qtbot, bench.cluster_box)
    elif change == "clear the address":  # Run on cluster goes off with it: int8 runs here again
        bench.cluster_address.clear()
        assert not bench.runs_on_cluster()
    elif change == "another address":  # the sentence named the old one
        qtbot.keyClicks(bench.cluster_address, "0")
    elif change == "another model":
        item = bench.models.item(0)
        item.setCheckState(Qt.CheckState.Unchecked if item.checkState() == Qt.CheckState.Checked
                           else Qt.CheckState.Checked)
    else:
        bench.limit.setValue(10)
    assert not bench.error_note.isVisible() and bench.error_note.text() == ""
    assert bench.progress_text.isVisible() and bench.progress_text.text() == ""


def test_a_refusal_to_start_without_a_model_goes_when_one_is_ticked(make_window, qtbot):
    bench = make_window().open_benchmark(str(PHOTOS_13))
    for index in range(bench.models.count()):
        bench.models.item(index).setCheckState(Qt.CheckState.Unchecked)
    assert bench.start() is None
    assert bench.error_note.isVisible() and bench.error_note.text() == "Tick at least one model."
    bench.models.item(0).setCheckState(Qt.CheckState.Checked)
    assert not bench.error_note.isVisible() and bench.progress_text.text() == ""


def test_a_runs_error_stays_when_a_choice_changes(bench, qtbot):
    # Not a refusal: it says how the last run ended and where its results are, which still holds.
    bench._end("errored", "The benchmark stopped: the folder went away.", error=True)
    bench.batch_size.setValue(bench.batch_size.value() + 1)
    assert bench.error_note.isVisible() and bench.error_note.text() == "The benchmark stopped: the folder went away."


# -- 2: the red line moves none of the controls -----------------------------------------------------------------

@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_red_line_moves_no_control(refusing, qtbot, width, height):
    bench = refusing
    laid_out(qtbot, bench, width, height)
    watched = (bench.start_button, bench.models, bench.cluster_box, bench.ways, bench.progress)
    before = [where(widget, bench) for widget in watched]
    refuse(bench)
    qtbot.wait(20)
    assert [where(widget, bench) for widget in watched] == before
    assert shown_whole(bench.error_note)
    save_screenshot(bench, f"leftovers-int8-refused-{width}x{height}")
    click(qtbot, way_box(bench, "int8"))
    qtbot.wait(20)
    assert [where(widget, bench) for widget in watched] == before


# -- 3: the status line is read whole ----------------------------------------------------------------------------

@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_long_status_is_shown_whole_without_moving_anything(bench, qtbot, width, height):
    laid_out(qtbot, bench, width, height)
    before = where(bench.start_button, bench)
    label = bench.progress_text
    bench._on_progress(Progress(model="efficientnet_lite2 (onnxruntime)", model_number=3, models=3, done=13, total=13,
                                text="measuring latency (20 runs at batch 1)"))
    assert "measuring latency (20 runs at batch 1)" in label.text()
    assert shown_whole(label) and "…" not in label.shown_text() and label.toolTip() == ""
    save_screenshot(bench, f"leftovers-status-latency-{width}x{height}")
    folder = "/home/someone/cnnviewer-benchmarks/photos-13-20261130-221212"
    bench._say(f"Starting on the cluster at {ADDRESS}; results go to {folder}")
    assert shown_whole(label) and folder.replace("/", "") in "".join(label.shown_text().split()).replace("/", "")
    assert where(bench.start_button, bench) == before
    save_screenshot(bench, f"leftovers-status-starting-{width}x{height}")


# -- 4: a figure never measured is "-" -----------------------------------------------------------------------------

def _row(dashboard: Any, name: str) -> dict[str, str]:
    model = dashboard.summary_model
    row = next(r for r in range(model.rowCount()) if model.data(model.index(r, 0)) == name)
    return {model.headerData(c, Qt.Orientation.Horizontal): model.data(model.index(row, c))
            for c in range(model.columnCount())}


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_cancelled_cluster_model_shows_no_memory_or_params(bench, qtbot, photos_13_run, width, height):
    cluster_run = as_cluster_run(photos_13_run[0])
    for m in cluster_run.models:  # as core.cluster leaves them: the driver measures no memory
        m.rss_before_mb = None
    cut = cluster_run.result(LITE1)
    cut.partial, cut.complete, cut.images = True, False, 5  # Cancel came after its first shard
    bench.show_report(cluster_run)
    row = _row(bench.dashboard, LITE1)
    assert row["Status"] == "partial (5 of 13)"
    assert [row[h] for h in ("Peak MB above start", "Params MB", "Load s")] == ["-", "-", "-"]
    assert [row[h] for h in ("img/s", "p50 ms", "p90 ms", "p99 ms")] == ["-"] * 4
    assert _row(bench.dashboard, LITE0)["Peak MB above start"] == "-"  # done on the cluster: per worker
    laid_out(qtbot, bench, width, height)
    save_screenshot(bench, f"leftovers-cluster-partial-{width}x{height}")


def test_a_local_cancelled_model_keeps_what_it_measured(bench, photos_13_run):
    report = copy.deepcopy(photos_13_run[0])
    cut = report.result(LITE1)
    cut.partial, cut.complete = True, False
    cut.throughput_ips = cut.latency_ms = None
    bench.show_report(report)
    row = _row(bench.dashboard, LITE1)
    assert row["Peak MB above start"] == f"{cut.peak_rss_mb:.0f}" and row["Params MB"] == f"{cut.param_mb:.0f}"
    # A result whose model never loaded (nothing measured: no baseline, no parameters) shows no 0 either.
    cut.peak_rss_mb = cut.param_mb = cut.load_s = 0.0
    cut.rss_before_mb = None
    bench.show_report(report)
    row = _row(bench.dashboard, LITE1)
    assert [row[h] for h in ("Peak MB above start", "Params MB", "Load s")] == ["-", "-", "-"]


# -- 5: the first size is a share of the screen -------------------------------------------------------------------

def test_the_first_size_is_a_share_of_a_large_screen(bench, qtbot):
    for width, height in SIZES:
        screen = QRect(0, 0, width, height)
        bench.fit_to(screen)
        qtbot.waitUntil(lambda width=width: bench.width() <= width, timeout=10_000)
        frame = bench.frameGeometry().size() - bench.geometry().size()
        assert bench.width() + max(frame.width(), 8) <= width and bench.height() + max(frame.height(), 34) <= height
        assert bench.x() >= 0 and bench.y() >= 0
        assert bench.width() >= 0.8 * width - 16 and bench.height() >= 0.8 * height - 48, (width, bench.size())
    assert bench.width() < 1920 and bench.height() < 1080  # a share, not the whole screen
    save_screenshot(bench, "leftovers-first-size-1920x1080")


def test_a_size_the_user_chose_stays_when_the_window_is_shown_again(bench, qtbot):
    bench.resize(1100, 700)
    qtbot.waitUntil(lambda: bench.width() == 1100, timeout=10_000)
    bench.hide()
    bench.main.show_benchmark_window()
    qtbot.waitExposed(bench)
    assert (bench.width(), bench.height()) == (1100, 700)


# -- 6: the end of a run is read whole, the folder included ------------------------------------------------------

LONG_FOLDER = "/home/someone/cnnviewer-benchmarks/photos-13-20261130-221212"


def cancelled_two_model_run(photos_13_run: Any) -> Any:
    """photos-13's real run of lite0 and lite1 as Cancel leaves it five images into lite1."""
    report = copy.deepcopy(photos_13_run[0])
    cut = report.result(LITE1)
    cut.partial, cut.complete, cut.images = True, False, 5
    cut.throughput_ips = cut.latency_ms = None
    report.cancelled, report.complete = True, False
    return report


@pytest.mark.parametrize("outcome", ["cancelled", "done", "done on a cluster"])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_end_of_a_run_is_read_whole_with_its_folder(bench, qtbot, photos_13_run, outcome, width, height):
    from cnnviewer.core.cluster import ClusterOptions

    laid_out(qtbot, bench, width, height)
    bench.out_dir = LONG_FOLDER  # as a user's home names it, longer than the tests' own
    bench._started = time.monotonic() - 104
    if outcome == "cancelled":
        bench._on_cancelled(cancelled_two_model_run(photos_13_run))
        expected = f"Cancelled: 1 model finished, {LITE1} cut short; report in {LONG_FOLDER}"
    elif outcome == "done":
        bench._on_returned(copy.deepcopy(photos_13_run[0]))
        expected = f"Done in 104 s; report in {LONG_FOLDER}"
    else:
        bench._cluster = ClusterOptions(address=ADDRESS)
        bench._on_returned(as_cluster_run(photos_13_run[0]))
        expected = f"Done on the cluster at {ADDRESS}: 2 workers in 104 s; report in {LONG_FOLDER}"
    label = bench.progress_text
    assert label.isVisible()
    assert "…" not in label.shown_text() and shown_whole(label) and label.toolTip() == "", label.shown_text()
    assert label.text() == expected
    save_screenshot(bench, f"leftovers-end-{outcome.replace(' ', '-')}-{width}x{height}")


# -- 7: typing a cluster address moves nothing --------------------------------------------------------------------

def settled(qtbot: Any) -> None:
    """Every layout request posted has been handled: a wrapped label's new height reaches the panel a few
    turns of the event loop after its text changed."""
    for _ in range(5):
        QApplication.sendPostedEvents()
        qtbot.wait(50)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_typing_a_cluster_address_moves_no_control(make_window, qtbot, width, height):
    window = make_window()
    qtbot.waitUntil(lambda: "int8" in [str(w) for w in window.ways_offered()], timeout=60_000)
    bench = window.open_benchmark(str(PHOTOS_13))
    laid_out(qtbot, bench, width, height)
    watched = (way_box(bench, "int8"), bench.start_button, bench.models, bench.cluster_box, bench.cluster_address)
    before = [where(widget, bench) for widget in watched]
    assert bench.cluster_note.text() == "No address: enter the head's, or set RAY_ADDRESS"
    save_screenshot(bench, f"leftovers-cluster-no-address-{width}x{height}")
    qtbot.keyClicks(bench.cluster_address, "127.0.0.1:1")
    settled(qtbot)
    assert bench.cluster_note.text() == "At 127.0.0.1:1" and bench.cluster_box.isEnabled()
    assert [where(widget, bench) for widget in watched] == before
    save_screenshot(bench, f"leftovers-cluster-address-{width}x{height}")
    bench.cluster_address.clear()
    settled(qtbot)
    assert [where(widget, bench) for widget in watched] == before
    assert shown_whole(bench.cluster_note)  # the longest note, whole in its fixed height


# -- 8: a run that wrote nothing leaves no folder ------------------------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Run on cluster needs Ray")
@pytest.mark.parametrize("before", ["no folder", "an opened report"])
def test_a_cluster_start_that_fails_leaves_no_empty_folder(make_window, qtbot, photos_13_run, tmp_path, before):
    from cnnviewer.core.report import save_json
    from tests.ray_cluster import free_port

    bench = make_window().open_benchmark(str(PHOTOS_13))
    earlier = None
    if before == "an opened report":  # Open report folder shows its folder before the run, and after it
        earlier = tmp_path / "earlier"
        earlier.mkdir()
        save_json(photos_13_run[0], earlier / "report.json")
        bench.open_report(str(earlier / "report.json"))
        qtbot.waitUntil(lambda: bench.report_folder() == str(earlier), timeout=30_000)
    assert bench.open_folder_button.isEnabled() == (earlier is not None)
    for index in range(bench.models.count()):
        bench.models.item(index).setCheckState(Qt.CheckState.Checked if index == 0 else Qt.CheckState.Unchecked)
    for box in bench.ways.findChildren(QCheckBox):
        box.setChecked(box.text() == "fp32")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there: refused within seconds
    bench.cluster_address.setText(address)
    click(qtbot, bench.cluster_box)
    with qtbot.waitSignal(bench.run_ended, timeout=60_000) as ended:
        assert bench.start() is not None
        run_dir = Path(bench.out_dir)
        assert run_dir.is_dir() and bench.open_folder_button.isEnabled()  # made at Start, for the run
    assert ended.args == ["errored"] and "cannot connect" in bench.error_note.text()
    assert not run_dir.exists()
    assert not (Path.home() / "cnnviewer-benchmarks").exists()  # made for this run only, and empty: gone too
    assert bench.report_folder() == (str(earlier) if earlier else None)
    assert bench.open_folder_button.isEnabled() == (earlier is not None)


def test_a_run_that_wrote_something_keeps_its_folder(bench, tmp_path):
    from cnnviewer.core.report import prepare_run_folder

    run_dir = tmp_path / "run"
    bench.out_dir, bench._run_folder = str(run_dir), prepare_run_folder(run_dir)
    (run_dir / "run.log").write_text("a line\n")
    bench._end("errored", "The benchmark stopped: the disk is full.", error=True)
    assert (run_dir / "run.log").exists() and bench.report_folder() == str(run_dir)
    assert bench.open_folder_button.isEnabled()


# -- 9: a refusal names only what is missing ----------------------------------------------------------------------

def test_a_refusal_to_start_names_only_what_is_missing(make_window, qtbot, tmp_path):
    bench = make_window().open_benchmark(str(PHOTOS_13))
    models = [bench.models.item(index) for index in range(bench.models.count())]
    ways = bench.ways.findChildren(QCheckBox)

    def refused(models_ticked: bool, ways_ticked: bool) -> str:
        for item in models:
            item.setCheckState(Qt.CheckState.Checked if models_ticked else Qt.CheckState.Unchecked)
        for box in ways:
            box.setChecked(ways_ticked and box.text() == "fp32")
        assert bench.start() is None and not bench.is_running() and bench.error_note.isVisible()
        return bench.error_note.text()

    assert refused(False, True) == "Tick at least one model."
    assert refused(True, False) == "Tick at least one way to run."
    assert refused(False, False) == "Tick at least one model and one way to run."
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not bench.set_folder(str(empty))  # no labelled images: no folder to run on
    assert refused(True, True) == "Choose a folder of labelled images."
    assert refused(False, True) == "Choose a folder of labelled images and tick at least one model."
