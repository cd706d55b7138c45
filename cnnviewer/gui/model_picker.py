"""The toolbar's model picker: type to filter, "Ready" and "Needs weights" groups, published and measured figures."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QAbstractProxyModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import (
    QColor,
    QFocusEvent,
    QFont,
    QKeyEvent,
    QMouseEvent,
    QPalette,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QCompleter,
    QHeaderView,
    QLineEdit,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeView,
    QWidget,
)

from cnnviewer.core.ways import AUTO_LABEL
from cnnviewer.gui.text import tooltip

if TYPE_CHECKING:
    from cnnviewer.core.ways import RunAs
    from cnnviewer.workers.jobs import CatalogRow

MODEL_ROLE = Qt.ItemDataRole.UserRole  # the same roles the main window reads with currentData / findData
READY_ROLE = Qt.ItemDataRole.UserRole + 1
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 2  # "name title" in lower case: what typing matches
GROUP_ROLE = Qt.ItemDataRole.UserRole + 3  # True on the group header rows

COLUMNS = ("Model", "acc@1", "GMACs", "Size (MB)", "images/s")
SPEED_COLUMN = 4
# The combo box shows, finds and returns data from this hidden column: "resnet50  (cached)", as before.
LABEL_COLUMN = len(COLUMNS)
READY_GROUP, MISSING_GROUP = "Ready", "Needs weights"


def natural_key(name: str) -> list[str | int]:
    """Numbers inside a name compare as numbers: resnet18 < resnet34 < resnet101 (text order puts 101 first)."""
    # re.split with a group alternates text and digits from text, so like always meets like.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def row_label(row: CatalogRow) -> str:
    """The picker's text for a model: its name and where its weights stand."""
    state = (row.weights_label or row.availability) if row.ready else f"needs weights, {row.file_size_mb:.0f} MB"
    return f"{row.name}  ({state})"


class _Filter(QSortFilterProxyModel):
    """Case-insensitive substring over name and title; a group header stays while one of its models does,
    and counts the models it shows."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.text = ""

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self.text = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def _matches(self, row: int) -> bool:
        data = self.sourceModel().index(row, LABEL_COLUMN).data(SEARCH_ROLE)
        return isinstance(data, str) and self.text in data

    def matches_under(self, header: int) -> int:
        """How many models of the group whose header is source row ``header`` the filter keeps."""
        source = self.sourceModel()
        found, following = 0, header + 1
        while following < source.rowCount() and not source.index(following, LABEL_COLUMN).data(GROUP_ROLE):
            found += self._matches(following)
            following += 1
        return found

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802 - Qt
        if not self.text:
            return True
        if not self.sourceModel().index(row, LABEL_COLUMN).data(GROUP_ROLE):
            return self._matches(row)
        return self.matches_under(row) > 0

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        # A header counts what is listed under it now: "Needs weights (7)" while "resnet" is typed, not 80.
        if self.text and role == Qt.ItemDataRole.DisplayRole and index.column() == 0:
            source = self.mapToSource(index)
            label = self.sourceModel().index(source.row(), LABEL_COLUMN)
            if label.data(GROUP_ROLE):
                return f"{label.data()} ({self.matches_under(source.row())})"
        return super().data(index, role)


class _GroupDelegate(QStyledItemDelegate):
    """Draws a group header in the normal text colour: it is disabled (so nothing picks it), not greyed out."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:  # noqa: N802
        super().initStyleOption(option, index)
        if index.data(GROUP_ROLE):
            option.state |= QStyle.StateFlag.State_Enabled
            option.palette.setCurrentColorGroup(QPalette.ColorGroup.Active)


