"""One current image everywhere, the image-viewer keys, the docks, the path bar, the thumbnails and Compare."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QToolBar

from cnnviewer.gui import context_menus
from cnnviewer.workers import jobs
from tests.helpers import PHOTOS_13, save_screenshot, wait_for_outcome

SIZES = ((1280, 800), (1920, 1080))


def shown(qtbot: Any, window: Any, width: int = 1280, height: int = 800) -> None:
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: window.width() == width, timeout=10_000)


def focused(qtbot: Any, window: Any, widget: Any) -> None:
    """Give ``widget`` the keyboard focus in an active window, so its shortcuts apply."""
    window.activateWindow()
    widget.setFocus()
    qtbot.waitUntil(lambda: widget.hasFocus(), timeout=10_000)


@pytest.fixture
def photos(tmp_path: Path) -> list[str]:
    """Three photos of a folder of their own, in name order."""
    folder = tmp_path / "photos"
    folder.mkdir()
    names = []
    for source, name in (("polar_bear.jpg", "a_polar.jpg"), ("banana_0.jpg", "b_banana.jpg"),
                         ("coral.jpg", "c_coral.jpg")):
        shutil.copyfile(PHOTOS_13 / source, folder / name)
        names.append(str(folder / name))
    return names


@pytest.fixture
def compare_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path of each compare_job run (the real job runs)."""
    runs: list[str] = []
    real = jobs.compare_job

    def counted(token: Any, report: Any, cache: Any, path: str, *args: Any) -> Any:
        runs.append(path)
        yield from real(token, report, cache, path, *args)

    monkeypatch.setattr(jobs, "compare_job", counted)
    return runs


# -- one current image: Compare follows it ------------------------------------------------------


def test_compare_runs_the_image_selected_while_it_is_open(make_window, qtbot, photos, compare_runs):
    window = make_window()
    shown(qtbot, window)
    polar, banana = photos[0], photos[1]
    window.open_path(polar)
    wait_for_outcome(qtbot, window, polar)
    window.open_compare()
    dialog = window.compare_dialog
    qtbot.waitExposed(dialog)
    qtbot.waitUntil(lambda: dialog._done == dialog._total == 3, timeout=120_000)
    list_width = dialog.splitter.sizes()[0]
    # Three columns fit at the dialog's first size: no scrolling sideways, nothing cut at the right.
    scroll = dialog.splitter.widget(1)
    qtbot.waitUntil(lambda: scroll.horizontalScrollBar().maximum() == 0, timeout=10_000)
    for box, _, _ in dialog.columns.values():
        assert box.geometry().right() <= scroll.viewport().width()
    assert dialog.splitter.sizes()[0] == list_width  # results did not take the list's room
    save_screenshot(dialog, "viewer-compare-three-default-size")

    with qtbot.waitSignal(window.current_changed, timeout=10_000) as changed:
        window.browser.go_to(banana)
    assert changed.args == [banana]
    assert dialog.path == banana and "b_banana.jpg" in dialog.image_label.text()
    assert dialog.columns == {}  # the polar bear's columns went
    for row in range(1, dialog.models.count()):  # one model is enough to see which image runs
        dialog.models.item(row).setCheckState(Qt.CheckState.Unchecked)
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog._done == dialog._total == 1, timeout=120_000)
    assert compare_runs == [polar, banana]
    assert all(predictions for predictions in dialog.results_by_model().values())

    dialog.resize(1920, 1080)
    qtbot.waitUntil(lambda: dialog.width() == 1920, timeout=10_000)
    assert dialog.splitter.sizes()[0] <= list_width  # the columns take the new room, not the list
    save_screenshot(dialog, "viewer-compare-three-1920x1080")
    for width, height in SIZES:
        shown(qtbot, window, width, height)
        save_screenshot(window, f"viewer-compare-main-{width}x{height}")
    dialog.close()


def test_the_grad_cam_maps_choice_is_remembered(make_window, qtbot):
    from cnnviewer.gui.compare import CompareDialog

    window = make_window(wait_catalog=False)
    first = CompareDialog(window, window.runner)
    assert not first.maps_box.isChecked()
    first.maps_box.setChecked(True)
    first.close()
    assert CompareDialog(window, window.runner).maps_box.isChecked()


# -- docks and splitters ------------------------------------------------------------------------


def test_splitter_handles_are_wide_enough_to_grab(make_window, qtbot):
    from cnnviewer.gui.compare import CompareDialog

    window = make_window(wait_catalog=False)
    assert window.centralWidget().handleWidth() >= 5
    assert CompareDialog(window, window.runner).splitter.handleWidth() >= 5


