"""Start the Qt application and the main window (no torch import before the window is on screen)."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("cnnviewer.gui")


def _excepthook(kind, value, tb) -> None:
    """An exception in a slot must not kill the app: log it, and say so in the status bar."""
    log.error("unhandled exception in the GUI", exc_info=(kind, value, tb))
    from PySide6.QtWidgets import QApplication, QMainWindow

    from cnnviewer.core.paths import log_file

    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, QMainWindow):
            widget.statusBar().showMessage(f"Unexpected error: {value}. The details are in {log_file()}.", 20000)


def run_app(path: str | None = None) -> int:
    from cnnviewer.gui.main_window import ensure_app, run_window

    app = ensure_app()
    sys.excepthook = _excepthook
    window = run_window(path)  # noqa: F841 - kept alive until exec() returns
    return app.exec()
