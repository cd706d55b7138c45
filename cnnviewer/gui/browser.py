"""The file browser: places, a path bar, a filesystem tree that shows image files only, and a thumbnail strip."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QDir, QEvent, QModelIndex, QPoint, QSettings, QSize, QStandardPaths, Qt, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QDesktopServices,
    QGuiApplication,
    QIcon,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileSystemModel,
    QHBoxLayout,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QStyle,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from cnnviewer.core.images import IMAGE_SUFFIXES, is_image_path
from cnnviewer.core.paths import resources_dir
from cnnviewer.gui.text import tooltip

THUMBNAIL_SIZE = 96
THUMBNAIL_CELL = THUMBNAIL_SIZE + 28  # a cell's width: the thumbnail and room on either side for its label
PATH_ERROR_STYLE = "QLineEdit { border: 2px solid #c62828; border-radius: 3px; padding: 1px 2px; }"
MAX_THUMBNAILS = 1000  # a strip of thousands helps nobody and costs memory
RECENT_FOLDERS = 8
RECENT_KEY = "recentFolders"
log = logging.getLogger("cnnviewer.gui")


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


def samples_folder() -> str | None:
    """The sample photos shipped with cnnviewer (``resources/samples``, in a bundle too), if they are there."""
    try:
        folder = resources_dir() / "samples"
    except FileNotFoundError:
        return None
    return str(folder) if folder.is_dir() else None


def places() -> list[tuple[str, str]]:
    """(label, folder) of Home, Pictures and Desktop where each exists, then the sample photos."""
    found = [("Home", str(Path.home()))]
    for label, location in (("Pictures", QStandardPaths.StandardLocation.PicturesLocation),
                            ("Desktop", QStandardPaths.StandardLocation.DesktopLocation)):
        folder = QStandardPaths.writableLocation(location)
        # Where no such folder was ever made, Qt answers with the home folder itself.
        if folder and os.path.isdir(folder) and os.path.abspath(folder) != found[0][1]:
            found.append((label, folder))
    samples = samples_folder()
    if samples:
        found.append(("Samples", samples))
    return found


def tree_root_for(folder: str) -> str:
    """The folder the tree is rooted at to show ``folder``: the home folder for anything inside it, else the
    folder's parent, so the tree never lays out the whole file system around one folder."""
    home = os.path.abspath(Path.home())
    if home != os.sep and (folder == home or folder.startswith(home.rstrip(os.sep) + os.sep)):
        return home
    return os.path.dirname(folder) or folder


def inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def menu_text(text: str) -> str:
    """A name as the text of a menu entry: ``&`` would be read as a keyboard shortcut marker."""
    return text.replace("&", "&&")