def test_the_panels_get_their_width_back_after_the_window_was_small(make_window, qtbot):
    window = make_window()  # the catalog loaded: the model picker's width is in the window's minimum
    shown(qtbot, window, 1600, 1000)
    # It started fitted to the small offscreen screen: the panels get their first widths once there is room.
    qtbot.waitUntil(lambda: min(window.browser_dock.width(), window.predictions_dock.width()) >= 250, timeout=10_000)
    wanted = (window.browser_dock.width(), window.predictions_dock.width())
    window.resize(600, 400)  # as small as the window goes: Qt takes the room from the panels
    qtbot.waitUntil(lambda: window.predictions_dock.width() < wanted[1] - 50, timeout=10_000)
    window.resize(1600, 1000)
    qtbot.waitUntil(lambda: window.width() == 1600, timeout=10_000)
    qtbot.wait(50)
    assert abs(window.browser_dock.width() - wanted[0]) <= 8
    assert abs(window.predictions_dock.width() - wanted[1]) <= 8
    table = window.predictions.table
    assert table.horizontalHeader().length() <= table.viewport().width() + 2  # "# | Class | strawbe..." no more
    save_screenshot(window, "viewer-docks-after-small-then-large-1600x1000")


# -- the path bar and changing folder -----------------------------------------------------------


def test_a_missing_path_is_said_and_a_file_path_selects_the_file(make_window, qtbot, photos, tmp_path):
    window = make_window(wait_catalog=False)
    bar = window.browser.path_bar
    missing = str(tmp_path / "no-such-folder")
    for width, height in SIZES:
        shown(qtbot, window, width, height)
        bar.setText(missing)
        qtbot.keyClick(bar, Qt.Key.Key_Return)
        message = f"No such folder: {missing}"
        assert window.statusBar().currentMessage() == message
        assert window.browser.path_error == message and missing in bar.toolTip()
        assert "#c62828" in bar.styleSheet()
        assert window.browser._path_error_icon.isVisible()
        save_screenshot(window, f"viewer-path-bar-error-{width}x{height}")
        qtbot.keyClick(bar, Qt.Key.Key_Backspace)  # editing takes the frame away
        assert bar.styleSheet() == "" and not window.browser._path_error_icon.isVisible()

    bar.setText(photos[1])
    qtbot.keyClick(bar, Qt.Key.Key_Return)
    assert window.browser.folder == os.path.dirname(photos[1])
    assert window.current_path == photos[1] and window.browser.selected_path() == photos[1]


def test_another_folder_clears_the_old_preview_error_and_zoom(make_window, qtbot, photos, tmp_path):
    window = make_window(wait_catalog=False)
    shown(qtbot, window)
    broken = tmp_path / "broken" / "broken.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"\xff\xd8 not a JPEG at all")
    window.browser.go_to(str(broken))
    qtbot.waitUntil(lambda: "broken.jpg" in window.preview.placeholder.text()
                    and window.preview.placeholder.isVisible(), timeout=20_000)
    error = window.preview.placeholder.text()
    assert "broken.jpg" in window.statusBar().currentMessage()

    window.browser.go_to(os.path.dirname(photos[0]))
    assert window.preview.placeholder.text() != error and "broken" not in window.preview.placeholder.text()
    assert "broken.jpg" not in window.statusBar().currentMessage()
    assert window.current_path is None

    window.browser.go_to(photos[0])
    qtbot.waitUntil(lambda: window.preview.view.has_image(), timeout=20_000)
    assert window.preview.zoom_label.text()
    window.browser.go_to(str(broken.parent))
    assert not window.preview.view.has_image() and window.preview.zoom_label.text() == ""
    window.preview.show_message("Not an image.")  # a file that cannot be shown: no picture, no zoom
    assert window.preview.zoom_label.text() == ""  # "100 %" of no picture misled


def test_f5_shows_the_file_as_it_is_now(make_window, qtbot, tmp_path):
    window = make_window()
    shown(qtbot, window)
    path = tmp_path / "changing.png"
    Image.new("RGB", (64, 48), (200, 20, 20)).save(path)
    window.browser.go_to(str(path))
    qtbot.waitUntil(lambda: "64 × 48" in window.preview.facts.text(), timeout=20_000)
    Image.new("RGB", (80, 40), (20, 20, 200)).save(path)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # a coarse clock sees it too
    focused(qtbot, window, window.browser.tree)
    qtbot.keyClick(window.browser.tree, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: "80 × 40" in window.preview.facts.text(), timeout=20_000)
    assert window.preview.view._item.pixmap().toImage().pixelColor(5, 5).blue() > 150
    wait_for_outcome(qtbot, window, str(path))  # F5 classifies it too