class ModelPicker(QComboBox):
    """A QComboBox (currentData, findData and currentIndexChanged work as for any combo box) whose
    popup is a table of the models in two groups, filtered as the user types.

    Enter picks the highlighted model, else the first match; Esc puts the current model's name back.
    ``speed_context`` gives the (device, run-as label) whose measured images/s the popup shows; for "auto",
    each model's speed is that of the way auto runs it (``auto_choices(device)``: model -> way), blank
    while auto has not chosen one.
    """

    def __init__(self, parent: QWidget | None = None,
                 speed_context: Callable[[], tuple[str, str]] | None = None,
                 auto_choices: Callable[[str], Mapping[str, RunAs]] | None = None) -> None:
        super().__init__(parent)
        self.speed_context = speed_context or (lambda: ("cpu", "fp32"))
        self.auto_choices = auto_choices or (lambda device: {})
        self.setModel(QStandardItemModel(0, LABEL_COLUMN + 1, self))
        self.setModelColumn(LABEL_COLUMN)
        self.edit = QLineEdit(self)  # typed as itself: lineEdit() may be None for mypy
        self.setLineEdit(self.edit)  # editable: the text is a search field
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)  # typing searches; it never adds an entry
        self.edit.setPlaceholderText("type to search the models")
        self.filter = _Filter(self)
        self.filter.setSourceModel(self.model())
        self.table = QTreeView()
        self.table.setRootIsDecorated(False)
        self.table.setUniformRowHeights(True)
        self.table.setAllColumnsShowFocus(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.header().setStretchLastSection(False)
        self.completer_ = QCompleter(self.filter, self)
        self.completer_.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        self.completer_.setCompletionColumn(LABEL_COLUMN)
        self.completer_.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer_.setMaxVisibleItems(16)
        self.completer_.setPopup(self.table)  # the completer owns the view from here on
        self.table.setItemDelegate(_GroupDelegate(self.table))  # after setPopup, which sets its own
        self.setCompleter(self.completer_)
        self.table.setHeaderHidden(False)
        self.edit.textEdited.connect(self._on_text_edited)
        self.edit.installEventFilter(self)
        self.table.installEventFilter(self)  # after the completer's own filter, so it runs first
        self._speeds: dict[str, float] = {}
        self._speed_ways: dict[str, str] = {}

    # -- filling --------------------------------------------------------------------------------

    def set_rows(self, rows: Iterable[CatalogRow], wanted: str | None) -> None:
        """Every model in its group, ready ones first; ``wanted`` selected (else the first ready model)."""
        model = self.model()
        assert isinstance(model, QStandardItemModel)
        model.clear()
        model.setColumnCount(LABEL_COLUMN + 1)
        model.setHorizontalHeaderLabels([*COLUMNS, ""])
        ordered = sorted(rows, key=lambda r: (not r.ready, natural_key(r.name)))
        for group, members in ((READY_GROUP, [r for r in ordered if r.ready]),
                               (MISSING_GROUP, [r for r in ordered if not r.ready])):
            if members:
                model.appendRow(self._header(group, len(members)))
                for row in members:
                    model.appendRow(self._items(row))
        self._speeds = {}
        self.refresh_speeds()
        found = self.findData(wanted, MODEL_ROLE) if wanted else -1
        self.setCurrentIndex(found if found >= 0 else self._first_model_row())
        self._fit_columns()

    def _header(self, group: str, count: int) -> list[QStandardItem]:
        items = [QStandardItem("") for _ in range(LABEL_COLUMN + 1)]
        items[0].setText(f"{group} ({count})")
        font = QFont(self.font())
        font.setBold(True)
        colour = self.palette().color(QPalette.ColorRole.Text)
        for item in items:
            item.setFlags(Qt.ItemFlag.NoItemFlags)  # neither selectable nor picked by Enter or a click
            item.setFont(font)
            item.setForeground(colour)
            item.setData(True, GROUP_ROLE)
        items[LABEL_COLUMN].setText(group)
        return items

    def _items(self, row: CatalogRow) -> list[QStandardItem]:
        cells = [row.name if not row.weights_label else f"{row.name}  ({row.weights_label})",
                 f"{row.acc1:.1f}" if row.acc1 is not None else "–",
                 f"{row.gmacs:.2f}" if row.gmacs else "–",
                 f"{row.file_size_mb:.0f}" if row.file_size_mb else "–",
                 "", row_label(row)]
        items = [QStandardItem(text) for text in cells]
        for item in items[1:SPEED_COLUMN + 1]:
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        tip = tooltip(f"{row.title}: published ImageNet-1k top-1 {cells[1]} %, {cells[2]} GMACs per image")
        grey = QColor(128, 128, 128)
        for item in items:
            item.setToolTip(tip)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            if not row.ready:
                item.setForeground(grey)
        label = items[LABEL_COLUMN]
        label.setData(row.name, MODEL_ROLE)
        label.setData(row.ready, READY_ROLE)
        label.setData(f"{row.name} {row.title}".lower(), SEARCH_ROLE)
        label.setData(False, GROUP_ROLE)
        if row.images_per_s:
            items[SPEED_COLUMN].setText(f"{row.images_per_s:.1f}")
        return items

    def refresh_speeds(self) -> None:
        """Show the images/s measured on this machine for the current device and way (a small file read)."""
        from cnnviewer.core.measured import speeds

        device, run_as = self.speed_context()
        ways: dict[str, str] = {}  # model -> the way its speed is of, when auto chose it
        if run_as == AUTO_LABEL:
            ways = {name: way.label for name, way in self.auto_choices(device).items()}
            by_way = {label: speeds(device, label) for label in set(ways.values())}
            measured = {name: by_way[label][name] for name, label in ways.items() if name in by_way[label]}
        else:
            measured = speeds(device, run_as)
        if measured == self._speeds and ways == self._speed_ways:
            return
        self._speeds, self._speed_ways = measured, ways
        model = self.model()
        assert isinstance(model, QStandardItemModel)
        for number in range(model.rowCount()):
            name = model.index(number, LABEL_COLUMN).data(MODEL_ROLE)
            if isinstance(name, str):
                speed = measured.get(name)
                index = model.index(number, SPEED_COLUMN)
                model.setData(index, f"{speed:.1f}" if speed else "")
                row_tip = model.index(number, 0).data(Qt.ItemDataRole.ToolTipRole)
                model.setData(index, tooltip(f"{speed:.1f} images/s measured here as auto: {ways[name]} (auto's "
                                             "choice for this model)") if speed and name in ways else row_tip,
                              Qt.ItemDataRole.ToolTipRole)

    def _fit_columns(self) -> None:
        header = self.table.header()
        header.setSectionHidden(LABEL_COLUMN, True)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        metrics = self.table.fontMetrics()
        total = max(metrics.horizontalAdvance("efficientnet_lite0  (imported: x.pth)"), 220)
        for column in range(1, LABEL_COLUMN):
            width = max(metrics.horizontalAdvance(COLUMNS[column]), metrics.horizontalAdvance("00000.0")) + 24
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Fixed)
            header.resizeSection(column, width)
            total += width
        # The completer sizes its popup to the line edit; the table needs room for its five columns.
        self.table.setMinimumWidth(total + 32)

    def _first_model_row(self) -> int:
        for number in range(self.count()):
            if self.itemData(number, MODEL_ROLE) is not None:
                return number
        return 0

    # -- searching ------------------------------------------------------------------------------

    def showPopup(self) -> None:  # noqa: N802 - Qt override: the arrow opens the table, not a plain list
        self.open_table("")

    def hidePopup(self) -> None:  # noqa: N802 - Qt override
        self.table.hide()
        super().hidePopup()

    def open_table(self, text: str) -> None:
        self.refresh_speeds()
        self.filter.set_text(text)
        self._fit_height()
        self.completer_.setCompletionPrefix("")
        self.completer_.complete()
        QTimer.singleShot(0, self._highlight_first)  # after the completer's own choice of row (none)

    def _fit_height(self) -> None:
        """As tall as the rows shown (at most 16) plus the column titles: the completer counts rows only."""
        rows = max(1, min(self.completer_.maxVisibleItems(), self.filter.rowCount()))
        row_height = max(self.table.sizeHintForRow(0), self.fontMetrics().height() + 4)
        frame = 2 * self.table.frameWidth()
        self.table.setFixedHeight(self.table.header().sizeHint().height() + rows * row_height + frame + 2)

    def _on_text_edited(self, text: str) -> None:
        self.refresh_speeds()
        self.filter.set_text(text)
        self._fit_height()
        if not self.table.isVisible() and text:
            self.completer_.complete()
        QTimer.singleShot(0, self._highlight_first)

    def first_match(self) -> int:
        """The combo row of the first model the filter keeps, or -1."""
        for number in range(self.filter.rowCount()):
            source = self.filter.mapToSource(self.filter.index(number, LABEL_COLUMN))
            if source.data(MODEL_ROLE) is not None:
                return source.row()
        return -1

    def _highlight_first(self) -> None:
        if not self.table.isVisible() or not self.filter.text:
            return
        found = self.first_match()
        if found >= 0:
            proxy = self.filter.mapFromSource(self.model().index(found, 0))
            selection = self.table.selectionModel()
            # Quietly: the completer would put the highlighted model's name over what is being typed.
            selection.blockSignals(True)
            self.table.setCurrentIndex(self.table.model().index(proxy.row(), 0))
            selection.blockSignals(False)
            self.table.viewport().update()

    def pick(self, row: int) -> None:
        """Make combo row ``row`` current and end the search."""
        self.table.hide()
        self.filter.set_text("")
        if row >= 0:
            self.setCurrentIndex(row)
        self.restore_text()

    def restore_text(self) -> None:
        self.filter.set_text("")
        self.edit.setText(self.itemText(self.currentIndex()))

    def _picked_in_table(self) -> int:
        current = self.table.currentIndex()
        if current.isValid() and self.table.selectionModel().isSelected(current):
            completion = self.completer_.completionModel()
            if isinstance(completion, QAbstractProxyModel):
                current = completion.mapToSource(current)
            return self.filter.mapToSource(self.filter.index(current.row(), 0)).row()
        return self.first_match()

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt override
        super().focusInEvent(event)
        QTimer.singleShot(0, self.edit.selectAll)  # typing replaces the name shown: it is a search

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            key = event.key()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                if watched is self.table or self.filter.text:
                    self.pick(self._picked_in_table())
                    return True
            elif key == Qt.Key.Key_Escape and (watched is self.table or self.filter.text):
                self.table.hide()
                self.restore_text()
                return True
        elif (watched is self.edit and event.type() == QEvent.Type.MouseButtonPress and isinstance(event, QMouseEvent)
              and event.button() == Qt.MouseButton.LeftButton and not self.table.isVisible()):
            # A click on the name opens the list of every model, as the arrow does: a person looks
            # before typing. The name stays selected, so typing searches.
            self.open_table("")
            QTimer.singleShot(0, self.edit.selectAll)
            return True
        elif (watched is self.edit and event.type() == QEvent.Type.FocusOut
              and not self.table.isVisible() and self.filter.text):
            self.restore_text()
        return super().eventFilter(watched, event)
