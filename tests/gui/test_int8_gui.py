"""int8 in the main window: it asks once for a calibration folder, calibrates in the worker, and says what it ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QFileDialog

from cnnviewer.core.ways import FP32, INT8
from tests.helpers import labelled_files, save_screenshot, wait_for_outcome

MODEL = "efficientnet_lite0"
CALIBRATION = [path for path, _ in labelled_files("imagenet-samples-88")[:20]]
PHOTO = str(labelled_files("imagenet-val-100")[0][0])


pytestmark = pytest.mark.usefixtures("int8_cache")  # one quantization of Lite0 for the file


def answers(monkeypatch: pytest.MonkeyPatch, folder: str) -> list[str]:
    """The folder dialog answers ``folder`` ("" is Cancel), as a person would; the titles it was asked with."""
    asked: list[str] = []

    def answer(parent: Any, title: str, start: str = "") -> str:
        asked.append(title)
        return folder

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", answer)
    return asked


def shown(qtbot: Any, window: Any, width: int, height: int) -> None:
    """The window at ``width`` x ``height`` with the preview and the facts laid out (before a screenshot)."""
    window.resize(width, height)
    qtbot.waitExposed(window)
    if window.current_path:
        name = Path(window.current_path).name
        qtbot.waitUntil(lambda: window.preview.view.has_image() and window.preview.facts.text().startswith(name),
                        timeout=20_000)
    qtbot.waitUntil(lambda: window.width() == width and window.statusBar().width() == width, timeout=10_000)
    qtbot.waitUntil(lambda: window.predictions.timings.height()
                    >= window.predictions.timings.heightForWidth(window.predictions.timings.width()), timeout=10_000)


def test_int8_with_a_remembered_folder_calibrates_in_the_worker_and_says_int8(make_window, qtbot, int8_home):
    from cnnviewer.gui.main_window import window_settings

    _, folder = int8_home
    window_settings().setValue("int8CalibrationFolder", str(folder))
    window = make_window(run_as="int8")
    assert window.current_choice() == INT8 and window.calibration_folder == str(folder)
    assert f"int8 is calibrated on the photos in {folder}" in window.run_as_combo.toolTip()
    said: list[str] = []
    window.statusBar().messageChanged.connect(said.append)
    shown(qtbot, window, 1280, 800)
    window.open_path(PHOTO)
    outcome = wait_for_outcome(qtbot, window, PHOTO, timeout=300_000)
    assert outcome.way == INT8 and outcome.way_label == "int8" and outcome.classification.ok
    assert "Calibrating efficientnet_lite0 for int8 on 20 images (once; cached)…" in said
    assert window.predictions.title.text().endswith(f"{MODEL} · int8 · cpu")
    assert "Run as: int8 on cpu" in window.copy_predictions()
    assert "calibration images" not in window.predictions.timings.text()  # this photo did not calibrate it
    shown(qtbot, window, 1280, 800)
    save_screenshot(window, "int8-classified-1280x800")
    # A photo of the calibration folder is still classified, and the facts say it calibrated the model.
    inside = str(folder / CALIBRATION[0].name)
    window.open_path(inside)
    outcome = wait_for_outcome(qtbot, window, inside, timeout=120_000)
    assert outcome.way == INT8 and outcome.load_ms is None  # the same int8 model, already loaded
    assert window.predictions.timings.text().endswith("· this photo was among the int8 calibration images")
    shown(qtbot, window, 1920, 1080)
    save_screenshot(window, "int8-calibration-photo-1920x1080")
    shown(qtbot, window, 1280, 800)
    save_screenshot(window, "int8-calibration-photo-1280x800")
    window.open_path(PHOTO)  # kept from before: shown again at once
    wait_for_outcome(qtbot, window, PHOTO)
    shown(qtbot, window, 1920, 1080)
    save_screenshot(window, "int8-classified-1920x1080")


def test_picking_int8_asks_once_for_a_folder_and_refusing_keeps_the_way_before(make_window, qtbot, monkeypatch,
                                                                               int8_home):
    from cnnviewer.gui.main_window import window_settings

    _, folder = int8_home
    window = make_window(run_as="fp32")
    assert window.calibration_folder == ""
    asked = answers(monkeypatch, "")
    window.run_as_combo.setCurrentText("int8")
    assert len(asked) == 1 and "calibration folder" in asked[0]
    assert window.run_as_combo.currentText() == "fp32" and window.current_choice() == FP32
    assert window.statusBar().currentMessage() == ("int8 needs a folder of 16 or more photos to calibrate on; "
                                                   "still running as fp32.")
    asked = answers(monkeypatch, str(folder))
    window.run_as_combo.setCurrentText("int8")
    assert len(asked) == 1 and window.current_choice() == INT8
    assert window_settings().value("int8CalibrationFolder") == str(folder)
    window.run_as_combo.setCurrentText("fp32")
    window.run_as_combo.setCurrentText("int8")  # the folder is known now: not asked again
    assert len(asked) == 1 and window.current_choice() == INT8
    # The Models menu changes it.
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Models")
    entry = next(a for a in menu.actions() if a.text() == "Choose int8 &calibration folder…")
    answers(monkeypatch, str(folder.parent))
    entry.trigger()
    assert window.calibration_folder == str(folder.parent)
    assert window_settings().value("int8CalibrationFolder") == str(folder.parent)


def test_a_folder_of_too_few_photos_is_refused_when_picked_and_the_folder_before_stays(make_window, qtbot,
                                                                                        monkeypatch, int8_home):
    from cnnviewer.core.quantize import MIN_CALIBRATION_IMAGES
    from cnnviewer.gui.main_window import MIN_CALIBRATION_PHOTOS
    from tests.helpers import PHOTOS_13

    assert MIN_CALIBRATION_PHOTOS == MIN_CALIBRATION_IMAGES  # one figure, written twice to keep start-up light
    _, folder = int8_home
    window = make_window(run_as="fp32")
    answers(monkeypatch, str(folder))
    window.run_as_combo.setCurrentText("int8")
    assert window.calibration_folder == str(folder)
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Models")
    entry = next(a for a in menu.actions() if a.text() == "Choose int8 &calibration folder…")
    answers(monkeypatch, str(PHOTOS_13))  # 13 photos
    entry.trigger()
    assert window.calibration_folder == str(folder)  # the folder that works is kept
    message = window.statusBar().currentMessage()
    assert "fewer than 16 photos" in message and f"stays calibrated on {folder}" in message
