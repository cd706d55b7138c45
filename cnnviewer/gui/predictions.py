"""The predictions panel: a table model over core Prediction records, with a probability bar."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QRect, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyledItemDelegate,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cnnviewer.core.ways import AutoWay, RunAs
from cnnviewer.gui.text import escape, make_plain, tooltip

PREDICTION_ROLE = Qt.ItemDataRole.UserRole


class RecordsModel(QAbstractTableModel):
    """A table over a list of core records (one per row); the record sits under ``UserRole``."""

    HEADERS: tuple[str, ...] = ()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list = []

    def set_records(self, records) -> None:
        self.beginResetModel()
        self._rows = list(records)
        self.endResetModel()

    def records(self) -> list:
        return list(self._rows)

    def rowCount(self, parent=QModelIndex()):  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()):  # noqa: N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None


class PredictionsModel(RecordsModel):
    """Rows are ``Prediction(index, name, probability)``."""

    HEADERS = ("#", "Class", "Name", "Probability")

    set_predictions = RecordsModel.set_records
    predictions = RecordsModel.records

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        prediction = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (str(index.row() + 1), str(prediction.index), prediction.name,
                    f"{prediction.probability * 100:.2f} %")[column]
        if role == PREDICTION_ROLE:
            return prediction
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (0, 1):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(f"ImageNet class {prediction.index}: {prediction.name} ({prediction.probability:.4f})")
        return None


class ProbabilityDelegate(QStyledItemDelegate):
    """Draws the probability as a bar behind its number."""

    def paint(self, painter: QPainter, option, index):
        prediction = index.data(PREDICTION_ROLE)
        if prediction is None:
            return super().paint(painter, option, index)
        painter.save()
        rect: QRect = option.rect.adjusted(3, 4, -3, -4)
        painter.fillRect(rect, option.palette.color(QPalette.ColorRole.AlternateBase))
        bar = QRect(rect)
        bar.setWidth(max(1, int(rect.width() * prediction.probability)))
        painter.fillRect(bar, QColor(70, 130, 200))
        painter.setPen(option.palette.color(QPalette.ColorRole.Text))
        painter.drawText(rect.adjusted(4, 0, -4, 0), int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                         f"{prediction.probability * 100:.2f} %")
        painter.restore()


#: The shortest part of a class name a table must show ("military uni…"): narrower, the column says nothing.
READABLE_NAME = "military uni"


def probability_width(table: QTableView) -> int:
    """The Probability column's width: its header or "100.00 %" with the bar's margins, whichever is wider."""
    metrics = table.fontMetrics()
    return max(metrics.horizontalAdvance("Probability") + 16, metrics.horizontalAdvance("100.00 %") + 22)


def readable_width(table: QTableView) -> int:
    """The narrowest the table may be with every column readable: "#", the class index, READABLE_NAME and
    the probability, and its frame (a long top-k's scroll bar takes a few letters of the name)."""
    metrics = table.fontMetrics()
    columns = sum(metrics.horizontalAdvance(text) + 16 for text in ("20", "Class", READABLE_NAME))
    return columns + probability_width(table) + 2 * table.frameWidth()


def make_predictions_table(model: PredictionsModel, parent=None) -> QTableView:
    """Name takes the room left; the other columns are as wide as their contents. One line per row: a
    long name ends in "…" (the tooltip has it all), where wrapped it took two lines beside a wide bar."""
    table = QTableView(parent)
    table.setModel(model)
    table.setItemDelegateForColumn(3, ProbabilityDelegate(table))
    table.verticalHeader().hide()
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideRight)
    header = table.horizontalHeader()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
    header.setSectionResizeMode(3, QHeaderView.ResizeMode.Fixed)
    table.setColumnWidth(3, probability_width(table))
    return table


