"""The way called auto in the main window: the default, chosen in the worker, cached, and shown as "auto: <way>"."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer

from cnnviewer.core.ways import AUTO, FP32
from tests.helpers import ROOT, compare_after_classifying, save_screenshot, wait_for_outcome

MODEL = "efficientnet_lite0"
CHELSEA = str(ROOT / "resources" / "samples" / "chelsea.jpg")
COFFEE = str(ROOT / "resources" / "samples" / "coffee.jpg")
CHOOSING = "Choosing the fastest way for EfficientNet-Lite0 (once): "
# What the measuring test leaves for the others of this module (the files auto and the weights check
# write): one real measurement per module instead of one per test.
MEASURED: dict[str, bytes] = {}


def record_now() -> Any:
    """The cached measurement of the embedded Lite0 for this test's home, or None (hashes the weights: not
    on a window's behalf)."""
    from cnnviewer.core.auto import cached_record
    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.weights import file_sha256

    return cached_record(MODEL, file_sha256(get_entry(MODEL).weights_path()))


def cache_files() -> dict[str, Path]:
    from cnnviewer.core.auto import cache_file
    from cnnviewer.core.paths import config_dir

    return {"auto": cache_file(), "weights": config_dir() / "weights-checked.json"}


def keep_measurement() -> None:
    for name, path in cache_files().items():
        MEASURED[name] = path.read_bytes()


@pytest.fixture
def measured() -> None:
    """This test's home holds a real measurement of Lite0 (and the weights' remembered digest), as after
    an earlier start of the window: made here if the measuring test did not run first."""
    if not MEASURED:
        from cnnviewer.core.auto import resolve_way
        from cnnviewer.core.catalog import get_entry

        resolve_way(get_entry(MODEL), "cpu", AUTO)
        keep_measurement()
        return
    for name, path in cache_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(MEASURED[name])


def messages_of(window: Any) -> list[str]:
    """Every message the status bar is given from now on."""
    said: list[str] = []
    window.statusBar().messageChanged.connect(said.append)
    return said


def ticking(window: Any) -> list[int]:
    """A counter the GUI thread's event loop advances every 10 ms while it is free."""
    ticks = [0]
    timer = QTimer(window)
    timer.timeout.connect(lambda: ticks.__setitem__(0, ticks[0] + 1))
    timer.start(10)
    return ticks


def shown(qtbot: Any, window: Any, width: int, height: int) -> None:
    window.resize(width, height)
    qtbot.waitUntil(lambda: window.width() == width and window.statusBar().width() == width, timeout=10_000)


def settled(qtbot: Any, window: Any) -> None:
    """Wait until Qt has laid out the labels whose text changed last (before a screenshot)."""
    panel = window.predictions
    labels = (window.status_model, panel.title, panel.timings, panel.message)
    qtbot.waitUntil(lambda: all(label.width() >= min(label.sizeHint().width(), label.maximumWidth())
                                if not label.wordWrap() else label.height() >= label.heightForWidth(label.width())
                                for label in labels if label.isVisible()), timeout=10_000)


def top5(outcome: Any) -> list[int]:
    return [p.index for p in outcome.classification.predictions]


def test_a_new_user_runs_as_auto_and_a_remembered_fp32_stays(make_window, qtbot):
    window = make_window(run_as=None)
    choices = [window.run_as_combo.itemText(i) for i in range(window.run_as_combo.count())]
    assert choices[0] == "auto" and window.run_as_combo.currentText() == "auto"
    assert window.current_choice() == AUTO
    assert choices[1:] == [way.label for way in window.ways_offered()]  # only what this device offers
    assert window.status_model.text() == f"{MODEL} · auto · cpu"  # not measured here: nothing to name yet
    assert "has not measured efficientnet_lite0" in window.run_as_combo.toolTip()
    window.close()
    from cnnviewer.gui.main_window import window_settings

    assert window_settings().value("runAs") == "auto"
    window_settings().setValue("runAs", "fp32")  # a setting from before auto existed
    older = make_window(run_as=None)
    assert older.run_as_combo.currentText() == "fp32" and older.current_choice() == FP32
    assert older.status_model.text() == f"{MODEL} · fp32 · cpu"


