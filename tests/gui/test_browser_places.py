"""The first minute: where the browser opens, the Places row, the sample photos and the right-click menus."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, QPoint, QTimer, QUrl, Slot
from PySide6.QtGui import QContextMenuEvent, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QApplication, QMenu

from cnnviewer.core.paths import sample_photos
from cnnviewer.gui.browser import RECENT_KEY, FileBrowser, samples_folder
from cnnviewer.gui.context_menus import prediction_menu
from tests.helpers import PHOTOS_13, save_screenshot, wait_for_outcome

SAMPLES = str(Path(samples_folder() or "resources/samples"))
COFFEE = str(Path(SAMPLES) / "coffee.jpg")


def _home() -> Path:
    return Path(os.environ["HOME"])


def _action(menu: QMenu, text: str):
    found = [a for a in menu.actions() if a.text().replace("&", "") == text]
    assert found, [a.text() for a in menu.actions()]
    return found[0]


def _top_level_names(browser: FileBrowser, qtbot) -> set[str]:
    root = browser.tree.rootIndex()
    qtbot.waitUntil(lambda: not browser.model.canFetchMore(root), timeout=10_000)
    return {browser.model.index(row, 0, root).data() for row in range(browser.model.rowCount(root))}


def _right_click(qtbot, widget, position: QPoint) -> list[str]:
    """Right-click ``widget`` at ``position`` as a user does; the texts of the menu that opens (then closed)."""
    seen: list[str] = []

    def read_and_close() -> None:
        menu = QApplication.activePopupWidget()
        if isinstance(menu, QMenu):
            seen.extend(a.text() for a in menu.actions() if not a.isSeparator())
            menu.close()

    QTimer.singleShot(200, read_and_close)
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, position, widget.mapToGlobal(position))
    QApplication.sendEvent(widget, event)
    qtbot.waitUntil(lambda: bool(seen), timeout=5_000)
    return seen


# -- where the first start opens --------------------------------------------------------------


def test_first_start_opens_pictures_with_the_tree_rooted_at_home(make_window):
    home = _home()
    (home / "Pictures").mkdir(parents=True)
    (home / "Documents").mkdir()
    window = make_window()
    assert window.browser.folder == str(home / "Pictures")
    assert window.browser.tree_root() == str(home)


def test_first_start_without_pictures_shows_home_and_never_the_whole_file_system(make_window, qtbot):
    home = _home()
    (home / "Downloads").mkdir(parents=True)
    window = make_window()
    assert window.browser.folder == str(home)
    assert window.browser.tree_root() == str(home)
    names = _top_level_names(window.browser, qtbot)
    assert "Downloads" in names and not names & {"usr", "etc", "bin", "proc"}, names
    save_screenshot(window, "20-first-start-home")


def test_a_folder_outside_home_roots_the_tree_at_its_parent(qtbot):
    browser = FileBrowser()
    qtbot.addWidget(browser)
    assert browser.go_to(str(PHOTOS_13))
    assert browser.tree_root() == str(PHOTOS_13.parent)
    assert browser.go_to(str(PHOTOS_13 / "polar_bear.jpg"))  # already under the root: the tree stays put
    assert browser.tree_root() == str(PHOTOS_13.parent)
    assert browser.selected_path() == str(PHOTOS_13 / "polar_bear.jpg")


# -- the Places row ---------------------------------------------------------------------------


def test_places_row_offers_home_pictures_desktop_samples_and_recent(qtbot):
    home = _home()
    for name in ("Pictures", "Desktop"):
        (home / name).mkdir(parents=True)
    browser = FileBrowser()
    qtbot.addWidget(browser)
    assert list(browser.place_buttons) == ["Home", "Pictures", "Desktop", "Samples"]
    browser.place_buttons["Desktop"].click()
    assert browser.folder == str(home / "Desktop")
    browser.place_buttons["Samples"].click()
    assert browser.folder == SAMPLES
    browser.place_buttons["Home"].click()
    assert browser.folder == str(home)

    menu = browser.recent_button.menu()
    menu.aboutToShow.emit()
    assert [a.text() for a in menu.actions()] == [str(home), SAMPLES, str(home / "Desktop")]
    _action(menu, str(home / "Desktop")).trigger()
    assert browser.folder == str(home / "Desktop")


def test_places_leave_out_folders_that_do_not_exist(qtbot):
    browser = FileBrowser()
    qtbot.addWidget(browser)
    assert list(browser.place_buttons) == ["Home", "Samples"]
    menu = browser.recent_button.menu()
    menu.aboutToShow.emit()
    assert [a.text() for a in menu.actions()] == ["No recent folders"] and not menu.actions()[0].isEnabled()


def test_recent_folders_survive_a_restart_and_a_bad_entry_is_dropped(make_window, tmp_path):
    kept, gone = tmp_path / "kept & co", tmp_path / "gone"
    kept.mkdir()
    gone.mkdir()
    window = make_window()
    window.browser.go_to(str(gone))
    window.browser.go_to(str(kept))
    window.close()
    shutil.rmtree(gone)
    again = make_window()
    assert str(kept) in again.browser.recent_folders and str(gone) not in again.browser.recent_folders
    menu = again.browser.recent_button.menu()
    menu.aboutToShow.emit()
    assert str(kept).replace("&", "&&") in [a.text() for a in menu.actions()]  # a name, not a shortcut marker
    again.close()

    again.settings.setValue(RECENT_KEY, 42)
    again.settings.sync()
    third = make_window()
    assert third.browser.recent_folders == [third.browser.folder]  # only where it opened


# -- the sample photos ------------------------------------------------------------------------


def test_file_menu_opens_the_sample_photos(make_window, qtbot):
    window = make_window()
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    _action(file_menu, "Open sample photos").trigger()
    assert window.browser.folder == SAMPLES
    first = str(sample_photos()[0])
    assert window.browser.selected_path() == first and window.current_path == first
    assert window.browser.strip.count() == len(sample_photos()) >= 3
    qtbot.waitUntil(window.preview.view.has_image, timeout=20_000)
    save_screenshot(window, "21-sample-photos")


def test_the_empty_predictions_panel_points_to_the_samples(make_window):
    window = make_window()
    title = window.predictions.title
    assert 'href="samples"' in title.text() and "sample photos" in title.text()
    title.linkActivated.emit("samples")  # what a click on the link sends
    assert window.browser.folder == SAMPLES


# -- right-click on an image ------------------------------------------------------------------


def test_right_click_on_an_image_offers_its_actions_and_classify_works(make_window, qtbot):
    window = make_window()
    browser = window.browser
    browser.go_to(COFFEE)
    index = browser.model.index(COFFEE)
    qtbot.waitUntil(lambda: browser.tree.visualRect(index).isValid(), timeout=10_000)
    texts = _right_click(qtbot, browser.tree.viewport(), browser.tree.visualRect(index).center())
    assert texts == ["Classify", "Grad-CAM", "Compare models…", "Copy path", "Open containing folder"]
    strip_item = browser.strip.visualItemRect(browser.strip.item(1))
    assert _right_click(qtbot, browser.strip.viewport(), strip_item.center()) == texts

    _action(browser.image_menu(COFFEE), "Classify").trigger()
    outcome = wait_for_outcome(qtbot, window, COFFEE)
    assert outcome.classification.predictions[0].name == "espresso"


def test_image_menu_grad_cam_compare_copy_path_and_open_folder(make_window, qtbot):
    window = make_window()
    browser = window.browser
    _action(browser.image_menu(COFFEE), "Grad-CAM").trigger()
    wait_for_outcome(qtbot, window, COFFEE)
    assert window.explain_action.isChecked()
    qtbot.waitUntil(window.preview.view.heat_visible, timeout=60_000)

    _action(browser.image_menu(COFFEE), "Copy path").trigger()
    assert QGuiApplication.clipboard().text() == COFFEE

    class FileManager(QObject):
        opened: list[str] = []

        @Slot(QUrl)
        def show(self, url: QUrl) -> None:
            self.opened.append(url.toLocalFile())

    file_manager = FileManager()
    QDesktopServices.setUrlHandler("file", file_manager, "show")
    try:
        _action(browser.image_menu(COFFEE), "Open containing folder").trigger()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert FileManager.opened == [SAMPLES]

    chelsea = str(Path(SAMPLES) / "chelsea.jpg")
    _action(browser.image_menu(chelsea), "Compare models…").trigger()
    assert window.current_path == chelsea and window.compare_dialog is not None
    assert window.compare_dialog.isVisible()
    window.compare_dialog.close()


# -- right-click on a prediction --------------------------------------------------------------


@pytest.fixture
def classified_coffee(make_window, qtbot):
    window = make_window()
    window.open_path(COFFEE)
    wait_for_outcome(qtbot, window, COFFEE)
    return window


def test_right_click_on_a_prediction_copies_it(classified_coffee, qtbot):
    window = classified_coffee
    table, model = window.predictions.table, window.predictions.model
    second = model.index(1, 2)
    assert _right_click(qtbot, table.viewport(), table.visualRect(second).center()) == ["Copy", "Copy all predictions"]
    top = window.last_outcome.classification.predictions
    _action(prediction_menu(table, second), "Copy").trigger()
    assert QGuiApplication.clipboard().text() == f"2\t{top[1].index}\t{top[1].name}\t{top[1].probability * 100:.2f} %"

    table.selectRow(0)
    table.selectionModel().select(model.index(2, 0), table.selectionModel().SelectionFlag.Select
                                  | table.selectionModel().SelectionFlag.Rows)
    _action(prediction_menu(table, model.index(2, 1)), "Copy").trigger()
    assert [line.split("\t")[2] for line in QGuiApplication.clipboard().text().splitlines()] == [top[0].name,
                                                                                                top[2].name]
    _action(prediction_menu(table, model.index(0, 0)), "Copy all predictions").trigger()
    assert len(QGuiApplication.clipboard().text().splitlines()) == len(top) == 5
    assert prediction_menu(table, model.index(-1, -1)) is None  # below the rows: no menu
