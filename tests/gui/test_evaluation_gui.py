"""The benchmark window's evaluation: Images filters, the Classes and Confusions tabs, the true class marked,
readable cells, a row opened in the main window and back, and the report folder."""

from __future__ import annotations

import shutil
from typing import Any

from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QFont, QIcon, QTextDocumentFragment

from cnnviewer.core.benchmark import BenchmarkReport, Progress
from cnnviewer.core.report import write_all
from cnnviewer.gui.dashboard import GOOD, SORT_ROLE, ImagesFilter
from tests.helpers import PHOTOS_13, save_screenshot

LITE0, LITE1 = "efficientnet_lite0", "efficientnet_lite1"
SIZES = ((1280, 800), (1920, 1080))


def _plain(tip: str) -> str:
    return QTextDocumentFragment.fromHtml(tip).toPlainText()


def _laid_out(qtbot: Any, bench: Any, size: tuple[int, int]) -> None:
    bench.resize(*size)
    bench.show()
    qtbot.waitExposed(bench)
    qtbot.waitUntil(lambda: bench.width() == size[0] and bench.height() == size[1], timeout=10_000)


def test_filters_change_the_rows_and_the_count(bench, qtbot):
    dashboard = bench.dashboard
    report: BenchmarkReport = dashboard.images_model.report
    dashboard.setCurrentIndex(dashboard.images_tab)
    assert dashboard.count_label.text() == "13 of 13 images"
    # The true-class combo completes from anywhere in a name, whatever the case.
    completer = dashboard.truth_combo.completer()
    completer.setCompletionPrefix("SMITH")
    assert completer.completionCount() == 1 and completer.currentCompletion() == "948 Granny Smith"
    dashboard.truth_combo.lineEdit().setText("948 Granny Smith")
    qtbot.keyClick(dashboard.truth_combo.lineEdit(), Qt.Key.Key_Return)
    assert dashboard.truth_combo.currentData() == 948
    assert dashboard.images_filter.rowCount() == 2 and dashboard.count_label.text() == "2 of 13 images"
    shown = {dashboard.images_filter.index(r, 0).data() for r in range(2)}
    assert shown == {"granny_smith_0.jpg", "granny_smith_1.jpg"}
    dashboard.truth_combo.setCurrentIndex(0)  # "any"
    assert dashboard.images_filter.rowCount() == 13

    wrong = [r for r in report.images if r.top5[LITE0][0] != r.truth]
    assert wrong, "Grace Hopper is no military uniform to lite0"
    dashboard.wrong_combo.setCurrentIndex(dashboard.wrong_combo.findData(LITE0))
    assert dashboard.images_filter.rowCount() == len(wrong)
    assert dashboard.count_label.text() == f"{len(wrong)} of 13 images"
    # lite1 right and lite0 wrong: what one model got that the other missed.
    dashboard.right_combo.setCurrentIndex(dashboard.right_combo.findData(LITE1))
    expected = [r.file for r in report.images if r.top5[LITE0][0] != r.truth and r.top5[LITE1][0] == r.truth]
    assert [dashboard.images_filter.index(i, 0).data(Qt.ItemDataRole.UserRole).file
            for i in range(dashboard.images_filter.rowCount())] == expected
    dashboard.filter_images()
    # Predicted class: lite0's top-1 of the first mistake, by lite0 alone or by any model.
    predicted = wrong[0].top5[LITE0][0]
    dashboard.predicted_combo.setCurrentIndex(dashboard.predicted_combo.findData(predicted))
    by_any = [r.file for r in report.images if any(top[0] == predicted for top in r.top5.values())]
    assert dashboard.images_filter.rowCount() == len(by_any) >= 1
    dashboard.predicted_by_combo.setCurrentIndex(dashboard.predicted_by_combo.findData(LITE0))
    by_lite0 = [r for r in report.images if r.top5[LITE0][0] == predicted]
    assert dashboard.images_filter.rowCount() == len(by_lite0)
    # The filters narrow the mode's rows: "Mistakes" and a true class together.
    dashboard.filter_images(truth=954)
    dashboard.filter_combo.setCurrentText("Mistakes")
    assert dashboard.images_filter.rowCount() == 0 and dashboard.count_label.text() == "0 of 13 images"
    assert ImagesFilter.MODES[0] == "All images"


