"""The benchmark window's leftovers from the cluster round: a refusal that goes with its cause, a red line that
moves nothing, a status read whole, "-" for memory never measured, a first size in step with the screen."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtWidgets import QCheckBox

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
    assert bench.error_note.isVisible() and "tick at least one model" in bench.error_note.text()
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
