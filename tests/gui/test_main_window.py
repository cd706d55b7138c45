"""The main window with the real embedded model and real photos (pytest-qt, offscreen)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from cnnviewer.core.ways import parse_way
from tests.helpers import PHOTOS_13, compare_after_classifying, run, save_screenshot, wait_for_outcome

POLAR = str(PHOTOS_13 / "polar_bear.jpg")
BANANA = str(PHOTOS_13 / "banana_0.jpg")


def test_window_is_on_screen_before_torch_is_imported():
    code = (
        "import sys\n"
        "from cnnviewer.gui.main_window import ensure_app, MainWindow\n"
        "app = ensure_app(); w = MainWindow(); w.show(); app.processEvents()\n"
        "print('visible', w.isVisible(), 'torch', w.torch_was_imported_before_show)\n"
        "w.close()\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "visible True torch False" in proc.stdout, proc.stdout + proc.stderr


def test_empty_window_then_catalog(make_window, qtbot):
    window = make_window(wait_catalog=False)
    save_screenshot(window, "01-empty")
    qtbot.waitUntil(lambda: window.selected_model() is not None, timeout=60_000)
    assert window.selected_model() == "efficientnet_lite0"  # a fresh machine: the embedded default
    assert window.model_combo.count() >= 83


def _wait_tree_row(qtbot, window, path):
    browser = window.browser
    assert browser.go_to(os.path.dirname(path))
    qtbot.waitUntil(lambda: browser.model.rowCount(browser.model.index(os.path.dirname(path))) >= 13, timeout=20_000)
    index = browser.model.index(path)
    browser.tree.scrollTo(index)
    qtbot.waitUntil(lambda: browser.tree.visualRect(index).isValid(), timeout=10_000)
    return index


def _row_centre(qtbot, window, path):
    """Where ``path``'s row is in the tree now, to click it at once (no event is handled in between).

    The file model lists folders in a thread of its own, and the tree moves its rows when it sorts them
    or when files come and go in a folder shown above (the temporary folder of a busy machine): a point
    taken before a wait can be another file's row after it. A double-click at the point taken before
    the single click's wait landed on jellyfish.jpg's row and classified nothing, one run in two."""
    browser = window.browser
    index = browser.model.index(path)  # asked again each time: a QModelIndex does not follow its row
    browser.tree.scrollTo(index)
    qtbot.waitUntil(lambda: browser.tree.visualRect(browser.model.index(path)).isValid(), timeout=10_000)
    centre = browser.tree.visualRect(browser.model.index(path)).center()
    assert browser.model.filePath(browser.tree.indexAt(centre)) == path
    return centre


def test_browser_reaches_folder_and_double_click_classifies_polar_bear(make_window, qtbot):
    window = make_window()
    _wait_tree_row(qtbot, window, POLAR)
    assert window.browser.folder == str(PHOTOS_13)
    assert window.browser.path_bar.text() == str(PHOTOS_13)
    assert window.browser.strip.count() == 13  # image files only: labels.csv is hidden
    viewport = window.browser.tree.viewport()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=_row_centre(qtbot, window, POLAR))
    qtbot.waitUntil(lambda: window.preview.view.has_image(), timeout=20_000)
    assert "563 × 565" in window.preview.facts.text() and "JPEG RGB" in window.preview.facts.text()
    save_screenshot(window, "02-previewing")
    assert window.last_outcome is None  # a click previews; it does not classify
    qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=_row_centre(qtbot, window, POLAR))
    outcome = wait_for_outcome(qtbot, window, POLAR)
    shown = window.predictions.model.predictions()
    assert shown[0].index == 296 and shown[0].name == "ice bear"
    assert len(shown) == 5
    assert outcome.thread_id != threading.get_ident(), "inference must not run on the GUI thread"
    assert "inference" in window.predictions.timings.text()
    qtbot.waitUntil(lambda: window.browser.strip.item(9).icon().availableSizes() != [], timeout=20_000)
    save_screenshot(window, "03-predictions")


def test_enter_classifies_the_selected_file(make_window, qtbot):
    window = make_window()
    index = _wait_tree_row(qtbot, window, BANANA)
    window.browser.tree.setCurrentIndex(index)
    window.browser.tree.setFocus()
    qtbot.keyClick(window.browser.tree, Qt.Key.Key_Return)
    wait_for_outcome(qtbot, window, BANANA)
    assert window.predictions.model.predictions()[0].index == 954


def test_a_dropped_file_is_classified(make_window, qtbot):
    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(POLAR)])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    wait_for_outcome(qtbot, window, POLAR)
    assert window.predictions.model.predictions()[0].index == 296
    assert window.browser.selected_path() == POLAR


def test_switching_the_model_reclassifies(make_window, qtbot):
    window = make_window()
    window.open_path(POLAR)
    wait_for_outcome(qtbot, window, POLAR, "efficientnet_lite0")
    window.select_model("efficientnet_lite2")
    outcome = wait_for_outcome(qtbot, window, POLAR, "efficientnet_lite2")
    assert outcome.classification.predictions[0].index == 296
    assert "efficientnet_lite2" in window.predictions.title.text()


def test_a_corrupt_file_shows_an_error_and_the_app_goes_on(make_window, qtbot, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes((PHOTOS_13 / "polar_bear.jpg").read_bytes()[:2000])
    window = make_window()
    window.open_path(str(bad))
    wait_for_outcome(qtbot, window, bad)
    qtbot.waitUntil(lambda: "truncated" in window.preview.placeholder.text(), timeout=20_000)
    message = window.predictions.message.text()
    assert str(bad) in message and "truncated" in message
    assert "truncated" in window.statusBar().currentMessage()
    assert window.predictions.model.rowCount() == 0
    save_screenshot(window, "04-error")
    window.open_path(POLAR)
    wait_for_outcome(qtbot, window, POLAR)
    assert window.predictions.model.predictions()[0].index == 296


def test_missing_weights_offer_a_way_out(make_window, qtbot):
    window = make_window()
    window.select_model("resnet50")
    window.open_path(POLAR)
    qtbot.waitUntil(lambda: "use_instead" in window.predictions.action_buttons, timeout=30_000)
    assert "resnet50-11ad3fa6.pth" in window.predictions.message.text()
    assert "get_weights" in window.predictions.action_buttons
    assert window.weights_action.isEnabled()  # the toolbar offers the weights of the selected model
    save_screenshot(window, "06-weights-missing")
    qtbot.mouseClick(window.predictions.action_buttons["use_instead"], Qt.MouseButton.LeftButton)
    assert not window.weights_action.isEnabled()
    assert window.selected_model() == "efficientnet_lite0"
    wait_for_outcome(qtbot, window, POLAR, "efficientnet_lite0")


def test_a_newer_request_cancels_the_older_one(make_window, qtbot):
    window = make_window()
    shown = []
    original = window.predictions.show_result
    window.predictions.show_result = lambda outcome: (shown.append(outcome.path), original(outcome))
    window.runner.model_cache.clear()  # the first request has a model to load: it is still running
    first = window.classify(POLAR)
    window.classify(BANANA)
    # Asked to stop at once: cancelling it again finds it cancelled already or gone, never running on.
    qtbot.waitUntil(lambda: not window.runner.is_running(first), timeout=30_000)
    wait_for_outcome(qtbot, window, BANANA)
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=30_000)
    assert shown == [BANANA]
    assert window.predictions.model.predictions()[0].index == 954


def test_settings_survive_a_restart(make_window, qtbot):
    window = make_window()
    window.browser.go_to(str(PHOTOS_13))
    window.select_model("efficientnet_lite1")
    window.top_k_spin.setValue(3)
    window.auto_action.setChecked(True)
    # The narrowest it can be: inside the offscreen screen (800 wide), which restoreGeometry clamps to.
    window.resize(window.minimumSizeHint().width(), 560)
    saved = (window.width(), window.height())
    window.close()
    again = make_window()
    assert again.browser.folder == str(PHOTOS_13)
    assert again.selected_model() == "efficientnet_lite1"
    assert again.top_k_spin.value() == 3
    assert again.auto_action.isChecked()
    assert (again.width(), again.height()) == saved


def test_the_window_and_the_command_line_share_one_model_choice(make_window, qtbot):
    from cnnviewer.core.settings import default_model_name

    window = make_window()
    window.select_model("efficientnet_lite1")
    assert default_model_name() == "efficientnet_lite1"  # what `cnnviewer classify` uses without --model
    window.close()
    proc = run("classify", POLAR, "--model", "efficientnet_lite2", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    again = make_window()
    assert again.selected_model() == "efficientnet_lite2"
    assert not again.settings.contains("model")  # the window keeps no model of its own


def test_an_old_window_model_setting_is_taken_over_once(make_window, qtbot):
    from cnnviewer.core.settings import Settings
    from cnnviewer.gui.main_window import window_settings

    old = window_settings()
    old.setValue("model", "efficientnet_lite2")
    old.sync()
    window = make_window()
    assert window.selected_model() == "efficientnet_lite2"
    assert Settings.load().last_model == "efficientnet_lite2"
    assert not window.settings.contains("model")


def test_classify_on_selection(make_window, qtbot):
    window = make_window()
    window.auto_action.setChecked(True)
    index = _wait_tree_row(qtbot, window, BANANA)
    window.browser.tree.setCurrentIndex(index)
    wait_for_outcome(qtbot, window, BANANA)


def test_closing_mid_work_leaves_no_running_worker(make_window, qtbot):
    window = make_window()
    window.runner.model_cache.clear()
    window.select_model("efficientnet_lite2")
    window.open_path(POLAR)
    qtbot.waitUntil(lambda: window.running_workers() > 0, timeout=10_000)
    window.close()
    assert window.running_workers() == 0
    assert window.runner.running() == []


def test_compare_models_side_by_side(make_window, qtbot):
    window = make_window()
    dialog = compare_after_classifying(qtbot, window, POLAR)
    expected = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert dialog.checked_models() == expected  # no lab-report weights here: the embedded three
    qtbot.waitUntil(lambda: all(dialog.results_by_model().values()), timeout=60_000)
    results = dialog.results_by_model()
    assert list(results) == expected
    assert all(rows[0].index == 296 and len(rows) == 5 for rows in results.values())
    save_screenshot(dialog, "05-compare")
    dialog.close()


def test_zoom(make_window, qtbot):
    window = make_window()
    window.open_path(POLAR)
    qtbot.waitUntil(lambda: window.preview.view.has_image(), timeout=20_000)
    window.preview.view.actual_size()
    assert window.preview.view.zoom() == 1.0 and window.preview.zoom_label.text() == "100 %"
    window.preview.view.zoom_by(1.25)
    assert abs(window.preview.view.zoom() - 1.25) < 1e-6
    window.preview.view.fit()
    assert window.preview.view.zoom() < 1.25


def test_about_names_versions_and_folders(make_window):
    from cnnviewer.gui.main_window import about_text

    make_window()
    text = about_text("cpu")
    assert "torch" in text and "Weights cache" in text and "Log file" in text


def test_started_with_a_path_selects_and_classifies_it(qtbot):
    """What `cnnviewer PATH` (a file manager's "Open with") does."""
    from cnnviewer.gui.main_window import run_window

    window = run_window(POLAR)
    qtbot.addWidget(window)
    try:
        wait_for_outcome(qtbot, window, POLAR)
        assert window.browser.selected_path() == POLAR
        assert window.predictions.model.predictions()[0].index == 296
    finally:
        window.close()
    folder_window = run_window(str(PHOTOS_13))
    qtbot.addWidget(folder_window)
    try:
        qtbot.waitUntil(lambda: folder_window.browser.folder == str(PHOTOS_13), timeout=10_000)
        assert folder_window.last_outcome is None
    finally:
        folder_window.close()


def test_run_as_bf16_or_onnxruntime_reclassifies_with_the_same_answer(make_window, qtbot):
    window = make_window()
    window.open_path(POLAR)
    wait_for_outcome(qtbot, window, POLAR)
    choices = [window.run_as_combo.itemText(i) for i in range(window.run_as_combo.count())]
    assert choices[:2] == ["auto", "fp32"] and window.current_choice().label == "fp32"
    if len(choices) == 2:
        pytest.skip("this machine offers only fp32 (no native bf16, no onnxruntime)")
    model = window.selected_model()
    for choice in [c for c in choices[2:] if c != "int8"]:  # int8 asks for calibration photos: test_int8_gui.py
        window.last_outcome = None
        window.run_as_combo.setCurrentText(choice)
        qtbot.waitUntil(lambda: window.last_outcome is not None, timeout=60_000)
        assert window.predictions.model.predictions()[0].index == 296, choice
        assert choice in window.status_model.text()
        classifier, load_ms = window.runner.model_cache.get(model, "cpu", parse_way(choice))
        assert load_ms is None, f"{choice} was offered but the model never ran that way"
        assert classifier.loaded.way == parse_way(choice)
        assert window.predictions.title.text().endswith(f"{model} · {choice} · cpu")