# -- the viewer keys ----------------------------------------------------------------------------


def test_space_and_backspace_move_through_the_folder_and_wrap(make_window, qtbot, photos):
    window = make_window(wait_catalog=False)
    shown(qtbot, window)
    window.browser.go_to(photos[0])
    view = window.preview.view
    qtbot.waitUntil(lambda: view.has_image(), timeout=20_000)
    focused(qtbot, window, view)
    seen = []
    for _ in range(3):
        qtbot.keyClick(view, Qt.Key.Key_Space)
        seen.append(window.current_path)
    assert seen == [photos[1], photos[2], photos[0]]
    assert "back to the first" in window.statusBar().currentMessage()
    qtbot.keyClick(view, Qt.Key.Key_Backspace)
    assert window.current_path == photos[2]
    assert "round to the last" in window.statusBar().currentMessage()
    strip = window.browser.strip  # on the thumbnails too
    focused(qtbot, window, strip)
    qtbot.keyClick(strip, Qt.Key.Key_Backspace)
    assert window.current_path == photos[1]
    # In the file tree too, where the window starts with the focus...
    focused(qtbot, window, window.browser.tree)
    qtbot.keyClick(window.browser.tree, Qt.Key.Key_Space)
    assert window.current_path == photos[2]
    qtbot.keyClick(window.browser.tree, Qt.Key.Key_Backspace)
    assert window.current_path == photos[1]
    # ...but not in a text field, where they type.
    bar = window.browser.path_bar
    focused(qtbot, window, bar)
    bar.setText("/tmp/a")
    qtbot.keyClick(bar, Qt.Key.Key_Space)
    qtbot.keyClick(bar, Qt.Key.Key_Backspace)
    qtbot.keyClick(bar, Qt.Key.Key_Backspace)
    assert bar.text() == "/tmp/" and window.current_path == photos[1]


def test_stepping_through_a_folder_does_not_list_it_again(make_window, qtbot, photos, monkeypatch):
    """The folder is listed once when it is shown; a held Space on a folder of thousands (or a network
    share) must not scan it at every key press on the GUI thread."""
    from cnnviewer.gui import browser

    window = make_window(wait_catalog=False)
    shown(qtbot, window)
    window.browser.go_to(photos[0])
    qtbot.waitUntil(lambda: window.preview.view.has_image(), timeout=20_000)
    scans: list[str] = []
    real = browser.list_images
    monkeypatch.setattr(browser, "list_images", lambda folder: scans.append(folder) or real(folder))
    import cnnviewer.gui.main_window as main_window

    monkeypatch.setattr(main_window, "list_images", lambda folder: scans.append(folder) or real(folder))
    focused(qtbot, window, window.preview.view)
    for _ in range(6):
        qtbot.keyClick(window.preview.view, Qt.Key.Key_Space)
    assert window.current_path == photos[0] and scans == []


def test_f11_toggles_full_screen(make_window, qtbot):
    window = make_window(wait_catalog=False)
    qtbot.waitExposed(window)
    tree = window.browser.tree
    focused(qtbot, window, tree)
    qtbot.keyClick(tree, Qt.Key.Key_F11)
    assert window.windowState() & Qt.WindowState.WindowFullScreen and window.full_screen_action.isChecked()
    qtbot.keyClick(tree, Qt.Key.Key_F11)
    assert not window.windowState() & Qt.WindowState.WindowFullScreen
    window.set_full_screen(True)
    qtbot.keyClick(tree, Qt.Key.Key_Escape)
    assert not window.windowState() & Qt.WindowState.WindowFullScreen


