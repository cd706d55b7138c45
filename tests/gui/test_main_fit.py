"""The main window and Compare on a small screen: the first size, the path bar's keys, Copy predictions, the narrowest
window, Compare's columns, and a faint Grad-CAM map on a white photo."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from PySide6.QtCore import QEvent, QMargins, QRect, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence

from cnnviewer.core.explain import _onto_image, heat_rgba, overlay
from cnnviewer.gui.main_window import FIRST_SIZE, fitted
from cnnviewer.gui.predictions import READABLE_NAME
from tests.helpers import PHOTOS_13, compare_after_classifying, save_screenshot, wait_for_outcome

SIZES = ((1280, 800), (1920, 1080))
BANANA = str(PHOTOS_13 / "banana_0.jpg")
BLACK_BEAR = str(PHOTOS_13 / "black_bear.jpg")
GRACE = str(PHOTOS_13 / "grace_hopper.jpg")


def shown(qtbot: Any, window: Any, width: int, height: int) -> None:
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: window.width() == width and window.height() == height, timeout=10_000)


def test_the_first_start_fits_the_screen_frame_and_all(make_window, qtbot):
    """At 1280x800 the window once sized itself 1280x800 below a 20 px panel, its frame not counted: the status
    bar's last 25 px were off the screen."""
    laptop, title_bar = QRect(0, 20, 1280, 780), QMargins(1, 25, 1, 1)  # a top panel; the window manager's frame
    placed = fitted(laptop, title_bar, FIRST_SIZE)
    assert laptop.contains(placed.marginsAdded(title_bar))
    assert placed.width() == 1280 - 2 and placed.height() == 780 - 26
    assert fitted(QRect(0, 0, 1920, 1080), title_bar, FIRST_SIZE).size() == FIRST_SIZE  # room: the size asked
    big = fitted(QRect(0, 0, 1920, 1080), title_bar, FIRST_SIZE).marginsAdded(title_bar)
    assert big.center() == QRect(0, 0, 1920, 1080).center()  # the window with its frame in the middle

    window = make_window(wait_catalog=False)
    qtbot.waitExposed(window)
    available = window.screen().availableGeometry()

    def on_screen(shown: Any) -> bool:
        """The frame inside the free area; only as wide as the window can be narrow where that is more."""
        frame = shown.frameGeometry()
        widest = max(available.width(), shown.minimumSizeHint().width() + frame.width() - shown.width())
        return (available.top() <= frame.top() and frame.bottom() <= available.bottom() and frame.width() <= widest
                and (frame.width() > available.width() or available.contains(frame)))

    qtbot.waitUntil(lambda: on_screen(window), timeout=10_000)
    # A layout saved on a bigger screen is brought back inside this one.
    window.setGeometry(QRect(available.x() + 100, available.y() + 100, available.width(), available.height()))
    qtbot.waitUntil(lambda: not on_screen(window), timeout=10_000)
    window.close()
    again = make_window(wait_catalog=False)
    qtbot.waitExposed(again)
    qtbot.waitUntil(lambda: on_screen(again), timeout=10_000)
    again.statusBar().showMessage("No such folder: /nowhere (the status bar is on the screen)")
    for width, height in SIZES:
        shown(qtbot, again, width, height)
        save_screenshot(again, f"main-fit-status-{width}x{height}")


