"""The benchmark window at 1280 x 800: it fits the screen, charts and tables uncut, the Images detail readable with
each model's Grad-CAM for a mistake, names cut in the middle, honest progress, and the detail and folder messages."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QStyleOptionViewItem

from cnnviewer.core.benchmark import Progress
from cnnviewer.core.charts import accuracy_range
from cnnviewer.core.report import write_all
from tests.helpers import save_screenshot

LITE0, LITE1 = "efficientnet_lite0", "efficientnet_lite1"
SIZES = ((1280, 800), (1920, 1080))


def _screen(qtbot: Any, bench: Any, size: tuple[int, int]) -> None:
    """The window fitted to a screen of ``size`` (the offscreen screen is another size: given explicitly)."""
    bench.show()
    qtbot.waitExposed(bench)
    bench.fit_to(QRect(0, 0, *size))
    qtbot.waitUntil(lambda: bench.width() <= size[0] and bench.height() <= size[1], timeout=10_000)
    qtbot.wait(50)  # the charts draw in steps, one per turn of the event loop


def _bottom_in(widget: Any, window: Any) -> int:
    return widget.mapTo(window, widget.rect().bottomRight()).y()


def _grace_hopper(qtbot: Any, bench: Any) -> Any:
    dashboard = bench.dashboard
    dashboard.setCurrentIndex(dashboard.images_tab)
    row = next(r for r in range(dashboard.images_filter.rowCount())
               if dashboard.images_filter.index(r, 0).data() == "grace_hopper.jpg")
    dashboard.images.setCurrentIndex(dashboard.images_filter.index(row, 0))
    qtbot.waitUntil(lambda: dashboard.detail.row is not None and len(dashboard.detail.shown) == 2, timeout=10_000)
    return dashboard.detail


def test_the_window_fits_a_1280x800_screen_with_its_progress_and_buttons(bench, qtbot):
    _screen(qtbot, bench, SIZES[0])
    assert bench.width() + bench.FRAME[0] <= 1280 and bench.height() + bench.FRAME[1] <= 800
    assert bench.minimumSizeHint().height() <= 800 - bench.FRAME[1]
    for widget in (bench.progress, bench.progress_text, bench.open_folder_button, bench.start_button):
        assert widget.isVisible() and _bottom_in(widget, bench) <= bench.height(), widget
    # Opened on the screen it has: inside that screen's free area (the offscreen one is small).
    available = QGuiApplication.primaryScreen().availableGeometry()
    bench.fit_to(available)
    assert bench.height() <= available.height() and bench.y() >= available.y()
    for width, height in SIZES:
        _screen(qtbot, bench, (width, height))
        save_screenshot(bench, f"bench-fit-dashboard-{width}x{height}")


def test_charts_and_summary_are_not_cut_at_1280(bench, qtbot):
    _screen(qtbot, bench, SIZES[0])
    charts = bench.dashboard.charts
    qtbot.waitUntil(lambda: bool(charts.scatter.items) and bool(charts.memory.items), timeout=10_000)
    qtbot.wait(100)
    for plot in (charts.accuracy, charts.throughput, charts.memory, charts.latency, charts.scatter):
        assert plot.sceneBoundingRect().right() <= charts.viewport().width() + 1, plot.titleLabel.text
    summary = bench.dashboard.summary
    columns = sum(summary.columnWidth(c) for c in range(bench.dashboard.summary_model.columnCount()))
    assert columns <= summary.viewport().width(), "the summary's last columns are cut"


def test_a_point_at_100_percent_is_drawn_whole(bench, qtbot):
    low, high = accuracy_range(np.array([92.3, 100.0]))
    assert low <= 92.3 and high > 100
    _screen(qtbot, bench, SIZES[0])
    charts = bench.dashboard.charts
    qtbot.waitUntil(lambda: len(charts.scatter.items) > 1, timeout=10_000)
    view = charts.scatter.getViewBox()
    (_, _), (y0, y1) = view.viewRange()
    best = max(m.top1 * 100 for m in bench.report.models)
    assert best == 100.0, "lite1 gets every photo of photos-13 right"
    assert (y1 - best) / (y1 - y0) * view.height() >= 6, "the dot (radius 6 px) is cut at the top"


def test_each_models_top5_is_readable_in_the_detail_at_1280(bench, qtbot):
    _screen(qtbot, bench, SIZES[0])
    detail = _grace_hopper(qtbot, bench)
    from PySide6.QtWidgets import QTableView

    tables = [t for t in detail.tables.findChildren(QTableView) if t.isVisible()]
    assert len(tables) == 2
    for table in tables:
        metrics = table.fontMetrics()
        assert table.columnWidth(2) >= metrics.horizontalAdvance("✓ military uniform"), table.columnWidth(2)
        assert all(table.rowHeight(r) <= metrics.height() + 10 for r in range(5))  # one line per class
        assert table.height() <= table.horizontalHeader().height() + 5 * table.rowHeight(0) + 4  # no blank band
    boxes = [t.parentWidget() for t in tables]
    viewport = detail.tables.parentWidget()
    assert all(_bottom_in(box, viewport) <= viewport.height() for box in boxes), "both models without scrolling"


def test_a_mistake_shows_each_models_gradcam(bench, qtbot):
    _screen(qtbot, bench, SIZES[0])
    detail = _grace_hopper(qtbot, bench)
    assert set(detail.maps) == {LITE0, LITE1}
    qtbot.waitUntil(lambda: all(not label.pixmap().isNull() for label in detail.maps.values()), timeout=60_000)
    for label in detail.maps.values():
        assert label.isVisible() and label.height() >= 100 and label.width() >= 100, label.geometry()
    for width, height in SIZES:
        _screen(qtbot, bench, (width, height))
        save_screenshot(bench, f"bench-fit-images-mistake-{width}x{height}")


def test_names_are_cut_in_the_middle_and_lists_are_wide(bench, qtbot, tmp_path):
    _screen(qtbot, bench, SIZES[0])
    dashboard = bench.dashboard
    dashboard.setCurrentIndex(dashboard.images_tab)
    option = QStyleOptionViewItem()
    images = dashboard.images
    images.itemDelegateForColumn(0).initStyleOption(option, dashboard.images_filter.index(0, 0))
    assert option.textElideMode == Qt.TextElideMode.ElideMiddle  # granny_smith_0 and _1 told apart
    truth = dashboard.truth_combo
    widest = max(truth.view().fontMetrics().horizontalAdvance(truth.itemText(i)) for i in range(truth.count()))
    assert truth.view().minimumWidth() >= widest
    dashboard.filter_images(truth=652)  # as a click on a confusion sets it
    assert truth.currentText() == "652 military uniform" and truth.lineEdit().cursorPosition() == 0
    assert [dashboard.wrong_combo.itemText(i) for i in range(dashboard.wrong_combo.count())] == ["any", "lite0",
                                                                                                  "lite1"]
    folder = str(tmp_path / "home" / "cnnviewer-benchmarks" / ("photos-13-20250101-120000" + "-x" * 30))
    bench._say(f"Done in 13 s; report in {folder}")
    shown = bench.progress_text.shown_text()
    assert "…" in shown and shown.endswith(folder[-8:]) and shown.startswith("Done in 13 s")


def test_progress_stays_under_100_while_the_last_model_measures_latency(bench, qtbot):
    text = "measuring latency (20 runs at batch 1)"
    bench._on_progress(Progress(model="efficientnet_lite2", model_number=3, models=3, done=13, total=13, text=text))
    assert bench.progress.value() < bench.progress.maximum()
    assert "measuring latency" in bench.progress_text.text()
    for width, height in SIZES:
        _screen(qtbot, bench, (width, height))
        save_screenshot(bench, f"bench-fit-running-{width}x{height}")


def test_the_detail_clears_when_its_row_is_filtered_out(bench, qtbot):
    detail = _grace_hopper(qtbot, bench)
    dashboard = bench.dashboard
    dashboard.filter_images(truth=652)
    assert detail.row is not None and detail.row.file.endswith("grace_hopper.jpg")  # still listed: kept
    dashboard.filter_images(truth=296)  # ice bear only
    assert detail.row is None and detail.picture.text() == detail.PLACEHOLDER and not detail.shown


def test_open_report_folder_says_when_no_file_manager_opens(bench, qtbot, tmp_path, monkeypatch, photos_13_run):
    if QGuiApplication.platformName() != "offscreen":
        pytest.skip("only the offscreen platform is sure to have no file manager")
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))  # no xdg-open either
    run = tmp_path / "run"
    written = write_all(photos_13_run[0], run)
    bench.open_report(str(written["json"]))
    qtbot.waitUntil(lambda: bench.report_folder() == str(run), timeout=10_000)
    assert bench.open_report_folder() is False
    said = bench.progress_text.text()
    assert said.startswith("No file manager could be opened") and os.fspath(run) in said