def test_auto_is_measured_in_the_worker_once_and_shown_as_what_it_chose(make_window, qtbot):
    window = make_window(run_as=None)
    shown(qtbot, window, 1280, 800)
    said = messages_of(window)
    ticks = ticking(window)
    window.open_path(CHELSEA)
    qtbot.waitUntil(lambda: any(text.startswith(CHOOSING) for text in said), timeout=120_000)
    at_start = ticks[0]
    assert window.statusBar().currentMessage().startswith(CHOOSING)
    assert window.predictions.message.text().startswith(CHOOSING)
    settled(qtbot, window)
    save_screenshot(window, "auto-measuring-1280x800")
    # Another photo asked for meanwhile waits for the measurement (it is not thrown away and begun again).
    window.browser.file_activated.emit(COFFEE)
    assert "once the fastest way for efficientnet_lite0 is chosen" in window.predictions.message.text()
    outcome = wait_for_outcome(qtbot, window, COFFEE, timeout=300_000)
    steps = [text for text in said if text.startswith(CHOOSING)]
    assert steps and all(text.startswith(CHOOSING) for text in steps), steps
    # The GUI thread kept serving its event loop the whole time: the measurement ran in the worker.
    assert ticks[0] - at_start >= 2 and outcome.thread_id != threading.get_ident()
    record = record_now()
    assert record is not None, "auto measured but kept nothing"
    keep_measurement()
    # Chosen by the measurement the first photo's request made: this request measured nothing.
    assert outcome.auto and outcome.way == record.way and outcome.choose_ms is None
    chosen = f"auto: {record.chosen}"
    assert window.predictions.title.text().endswith(f"{MODEL} · {chosen} · cpu")
    assert window.status_model.text() == f"{MODEL} · {chosen} · cpu"
    assert not window.statusBar().currentMessage().startswith(CHOOSING)
    assert f"Run as: {chosen} on cpu" in window.copy_predictions()
    assert f"runs {MODEL} as {record.chosen}" in window.run_as_combo.toolTip()
    settled(qtbot, window)
    save_screenshot(window, "auto-chosen-1280x800")
    shown(qtbot, window, 1920, 1080)
    settled(qtbot, window)
    save_screenshot(window, "auto-chosen-1920x1080")

    # auto gives the answers fp32 gives on this photo.
    window.run_as_combo.setCurrentText("fp32")
    qtbot.waitUntil(lambda: window.last_outcome.way_label == "fp32", timeout=120_000)
    fp32 = window.last_outcome
    assert top5(fp32) == top5(outcome) and window.status_model.text() == f"{MODEL} · fp32 · cpu"

    # Loaded again (another photo, the models dropped): the cached choice, no new measurement.
    window.run_as_combo.setCurrentText("auto")
    window.runner.model_cache.clear()
    said.clear()
    window.browser.file_activated.emit(CHELSEA)
    again = wait_for_outcome(qtbot, window, CHELSEA)
    assert again.auto and again.way == record.way and again.choose_ms is None
    assert not [text for text in said if text.startswith(CHOOSING)]
    assert record_now().measured_at == record.measured_at
    # A result of auto is kept under what was asked (auto), so showing the photo again needs no new run.
    assert [key for key in window._results if key[0] == str(CHELSEA) and key[5] == AUTO]


def test_a_run_as_change_stops_the_measurement_and_its_result_is_dropped(make_window, qtbot):
    window = make_window(run_as=None)
    shown(qtbot, window, 1920, 1080)
    said = messages_of(window)
    window.open_path(CHELSEA)
    qtbot.waitUntil(lambda: any(text.startswith(CHOOSING) for text in said), timeout=120_000)
    settled(qtbot, window)
    save_screenshot(window, "auto-measuring-1920x1080")
    window.run_as_combo.setCurrentText("fp32")
    outcome = wait_for_outcome(qtbot, window, CHELSEA, timeout=120_000)
    qtbot.waitUntil(lambda: window.runner.running(None) == [], timeout=300_000)
    assert window.last_outcome is outcome and outcome.way_label == "fp32" and not outcome.auto
    assert window.predictions.title.text().endswith(f"{MODEL} · fp32 · cpu")
    assert not [key for key in window._results if key[5] == AUTO]  # the auto request's result never came
    assert record_now() is None  # stopped before it finished: nothing cached
    assert not window.statusBar().currentMessage().startswith(CHOOSING)


def test_a_known_choice_is_shown_before_any_load_and_forgotten_with_the_weights(make_window, qtbot, measured):
    record = record_now()
    window = make_window(run_as=None)
    chosen = f"auto: {record.chosen}"
    # Read from the cache with the remembered digest: nothing loaded, nothing hashed on the GUI thread.
    assert window.status_model.text() == f"{MODEL} · {chosen} · cpu"
    assert f"runs {MODEL} as {record.chosen}" in window.run_as_combo.toolTip()
    assert not window.runner.model_cache._models
    said = messages_of(window)
    window.open_path(CHELSEA)
    outcome = wait_for_outcome(qtbot, window, CHELSEA)
    assert outcome.way_label == chosen and outcome.choose_ms is None
    assert not [text for text in said if text.startswith(CHOOSING)]
    window.weights_changed(MODEL)  # new weights: auto's choice for the old ones no longer holds
    assert window.status_model.text() == f"{MODEL} · auto · cpu"
    assert window.runner.model_cache.chosen(MODEL, "cpu") is None


def test_the_compare_view_names_the_way_auto_chose_per_model(make_window, qtbot, measured):
    record = record_now()
    window = make_window(run_as=None)
    shown(qtbot, window, 1280, 800)
    dialog = compare_after_classifying(qtbot, window, CHELSEA)
    for item in [dialog.models.item(i) for i in range(dialog.models.count())]:  # Lite0 only: measured already
        item.setCheckState(Qt.CheckState.Checked if item.data(Qt.ItemDataRole.UserRole) == MODEL
                           else Qt.CheckState.Unchecked)
    dialog.run()
    note = dialog.columns[MODEL][2]
    qtbot.waitUntil(lambda: note.text().startswith(f"auto: {record.chosen} · "), timeout=120_000)
    assert dialog.ways_run == {MODEL: record.way}
    save_screenshot(dialog, "auto-compare")
