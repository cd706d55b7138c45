"""Fixtures for the window: a fresh MainWindow with isolated settings, closed and checked after each test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ARTIFACTS = Path(os.environ.get("CNNVIEWER_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


def save_screenshot(widget, name: str) -> Path:
    """Screenshots of the main states, to be looked at by a person."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert widget.grab().save(str(path)), f"could not save {path}"
    return path


@pytest.fixture
def make_window(qtbot):
    """Build windows that are closed at the end; assert that no worker outlives its window."""
    from cnnviewer.gui.main_window import MainWindow

    windows = []

    def factory(wait_catalog: bool = True) -> MainWindow:
        window = MainWindow()
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        if wait_catalog:
            qtbot.waitUntil(lambda: window.selected_model() is not None, timeout=60_000)
        return window

    yield factory
    for window in windows:
        window.close()
        assert window.running_workers() == 0


def wait_for_outcome(qtbot, window, path, model=None, timeout=60_000):
    """Wait until the predictions panel shows ``path`` (by ``model`` when given)."""
    path = str(path)
    qtbot.waitUntil(
        lambda: window.last_outcome is not None and window.last_outcome.path == path
        and (model is None or window.last_outcome.model == model),
        timeout=timeout,
    )
    return window.last_outcome


def compare_after_classifying(qtbot, window, path):
    """Classify ``path`` in the window, then open the compare dialog on it; the dialog."""
    window.open_path(path)
    wait_for_outcome(qtbot, window, path)
    window.open_compare()
    return window.compare_dialog