def test_ctrl_e_works_while_the_path_bar_has_the_focus(make_window, qtbot):
    window = make_window(wait_catalog=False)
    qtbot.waitExposed(window)
    assert window.focusWidget() is window.browser.tree  # not the path bar, which took Ctrl+E as "end of line"
    bar = window.browser.path_bar
    window.activateWindow()
    bar.setFocus()
    qtbot.waitUntil(bar.hasFocus, timeout=10_000)
    for key in ("Ctrl+E", "Ctrl+M", "Ctrl+B", "Ctrl+Shift+C"):  # QLineEdit knows Ctrl+E and Ctrl+B itself
        combo = QKeySequence(key)[0]
        override = QKeyEvent(QEvent.Type.ShortcutOverride, combo.key(), combo.keyboardModifiers())
        bar.event(override)
        assert not override.isAccepted(), key  # accepted, the line edit would take the key from the window
    for key in ("Ctrl+A", "Ctrl+C", "Ctrl+V"):  # its editing keys stay the path bar's
        combo = QKeySequence(key)[0]
        override = QKeyEvent(QEvent.Type.ShortcutOverride, combo.key(), combo.keyboardModifiers())
        bar.event(override)
        assert override.isAccepted(), key
    assert not window.explain_action.isChecked()
    qtbot.keyClick(bar, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert window.explain_action.isChecked() and window.preview.explain_box.isChecked()
    assert bar.hasFocus()
    for width, height in SIZES:
        shown(qtbot, window, width, height)
        save_screenshot(window, f"main-fit-ctrl-e-in-path-bar-{width}x{height}")
    qtbot.keyClick(bar, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert not window.explain_action.isChecked()


def test_the_path_bar_forgets_a_bad_path_when_the_folder_changes(make_window, qtbot, tmp_path):
    window = make_window(wait_catalog=False)
    browser = window.browser
    browser.go_to(str(PHOTOS_13))
    for change in ("tree", "space", "open_path"):
        browser.path_bar.setText(str(tmp_path / "nowhere"))
        browser.path_bar.returnPressed.emit()
        assert browser.path_error.startswith("No such folder") and browser.path_bar.styleSheet()
        assert window.statusBar().currentMessage() == browser.path_error
        if change == "tree":  # a photo clicked in the tree, in the folder shown
            browser.tree.setCurrentIndex(browser.model.index(BLACK_BEAR))
            qtbot.waitUntil(lambda: window.current_path == BLACK_BEAR, timeout=10_000)
        elif change == "space":
            window.step_image(1)
        else:
            window.open_path(str(tmp_path))
        assert browser.path_error == "" and browser.path_bar.styleSheet() == "", change
        assert not browser._path_error_icon.isVisible(), change
        assert "No such folder" not in window.statusBar().currentMessage(), change  # the status bar forgets it too
        browser.go_to(str(PHOTOS_13))
    for width, height in SIZES:
        shown(qtbot, window, width, height)
        save_screenshot(window, f"main-fit-path-bar-cleared-{width}x{height}")


def test_copy_predictions_is_offered_only_for_a_classified_image(make_window, qtbot):
    window = make_window()
    window.browser.go_to(BLACK_BEAR)
    qtbot.waitUntil(lambda: window.current_path == BLACK_BEAR, timeout=10_000)
    assert not window.copy_action.isEnabled()  # only selected: nothing to copy
    window.open_path(BLACK_BEAR)
    wait_for_outcome(qtbot, window, BLACK_BEAR)
    assert window.copy_action.isEnabled()
    window.browser.go_to(GRACE)
    qtbot.waitUntil(lambda: window.current_path == GRACE, timeout=10_000)
    assert not window.copy_action.isEnabled()
    for width, height in SIZES:
        shown(qtbot, window, width, height)
        save_screenshot(window, f"main-fit-copy-disabled-{width}x{height}")
    window.browser.go_to(BLACK_BEAR)  # its kept result is shown again: there is something to copy
    qtbot.waitUntil(window.copy_action.isEnabled, timeout=10_000)
    assert "black bear" in (window.copy_predictions() or "")


def test_the_narrowest_window_keeps_names_and_probabilities_readable(make_window, qtbot):
    window = make_window()
    window.open_path(GRACE)
    wait_for_outcome(qtbot, window, GRACE)
    window.resize(300, 600)  # as narrow as it goes
    qtbot.waitUntil(lambda: window.width() == window.minimumSizeHint().width(), timeout=10_000)
    assert window.width() <= 830
    table = window.predictions.table
    header, metrics = table.horizontalHeader(), table.fontMetrics()
    qtbot.waitUntil(lambda: header.sectionSize(2) >= metrics.horizontalAdvance(READABLE_NAME), timeout=10_000)
    assert sum(header.sectionSize(c) for c in range(4)) <= table.viewport().width()  # Probability whole
    assert header.sectionSize(3) >= metrics.horizontalAdvance("Probability")
    picker = window.preview.class_picker
    assert picker.width() >= picker.fontMetrics().horizontalAdvance("mortarboard")
    save_screenshot(window, "main-fit-narrowest")
    for width, height in SIZES:
        shown(qtbot, window, width, height)
        save_screenshot(window, f"main-fit-classified-{width}x{height}")


def test_compare_keeps_names_on_one_line_and_the_model_list_still(make_window, qtbot):
    window = make_window()
    dialog = compare_after_classifying(qtbot, window, BLACK_BEAR)
    qtbot.waitUntil(lambda: dialog.columns and all(model.rowCount() for _, model, _ in dialog.columns.values()),
                    timeout=120_000)
    for width, height in SIZES:
        dialog.resize(width, height)
        qtbot.waitExposed(dialog)
        qtbot.waitUntil(lambda w=width: dialog.width() == w, timeout=10_000)
        for box, _, _ in dialog.columns.values():
            table = box.findChild(type(window.predictions.table))
            header = table.horizontalHeader()
            assert not table.wordWrap()  # "American black / bear" on two lines beside a wide Probability
            assert header.sectionSize(2) > header.sectionSize(3), (width, box.title())
            assert header.sectionSize(3) < 110
        save_screenshot(dialog, f"main-fit-compare-{width}x{height}")
    dialog.resize(1240, 560)
    qtbot.waitUntil(lambda: dialog.width() == 1240, timeout=10_000)
    listed = dialog.splitter.sizes()[0]
    window.browser.go_to(GRACE)  # another photo: the dialog follows it, and asks for Compare
    qtbot.waitUntil(lambda: dialog.path == GRACE, timeout=10_000)
    qtbot.wait(50)
    assert abs(dialog.splitter.sizes()[0] - listed) <= 2, (listed, dialog.splitter.sizes())
    save_screenshot(dialog, "main-fit-compare-other-photo")


def test_a_faint_map_is_nearly_transparent_and_smooth():
    """A faint, flat part of the map showed as grey blocks with hard edges on a white photo."""
    cam = np.zeros((7, 7), np.float32)
    cam[3, 3] = 1.0
    cam[1:3, 4:6] = 0.02  # a faint plateau beside cells that are exactly 0
    heat = _onto_image(cam, (448, 448), 256, 224)
    alpha = heat_rgba(heat)[..., 3].astype(int)
    faint = (heat > 0) & (heat < 0.05)
    assert faint.any()
    assert alpha[faint].max() <= 8  # nearly transparent: was 57 (sqrt of 0.05)
    assert alpha[heat >= 0.5].min() >= 250
    # Smooth: from one pixel to the next the opacity never jumps (bilinear map, no kink at 0).
    assert np.abs(np.diff(alpha, axis=0)).max() <= 16 and np.abs(np.diff(alpha, axis=1)).max() <= 16
    white = Image.new("RGB", (448, 448), (255, 255, 255))
    drawn = np.asarray(overlay(white, heat, 0.6)).astype(int)
    assert (255 - drawn[faint]).max() <= 8  # the white photo stays white where the map is faint


def test_grad_cam_on_the_white_banana_has_no_grey_blocks(make_window, qtbot):
    window = make_window()
    window.open_path(BANANA)
    wait_for_outcome(qtbot, window, BANANA)
    window.explain_action.setChecked(True)
    qtbot.waitUntil(lambda: window._shown_explanation is not None, timeout=60_000)
    assert window.preview.view.heat_visible()
    image = window._shown_explanation.heat  # as drawn: RGBA, not premultiplied (a nearly clear pixel keeps its colour)
    assert image.format() == image.Format.Format_RGBA8888
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)
    pixels = pixels[:, : image.width()].astype(int)
    # The scale's lowest colours (values below ~0.03) are drawn nearly transparent.
    darkest = np.abs(pixels[..., :3] - np.array([48, 18, 59])).sum(axis=2) < 20
    assert darkest.any()
    assert pixels[..., 3][darkest].max() <= 10
    for width, height in SIZES:
        shown(qtbot, window, width, height)
        save_screenshot(window, f"main-fit-banana-gradcam-{width}x{height}")