def used_text(model: str, way: RunAs | AutoWay | str, device: str) -> str:
    """How a model runs: "model · way · device", e.g. "efficientnet_lite0 · fp32 · cpu"; ``way`` may be a label
    already written ("auto: onnxruntime", what auto chose)."""
    return f"{model} · {way if isinstance(way, str) else way.label} · {device}"


def used_line(outcome) -> str:
    """What ran for ``outcome``, as used_text writes it ("auto: onnxruntime" when auto chose the way)."""
    return used_text(outcome.model, outcome.way_label, outcome.device)


class PredictionsPanel(QWidget):
    """Top-k table, the model used, where the time went, and one place for messages and errors."""

    action_requested = Signal(str)  # the name of the way out offered with an error

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = PredictionsModel(self)
        self.title = QLabel("No image classified yet.")  # rich text: callers escape the names in it
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = make_predictions_table(self.model, self)
        # However narrow the window, the panel keeps the names and probabilities readable.
        self.table.setMinimumWidth(readable_width(self.table))
        self.timings = QLabel("")
        self.timings.setWordWrap(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        make_plain(self.message)  # error sentences name files
        self.message.hide()
        self.action_buttons: dict[str, QPushButton] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)  # as the file browser's: Qt's 9 px each side was room taken from the names
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.timings)
        layout.addWidget(self.message)
        self._layout = layout

    def _set_actions(self, actions: list[tuple[str, str]]) -> None:
        for button in self.action_buttons.values():
            button.deleteLater()
        self.action_buttons = {}
        for key, label in actions:
            button = QPushButton(label, self)
            button.clicked.connect(lambda _=False, k=key: self.action_requested.emit(k))
            self._layout.addWidget(button)
            self.action_buttons[key] = button

    def show_busy(self, text: str) -> None:
        self.message.setStyleSheet("")
        self.message.setText(text)
        self.message.show()
        self._set_actions([])

    def show_classifying(self, name: str, used: str) -> None:
        """The image ``name`` is being classified as ``used`` says (used_text); nothing to show yet."""
        self.clear(f"<b>{escape(name)}</b><br>Classifying with {escape(used)}…")
        self.show_busy(f"Classifying {name} with {used}…")

    def show_result(self, outcome) -> None:
        result = outcome.classification
        name = result.path.rsplit("/", 1)[-1]
        self.title.setText(f"<b>{escape(name)}</b><br>{escape(used_line(outcome))}")
        self.model.set_predictions(result.predictions)
        self.show_timings(outcome)
        self.message.hide()
        self._set_actions([])

    def show_timings(self, outcome, earlier: bool = False) -> None:
        """Where ``outcome``'s time went; ``earlier``: it is shown again, kept from an earlier run, and
        nothing ran now (so no model load)."""
        t = outcome.classification.timings
        load = f"model load {outcome.load_ms:.0f} ms · " if outcome.load_ms is not None and not earlier else ""
        choose_ms = getattr(outcome, "choose_ms", None)
        if choose_ms is not None and not earlier:  # auto measured the ways (once per model and machine)
            load = f"choosing the way {choose_ms / 1000:.1f} s · {load}"
        self.timings.setText(f"{'Kept result: ' if earlier else ''}{load}"
                             f"decode {t.decode_ms:.0f} ms · preprocessing {t.preprocess_ms:.0f} ms · "
                             f"inference {t.inference_ms:.0f} ms"
                             + (f" · {outcome.note}" if getattr(outcome, "note", "") else ""))

    def show_error(self, text: str, actions: Sequence[tuple[str, str]] = (), title: str = "") -> None:
        if title:
            self.title.setText(title)
        self.model.set_predictions([])
        self.timings.setText("")
        self.message.setStyleSheet("color: #b00020;")
        self.message.setText(text)
        self.message.show()
        self._set_actions(list(actions))

    def clear(self, title: str = "") -> None:
        self.model.set_predictions([])
        self.timings.setText("")
        self.title.setText(title)
        self.message.hide()
        self._set_actions([])
