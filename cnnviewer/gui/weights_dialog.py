"""Get a model's weights: download with progress and Cancel, or import a file carried over by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
)

from cnnviewer.core.errors import CnnviewerError
from cnnviewer.gui.text import escape, make_plain
from cnnviewer.workers import jobs

if TYPE_CHECKING:
    from cnnviewer.gui.main_window import MainWindow
    from cnnviewer.workers.jobs import CatalogRow
    from cnnviewer.workers.runner import TaskRunner


MIN_WIDTH = 560  # the explanation in three lines, the buttons in one row


class WeightsDialog(QDialog):
    """Started from the model picker or the predictions panel; the work runs on the task runner's io lane.

    Its requests are its own (owner "weights:<model>"): File > Import weights in the main window, or
    another model's dialog, never cancels this download.
    """

    weights_ready = Signal(str)  # model name

    def __init__(self, main_window: MainWindow, row: CatalogRow, runner: TaskRunner) -> None:
        super().__init__(main_window)
        self.main_window = main_window  # not `window`: that would hide QWidget.window()
        self.runner = runner
        self.owner = f"weights:{row.name}"
        self.row = row
        self.setWindowTitle(f"Weights for {row.name}")
        self.setMinimumWidth(MIN_WIDTH)
        self.text = QLabel(
            f"<b>{escape(row.name)}</b> ({escape(row.title)}) needs its pretrained weights, "
            f"{row.file_size_mb:.1f} MB.<br>Download them into torch's cache, or import a file you copied "
            "from another machine (torchvision's file name, or any file with the right keys: one that is not "
            "torchvision's published file is kept apart and shown as imported).")
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.hide()  # shown only while a download runs: an empty bar read as "stuck"
        self.status = QLabel("")
        make_plain(self.status)  # names the file imported
        # The error has a line of its own, under the explanation, which stays whole.
        self.error = QLabel("")
        make_plain(self.error)
        self.error.setStyleSheet("color: #b00020;")
        self.error.hide()
        for label in (self.text, self.status, self.error):
            label.setWordWrap(True)
            # Never squeezed below the height its wrapped text needs at the dialog's width.
            policy = label.sizePolicy()  # keeps the height-for-width flag that word wrap set
            policy.setVerticalPolicy(QSizePolicy.Policy.Minimum)
            label.setSizePolicy(policy)
        for label in (self.status, self.error):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.download_button = QPushButton(f"Download ({row.file_size_mb:.0f} MB)")
        self.download_button.setDefault(True)
        self.import_button = QPushButton("Import a file…")
        self.cancel_button = QPushButton("Cancel")
        self.download_button.clicked.connect(self.start_download)
        self.import_button.clicked.connect(self.choose_import)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.import_button)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        self.box = layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.request_id: int | None = None
        self._say()

    def _fit(self) -> None:
        """Make the dialog as tall as its wrapped text needs at its width (a QDialog does not grow by itself)."""
        layout = self.box
        layout.invalidate()  # a line shown or hidden a moment ago: forget the heights measured before
        layout.activate()
        width = max(self.width(), self.minimumWidth())
        height = layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else layout.totalSizeHint().height()
        self.setMinimumHeight(height)
        self.resize(width, height)

    def _say(self, status: str = "", error: str = "") -> None:
        self.status.setText(status)
        self.status.setVisible(bool(status))
        self.error.setText(error)
        self.error.setVisible(bool(error))
        self._fit()

    def _busy(self, busy: bool) -> None:
        self.download_button.setEnabled(not busy)
        self.import_button.setEnabled(not busy)
        self.cancel_button.setText("Cancel" if busy else "Close")

    def start_download(self) -> None:
        self._busy(True)
        self.progress.show()
        self.progress.setValue(0)
        self._say("Connecting…")
        self.request_id = self.runner.submit(
            self.owner, "weights", jobs.download_job, self.row.name, lane="io", on_returned=self._on_done,
            on_progress=self._on_progress, on_error=self._on_error, on_cancelled=self._on_cancelled)

    def choose_import(self, path: str | None = None) -> None:
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, f"Import weights for {self.row.name}", "",
                                                  "PyTorch weights (*.pth *.pt *.bin);;All files (*)")
        if not path:
            return
        self._busy(True)
        self._say(f"Checking {path}…")
        self.request_id = self.runner.submit(self.owner, "weights", jobs.import_job, path, self.row.name, lane="io",
                                             on_returned=self._on_done, on_error=self._on_error,
                                             on_cancelled=self._on_cancelled)

    def _on_progress(self, done: int, total: int, text: str) -> None:
        if total:
            self.progress.setValue(int(done * 1000 / total))
        if self.status.text() != text:
            self.status.setText(text)

    def _on_done(self, path) -> None:
        self._busy(False)
        self.request_id = None
        self.progress.setValue(1000)
        self._say(f"Ready: {path}")
        self.cancel_button.setText("Close")
        self.weights_ready.emit(self.row.name)
        self.accept()

    def _on_error(self, exc: Exception) -> None:
        self._busy(False)
        self.request_id = None
        text = exc.for_window() if isinstance(exc, CnnviewerError) else f"{type(exc).__name__}: {exc}"
        self.progress.hide()
        self._say(error=text)

    def _on_cancelled(self, _kept: object = None) -> None:
        self._busy(False)
        self.request_id = None
        downloading = self.progress.isVisible()
        self.progress.hide()
        self._say("The download was cancelled; nothing was kept." if downloading else "Cancelled.")

    def cancel(self) -> None:
        if self.request_id is not None and self.runner.cancel_request(self.request_id):
            self._say("Cancelling…")
            return
        self.reject()

    def done(self, result: int) -> None:  # Qt override: accept, reject and closing all end here
        self.runner.forget_owner(self.owner)  # closed mid-download: stop it, and call back nothing deleted
        super().done(result)

    def is_busy(self) -> bool:
        return not self.download_button.isEnabled()
