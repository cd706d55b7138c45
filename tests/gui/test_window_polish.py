"""The main window's rough edges: the status bar's long messages, the classifying hint, kept results, Run as."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cnnviewer.core.ways import ONNXRUNTIME, available_ways
from cnnviewer.workers import jobs
from tests.helpers import PHOTOS_13, save_screenshot, wait_for_outcome

POLAR = str(PHOTOS_13 / "polar_bear.jpg")
BANANA = str(PHOTOS_13 / "banana_0.jpg")
LONG_MESSAGE = ("Weights of resnet50 are missing: resnet50-11ad3fa6.pth is not in the weights cache of this "
                "machine, and no mirror was set. Download them with Get weights, or import a file you "
                "already have with File > Import weights; then classify the image again. END-OF-SENTENCE")


def laid_out(qtbot: Any, window: Any, width: int = 1280, height: int = 800) -> None:
    """Resize the window and wait until the status bar's model label sits inside it."""
    window.resize(width, height)
    bar, label = window.statusBar(), window.status_model
    qtbot.waitUntil(lambda: bar.width() == width and label.isVisible() and 0 < label.x() < width
                    and label.x() + label.width() <= width, timeout=10_000)


def settled(qtbot: Any, window: Any) -> None:
    """Wait until Qt has laid out the labels whose text changed last (before a screenshot)."""
    labels = (window.status_model, window.predictions.title, window.predictions.timings)
    qtbot.waitUntil(lambda: all(label.width() >= min(label.sizeHint().width(), label.maximumWidth())
                                if not label.wordWrap() else label.height() >= label.heightForWidth(label.width())
                                for label in labels if label.isVisible()), timeout=10_000)


@contextmanager
def held_interactive_lane(runner: Any) -> Iterator[threading.Event]:
    """Keep the runner's one interactive thread busy until the event is set: what is asked meanwhile stays
    in flight, however fast the machine."""
    gate = threading.Event()
    started = threading.Event()

    def hold(token: Any, report: Any) -> None:
        started.set()
        gate.wait(120)

    runner.submit("test-hold", "hold", hold)
    assert started.wait(30), "the interactive lane never ran the holding job"
    try:
        yield gate
    finally:
        gate.set()