class PathBar(QLineEdit):
    """A line edit that leaves the window's shortcuts to the window.

    QLineEdit claims keys of its own (Ctrl+E: end of line, Ctrl+B: back a letter...) before any shortcut
    sees them, so Ctrl+E did nothing while the path bar had the focus. The keys in ``window_keys`` go to
    the window; everything else (typing, Ctrl+C, Ctrl+V...) stays the line edit's.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_keys: list[QKeySequence] = []

    def is_window_key(self, event: QKeyEvent) -> bool:
        pressed = QKeySequence(event.keyCombination())
        return any(key.matches(pressed) == QKeySequence.SequenceMatch.ExactMatch for key in self.window_keys)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) and self.is_window_key(event):
            event.ignore()  # not overridden: the shortcut goes to the window's action
            return True
        return super().event(event)


class FileBrowser(QWidget):
    """Emits ``file_selected`` as the selection moves and ``file_activated`` on double-click or Enter."""

    file_selected = Signal(str)
    file_activated = Signal(str)
    folder_changed = Signal(str)
    folder_context_requested = Signal(str, object)  # folder, global position
    # The image menu's actions that belong to the window (the browser does Copy path and Open folder itself).
    classify_requested = Signal(str)
    explain_requested = Signal(str)
    compare_requested = Signal(str)
    path_rejected = Signal(str)  # the sentence: a path typed in the path bar is not there
    path_error_cleared = Signal(str)  # that sentence, now no longer true (another folder is shown)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = QFileSystemModel(self)
        self.model.setFilter(QDir.Filter.AllDirs | QDir.Filter.Files | QDir.Filter.NoDotAndDotDot)
        self.model.setNameFilters(image_name_filters())
        self.model.setNameFilterDisables(False)  # hide, not grey out, what is not an image
        self.model.setRootPath(QDir.rootPath())

        self.path_bar = PathBar(self)
        self.path_bar.setPlaceholderText("Folder or image path, then Enter")
        self.path_bar.returnPressed.connect(self._on_path_entered)
        self.path_bar.textEdited.connect(lambda _: self._show_path_error(""))
        self.path_error = ""  # what is wrong with the path typed, as the tooltip and the status bar say it
        self._path_error_icon = QAction(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning), "",
                                        self.path_bar)
        self.path_bar.addAction(self._path_error_icon, QLineEdit.ActionPosition.TrailingPosition)
        self._path_error_icon.setVisible(False)
        self.up_button = QToolButton(self)
        self.up_button.setText("↑")
        self.up_button.setToolTip("Parent folder")
        self.up_button.clicked.connect(lambda: self.go_to(str(Path(self.folder or "/").parent)))
        self.place_buttons: dict[str, QToolButton] = {}
        self.recent_button = QToolButton(self)
        self.recent_button.setText("Recent")
        self.recent_button.setToolTip("Folders opened lately")
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_button.setMenu(QMenu(self.recent_button))
        self.recent_button.menu().aboutToShow.connect(self._fill_recent_menu)
        self.recent_folders: list[str] = []
        self._recent_settings: QSettings | None = None

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
        # Every label in a cell of its own, centred under its thumbnail and cut to the cell with "…" (reset_strip):
        # Qt centred a longer label on the thumbnail and cut it at the strip's left edge.
        self.strip.setGridSize(self._cell_size())
        self.strip.setSpacing(0)
        self.strip.setWordWrap(False)
        self.strip.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.strip.setMovement(QListView.Movement.Static)
        self.strip.setResizeMode(QListView.ResizeMode.Adjust)
        self.strip.currentItemChanged.connect(self._on_strip_current)
        self.strip.itemActivated.connect(lambda item: self.file_activated.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.strip.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.strip.customContextMenuRequested.connect(self._on_strip_context_menu)

        self.places_row = QHBoxLayout()
        self.places_row.setSpacing(2)
        for label, folder in places():
            button = QToolButton(self)
            button.setText(label)
            button.setAutoRaise(True)
            button.setToolTip(tooltip(folder))
            button.clicked.connect(lambda _=False, f=folder: self.go_to(f))
            self.places_row.addWidget(button)
            self.place_buttons[label] = button
        self.recent_button.setAutoRaise(True)
        self.places_row.addWidget(self.recent_button)
        self.places_row.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.up_button)
        top.addWidget(self.path_bar, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self.places_row)
        layout.addLayout(top)
        layout.addWidget(self.tree, 3)
        self.folder: str | None = None
        self.thumbnails_shown = 0
        self.images: list[str] = []
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
        self._show_path_error("")
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        root = self.tree_root()
        if root is None or not inside(folder, root) or (root == os.sep and folder != os.sep):
            self._set_root(tree_root_for(folder))
        self._set_folder(folder)
        self.note_recent(folder)
        index = self.model.index(path)
        self.tree.setCurrentIndex(index)
        self.tree.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        return True

    def _on_path_entered(self) -> None:
        """Enter in the path bar: a folder is shown, a file shown in its folder and selected; a path that is
        not there is said so (red frame, warning icon, tooltip and the window's status bar)."""
        typed = self.path_bar.text().strip()
        if typed and not self.go_to(typed):
            self._show_path_error(f"No such folder: {os.path.abspath(os.path.expanduser(typed))}")
            self.path_rejected.emit(self.path_error)

    def _show_path_error(self, text: str) -> None:
        if text == self.path_error:
            return
        if self.path_error and not text:
            self.path_error_cleared.emit(self.path_error)
        self.path_error = text
        self.path_bar.setStyleSheet(PATH_ERROR_STYLE if text else "")
        self.path_bar.setToolTip(tooltip(text))
        self._path_error_icon.setToolTip(tooltip(text))
        self._path_error_icon.setVisible(bool(text))

    def tree_root(self) -> str | None:
        """The folder whose contents the tree lists at its top level."""
        index = self.tree.rootIndex()
        return self.model.filePath(index) if index.isValid() else None

    def _set_root(self, root: str) -> None:
        self.model.setRootPath(root)
        self.tree.setRootIndex(self.model.index(root))

    def open_samples(self) -> bool:
        """Show the bundled sample photos with the first one selected (File > Open sample photos)."""
        folder = samples_folder()
        photos = list_images(folder) if folder else []
        if not photos:
            return False
        return self.go_to(photos[0])

    # -- recent folders -----------------------------------------------------------------------

    def remember_in(self, settings: QSettings) -> None:
        """Read the recent folders from ``settings`` (checked entry by entry) and keep them there from now on."""
        stored = settings.value(RECENT_KEY)
        entries = [stored] if isinstance(stored, str) else stored if isinstance(stored, list) else []
        if stored is not None and not isinstance(stored, (str, list)):
            log.warning("%s: %s is %r, not a list of folders; starting with none", settings.fileName(), RECENT_KEY,
                        stored)
        kept = [e for e in entries if isinstance(e, str) and 0 < len(e) <= 4096 and "\0" not in e and os.path.isdir(e)]
        current = self.recent_folders
        self.recent_folders = list(dict.fromkeys([*current, *kept]))[:RECENT_FOLDERS]
        self._recent_settings = settings
        self._save_recent()

    def note_recent(self, folder: str) -> None:
        """Put ``folder`` first among the recent folders."""
        self.recent_folders = [folder, *(f for f in self.recent_folders if f != folder)][:RECENT_FOLDERS]
        self._save_recent()

    def _save_recent(self) -> None:
        if self._recent_settings is not None:
            self._recent_settings.setValue(RECENT_KEY, self.recent_folders)

    def _fill_recent_menu(self) -> None:
        menu = self.recent_button.menu()
        menu.clear()
        for folder in self.recent_folders:
            if os.path.isdir(folder):
                action = menu.addAction(menu_text(folder))
                action.triggered.connect(lambda _=False, f=folder: self.go_to(f))
        if menu.isEmpty():
            menu.addAction("No recent folders").setEnabled(False)

    def _set_folder(self, folder: str) -> None:
        index = self.model.index(folder)
        self.tree.expand(index)
        # The folder shown replaces the path typed, so what was wrong with that path no longer applies.
        self._show_path_error("")
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

    def _on_context_menu(self, position: QPoint) -> None:
        index = self.tree.indexAt(position)
        if not index.isValid():
            return
        where = self.tree.viewport().mapToGlobal(position)
        if self.model.isDir(index):
            self.folder_context_requested.emit(self.model.filePath(index), where)
        else:
            self.image_menu(self.model.filePath(index)).exec(where)

    def _on_strip_context_menu(self, position: QPoint) -> None:
        item = self.strip.itemAt(position)
        if item is not None:
            self.image_menu(item.data(Qt.ItemDataRole.UserRole)).exec(self.strip.viewport().mapToGlobal(position))

    def image_menu(self, path: str) -> QMenu:
        """The right-click menu of an image: Classify, Grad-CAM, Compare, Copy path, Open containing folder."""
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.addAction("Classify", lambda: self.classify_requested.emit(path))
        menu.addAction("Grad-CAM", lambda: self.explain_requested.emit(path))
        menu.addAction("Compare models…", lambda: self.compare_requested.emit(path))
        menu.addSeparator()
        menu.addAction("Copy path", lambda: QGuiApplication.clipboard().setText(path))
        menu.addAction("Open containing folder", lambda: open_folder(os.path.dirname(path)))
        return menu

    # -- thumbnails ---------------------------------------------------------------------------

    def _cell_size(self) -> QSize:
        return QSize(THUMBNAIL_CELL, THUMBNAIL_SIZE + self.strip.fontMetrics().height() + 16)

    def strip_height(self) -> int:
        """The strip's height: one row of cells, the scroll bar under them, the frame."""
        bar = self.strip.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self.strip)
        return self._cell_size().height() + bar + 2 * self.strip.frameWidth() + 4

    def label_text(self, path: str, prefix: str = "") -> str:
        """A thumbnail's label: the file's name, cut in the middle with "…" to fit its cell."""
        room = THUMBNAIL_CELL - 10
        return self.strip.fontMetrics().elidedText(prefix + os.path.basename(path), Qt.TextElideMode.ElideMiddle,
                                                   room)

    def reset_strip(self, paths: list[str]) -> None:
        self.images = list(paths)  # the folder's images in the strip's order (Space / Backspace walk them)
        self.strip.clear()
        self._strip_items = {}
        self.thumbnails_shown = 0
        for path in paths[:MAX_THUMBNAILS]:
            item = QListWidgetItem(self._placeholder, self.label_text(path))
            item.setData(Qt.ItemDataRole.UserRole, path)
            item.setToolTip(tooltip(path))
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            item.setSizeHint(self._cell_size())
            self.strip.addItem(item)
            self._strip_items[path] = item

    def set_thumbnail(self, path: str, image: QImage | None) -> None:
        item = self._strip_items.get(path)
        if item is None:
            return
        if image is None:
            item.setToolTip(tooltip(f"{path}\n(cannot be read)"))
            item.setText(self.label_text(path, "⚠ "))
        else:
            item.setIcon(QIcon(square_thumbnail(image)))
        self.thumbnails_shown += 1


def square_thumbnail(image: QImage) -> QPixmap:
    """The thumbnail centred in a transparent THUMBNAIL_SIZE square: the view draws an icon at its own
    height with the label right under it, so a wide photo's label sat higher than a tall one's."""
    square = QPixmap(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    square.fill(Qt.GlobalColor.transparent)
    picture = QPixmap.fromImage(image)
    if picture.width() > THUMBNAIL_SIZE or picture.height() > THUMBNAIL_SIZE:
        picture = picture.scaled(THUMBNAIL_SIZE, THUMBNAIL_SIZE, Qt.AspectRatioMode.KeepAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(square)
    painter.drawPixmap((THUMBNAIL_SIZE - picture.width()) // 2, (THUMBNAIL_SIZE - picture.height()) // 2, picture)
    painter.end()
    return square


def open_folder(folder: str) -> bool:
    """Show ``folder`` in the desktop's file manager."""
    opened = QDesktopServices.openUrl(QUrl.fromLocalFile(folder))
    if not opened:
        log.warning("no file manager opened %s", folder)
    return opened
