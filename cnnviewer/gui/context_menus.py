"""The window's first minute: the image and prediction right-click menus, the recent folders and the samples hint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QMenu, QTableView

if TYPE_CHECKING:
    from cnnviewer.gui.main_window import MainWindow

SAMPLES_LINK = "samples"
EMPTY_PANEL_TEXT = ("No image classified yet.<br><br>New here? <a href=\"samples\">Open the sample photos</a> "
                    "(File &gt; Open sample photos), then double-click one to classify it.")


def install(window: MainWindow) -> None:
    """Connect the browser's image menu to the window, the predictions' Copy menu, the recent folders and the
    empty panel's pointer to the sample photos."""
    browser = window.browser
    browser.classify_requested.connect(window.open_path)
    browser.explain_requested.connect(lambda path: explain(window, path))
    browser.compare_requested.connect(lambda path: compare(window, path))
    browser.remember_in(window.settings)
    install_prediction_menu(window.predictions.table)
    if window.last_outcome is None and window.current_path is None:
        show_samples_hint(window.predictions.title, browser.open_samples)


def explain(window: MainWindow, path: str) -> None:
    """Classify ``path`` and overlay its Grad-CAM map (the map follows the classification)."""
    window.open_path(path)
    window.explain_action.setChecked(True)


def compare(window: MainWindow, path: str) -> None:
    """Select ``path`` and open the compare dialog on it."""
    window.browser.go_to(path)
    window.open_compare()


def show_samples_hint(label: QLabel, open_samples) -> None:
    """The empty predictions panel points at the sample photos; the link opens them."""
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setText(EMPTY_PANEL_TEXT)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                  | Qt.TextInteractionFlag.LinksAccessibleByMouse)
    label.linkActivated.connect(lambda link: open_samples() if link == SAMPLES_LINK else None)


# -- predictions ------------------------------------------------------------------------------


def install_prediction_menu(table: QTableView) -> None:
    table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    table.customContextMenuRequested.connect(
        lambda position: _on_prediction_context_menu(table, position))


def _on_prediction_context_menu(table: QTableView, position: QPoint) -> None:
    menu = prediction_menu(table, table.indexAt(position))
    if menu is not None:
        menu.exec(table.viewport().mapToGlobal(position))


def prediction_menu(table: QTableView, index: QModelIndex) -> QMenu | None:
    """Copy (the clicked row, or the selected rows when it is one of them) and Copy all; None off the rows."""
    if not index.isValid():
        return None
    selected = sorted({i.row() for i in table.selectionModel().selectedRows()})
    rows = selected if index.row() in selected else [index.row()]
    menu = QMenu(table)
    menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    menu.addAction("Copy", lambda: copy_rows(table, rows))
    menu.addAction("Copy all predictions", lambda: copy_rows(table, list(range(table.model().rowCount()))))
    return menu


def rows_text(table: QTableView, rows: list[int]) -> str:
    """The rows as the table shows them (rank, class index, name, probability), tab-separated, one per line."""
    model = table.model()
    return "\n".join("\t".join(str(model.index(row, column).data()) for column in range(model.columnCount()))
                     for row in rows)


def copy_rows(table: QTableView, rows: list[int]) -> None:
    QGuiApplication.clipboard().setText(rows_text(table, rows))
