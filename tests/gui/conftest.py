"""Window fixtures: fresh MainWindows closed after each test, no widget left behind, a benchmark window."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import PHOTOS_13

if TYPE_CHECKING:
    from cnnviewer.gui.main_window import MainWindow


def _describe(widget: Any) -> str:
    title = widget.windowTitle() if hasattr(widget, "windowTitle") else ""
    return f"{type(widget).__name__}({title!r}, visible={widget.isVisible()})"


@pytest.fixture(autouse=True)
def no_leaked_widgets(qapp: Any) -> Iterator[None]:
    """Fail a test that leaves a top-level widget alive (napari's make_napari_viewer does the same).

    pytest-qt closes and deleteLater()s what qtbot.addWidget was given before fixtures are torn
    down; what is still a top-level widget after the deferred deletions ran was never owned by a
    window that closed, and would live (and maybe run) until the process ends.
    """
    import shiboken6
    from PySide6.QtCore import QCoreApplication, QEvent

    before = set(qapp.topLevelWidgets())
    yield
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    qapp.processEvents()
    leaked = [w for w in qapp.topLevelWidgets() if w not in before and shiboken6.isValid(w)]
    described = [_describe(w) for w in leaked]
    for widget in leaked:  # one report per leak: close and delete them so the next test starts clean
        widget.close()
        widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    if leaked:
        pytest.fail("top-level widgets outlived the test: " + ", ".join(described), pytrace=False)


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[Callable[..., MainWindow]]:
    """Build windows that are closed at the end; assert that no worker outlives its window."""
    from cnnviewer.gui.main_window import MainWindow

    windows: list[MainWindow] = []

    def factory(wait_catalog: bool = True, run_as: str | None = "fp32") -> MainWindow:
        # A new user's window runs as auto, which measures each model's ways on its first load (seconds to a
        # minute); the tests of other features run as fp32, as if remembered. ``run_as=None``: a new user's
        # default (tests/gui/test_auto_gui.py). A runAs a test wrote itself stays.
        if run_as is not None:
            from cnnviewer.gui.main_window import window_settings

            settings = window_settings()
            if not settings.contains("runAs"):
                settings.setValue("runAs", run_as)
                settings.sync()
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
        # close() waits 5 s for the threads; a catalog load still inside `import torch` (which nothing can
        # interrupt) on a loaded machine may need longer. It must still end, and soon.
        qtbot.waitUntil(lambda window=window: window.running_workers() == 0, timeout=60_000)


@pytest.fixture
def bench(make_window, qtbot, photos_13_run) -> Any:
    """The benchmark window of a main window, opened on photos-13 and showing that folder's real run."""
    window = make_window()
    bench = window.open_benchmark(str(PHOTOS_13))
    bench.show_report(copy.deepcopy(photos_13_run[0]))
    qtbot.waitUntil(lambda: bench.dashboard.images_model.rowCount() == 13, timeout=10_000)
    return bench