def test_the_classes_table_sorts_by_a_models_top1(bench, qtbot):
    dashboard = bench.dashboard
    _laid_out(qtbot, bench, SIZES[0])
    dashboard.setCurrentIndex(dashboard.classes_tab)
    qtbot.waitUntil(lambda: dashboard.classes_proxy.rowCount() == 11, timeout=10_000)  # 13 photos, 11 classes
    proxy = dashboard.classes_proxy
    assert [proxy.headerData(c, Qt.Orientation.Horizontal) for c in range(proxy.columnCount())] == [
        "Class", "Name", "Images", "lite0 top-1", "lite0 top-5", "lite1 top-1", "lite1 top-5"]
    assert [proxy.index(r, 0).data() for r in range(3)] == ["6", "107", "294"]  # by class index at first
    granny = next(r for r in range(11) if proxy.index(r, 0).data() == "948")
    assert proxy.index(granny, 2).data() == "2"
    header = dashboard.classes.horizontalHeader()
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=_section_centre(header, 3))
    assert header.sortIndicatorSection() == 3
    values = [proxy.index(r, 3).data(SORT_ROLE) for r in range(11)]
    assert len(set(values)) > 1 and values in (sorted(values), sorted(values, reverse=True))
    order = header.sortIndicatorOrder()
    lowest = proxy.index(0 if order == Qt.SortOrder.AscendingOrder else 10, 0).data()
    assert lowest == "652"  # Grace Hopper's military uniform: the one class lite0 got wrong
    assert proxy.index(0 if order == Qt.SortOrder.AscendingOrder else 10, 3).data() == "0 % (0/1)"
    for width, height in SIZES:
        _laid_out(qtbot, bench, (width, height))
        save_screenshot(bench, f"evaluation-classes-{width}x{height}")
    # Double-clicking a class shows its images.
    row = next(r for r in range(11) if proxy.index(r, 0).data() == "948")
    rect = dashboard.classes.visualRect(proxy.index(row, 1))
    qtbot.mouseClick(dashboard.classes.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(dashboard.classes.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dashboard.currentIndex() == dashboard.images_tab and dashboard.images_filter.rowCount() == 2


def _section_centre(header: Any, section: int) -> QPoint:
    return QPoint(header.sectionViewportPosition(section) + header.sectionSize(section) // 2, header.height() // 2)


def test_clicking_a_confusion_filters_the_images(bench, qtbot):
    dashboard = bench.dashboard
    report: BenchmarkReport = dashboard.images_model.report
    dashboard.setCurrentIndex(dashboard.confusions_tab)
    view = dashboard.confusions
    qtbot.waitUntil(lambda: len(view.pairs) > 0, timeout=10_000)
    assert view.model_combo.currentText() == LITE0
    pair = view.pairs[0]
    item = view.list.item(0)
    text = view.list.itemWidget(item).findChildren(type(dashboard.count_label))[0].text()
    assert text.startswith(f"{pair.truth} {pair.truth_name}  →  {pair.predicted} {pair.predicted_name}")
    assert text.endswith(f"×{pair.count}")
    # Its examples' thumbnails arrive through the thumbnails job.
    pictures = view._pictures[pair.examples[0]]
    qtbot.waitUntil(lambda: pictures[0].pixmap() is not None and not pictures[0].pixmap().isNull(), timeout=20_000)
    for width, height in SIZES:
        _laid_out(qtbot, bench, (width, height))
        save_screenshot(bench, f"evaluation-confusions-{width}x{height}")
    qtbot.mouseClick(view.list.viewport(), Qt.MouseButton.LeftButton, pos=view.list.visualItemRect(item).center())
    assert dashboard.currentIndex() == dashboard.images_tab
    rows = [dashboard.images_filter.index(i, 0).data(Qt.ItemDataRole.UserRole)
            for i in range(dashboard.images_filter.rowCount())]
    expected = [r.file for r in report.images if r.truth == pair.truth and r.top5[LITE0][0] == pair.predicted]
    assert [r.file for r in rows] == expected and len(rows) == pair.count
    assert dashboard.count_label.text() == f"{pair.count} of 13 images"
    # Another model: its own pairs.
    view.model_combo.setCurrentText(LITE1)
    assert all(p.count == sum(1 for r in report.images if r.truth == p.truth and r.top5[LITE1][0] == p.predicted)
               for p in view.pairs)


def test_a_double_clicked_row_opens_in_the_main_window_and_back(bench, qtbot):
    window = bench.main
    dashboard = bench.dashboard
    dashboard.setCurrentIndex(dashboard.images_tab)
    index = dashboard.images_filter.index(0, 1)
    path = index.data(Qt.ItemDataRole.UserRole).file
    centre = dashboard.images.visualRect(index).center()
    qtbot.mouseClick(dashboard.images.viewport(), Qt.MouseButton.LeftButton, pos=centre)  # a double-click's first
    with qtbot.waitSignal(bench.image_opened, timeout=10_000) as opened:
        qtbot.mouseDClick(dashboard.images.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert opened.args == [path]
    qtbot.waitUntil(lambda: window.current_path == path, timeout=10_000)
    # Enter opens the current row too.
    second = dashboard.images_filter.index(2, 1)
    dashboard.images.setCurrentIndex(second)
    dashboard.images.setFocus()
    with qtbot.waitSignal(bench.image_opened, timeout=10_000) as opened:
        qtbot.keyClick(dashboard.images, Qt.Key.Key_Return)
    assert opened.args == [second.data(Qt.ItemDataRole.UserRole).file]
    qtbot.waitUntil(lambda: window.current_path == opened.args[0], timeout=10_000)
    # View > Benchmark window (Ctrl+Shift+B) brings it back.
    assert window.benchmark_window_action.shortcut().toString() == "Ctrl+Shift+B"
    others = [a for a in window.findChildren(type(window.benchmark_window_action))
              if a is not window.benchmark_window_action and a.shortcut().toString() == "Ctrl+Shift+B"]
    assert others == []
    bench.hide()
    window.benchmark_window_action.trigger()
    assert bench.isVisible()


def test_the_detail_marks_the_true_class_in_each_top5(bench, qtbot):
    dashboard = bench.dashboard
    report: BenchmarkReport = dashboard.images_model.report
    right = next(r for r in report.images if r.file.endswith("banana_0.jpg"))
    dashboard.detail.show_row(right, None)
    for model in (LITE0, LITE1):
        table = dashboard.detail.truth_models[model]
        assert table.index(0, 2).data() == "✓ banana"
        assert isinstance(table.index(0, 2).data(Qt.ItemDataRole.FontRole), QFont)
        assert table.index(0, 2).data(Qt.ItemDataRole.FontRole).bold()
        assert table.index(0, 1).data(Qt.ItemDataRole.ForegroundRole).color() == GOOD
        assert table.index(1, 2).data(Qt.ItemDataRole.FontRole) is None and "✓" not in table.index(1, 2).data()
    # A miss: the mark sits where the true class is in the top-5, or a line says it is not there.
    hopper = next(r for r in report.images if r.file.endswith("grace_hopper.jpg"))
    dashboard.detail.show_row(hopper, None)
    for model in (LITE0, LITE1):
        table = dashboard.detail.truth_models[model]
        marked = [r for r in range(5) if table.index(r, 2).data().startswith("✓ ")]
        assert marked == ([hopper.top5[model].index(652)] if 652 in hopper.top5[model] else [])
        notes = [label.text() for label in table.parent().findChildren(type(dashboard.count_label))
                 if "not in this top-5" in label.text()]
        assert len(notes) == (0 if marked else 1)
    titles = [box.title() for box in dashboard.detail.tables.findChildren(type(table.parent())) if not box.isHidden()]
    assert titles[0] == f"{LITE0} ✗ wrong"  # lite0 calls her a mortarboard
    assert titles == [f"{m} {'✓ right' if hopper.top5[m][0] == 652 else '✗ wrong'}" for m in (LITE0, LITE1)]


def test_no_cut_cells_at_1280x800(bench, qtbot):
    dashboard = bench.dashboard
    dashboard.setCurrentIndex(dashboard.images_tab)
    qtbot.waitUntil(lambda: not (dashboard.images_model.index(0, 0).data(1) or QIcon()).isNull(), timeout=20_000)
    for width, height in SIZES:
        _laid_out(qtbot, bench, (width, height))
        view = dashboard.images
        # The image, its true class and both models' columns are in view, not behind the scroll bar.
        last = dashboard.images_model.columnCount() - 1
        assert view.columnViewportPosition(last) + view.columnWidth(last) <= view.viewport().width()
        metrics = view.fontMetrics()
        assert view.textElideMode() == Qt.TextElideMode.ElideRight
        cut = []
        for row in range(dashboard.images_filter.rowCount()):
            for column in range(last + 1):
                index = dashboard.images_filter.index(row, column)
                text = index.data()
                room = view.columnWidth(column) - 12 - (68 if column == 0 and index.data(1) is not None else 0)
                if metrics.horizontalAdvance(text) > room:
                    cut.append(text)
                    assert metrics.elidedText(text, Qt.TextElideMode.ElideRight, room).endswith("…")
                    assert text in _plain(index.data(Qt.ItemDataRole.ToolTipRole)), text
        header = view.horizontalHeader()
        for column in range(last + 1):
            title = dashboard.images_filter.headerData(column, Qt.Orientation.Horizontal)
            assert header.fontMetrics().horizontalAdvance(title) <= view.columnWidth(column) - 12, title
        # The placeholder is wrapped, never cut.
        picture = dashboard.detail.picture
        room = picture.contentsRect()
        if picture.wordWrap():
            needed = picture.fontMetrics().boundingRect(room, int(Qt.TextFlag.TextWordWrap), picture.text())
            assert needed.width() <= room.width() and needed.height() <= room.height()
        else:
            assert picture.fontMetrics().horizontalAdvance(picture.text()) <= room.width()
        save_screenshot(bench, f"evaluation-images-{width}x{height}")
    assert cut, "the narrow model columns elide some class names (whole in the tooltip)"


def test_open_report_folder_names_the_folder_of_the_report(make_window, qtbot, tmp_path, photos_13_run):
    window = make_window()
    bench = window.open_benchmark(str(PHOTOS_13))
    assert bench.report_folder() is None and not bench.open_folder_button.isEnabled()
    assert bench.report_folder_url() is None and bench.open_report_folder() is False
    run = tmp_path / "run"
    written = write_all(photos_13_run[0], run)
    bench.open_report(str(written["json"]))
    qtbot.waitUntil(lambda: bench.dashboard.images_model.rowCount() == 13, timeout=10_000)
    assert bench.report_folder() == str(run) and bench.open_folder_button.isEnabled()
    assert bench.report_folder_url() == QUrl.fromLocalFile(str(run))
    shutil.rmtree(run)  # a folder deleted since is no folder to open
    assert bench.report_folder() is None and bench.report_folder_url() is None


def test_progress_is_read_from_the_progress_value(bench):
    # A model key that looks like the old "(n/N): " text: the turn comes from the value, not the words.
    bench._on_progress(Progress(model="odd (9/9): name", model_number=2, models=3, done=5, total=10,
                                text="odd (9/9): name"))
    assert bench._turn == (2, 3)
    assert bench.progress.value() == 500
    assert bench.progress_text.text().startswith("odd (9/9): name (2/3): 5/10")


def test_a_wide_window_widens_every_column_not_the_last_one(bench, qtbot):
    """At 1900 px the last model's column took all the spare room while file names and the other models'
    answers stayed cut ("gran….jpg" for both granny_smith photos)."""
    dashboard = bench.dashboard
    dashboard.setCurrentIndex(dashboard.images_tab)
    _laid_out(qtbot, bench, (1920, 1080))
    view = dashboard.images
    models = range(2, dashboard.images_model.columnCount())
    assert view.columnWidth(0) == 200 and view.columnWidth(1) == 160
    assert len({view.columnWidth(column) for column in models}) == 1  # every model the same
    assert view.columnWidth(2) > dashboard.MODEL_COLUMN
    last = dashboard.images_model.columnCount() - 1
    assert view.columnViewportPosition(last) + view.columnWidth(last) <= view.viewport().width()
    names = [dashboard.images_filter.index(row, 0).data() for row in range(dashboard.images_filter.rowCount())]
    granny = [name for name in names if name.startswith("granny")]
    room = view.columnWidth(0) - 12 - 68
    assert all(view.fontMetrics().horizontalAdvance(name) <= room for name in granny), granny