def test_tab_shows_the_image_alone_and_back(make_window, qtbot, photos):
    window = make_window(wait_catalog=False)
    window.browser.go_to(photos[0])
    panels = (window.browser_dock, window.predictions_dock, window.menuBar(), window.statusBar(),
              *window.findChildren(QToolBar), window.browser.strip)
    view = window.preview.view
    for width, height in SIZES:
        shown(qtbot, window, width, height)
        qtbot.waitUntil(lambda: view.has_image(), timeout=20_000)
        focused(qtbot, window, view)
        qtbot.keyClick(view, Qt.Key.Key_Tab)
        assert not any(panel.isVisible() for panel in panels) and view.isVisible() and view.hasFocus()
        save_screenshot(window, f"viewer-image-alone-{width}x{height}")
        qtbot.keyClick(view, Qt.Key.Key_Tab)
        assert all(panel.isVisible() for panel in panels)
    qtbot.keyClick(view, Qt.Key.Key_Tab)
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert all(panel.isVisible() for panel in panels)

    # In a text field, and in the file tree, Tab moves the focus, as ever.
    for widget in (window.browser.path_bar, window.browser.tree):
        focused(qtbot, window, widget)
        qtbot.keyClick(widget, Qt.Key.Key_Tab)
        assert not widget.hasFocus() and all(panel.isVisible() for panel in panels), widget


def test_copy_predictions_as_text(make_window, qtbot, photos):
    window = make_window()
    shown(qtbot, window)
    window.open_path(photos[0])
    outcome = wait_for_outcome(qtbot, window, photos[0])
    focused(qtbot, window, window.preview.view)
    qtbot.keyClick(window.preview.view, Qt.Key.Key_C,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    lines = QGuiApplication.clipboard().text().split("\n")
    assert lines[:3] == [f"File: {photos[0]}", f"Model: {outcome.model}",
                         f"Run as: {outcome.way.label} on {outcome.device}"]
    predictions = outcome.classification.predictions
    assert lines[3:] == [f"{p.index}\t{p.name}\t{p.probability:.4f}" for p in predictions]
    assert lines[3].split("\t")[1] == "ice bear"

    # Ctrl+C in the predictions copies the selected rows as the table shows them (it copied one cell).
    table = window.predictions.table
    focused(qtbot, window, table)
    qtbot.keyClick(table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == context_menus.rows_text(table, list(range(len(predictions))))


class UrlCatcher(QObject):
    """Stands in for the desktop's viewer: Qt hands it the URLs openUrl is asked to open."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def take(self, url: QUrl) -> None:
        self.urls.append(url)


def test_open_with_system_viewer_hands_over_the_file(make_window, qtbot, photos):
    window = make_window(wait_catalog=False)
    window.browser.go_to(photos[2])
    catcher = UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "take")
    try:
        window.open_with_action.trigger()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert catcher.urls == [QUrl.fromLocalFile(photos[2])]


# -- the thumbnail strip ------------------------------------------------------------------------


def test_thumbnail_labels_sit_centred_under_their_thumbnails(make_window, qtbot, tmp_path):
    folder = tmp_path / "strip"
    folder.mkdir()
    names = ["a_very_long_file_name_that_cannot_fit_under_a_thumbnail.jpg", "b.jpg"]
    names += [f"photo_{n:02d}.jpg" for n in range(12)]
    sources = ["coral.jpg", "orange_1.jpg", "banana_0.jpg"]  # wide, tall and square photos
    for n, name in enumerate(names):
        shutil.copyfile(PHOTOS_13 / sources[n % 3], folder / name)
    window = make_window(wait_catalog=False)
    strip = window.browser.strip
    for width, height in SIZES:
        shown(qtbot, window, width, height)
        window.browser.go_to(str(folder))
        qtbot.waitUntil(lambda: window.browser.thumbnails_shown == len(names), timeout=30_000)
        viewport = strip.viewport()
        assert strip.horizontalScrollBar().maximum() > 0  # a scroll bar under the labels
        metrics = strip.fontMetrics()
        for row in range(strip.count()):
            item = strip.item(row)
            rect = strip.visualItemRect(item)
            if rect.left() > viewport.width():
                break
            assert rect.left() >= 0 and rect.bottom() < viewport.height(), (item.text(), rect, viewport.size())
            assert metrics.horizontalAdvance(item.text()) <= rect.width() - 8, item.text()
            assert item.textAlignment() & Qt.AlignmentFlag.AlignHCenter
        # Every icon is the same square, so a wide photo's label is not higher than a tall one's.
        sizes = {(icon.width(), icon.height()) for icon in
                 (strip.item(row).icon().actualSize(strip.iconSize()) for row in range(strip.count()))}
        assert sizes == {(strip.iconSize().width(), strip.iconSize().height())}, sizes
        first = strip.item(0)
        assert "…" in first.text() and names[0] in first.toolTip()
        save_screenshot(window, f"viewer-thumbnail-strip-{width}x{height}")
