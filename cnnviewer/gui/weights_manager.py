"""The Weights manager: every model's weights (state, file, size, check), and Download, Verify, Remove, Import."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from cnnviewer.core.errors import CnnviewerError
from cnnviewer.gui.text import make_plain, tooltip
from cnnviewer.workers import jobs

if TYPE_CHECKING:
    from cnnviewer.gui.main_window import MainWindow

OWNER = "weights-manager"  # its requests are its own: the main window's and a dialog's go on
COLUMNS = ("Model", "Weights", "Check", "Size", "File")
RED = QColor(176, 0, 32)


def show_weights_manager(window: MainWindow, on_changed: Callable[[str], object] | None = None) -> WeightsManager:
    """Models > Weights manager: the window's one manager, opened or brought to the front.

    ``on_changed(model)`` is called after a file was imported or removed (the window forgets what the model
    computed with its old weights and lists the models again)."""
    manager = window.findChild(WeightsManager)
    if manager is None:
        manager = WeightsManager(window)
        if on_changed is not None:
            manager.weights_changed.connect(on_changed)
        manager.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    manager.show()
    manager.raise_()
    manager.activateWindow()
    return manager


def _size(size: int | None) -> str:
    if size is None:
        return ""
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.0f} KB"


class WeightsManager(QDialog):
    """What ``cnnviewer weights list / verify / remove / import`` do, on the same core calls, in the io lane."""

    weights_changed = Signal(str)  # model name: a file of it was imported or removed

    def __init__(self, main_window: MainWindow) -> None:
        super().__init__(main_window)
        self.main_window = main_window
        self.runner = main_window.runner
        self.setWindowTitle("Weights manager")
        self.setMinimumSize(760, 420)
        self.rows: list[jobs.WeightsRow] = []
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("type to search the models")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._apply_search)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long path keeps its file name
        header = self.table.horizontalHeader()
        for column in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _item: self.download())
        self.status = QLabel("Reading the weights folders…", self)
        make_plain(self.status)  # file names and error sentences
        self.status.setWordWrap(True)
        policy = self.status.sizePolicy()  # keeps the height-for-width flag that word wrap set
        policy.setVerticalPolicy(QSizePolicy.Policy.Minimum)
        self.status.setSizePolicy(policy)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.download_button = QPushButton("Download…")
        self.verify_button = QPushButton("Verify")
        self.remove_button = QPushButton("Remove…")
        self.import_button = QPushButton("Import…")
        self.close_button = QPushButton("Close")
        self.tips = {  # an enabled button's tooltip; a greyed one's says why it cannot act
            self.download_button: "Download the selected model's weights (or import a file)",
            self.verify_button: "Hash the selected model's files against the hashes in their names",
            self.remove_button: "Delete the selected model's downloaded, partial and imported files",
            self.import_button: "Check a weights file for the selected model and store it",
        }
        self.download_button.clicked.connect(self.download)
        self.verify_button.clicked.connect(self.verify)
        self.remove_button.clicked.connect(lambda: self.remove())
        self.import_button.clicked.connect(lambda: self.import_file())
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        for button in (self.download_button, self.verify_button, self.remove_button, self.import_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(980, 560)
        self.busy = False
        self.confirm: QMessageBox | None = None
        self._update_buttons()
        self.refresh()

    # -- the list -------------------------------------------------------------------------------

    def refresh(self, select: str | None = None) -> int:
        """Read every model's weights state again (off the GUI thread); the request id."""
        wanted = select or self.selected()
        return self.runner.submit(OWNER, "list", jobs.weights_rows_job, lane="io",
                                  on_returned=lambda rows: self._on_rows(rows, wanted), on_error=self._on_error)

    def _on_rows(self, rows: list[jobs.WeightsRow], select: str | None) -> None:
        self.rows = rows
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for number, row in enumerate(rows):
            cells = (row.model, row.state, row.check, _size(row.size), row.file)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, row.model)
                item.setToolTip(tooltip(f"{row.title}: {row.file}" if row.file else row.title))
                if column == 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if row.check == "hash mismatch" or (column == 1 and row.state == "missing"):
                    item.setForeground(RED if row.check == "hash mismatch" else QColor(128, 128, 128))
                self.table.setItem(number, column, item)
        ready = sum(row.state != "missing" for row in rows)
        if self.status.text().startswith("Reading"):
            self.status.setText(f"{len(rows)} models, {ready} with weights on this machine.")
        self._apply_search(self.search.text())
        if select:
            self.select(select)
        self._update_buttons()

    def _apply_search(self, text: str) -> None:
        text = text.strip().lower()
        for number, row in enumerate(self.rows):
            self.table.setRowHidden(number, bool(text) and text not in f"{row.model} {row.title}".lower())

    def selected(self) -> str | None:
        items = self.table.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def selected_row(self) -> jobs.WeightsRow | None:
        name = self.selected()
        return next((row for row in self.rows if row.model == name), None)

    def select(self, model: str) -> bool:
        for number, row in enumerate(self.rows):
            if row.model == model:
                self.table.selectRow(number)
                item = self.table.item(number, 0)
                if item is not None:
                    self.table.scrollToItem(item)
                return True
        return False

    def _update_buttons(self) -> None:
        """Each button enabled when it can act on the selected model; a greyed one's tooltip says why not."""
        row = self.selected_row()
        for button, reason in ((self.download_button, self._why_not_download(row)),
                               (self.verify_button, self._why_not_verify(row)),
                               (self.remove_button, self._why_not_remove(row)),
                               (self.import_button, self._why_not_import(row))):
            button.setEnabled(not reason)
            button.setToolTip(reason or self.tips[button])

    def _why_not(self, row: jobs.WeightsRow | None) -> str:
        if self.busy:
            return "Wait: the manager is still busy with the weights of a model"
        return "" if row is not None else "Select a model in the list first"

    def _why_not_download(self, row: jobs.WeightsRow | None) -> str:
        if reason := self._why_not(row):
            return reason
        assert row is not None
        if row.state == "embedded":
            return f"{row.model}'s weights come with cnnviewer: there is nothing to download"
        return "" if row.state == "missing" else f"{row.model}'s weights are already on this machine"

    def _why_not_verify(self, row: jobs.WeightsRow | None) -> str:
        if reason := self._why_not(row):
            return reason
        assert row is not None
        return "" if row.state != "missing" else f"{row.model} has no weights file to verify: download or import it"

    def _why_not_remove(self, row: jobs.WeightsRow | None) -> str:
        if reason := self._why_not(row):
            return reason
        assert row is not None
        if row.state == "embedded":
            return "Embedded weights come with cnnviewer; they cannot be removed here"
        return "" if row.removable else f"{row.model} has no downloaded, partial or imported file to remove"

    def _why_not_import(self, row: jobs.WeightsRow | None) -> str:
        if reason := self._why_not(row):
            return reason
        assert row is not None
        return f"{row.model}'s weights come with cnnviewer; they cannot be replaced" if row.state == "embedded" else ""

    def _set_busy(self, busy: bool, text: str = "") -> None:
        self.busy = busy
        if text:
            self.status.setStyleSheet("")
            self.status.setText(text)
        self._update_buttons()

    def _on_error(self, exc: Exception) -> None:
        self._set_busy(False)
        self.status.setStyleSheet("color: #b00020;")
        self.status.setText(exc.for_window() if isinstance(exc, CnnviewerError) else f"{type(exc).__name__}: {exc}")

    # -- the actions ----------------------------------------------------------------------------

    def download(self) -> QDialog | None:
        """The weights dialog of the selected model (the same one the toolbar opens)."""
        row = self.selected_row()
        if row is None or row.state != "missing":
            return None
        dialog = self.main_window.open_weights_dialog(row.model)
        if dialog is not None:
            # A bound method, so Qt drops the connection when this window is deleted before the download ends
            # (a lambda would still call into the deleted table); UniqueConnection: a raised dialog is not
            # connected twice.
            dialog.weights_ready.connect(self._on_dialog_ready, Qt.ConnectionType.UniqueConnection)
        return dialog

    @Slot(str)
    def _on_dialog_ready(self, model: str) -> None:
        self.refresh(model)

    def verify(self) -> int | None:
        """Hash the selected model's files, as ``cnnviewer weights verify NAME`` does; the request id."""
        row = self.selected_row()
        if row is None or row.state == "missing":
            return None
        self._set_busy(True, f"Verifying the weights of {row.model}…")
        return self.runner.submit(OWNER, "verify", jobs.verify_job, row.model, lane="io",
                                  on_returned=lambda found: self._on_verified(row.model, found),
                                  on_error=self._on_error, on_cancelled=lambda _kept: self._set_busy(False))

    def _on_verified(self, model: str, found: list[tuple[str, str, bool]]) -> None:
        self._set_busy(False)
        bad = [path for path, _shown, good in found if not good]
        row = next((r for r in self.rows if r.model == model), None)
        again = (f"reinstall the Python package {row.package}" if row is not None and row.package
                 else "remove it and download or import it again")
        if bad:
            self.status.setStyleSheet("color: #b00020;")
            self.status.setText(" ".join(
                f"{path}: the SHA-256 does not match the hash in its name; {again}." for path in bad))
        else:
            self.status.setText("; ".join(f"{os.path.basename(path)}: {shown}" for path, shown, _good in found)
                                + " (OK: the SHA-256 matches the hash in the name).")
        self.refresh(model)

    def remove(self) -> QMessageBox | None:
        """Ask before deleting the selected model's files (``cnnviewer weights remove NAME``); the question."""
        row = self.selected_row()
        if row is None or not row.removable:
            return None
        files = [r.file for r in self.rows if r.model == row.model and r.file] or ["its partial download"]
        box = QMessageBox(QMessageBox.Icon.Question, "Remove weights",
                          f"Delete the weights files of {row.model}? A later download or import brings them back.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setInformativeText("\n".join(files))
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        # Asked without blocking: the list and the other windows go on while the question waits.
        box.buttonClicked.connect(
            lambda button: self._remove(row.model) if box.standardButton(button) == QMessageBox.StandardButton.Yes
            else None)
        self.confirm = box
        box.open()
        return box

    def _remove(self, model: str) -> int:
        self._set_busy(True, f"Removing the weights of {model}…")
        return self.runner.submit(OWNER, "remove", jobs.remove_job, model, lane="io",
                                  on_returned=lambda paths: self._on_changed(model, "removed", paths),
                                  on_error=self._on_error, on_cancelled=lambda _kept: self._set_busy(False))

    def import_file(self, path: str | None = None) -> int | None:
        """Check a file and store it for the selected model, as ``cnnviewer weights import FILE --model``."""
        row = self.selected_row()
        if row is None or row.state == "embedded":
            return None
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, f"Import weights for {row.model}", "",
                                                  "PyTorch weights (*.pth *.pt *.bin);;All files (*)")
        if not path:
            return None
        self._set_busy(True, f"Checking {path}…")
        return self.runner.submit(OWNER, "import", jobs.import_job, path, row.model, lane="io",
                                  on_returned=lambda final: self._on_changed(row.model, "imported into", [final]),
                                  on_error=self._on_error, on_cancelled=lambda _kept: self._set_busy(False))

    def _on_changed(self, model: str, verb: str, paths: list[str]) -> None:
        self._set_busy(False, f"{model}: {verb} " + ", ".join(paths) + ".")
        self.refresh(model)
        self.weights_changed.emit(model)

    def done(self, result: int) -> None:  # Qt override: closing ends here; a hash in flight stops
        self.runner.forget_owner(OWNER)
        super().done(result)
