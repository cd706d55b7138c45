"""The window's model cache under int8 and auto: compare keeps int8's calibration, forget never waits for a load,
and nothing measured or loaded for the weights of before outlives a weights change."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from cnnviewer.core.ways import AUTO, INT8
from cnnviewer.workers import jobs
from cnnviewer.workers.base import CancelToken
from tests.helpers import ROOT, labelled_files, save_screenshot, wait_for_outcome

MODEL = "efficientnet_lite0"
PHOTOS = [str(path) for path, _ in labelled_files("imagenet-val-100")[:2]]
CHELSEA = str(ROOT / "resources" / "samples" / "chelsea.jpg")
CHOOSING = "Choosing the fastest way for EfficientNet-Lite0 (once): "
# How long a worker held inside a load waits for the GUI thread's forget() before it goes on: only reached
# when forget() cannot return while the load runs (the fault these tests guard against).
HOLD_S = 60


@pytest.fixture
def calibration_folder(tmp_path: Path) -> Path:
    """A folder of 20 real photos (links) to calibrate int8 on; none of them is classified here."""
    folder = tmp_path / "calibration"
    folder.mkdir()
    for path, _ in labelled_files("imagenet-samples-88")[:20]:
        (folder / path.name).symlink_to(path)
    return folder


class Worker(threading.Thread):
    """A job run in a thread of its own; ``result`` or ``error`` once it ended."""

    def __init__(self, job: Any, *args: Any) -> None:
        super().__init__(daemon=True)
        self.job, self.args = job, args
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.job(*self.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which says what it was
            self.error = exc


def held_inside(events: list[str], entered: threading.Event, forgot: threading.Event, starts: str) -> Any:
    """A progress callback that, at its first message starting with ``starts`` (said from inside the load or
    measurement), records it, tells the test, and holds the worker there until the GUI thread's forget()
    returned (HOLD_S at most), then records whether it had."""

    def said(*args: Any) -> None:
        text = str(args[-1])
        if entered.is_set() or not text.startswith(starts):
            return
        events.append("inside")
        entered.set()
        forgot.wait(HOLD_S)
        events.append("forgotten while inside" if forgot.is_set() else "went on without forget")

    return said


def test_compare_with_int8_uses_the_windows_calibration_and_keeps_its_int8_model(make_window, qtbot,
                                                                                calibration_folder):
    from cnnviewer.core.calibration import folder_images
    from cnnviewer.gui.main_window import window_settings

    window_settings().setValue("int8CalibrationFolder", str(calibration_folder))
    window = make_window(run_as="int8")
    window.resize(1280, 800)
    qtbot.waitExposed(window)
    window.open_path(PHOTOS[0])
    outcome = wait_for_outcome(qtbot, window, PHOTOS[0], timeout=300_000)
    assert outcome.way == INT8 and outcome.classification.ok
    cache = window.runner.model_cache
    window.settings.setValue("compare/gradcamMaps", True)
    window.open_compare()
    dialog = window.compare_dialog
    for item in [dialog.models.item(i) for i in range(dialog.models.count())]:  # Lite0 only: calibrated already
        item.setCheckState(Qt.CheckState.Checked if item.data(Qt.ItemDataRole.UserRole) == MODEL
                           else Qt.CheckState.Unchecked)
    dialog.run()
    qtbot.waitUntil(lambda: dialog._done == dialog._total == 1, timeout=120_000)
    note = dialog.columns[MODEL][2].text()
    # int8 ran, with the model the window had loaded (no load: it was neither dropped nor calibrated again).
    assert note.startswith("int8 · inference "), note
    assert dialog.ways_run == {MODEL: INT8}
    assert cache.calibration == folder_images(calibration_folder)
    qtbot.waitUntil(lambda: MODEL in dialog.explained, timeout=120_000)
    explained = dialog.explained[MODEL]
    assert not isinstance(explained, Exception), explained
    assert explained.way == INT8 and explained.map_way.label == "fp32"  # int8 has no gradients: FP32 draws it
    for width, height in ((1280, 800), (1920, 1080)):
        dialog.resize(width, height)
        qtbot.waitExposed(dialog)
        qtbot.waitUntil(lambda width=width: dialog.width() == width, timeout=10_000)
        save_screenshot(dialog, f"compare-int8-{width}x{height}")
    dialog.close()
    # The main window's int8 model is still loaded and calibrated on its folder.
    window.open_path(PHOTOS[1])
    again = wait_for_outcome(qtbot, window, PHOTOS[1], timeout=120_000)
    assert again.way == INT8 and again.load_ms is None
    # A job given no calibration folder (a caller that has none to give) uses the cache's, never drops it.
    (name, alone), = jobs.compare_job(CancelToken(), lambda *_: None, cache, PHOTOS[1], [MODEL], "cpu", 5, INT8)
    assert not isinstance(alone, Exception), alone
    assert alone.way == INT8 and alone.load_ms is None and cache.calibration == folder_images(calibration_folder)


def test_forget_on_the_gui_thread_returns_while_an_int8_load_is_calibrating(make_window, qtbot, calibration_folder):
    window = make_window(run_as="fp32")
    cache = window.runner.model_cache
    events: list[str] = []
    entered, forgot = threading.Event(), threading.Event()
    # The window's own classify job, in a thread of its own so that its progress can hold it inside the load.
    worker = Worker(jobs.classify_job, CancelToken(), held_inside(events, entered, forgot, "Calibrating"), cache,
                    PHOTOS[0], MODEL, "cpu", 5, INT8, None, str(calibration_folder))
    worker.start()
    qtbot.waitUntil(entered.is_set, timeout=300_000)  # quantizing for real (a fresh cache): seconds to minutes
    window.weights_changed(MODEL)  # on the GUI thread: it calls cache.forget(MODEL)
    events.append("forget returned")
    forgot.set()
    qtbot.waitUntil(lambda: not worker.is_alive(), timeout=300_000)
    assert worker.error is None, worker.error
    assert events == ["inside", "forget returned", "forgotten while inside"]
    # The job still answers its own request, but the model quantized for the weights of before is not kept.
    assert worker.result is not None and worker.result.way == INT8 and worker.result.classification.ok
    assert not [key for key in cache._models if key[0] == MODEL]
    assert not cache._loading


def test_an_auto_choice_measured_before_forget_is_not_kept(qtbot):
    cache = jobs.ModelCache()
    events: list[str] = []
    entered, forgot = threading.Event(), threading.Event()
    worker = Worker(cache.resolve, MODEL, "cpu", AUTO, held_inside(events, entered, forgot, "Timing"))
    worker.start()
    qtbot.waitUntil(entered.is_set, timeout=300_000)  # measuring for real (a fresh cache)
    cache.forget(MODEL)  # the weights changed while auto measured the old ones
    events.append("forget returned")
    forgot.set()
    qtbot.waitUntil(lambda: not worker.is_alive(), timeout=300_000)
    assert worker.error is None, worker.error
    assert events == ["inside", "forget returned", "forgotten while inside"]
    resolved, choose_ms = worker.result
    assert resolved.auto and choose_ms is not None  # its own caller has its answer ...
    assert cache.chosen(MODEL, "cpu") is None  # ... but it is not remembered for the weights there are now
    # Asked again, auto reads the choice core.auto cached under the weights' digest, and keeps that one.
    again, choose_ms = cache.resolve(MODEL, "cpu", AUTO)
    assert choose_ms is None and cache.chosen(MODEL, "cpu") == again.way == resolved.way


def test_a_result_of_the_weights_before_is_dropped_and_the_photo_classified_again(make_window, qtbot):
    window = make_window(run_as=None)  # auto: the first load measures the ways
    window.resize(1280, 800)
    qtbot.waitExposed(window)
    said: list[str] = []
    window.statusBar().messageChanged.connect(said.append)
    window.open_path(CHELSEA)
    qtbot.waitUntil(lambda: any(text.startswith(CHOOSING) for text in said), timeout=120_000)
    window.weights_changed(MODEL)  # while it measures the weights of before
    outcome = wait_for_outcome(qtbot, window, CHELSEA, timeout=300_000)
    # The measuring request's result never shows; the photo is classified again, with auto's choice read
    # from core.auto's cache (keyed by the weights' digest), not measured again.
    assert outcome.auto and outcome.choose_ms is None
    assert window.runner.model_cache.chosen(MODEL, "cpu") == outcome.way
    assert window.status_model.text() == f"{MODEL} · auto: {outcome.way.label} · cpu"
    save_screenshot(window, "auto-weights-changed-while-measuring-1280x800")
    window.resize(1920, 1080)
    qtbot.waitUntil(lambda: window.width() == 1920, timeout=10_000)
    save_screenshot(window, "auto-weights-changed-while-measuring-1920x1080")