@pytest.fixture
def classify_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths classify_job ran on (on the worker threads), each time it ran."""
    runs: list[str] = []
    real = jobs.classify_job

    def counted(token: Any, report: Any, cache: Any, path: str, *args: Any) -> Any:
        runs.append(path)
        return real(token, report, cache, path, *args)

    monkeypatch.setattr(jobs, "classify_job", counted)
    return runs


@pytest.fixture
def photos(tmp_path: Path) -> tuple[str, str]:
    """Copies of the polar bear and the banana that a test may touch and rewrite."""
    polar, banana = tmp_path / "polar.jpg", tmp_path / "banana.jpg"
    shutil.copyfile(POLAR, polar)
    shutil.copyfile(BANANA, banana)
    return str(polar), str(banana)


# -- item 7: the status bar --------------------------------------------------------------------


def _fits_before_the_label(window: Any) -> None:
    bar, label = window.statusBar(), window.status_model
    shown = bar.shown_message()
    room = label.x() - 2 - 6  # where QStatusBar draws its message: 6 px in, up to 2 px before the label
    assert bar.fontMetrics().horizontalAdvance(shown) <= room, (shown, room)


def test_a_long_status_message_ends_before_the_model_label(make_window, qtbot):
    window = make_window()
    laid_out(qtbot, window)
    bar = window.statusBar()
    bar.showMessage(LONG_MESSAGE)
    shown = bar.shown_message()
    assert shown != LONG_MESSAGE and shown.endswith("…") and shown.startswith("Weights of resnet50")
    _fits_before_the_label(window)
    assert bar.currentMessage() == LONG_MESSAGE  # what the window and its tests read is the whole sentence
    assert "END-OF-SENTENCE" in bar.toolTip()
    settled(qtbot, window)
    save_screenshot(window, "polish-status-elided-1280x800")

    # The label grows (a longer model name): the message is elided again to the room left.
    label = window.status_model
    label.setText("a much longer model name than any in the catalog · onnxruntime · cuda:0")
    qtbot.waitUntil(lambda: label.width() >= label.sizeHint().width(), timeout=10_000)
    _fits_before_the_label(window)

    # A wider window has room for more of it, and a short message is left whole, without a tooltip.
    laid_out(qtbot, window, 1920, 1080)
    qtbot.waitUntil(lambda: len(bar.shown_message()) > len(shown), timeout=10_000)
    _fits_before_the_label(window)
    settled(qtbot, window)
    save_screenshot(window, "polish-status-elided-1920x1080")
    bar.showMessage("polar_bear.jpg: ice bear (93.17 %) by efficientnet_lite0")
    assert bar.shown_message() == bar.currentMessage() and bar.toolTip() == ""
    bar.clearMessage()
    assert bar.currentMessage() == "" and bar.shown_message() == ""


# -- item 8: the hint while classifying, and kept results -------------------------------------


def test_the_panel_says_it_is_classifying_while_the_request_is_in_flight(make_window, qtbot):
    window = make_window()
    laid_out(qtbot, window)
    title = window.predictions.title
    with held_interactive_lane(window.runner) as gate:
        window.open_path(POLAR)  # what `cnnviewer PATH` and a drop do
        assert "Classifying with efficientnet_lite0 · fp32 · cpu" in title.text()
        qtbot.waitUntil(lambda: window.preview.view.has_image(), timeout=20_000)  # the preview lane is free
        assert window.browser.selected_path() == POLAR
        assert "Classifying with efficientnet_lite0 · fp32 · cpu" in title.text()
        assert "Double-click" not in title.text()
        settled(qtbot, window)
        save_screenshot(window, "polish-classifying")
        window.browser.go_to(BANANA)  # previewed only: nothing asked for it
        assert "banana_0.jpg" in title.text() and "Double-click or press Enter" in title.text()
        window.browser.go_to(POLAR)  # back to the image still being classified
        assert "polar_bear.jpg" in title.text() and "Classifying with" in title.text()
        gate.set()
        wait_for_outcome(qtbot, window, POLAR)
    assert title.text().endswith("efficientnet_lite0 · fp32 · cpu") and "Classifying" not in title.text()

    window.auto_action.setChecked(True)  # "Classify on selection"
    with held_interactive_lane(window.runner) as gate:
        window.browser.go_to(BANANA)
        assert "banana_0.jpg" in title.text() and "Classifying with efficientnet_lite0 · fp32 · cpu" in title.text()
        gate.set()
        wait_for_outcome(qtbot, window, BANANA)
    assert window.predictions.model.predictions()[0].index == 954


def test_returning_to_a_classified_image_shows_its_result_without_running_the_model(
        make_window, qtbot, classify_runs, photos):
    polar, banana = photos
    window = make_window()
    laid_out(qtbot, window)
    window.open_path(polar)
    first = wait_for_outcome(qtbot, window, polar)
    window.open_path(banana)
    wait_for_outcome(qtbot, window, banana)
    assert classify_runs == [polar, banana]

    window.open_path(polar)  # double-click, Enter, a drop: shown at once, from what was kept
    assert window.last_outcome is first
    assert [p.index for p in window.predictions.model.predictions()] == [p.index for p in
                                                                         first.classification.predictions]
    assert window.predictions.title.text().endswith("efficientnet_lite0 · fp32 · cpu")
    assert window.predictions.timings.text().startswith("Kept result: decode")
    assert not any(kind == "classify" for _, kind, _ in window.runner.running("main"))
    window.browser.go_to(banana)  # only selected: its kept result shows too
    assert window.last_outcome is not None and window.last_outcome.path == banana
    settled(qtbot, window)
    save_screenshot(window, "polish-kept-result")

    window.top_k_spin.setValue(3)  # another top-k is another result: it runs
    qtbot.waitUntil(lambda: window.last_outcome is not None and len(window.last_outcome.classification.predictions)
                    == 3, timeout=60_000)
    window.select_model("efficientnet_lite1")  # and so is another model
    wait_for_outcome(qtbot, window, banana, "efficientnet_lite1")
    window.select_model("efficientnet_lite0")
    window.top_k_spin.setValue(5)  # back to what ran first: kept
    assert window.last_outcome.model == "efficientnet_lite0" and len(window.predictions.model.predictions()) == 5
    qtbot.waitUntil(lambda: not window.runner.running("main"), timeout=30_000)
    assert classify_runs == [polar, banana, banana, banana]


def test_a_touched_or_rewritten_file_is_classified_again(make_window, qtbot, classify_runs, photos):
    polar, banana = photos
    window = make_window()
    window.open_path(polar)
    first = wait_for_outcome(qtbot, window, polar)
    before = os.stat(polar)
    os.utime(polar, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))  # touched: same bytes, new time
    window.open_path(polar)
    qtbot.waitUntil(lambda: window.last_outcome is not None and window.last_outcome is not first, timeout=60_000)
    again = window.last_outcome
    assert again.path == polar and classify_runs == [polar, polar]
    assert again.classification.predictions[0].index == 296

    # Other bytes under the first mtime: the size tells them apart.
    shutil.copyfile(banana, polar)
    os.utime(polar, ns=(before.st_atime_ns, before.st_mtime_ns))
    window.open_path(polar)
    qtbot.waitUntil(lambda: len(classify_runs) == 3 and window.last_outcome is not None
                    and window.last_outcome.classification.predictions[0].index == 954, timeout=60_000)


def test_a_file_rewritten_while_it_is_classified_is_not_kept(make_window, qtbot, classify_runs, photos):
    polar, banana = photos
    window = make_window()
    original = os.stat(polar)
    polar_bytes = Path(polar).read_bytes()
    with held_interactive_lane(window.runner) as gate:
        window.classify(polar)  # asked for the polar bear; the job will read what is there when it runs
        shutil.copyfile(banana, polar)
        gate.set()
        qtbot.waitUntil(lambda: window.last_outcome is not None, timeout=60_000)
    assert window.last_outcome.classification.predictions[0].index == 954  # it read the banana
    # The polar bear is back, bytes and times: what was read meanwhile must not be shown as its result.
    Path(polar).write_bytes(polar_bytes)
    os.utime(polar, ns=(original.st_atime_ns, original.st_mtime_ns))
    window.last_outcome = None
    window.classify(polar)
    qtbot.waitUntil(lambda: window.last_outcome is not None, timeout=60_000)
    assert window.last_outcome.classification.predictions[0].index == 296
    assert classify_runs == [polar, polar]


def test_a_result_asked_before_a_kept_one_is_kept_but_not_shown(make_window, qtbot, qapp, classify_runs, photos):
    """The race a cancel cannot close: the lite1 result was sent when the user went back to lite0, whose
    result was kept and shown without a request that would make the runner drop the older one."""
    polar, _ = photos
    window = make_window()
    window.open_path(polar)
    wait_for_outcome(qtbot, window, polar, "efficientnet_lite0")
    window.select_model("efficientnet_lite1")
    [(_, _, asked)] = [entry for entry in window.runner.running("main") if entry[1] == "classify"]
    deadline = time.monotonic() + 60
    # No event processing here: the lite1 job ends and its result waits in the queue for the GUI thread.
    while window.runner.is_running(asked) or window.running_workers():
        assert time.monotonic() < deadline, "the lite1 classification never ended"
        time.sleep(0.01)
    window.select_model("efficientnet_lite0")
    assert window.last_outcome.model == "efficientnet_lite0"
    qapp.processEvents()  # delivers the lite1 result sent meanwhile
    qapp.processEvents()
    assert window.last_outcome.model == "efficientnet_lite0"
    assert window.predictions.title.text().endswith("efficientnet_lite0 · fp32 · cpu")
    window.select_model("efficientnet_lite1")  # it was kept: shown at once
    assert window.last_outcome.model == "efficientnet_lite1"
    assert classify_runs == [polar, polar]


def test_a_result_for_an_image_left_meanwhile_is_kept_not_shown(make_window, qtbot, qapp, classify_runs, photos):
    polar, banana = photos
    window = make_window()
    with held_interactive_lane(window.runner) as gate:
        window.open_path(banana)
        window.browser.go_to(polar)  # previewed while the banana is being classified
        gate.set()
        # A run is over ("ended") just before its outcome is emitted to this thread: wait for the outcome to be
        # kept, not for a number of event-loop turns (under load the emission came after two of them).
        qtbot.waitUntil(lambda: classify_runs == [banana] and not window.runner.running("main")
                        and window._kept_result(banana) is not None, timeout=60_000)
    qapp.processEvents()
    assert window.last_outcome is None and window.predictions.model.rowCount() == 0
    assert "polar.jpg" in window.predictions.title.text() and "Double-click" in window.predictions.title.text()
    window.browser.go_to(banana)
    assert window.last_outcome is not None and window.last_outcome.path == banana
    assert window.predictions.model.predictions()[0].index == 954 and classify_runs == [banana]


def test_the_kept_results_are_the_64_used_last(make_window, qtbot, tmp_path, photos):
    from cnnviewer.gui.main_window import RESULTS_KEPT, result_key

    polar, _ = photos
    window = make_window()
    window.open_path(polar)
    outcome = wait_for_outcome(qtbot, window, polar)
    files = []
    for number in range(RESULTS_KEPT + 10):
        path = tmp_path / f"{number:03}.jpg"
        path.write_bytes(b"x")
        files.append(str(path))
    model, device, way, top_k = outcome.model, outcome.device, outcome.way, window.top_k()
    for number, path in enumerate(files):
        window._keep_result(result_key(path, model, device, way, top_k), replace(outcome, path=path))
        if number == RESULTS_KEPT - 1:
            assert window._kept_result(files[0]) is not None  # used again: the newest now
    kept = {key[0] for key in window._results}
    assert len(kept) == RESULTS_KEPT
    assert files[0] in kept and files[1] not in kept and files[-1] in kept and polar not in kept


# -- item 16: Run as, and the model offered instead ---------------------------------------------


def test_run_as_shows_the_whole_way_label(make_window, qtbot):
    from PySide6.QtWidgets import QStyle, QStyleOptionComboBox

    if ONNXRUNTIME not in available_ways("cpu"):
        pytest.skip("onnxruntime is not installed: the longest way label is not offered here")
    window = make_window()
    laid_out(qtbot, window)
    combo = window.run_as_combo
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert "onnxruntime" in labels

    def field_width() -> int:
        option = QStyleOptionComboBox()
        combo.initStyleOption(option)
        return combo.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                            QStyle.SubControl.SC_ComboBoxEditField, combo).width()

    for label in [label for label in labels if label != "int8"]:  # int8 asks for a calibration folder first
        combo.setCurrentText(label)
        qtbot.waitUntil(lambda label=label: field_width() >= combo.fontMetrics().horizontalAdvance(label),
                        timeout=5_000)
    assert combo.currentText() == "onnxruntime"
    assert window.status_model.text() == "efficientnet_lite0 · onnxruntime · cpu"
    settled(qtbot, window)
    save_screenshot(window, "polish-run-as-onnxruntime")


def test_missing_weights_offer_the_model_used_last(make_window, qtbot):
    window = make_window()
    laid_out(qtbot, window)
    panel = window.predictions
    window.select_model("resnet50")  # a fresh machine: nothing used yet, so the embedded default is offered
    window.open_path(POLAR)
    qtbot.waitUntil(lambda: "use_instead" in panel.action_buttons, timeout=30_000)
    assert panel.action_buttons["use_instead"].text() == "Use efficientnet_lite0 instead"

    window.select_model("efficientnet_lite1")  # used: classified with it
    wait_for_outcome(qtbot, window, POLAR, "efficientnet_lite1")
    window.select_model("resnet50")
    qtbot.waitUntil(lambda: "use_instead" in panel.action_buttons, timeout=30_000)
    assert panel.action_buttons["use_instead"].text() == "Use efficientnet_lite1 instead"
    settled(qtbot, window)
    save_screenshot(window, "polish-use-last-model")
    panel.action_buttons["use_instead"].click()
    assert window.selected_model() == "efficientnet_lite1"
    assert window.last_outcome is not None and window.last_outcome.model == "efficientnet_lite1"  # kept: at once


def test_view_menu_hides_and_shows_each_panel_and_a_new_window_remembers(make_window, qtbot):
    """View > Files and View > Predictions were greyed out (the docks were not closable)."""
    window = make_window()
    for dock in (window.browser_dock, window.predictions_dock):
        action = dock.toggleViewAction()
        assert action.isEnabled() and action.isChecked() and dock.isVisible()
        action.trigger()
        assert not dock.isVisible() and not action.isChecked()
    # The image gets the room: the centre takes the window's width once Qt has laid it out again.
    qtbot.waitUntil(lambda: window.centralWidget().width() > window.width() - 20, timeout=5_000)
    save_screenshot(window, "polish-panels-hidden")
    window.close()  # the docks' state is saved with the window's
    again = make_window()
    assert not again.browser_dock.isVisible() and not again.predictions_dock.isVisible()
    for dock in (again.browser_dock, again.predictions_dock):
        dock.toggleViewAction().trigger()
        assert dock.isVisible()
