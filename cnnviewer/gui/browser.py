"""The file browser: a path bar, a filesystem tree that shows image files only, and a thumbnail strip."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QDir, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileSystemModel,
    QHBoxLayout,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from cnnviewer.core.images import IMAGE_SUFFIXES, is_image_path
from cnnviewer.gui.text import tooltip

THUMBNAIL_SIZE = 96
MAX_THUMBNAILS = 1000  # a strip of thousands helps nobody and costs memory


def image_name_filters() -> list[str]:
    return [f"*{s}" for s in IMAGE_SUFFIXES] + [f"*{s.upper()}" for s in IMAGE_SUFFIXES]


def list_images(folder: str) -> list[str]:
    """Image files directly in ``folder``, sorted by name; unreadable folders give an empty list."""
    try:
        with os.scandir(folder) as it:
            names = [e.path for e in it if is_image_path(e.name) and e.is_file()]
    except OSError:
        return []
    return sorted(names, key=lambda p: os.path.basename(p).lower())


class FileBrowser(QWidget):
    """Emits ``file_selected`` as the selection moves and ``file_activated`` on double-click or Enter."""

    file_selected = Signal(str)
    file_activated = Signal(str)
    folder_changed = Signal(str)
    folder_context_requested = Signal(str, object)  # folder, global position

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = QFileSystemModel(self)
        self.model.setFilter(QDir.Filter.AllDirs | QDir.Filter.Files | QDir.Filter.NoDotAndDotDot)
        self.model.setNameFilters(image_name_filters())
        self.model.setNameFilterDisables(False)  # hide, not grey out, what is not an image
        self.model.setRootPath(QDir.rootPath())

        self.path_bar = QLineEdit(self)
        self.path_bar.setPlaceholderText("Folder or image path, then Enter")
        self.path_bar.returnPressed.connect(lambda: self.go_to(self.path_bar.text()))
        self.up_button = QToolButton(self)
        self.up_button.setText("↑")
        self.up_button.setToolTip("Parent folder")
        self.up_button.clicked.connect(lambda: self.go_to(str(Path(self.folder or "/").parent)))

        self.tree = QTreeView(self)
        self.tree.setModel(self.model)
        for column in (1, 2, 3):
            self.tree.hideColumn(column)
        self.tree.setHeaderHidden(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._on_context_menu)
        self.tree.activated.connect(self._on_activated)
        self.tree.selectionModel().currentChanged.connect(self._on_current_changed)

        self.strip = QListWidget(self)
        self.strip.setViewMode(QListView.ViewMode.IconMode)
        self.strip.setFlow(QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.strip.setUniformItemSizes(True)
        self.strip.setMovement(QListView.Movement.Static)
        self.strip.setResizeMode(QListView.ResizeMode.Adjust)
        self.strip.currentItemChanged.connect(self._on_strip_current)
        self.strip.itemActivated.connect(lambda item: self.file_activated.emit(item.data(Qt.ItemDataRole.UserRole)))

        top = QHBoxLayout()
        top.addWidget(self.up_button)
        top.addWidget(self.path_bar, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.tree, 3)
        self.folder: str | None = None
        self.thumbnails_shown = 0
        self._strip_items: dict[str, QListWidgetItem] = {}
        blank = QPixmap(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
        blank.fill(QColor(225, 225, 225))
        self._placeholder = QIcon(blank)

    # -- navigation ---------------------------------------------------------------------------

    def go_to(self, path: str) -> bool:
        """Show a folder, or a file's folder with the file selected; False if the path is not there."""
        path = os.path.abspath(os.path.expanduser(path.strip())) if path else ""
        if not path or not os.path.exists(path):
            return False
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        self._set_folder(folder)
        index = self.model.index(path)
        self.tree.setCurrentIndex(index)
        self.tree.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        return True

    def _set_folder(self, folder: str) -> None:
        index = self.model.index(folder)
        self.tree.expand(index)
        self.path_bar.setText(folder)
        if folder != self.folder:
            self.folder = folder
            self.folder_changed.emit(folder)

    def selected_path(self) -> str | None:
        index = self.tree.currentIndex()
        return self.model.filePath(index) if index.isValid() else None

    def _on_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        if not current.isValid():
            return
        path = self.model.filePath(current)
        if self.model.isDir(current):
            self._set_folder(path)
            return
        self._set_folder(os.path.dirname(path))
        item = self._strip_items.get(path)
        if item is not None and self.strip.currentItem() is not item:
            self.strip.blockSignals(True)
            self.strip.setCurrentItem(item)
            self.strip.blockSignals(False)
        self.file_selected.emit(path)

    def _on_activated(self, index: QModelIndex) -> None:
        if index.isValid() and not self.model.isDir(index):
            self.file_activated.emit(self.model.filePath(index))

    def _on_strip_current(self, item, previous) -> None:
        if item is not None:
            path = item.data(Qt.ItemDataRole.UserRole)
            index = self.model.index(path)
            if index.isValid() and self.tree.currentIndex() != index:
                self.tree.setCurrentIndex(index)

    def _on_context_menu(self, position) -> None:
        index = self.tree.indexAt(position)
        if index.isValid() and self.model.isDir(index):
            self.folder_context_requested.emit(self.model.filePath(index), self.tree.viewport().mapToGlobal(position))

    # -- thumbnails ---------------------------------------------------------------------------

    def reset_strip(self, paths: list[str]) -> None:
        self.strip.clear()
        self._strip_items = {}
        self.thumbnails_shown = 0
        for path in paths[:MAX_THUMBNAILS]:
            item = QListWidgetItem(self._placeholder, os.path.basename(path))
            item.setData(Qt.ItemDataRole.UserRole, path)
            item.setToolTip(tooltip(path))
            item.setSizeHint(QSize(THUMBNAIL_SIZE + 24, THUMBNAIL_SIZE + 28))
            self.strip.addItem(item)
            self._strip_items[path] = item

    def set_thumbnail(self, path: str, image: QImage | None) -> None:
        item = self._strip_items.get(path)
        if item is None:
            return
        if image is None:
            item.setToolTip(tooltip(f"{path}\n(cannot be read)"))
            item.setText(f"⚠ {os.path.basename(path)}")
        else:
            item.setIcon(QIcon(QPixmap.fromImage(image)))
        self.thumbnails_shown += 1
