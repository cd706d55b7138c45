"""The benchmark dashboard: charts (pyqtgraph), the summary table and the per-image table."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QSize, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QApplication,
    QComboBox,
    QCompleter,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStyledItemDelegate,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnnviewer.core import charts as chart_specs
from cnnviewer.core.charts import MAX_CHARTED, jitter, latency_points, short_names
from cnnviewer.core.evaluation import ClassRow, class_table, confused_pairs, ran_models, select_rows
from cnnviewer.core.palette import lighter, model_colours
from cnnviewer.gui.predictions import PredictionsModel, RecordsModel, make_predictions_table
from cnnviewer.gui.text import escape, make_plain, tooltip

if TYPE_CHECKING:  # the module itself imports torch: not at the window's start
    from cnnviewer.core.benchmark import BenchmarkReport

GOOD, BAD = QColor(30, 130, 60), QColor(190, 30, 40)
PER_WORKER = "per worker"  # core.report.PER_WORKER (that module imports torch: not at the window's start)
PARTIAL = QColor(120, 120, 120)  # a result cut short by Cancel: its row in grey, its bars hatched

# What one turn of the event loop may draw, whatever the report holds (core.report_check bounds the rest).
MAX_SENTENCES = 20  # conclusions under the table (laying out more took 50 ms); report.md has them all


def fit_table(table: QTableView, fixed: tuple[tuple[int, int], ...], shared: int, least: int, most: int) -> None:
    """Share the viewport's width out: the first columns get at least their smallest width (``fixed`` holds
    (smallest, wanted) pairs), ``shared`` model columns at least ``least``; room left over goes first to
    the first columns up to their wanted width, then equally to the shared ones up to ``most``. Past the
    smallest widths the table scrolls; the last column never takes all the spare room."""
    room = table.viewport().width() - sum(low for low, _ in fixed) - least * max(shared, 0)
    for column, (low, wanted) in enumerate(fixed):
        extra = max(0, min(wanted - low, room))
        room -= extra
        table.setColumnWidth(column, low + extra)
    if shared <= 0:
        return
    each = least + max(0, min(most - least, room // shared))
    for column in range(len(fixed), len(fixed) + shared):
        table.setColumnWidth(column, each)


def _categories():
    from cnnviewer.core.labels import imagenet_categories

    return imagenet_categories()


@dataclass(frozen=True)
class DashboardData:
    """What the dashboard draws for a report, worked out away from the window for a large one
    (``prepare_dashboard`` runs in a worker when a report.json is opened)."""

    report: BenchmarkReport
    charted: tuple  # results with an accuracy, at most MAX_CHARTED (partial ones too: drawn hatched)
    latency_points: tuple  # for each timed result, at most MAX_POINTS of its latencies (ms)
    lines: tuple[str, ...]  # notes and conclusions, as rich text with the report's text escaped
    # Per image row: is some model's top-1 wrong, do the models' top-1 differ (None: not worked out yet).
    masks: tuple[np.ndarray, np.ndarray] | None = None
    # The charted results with speed figures: the throughput, latency and accuracy-against-latency charts
    # draw these alone (a result cut short by Cancel has none).
    timed: tuple = ()


def image_masks(rows) -> tuple[np.ndarray, np.ndarray]:
    """For each image row: is some model's top-1 wrong; do the models' top-1 differ."""
    mistakes = np.zeros(len(rows), dtype=bool)
    disagreements = np.zeros(len(rows), dtype=bool)
    for number, row in enumerate(rows):
        tops = [top[0] for top in row.top5.values() if top]
        mistakes[number] = any(t != row.truth for t in tops)
        disagreements[number] = len(set(tops)) > 1
    return mistakes, disagreements


def chart_data(report) -> tuple[tuple, tuple, tuple]:
    """The results the charts draw, those of them with speed figures, and the latency dots of each of those."""
    charted = tuple(chart_specs.charted(report))
    timed = tuple(m for m in charted if m.timed)
    return charted, timed, tuple(latency_points(m.latencies_ms or [(m.latency_ms or {})["p50"]]) for m in timed)


def prepare_dashboard(report, masks: bool = True) -> DashboardData:
    """Everything slow about showing ``report``; no widgets, so a worker can run it. ``masks``: also the
    Images tab's filters (otherwise worked out when a filter is first chosen)."""
    from cnnviewer.core.report import conclusions, timing_notes

    charted, timed, points = chart_data(report)
    ran = [m for m in report.models if m.error is None]
    n = max((m.images for m in ran), default=0)
    lines = []
    if report.cancelled:
        lines.append("<b>Cancelled: these are the results the run had.</b>")
    if n and n < 200:
        lines.append(f"{n} images: the 95 % intervals are wide, so small accuracy differences say little.")
    if report.skipped:
        lines.append(f"{len(report.skipped)} file(s) could not be read and are left out of the accuracy.")
    shown = [m for m in ran if m.images]
    if len(shown) > MAX_CHARTED:
        lines.append(f"The charts show the first {MAX_CHARTED} of {len(shown)} results; the table lists them all.")
    # The load flag first and in bold: it says how far to trust every speed figure below it.
    lines += [f"<b style='color:#8a4b00'>{escape(note)}</b>" if note.startswith("Other programs") else escape(note)
              for note in timing_notes(report)]
    sentences = conclusions(report)
    lines += [escape(sentence) for sentence in sentences[:MAX_SENTENCES]]
    if len(sentences) > MAX_SENTENCES:
        lines.append(f"… and {len(sentences) - MAX_SENTENCES} more conclusions (report.md lists them all).")
    _categories()  # loaded here rather than on the window's thread when the table first asks
    return DashboardData(report, charted, points, tuple(lines), image_masks(report.images) if masks else None,
                         timed)


def status_of(m, total: int) -> str:
    """A result's status as the summary shows it: done, partial (48 of 100), not run and why, ..."""
    from cnnviewer.core.benchmark import ERROR_KINDS

    if m.error:
        kind = ERROR_KINDS.get(m.error_kind or "")  # told by the kind, never by the sentence's words
        return f"not run: {kind}" if kind else "not run"
    if m.partial:
        return f"partial ({m.images + m.failed} of {total})"
    return "done" if m.complete else "running…" if m.images else "waiting"


class SummaryModel(RecordsModel):
    """One row per model: the figures a careful reader needs, measured beside published."""

    HEADERS: tuple[str, ...] = ("Model", "Images", "Top-1 %", "95 % CI", "Top-5 %", "95 % CI", "Published @1/@5", "img/s",
               "p50 ms", "p90 ms", "p99 ms", "Peak MB above start", "Params MB", "Load s", "Status")

    THROUGHPUT_COLUMN = 7  # "img/s"
    SPEED_COLUMNS = (7, 8, 9, 10, 13)  # img/s, p50, p90, p99, Load s: a cluster result's are per worker
    DRIVER_COLUMNS = (11, 12)  # memory and parameters: measured where the model ran, never on a cluster's driver
    set_results = RecordsModel.set_records
    total_images = 0  # the run's images, for "partial (48 of 100)"
    per_worker: frozenset[str] = frozenset()  # the results whose speed is per worker (a run on a cluster)

    def set_report(self, report) -> None:
        from cnnviewer.core.benchmark import OLD_MEMORY_CAPTION, memory_caption

        self.total_images = len(report.images)
        self.per_worker = frozenset()
        if "cluster" in report.environment:  # core.report only for a cluster run's report
            from cnnviewer.core.report import per_worker

            self.per_worker = frozenset(m.name for m in report.models if per_worker(report, m))
        whole = memory_caption(list(report.models)) == OLD_MEMORY_CAPTION  # a report from before rss_before_mb
        self.HEADERS = tuple("Peak MB, whole process" if whole and header == "Peak MB above start" else header
                             for header in type(self).HEADERS)
        self.set_results(report.models)

    @property
    def results(self) -> list:
        return self._rows

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        m = self.results[index.row()]
        if role == Qt.ItemDataRole.UserRole:
            return m
        if role == Qt.ItemDataRole.ToolTipRole and m.error:
            return tooltip(m.error)
        if role == Qt.ItemDataRole.ToolTipRole and m.partial:
            return tooltip(f"Cancel cut this model's turn short: its accuracy is over the {m.images} images it "
                           "classified; it has no speed figures and is left out of the comparisons.")
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == self.THROUGHPUT_COLUMN and m.throughput_rounds:
            ci = (f"95 % interval {m.throughput_ci[0]:.1f}–{m.throughput_ci[1]:.1f} img/s, " if m.throughput_ci
                  else "no interval, ")
            return tooltip(f"Forward only: {ci}from {len(m.throughput_rounds)} timing round(s): "
                           + ", ".join(f"{v:.1f}" for v in m.throughput_rounds) + " img/s.")
        if role == Qt.ItemDataRole.ForegroundRole and m.partial:
            return QBrush(PARTIAL)
        cluster = m.name in self.per_worker and index.column() in self.SPEED_COLUMNS + self.DRIVER_COLUMNS
        if role == Qt.ItemDataRole.ToolTipRole and cluster:
            return tooltip("This model ran on a cluster: each worker process has its own speed and memory (the "
                           "Workers tab), never summed into one figure.")
        if role == Qt.ItemDataRole.ForegroundRole and cluster:
            return QBrush(PARTIAL)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if cluster:
            return PER_WORKER if index.column() in self.SPEED_COLUMNS else "-"
        from cnnviewer.core.benchmark import memory_measured

        status = status_of(m, self.total_images)
        if m.error:
            return (m.name, "", "", "", "", "", "", "", "", "", "", "", "", "", status)[index.column()]
        pub = m.published or {}
        published = "-" if pub.get("acc1") is None else (
            f"{pub['acc1']:.1f} / " + ("-" if pub.get("acc5") is None else f"{pub['acc5']:.1f}"))
        lat = m.latency_ms or {}
        if not m.images:  # cut short before its first image: there is no accuracy to show, not 0 %
            accuracy = ("-", "-", "-", "-")
        else:
            accuracy = (f"{m.top1 * 100:.1f}", f"{m.top1_ci[0] * 100:.0f}–{m.top1_ci[1] * 100:.0f}",
                        f"{m.top5 * 100:.1f}", f"{m.top5_ci[0] * 100:.0f}–{m.top5_ci[1] * 100:.0f}")
        return (m.name, str(m.images), *accuracy, published,
                "-" if m.throughput_ips is None else f"{m.throughput_ips:.1f}",
                *(f"{lat[key]:.0f}" if lat else "-" for key in ("p50", "p90", "p99")),
                # "-" for what was never measured (a model cut short on a cluster before its workers' figures
                # came in): a 0 there reads as a measurement
                f"{m.peak_rss_mb:.0f}" if memory_measured(m) else "-", f"{m.param_mb:.0f}" if m.param_mb else "-",
                f"{m.load_s:.2f}" if m.load_s else "-", status)[index.column()]


class ImagesModel(QAbstractTableModel):
    """One row per image: thumbnail, true label, each model's top-1 and whether it was right."""

    thumbnails_wanted = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.report = None
        self.rows: list = []
        self.models: list[str] = []
        self.headers: list[str] = []  # the models' names without the part they share: narrow columns
        self._icons: dict[str, QIcon] = {}
        self._wanted: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._request_thumbnails)
        self._masks: tuple[np.ndarray, np.ndarray] | None = None
        self._row_of: dict[str, int] | None = None

    def set_report(self, report, data: DashboardData | None = None) -> None:
        self.beginResetModel()
        self.report = report
        self.rows = list(report.images)
        self.models = ran_models(report)
        self.headers = short_names(self.models)
        self._masks = data.masks if data is not None else None
        self._row_of = None
        self.endResetModel()

    def masks(self) -> tuple[np.ndarray, np.ndarray]:
        """(mistakes, disagreements) per row: from the report's DashboardData, or worked out now."""
        if self._masks is None:
            self._masks = image_masks(self.rows)
        return self._masks

    def rowCount(self, parent=QModelIndex()):  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()):  # noqa: N802
        return 0 if parent.isValid() else 2 + len(self.models)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return ("Image", "True class", *self.headers)[section]
        if role == Qt.ItemDataRole.ToolTipRole and section >= 2:
            return tooltip(f"{self.models[section - 2]}'s top-1: ✓ right, ✗ wrong, and its probability")
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.UserRole:
            return row
        if column == 0:
            if role == Qt.ItemDataRole.DisplayRole:
                return os.path.basename(row.file)
            if role == Qt.ItemDataRole.DecorationRole:
                icon = self._icons.get(row.file)
                if icon is None and row.file not in self._wanted:
                    self._wanted.add(row.file)
                    self._timer.start()
                return icon
            if role == Qt.ItemDataRole.ToolTipRole:
                return tooltip(row.file)
            return None
        if column == 1:
            if role == Qt.ItemDataRole.DisplayRole:
                return f"{row.truth} {_categories()[row.truth]}"
            if role == Qt.ItemDataRole.ToolTipRole:
                return tooltip(f"{row.truth} {_categories()[row.truth]} (label in the folder: {row.label})")
            return None
        model = self.models[column - 2]
        top = row.top5.get(model)
        if role == Qt.ItemDataRole.DisplayRole:
            if not top:
                return "—"
            # The mark and the probability first: a narrow column cuts the name, never whether it was right.
            mark = "✓" if top[0] == row.truth else "✗"
            return f"{mark} {row.probabilities[model][0] * 100:.0f} % {_categories()[top[0]]}"
        if role == Qt.ItemDataRole.ToolTipRole:
            if not top:
                return tooltip(f"{model} did not classify this image")
            verdict = "right" if top[0] == row.truth else f"wrong: the true class is {_categories()[row.truth]}"
            shown = self.data(index, Qt.ItemDataRole.DisplayRole)  # the whole of what a narrow column elides
            return tooltip(f"{shown} · {model}'s top-1, class {top[0]}, {row.probabilities[model][0] * 100:.1f} % "
                           f"({verdict})")
        if role == Qt.ItemDataRole.ForegroundRole and top:
            return QBrush(GOOD if top[0] == row.truth else BAD)
        return None

    def row_number(self, path: str) -> int | None:
        """The first row of ``path``, None when the report has no such image."""
        if self._row_of is None:
            self._row_of = {}
            for number, row in enumerate(self.rows):
                self._row_of.setdefault(row.file, number)
        return self._row_of.get(path)

    def thumbnail(self, path: str) -> QIcon | None:
        """The thumbnail loaded for ``path`` (a null icon while it is on its way), None if never asked for."""
        return self._icons.get(path)

    def want(self, paths: list[str]) -> None:
        """Ask for thumbnails of files that may be in no visible row (the Confusions tab's examples)."""
        fresh = [path for path in paths if path not in self._icons]
        if fresh:
            self._wanted.update(fresh)
            self._timer.start()

    def _request_thumbnails(self) -> None:
        wanted, self._wanted = sorted(self._wanted), set()
        wanted = [path for path in wanted if path not in self._icons]
        if wanted:
            self.thumbnails_wanted.emit(wanted)
            for path in wanted:
                self._icons.setdefault(path, QIcon())  # asked for once

    def set_thumbnail(self, path: str, image: QImage | None) -> None:
        self._icons[path] = QIcon(QPixmap.fromImage(image)) if image is not None else QIcon()
        found = self.row_number(path)
        if found is not None:
            index = self.index(found, 0)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class ImagesFilter(QAbstractTableModel):
    """The rows of an ImagesModel that the filter keeps: all images, only mistakes (any model wrong), or
    only disagreements (models' top-1 differ), narrowed by true class, predicted class, a model right and
    a model wrong (core.evaluation.select_rows).

    The rows are picked in one numpy step from masks made once per report: a QSortFilterProxyModel asks
    Python about every row, which held the window 0.4 s for 50,000 images at each change.
    """

    MODES = ("All images", "Mistakes", "Disagreements")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.mode = self.MODES[0]
        self.criteria: dict[str, object] = {}  # select_rows' keywords that are set
        self._source: ImagesModel | None = None
        self._rows = np.arange(0)  # the source rows shown, in order

    def setSourceModel(self, model: ImagesModel) -> None:  # noqa: N802 - named as Qt's proxies name it
        self._source = model
        model.modelAboutToBeReset.connect(self.beginResetModel)
        model.modelReset.connect(self._on_source_reset)
        model.dataChanged.connect(self._on_source_changed)

    def sourceModel(self) -> ImagesModel | None:  # noqa: N802
        return self._source

    def set_mode(self, mode: str) -> None:
        self.beginResetModel()
        self.mode = mode
        self._rows = self._select()
        self.endResetModel()

    def set_criteria(self, truth: int | None = None, predicted: int | None = None, predicted_by: str | None = None,
                     right: str | None = None, wrong: str | None = None) -> None:
        """Keep only the rows select_rows keeps for these (None: that filter is off)."""
        given = {"truth": truth, "predicted": predicted, "predicted_by": predicted_by, "right": right, "wrong": wrong}
        self.beginResetModel()
        self.criteria = {key: value for key, value in given.items() if value is not None}
        self._rows = self._select()
        self.endResetModel()

    def _select(self) -> np.ndarray:
        if self._source is None:
            return np.arange(0)
        if self.mode == "Mistakes":
            rows = np.flatnonzero(self._source.masks()[0])
        elif self.mode == "Disagreements":
            rows = np.flatnonzero(self._source.masks()[1])
        else:
            rows = np.arange(self._source.rowCount())
        if self._source.report is not None and set(self.criteria) - {"predicted_by"}:
            chosen = select_rows(self._source.report, **self.criteria)  # type: ignore[arg-type]
            rows = np.intersect1d(rows, np.asarray(chosen, dtype=rows.dtype))
        return rows

    def _on_source_reset(self) -> None:
        self._rows = self._select()
        self.endResetModel()

    def _on_source_changed(self, top_left, bottom_right, roles=()) -> None:
        for source_row in range(top_left.row(), bottom_right.row() + 1):
            row = int(np.searchsorted(self._rows, source_row))
            if row < len(self._rows) and self._rows[row] == source_row:
                self.dataChanged.emit(self.index(row, top_left.column()), self.index(row, bottom_right.column()),
                                      roles)

    def keeps(self, path: str) -> bool:
        """Whether a row of ``path`` is among those shown."""
        source = self._source.row_number(path) if self._source is not None else None
        at = int(np.searchsorted(self._rows, source)) if source is not None else len(self._rows)
        return at < len(self._rows) and self._rows[at] == source  # _rows is in ascending order

    def mapToSource(self, index) -> QModelIndex:  # noqa: N802
        if not index.isValid() or self._source is None:
            return QModelIndex()
        return self._source.index(int(self._rows[index.row()]), index.column())

    def rowCount(self, parent=QModelIndex()):  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()):  # noqa: N802
        return 0 if parent.isValid() or self._source is None else self._source.columnCount()

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and self._source is not None:
            return self._source.headerData(section, orientation, role)
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        source = self.mapToSource(index)
        return self._source.data(source, role) if source.isValid() else None


class Charts(pg.GraphicsLayoutWidget):
    """The report's charts as core.charts defines them (the files draw the same): each result in its palette
    colour, top-1 / top-5 and peak memory / parameters told apart by fill; a hint until a result is in."""

    HINT = "Choose a folder and press Start; the charts appear as models finish."

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground("w")
        windows = set(QApplication.topLevelWidgets())
        self.accuracy = self._plot(chart_specs.ACCURACY, 0, 0)
        self.throughput = self._plot(chart_specs.THROUGHPUT, 0, 1)
        self.memory = self._plot(chart_specs.MEMORY, 0, 2)
        self.latency = self._plot(chart_specs.LATENCY, 1, 0)
        self.scatter = self._plot(chart_specs.SCATTER, 1, 1, colspan=2)
        self.scatter.setLabel("bottom", chart_specs.SCATTER_X_AXIS)
        # pyqtgraph makes each plot's context menus and option panels without a parent: owned here,
        # they go when the charts go instead of living (hidden) until the process ends.
        for widget in QApplication.topLevelWidgets():
            if widget not in windows and widget.parent() is None and widget is not self:
                widget.setParent(self, widget.windowFlags())
        self.legend_text = QLabel("", self)  # placed under the charts by the dashboard
        self.legend_text.setWordWrap(True)
        # Over the plots until a result is in: five empty 0-1 axes told the user nothing.
        self.hint = QLabel(self.HINT, self)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("background: white; color: #555; font-size: 13pt;")
        self.hint.setGeometry(self.rect())
        self._generation = 0  # the report being drawn; a chain of draws for an older one stops
        self._points: tuple = ()  # latency dots of each timed result drawn
        self._timed: tuple = ()  # the results drawn that have speed figures
        self._colours: dict[str, str] = {}  # each result's palette colour, by its place in the report
        self._cluster = False  # the report is a cluster run's: speed and memory per worker (the Workers tab)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if hasattr(self, "hint"):  # pyqtgraph's constructor resizes before ours has made it
            self.hint.setGeometry(self.rect())

    def _plot(self, chart, row, column, colspan=1):
        plot = self.addPlot(row=row, col=column, colspan=colspan, title=chart.title)
        plot.setLabel("left", chart.axis)
        plot.showGrid(y=True, alpha=0.3)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        return plot

    def _ticks(self, plot, names):
        plot.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(short_names(names))]])

    def colour_of(self, name: str) -> str:
        """The palette colour ``name`` is drawn in (as in the chart files)."""
        return self._colours[name]

    def show_report(self, report, staged: bool = True, data: DashboardData | None = None) -> None:
        """Redraw the five charts. ``staged``: one chart per turn of the event loop, each painted
        before the next is drawn (a full repaint of all five, axis text above all, held the GUI
        thread 25-50 ms at once while a benchmark ran). ``data``: the report's DashboardData, when
        it was prepared in a worker; at most MAX_CHARTED results and MAX_POINTS dots each are drawn."""
        if data is not None:
            charted, self._timed, self._points = data.charted, data.timed, data.latency_points
        else:
            charted, self._timed, self._points = chart_data(report)
        ran = list(charted)
        self._generation += 1
        steps = [self._draw_accuracy, self._draw_throughput, self._draw_memory, self._draw_latency,
                 self._draw_scatter, self._draw_scatter_labels]
        if not ran:
            for plot in (self.accuracy, self.throughput, self.latency, self.scatter, self.memory):
                plot.clear()
            self.legend_text.setText("")
            self.hint.show()
            self.hint.raise_()
            return
        self.hint.hide()
        self._cluster = isinstance(report.environment.get("cluster"), dict)
        from cnnviewer.core.benchmark import memory_caption

        self._colours = model_colours([m.name for m in report.models])
        memory = memory_caption(list(report.models))
        # A cluster's workers measured their whole processes (the Workers tab), not the rise above a start.
        self.memory.setLabel("left", chart_specs.MEMORY.axis if self._cluster else chart_specs.memory_axis(memory))
        partial = [m.name for m in ran if m.partial]
        swatches = " &nbsp;".join(f"<span style='color:{self._colours[m.name]}'>■</span> {escape(name)}"
                                  for m, name in zip(ran, short_names([m.name for m in ran]), strict=True))
        self.legend_text.setText(
            f"{swatches} &nbsp;·&nbsp; "
            # A cluster run draws no memory bars and no latency dots: their keys would describe nothing.
            + ("solid: top-1 &nbsp; light: top-5" if self._cluster
               else f"solid: top-1, {memory[:-5]} &nbsp; light: top-5, parameters"
                    " &nbsp;·&nbsp; latency: dots are single runs, lines p50 (thick) / p90 / p99 (thin)")
            + (" &nbsp;·&nbsp; img/s whiskers: 95 % interval over the timing rounds"
               if any(m.throughput_ci for m in self._timed) else "")
            + (" &nbsp;·&nbsp; hatched: partial, cut short by Cancel (no speed figures)" if partial else ""))
        if not staged:
            for step in steps:
                step(ran)
            return
        generation = self._generation

        def run(index: int) -> None:
            if generation != self._generation:  # a newer report took over
                return
            steps[index](ran)
            if index + 1 < len(steps):
                # A timer, not a zero-delay call: Qt paints (a low-priority posted event) before timers fire.
                QTimer.singleShot(5, self, lambda: run(index + 1))

        run(0)

    def _bars(self, ran, light: bool = False) -> dict:
        """BarGraphItem's brushes and pens in each result's colour (``light``: the pair's second bar, lighter):
        solid, or hatched with a dashed edge for a partial result."""
        brushes, pens = [], []
        for m in ran:
            colour = self._colours[m.name]
            fill = lighter(colour) if light else colour
            if m.partial:
                brushes.append(QBrush(QColor(fill), Qt.BrushStyle.BDiagPattern))
                pens.append(pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DashLine))
            else:
                brushes.append(pg.mkBrush(fill))
                pens.append(pg.mkPen(colour, width=1))
        return {"brushes": brushes, "pens": pens}

    def _draw_accuracy(self, ran) -> None:
        x = np.arange(len(ran), dtype=float)
        self.accuracy.clear()
        top1 = np.array([m.top1 * 100 for m in ran])
        top5 = np.array([m.top5 * 100 for m in ran])
        self.accuracy.addItem(pg.BarGraphItem(x=x - 0.2, height=top1, width=0.38, **self._bars(ran)))
        self.accuracy.addItem(pg.BarGraphItem(x=x + 0.2, height=top5, width=0.38, **self._bars(ran, light=True)))
        for offset, values, cis in ((-0.2, top1, [m.top1_ci for m in ran]), (0.2, top5, [m.top5_ci for m in ran])):
            low = np.maximum(0, values - np.array([c[0] * 100 for c in cis]))
            high = np.maximum(0, np.array([c[1] * 100 for c in cis]) - values)
            self.accuracy.addItem(pg.ErrorBarItem(x=x + offset, y=values, top=high, bottom=low, beam=0.15,
                                                  pen=pg.mkPen("k", width=1.5)))
        self.accuracy.setYRange(0, 100)
        self._ticks(self.accuracy, [m.name for m in ran])

    def _clear(self, plot, note: str = "") -> bool:
        """Empty ``plot``; with a ``note``, show it there instead of axes with nothing on them (a cluster run's
        speed and memory are per worker). Whether the plot is to be drawn."""
        plot.clear()
        plot.getAxis("left").setStyle(showValues=not note)
        if not note:  # as a report on one machine draws it: its own ticks and ranges (a note fixed them)
            plot.getAxis("bottom").setTicks(None)
            plot.enableAutoRange()
            return True
        plot.getAxis("bottom").setTicks([[]])
        plot.setXRange(0, 1, padding=0)
        plot.setYRange(0, 1, padding=0)
        text = pg.TextItem(note, color="#555", anchor=(0.5, 0.5))
        text.setPos(0.5, 0.5)
        plot.addItem(text)
        return False

    PER_WORKER_NOTE = "Per worker on a cluster:\nsee the Workers tab"
    MEMORY_NOTE = "Each worker's own:\nsee the Workers tab"  # its Process peak MB column

    def _draw_throughput(self, ran) -> None:
        timed = self._timed  # a partial result has no throughput to draw
        if not self._clear(self.throughput, self.PER_WORKER_NOTE if self._cluster and not timed else ""):
            return
        x = np.arange(len(timed), dtype=float)
        heights = np.array([m.throughput_ips for m in timed], dtype=float)
        self.throughput.addItem(pg.BarGraphItem(x=x, height=heights, width=0.6,
                                                brushes=[self._colours[m.name] for m in timed],
                                                pen=pg.mkPen("k", width=0.5)))
        low, high = chart_specs.throughput_errors(timed)
        if any(low) or any(high):  # the 95 % interval of the timing rounds (none in reports before them)
            self.throughput.addItem(pg.ErrorBarItem(x=x, y=heights, top=np.array(high), bottom=np.array(low),
                                                    beam=0.15, pen=pg.mkPen("k", width=1.5)))
        self._ticks(self.throughput, [m.name for m in timed])

    def _draw_latency(self, ran) -> None:
        """The dots in one item per colour and each percentile's lines in one item: pyqtgraph's cost is
        per item and per brush (four items per result took 200 ms for 40 results)."""
        ran = self._timed  # the dots are those of the results with speed figures
        if not self._clear(self.latency, self.PER_WORKER_NOTE if self._cluster and not ran else "") or not ran:
            return
        by_colour: dict[str, list[int]] = {}
        for i, m in enumerate(ran):
            by_colour.setdefault(self._colours[m.name], []).append(i)
        for colour, mine in by_colour.items():
            self.latency.addItem(pg.ScatterPlotItem(np.concatenate([jitter(len(self._points[i]), i) for i in mine]),
                                                    np.concatenate([self._points[i] for i in mine]), size=6,
                                                    brush=colour, pen=None))
        ends = np.repeat(np.arange(len(ran), dtype=float), 2) + np.tile([-0.3, 0.3], len(ran))
        for key, width in (("p50", 3), ("p90", 1.5), ("p99", 1)):
            heights = np.repeat([m.latency_ms[key] for m in ran], 2).astype(float)
            self.latency.addItem(pg.PlotCurveItem(ends, heights, connect="pairs", pen=pg.mkPen("k", width=width)))
        self._ticks(self.latency, [m.name for m in ran])

    def _draw_scatter(self, ran) -> None:
        ran = self._timed
        if not self._clear(self.scatter, self.PER_WORKER_NOTE if self._cluster and not ran else "") or not ran:
            return
        x = np.array([m.latency_ms["p50"] for m in ran], dtype=float)
        y = np.array([m.top1 * 100 for m in ran], dtype=float)
        self.scatter.addItem(pg.ScatterPlotItem(x, y, size=12, brush=[pg.mkBrush(self._colours[m.name]) for m in ran],
                                                pen=pg.mkPen("k")))
        self.scatter.setYRange(*chart_specs.accuracy_range(y), padding=0)
        self.scatter.setXRange(*chart_specs.latency_range(x), padding=0)

    def _draw_scatter_labels(self, ran) -> None:
        """The names beside the points where they cover no other point or label (core.charts.place_labels, in
        the plot's pixels), a step of its own (text items are pyqtgraph's slowest)."""
        ran = self._timed
        if not ran:
            return
        view = self.scatter.getViewBox()
        (x0, x1), (y0, y1) = view.viewRange()
        width, height = view.width(), view.height()
        labels = [pg.TextItem(name, color="k", anchor=(0, 1)) for name in short_names([m.name for m in ran])]
        points = [(m.latency_ms["p50"], m.top1 * 100) for m in ran]
        if width < 50 or height < 50:  # not laid out yet (hidden): beside each point
            corners = [((x - x0) / (x1 - x0) * width + 8, (y - y0) / (y1 - y0) * height) for x, y in points]
        else:
            pixels = [((x - x0) / (x1 - x0) * width, (y - y0) / (y1 - y0) * height) for x, y in points]
            sizes = [(label.textItem.boundingRect().width(), label.textItem.boundingRect().height()) for label in labels]
            corners = chart_specs.place_labels(pixels, sizes, radius=6, bounds=(0, 0, width, height), gap=2)
        for label, (cx, cy) in zip(labels, corners, strict=True):
            label.setPos(x0 + cx / max(width, 1) * (x1 - x0), y0 + cy / max(height, 1) * (y1 - y0))
            self.scatter.addItem(label)

    def _draw_memory(self, ran) -> None:
        x = np.arange(len(ran), dtype=float)
        if not self._clear(self.memory, self.MEMORY_NOTE if self._cluster else ""):
            return
        self.memory.addItem(pg.BarGraphItem(x=x - 0.2, height=[m.peak_rss_mb for m in ran], width=0.38,
                                            **self._bars(ran)))
        self.memory.addItem(pg.BarGraphItem(x=x + 0.2, height=[m.param_mb for m in ran], width=0.38,
                                            **self._bars(ran, light=True)))
        self._ticks(self.memory, [m.name for m in ran])


class WrappingHeader(QHeaderView):
    """A header whose long titles ("Peak MB above start") take two lines, so a column is as wide as its
    figures or its longest word: on one line the summary's titles alone were wider than 1280 px allows."""

    def __init__(self, parent=None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setDefaultAlignment(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap)

    @staticmethod
    def lines(text: str) -> list[str]:
        """``text`` in two lines where it has two words or more, broken where the longer line is shortest."""
        words = text.split()
        if len(words) < 2:
            return [text]
        splits: list[tuple[str, str]] = [(" ".join(words[:i]), " ".join(words[i:])) for i in range(1, len(words))]
        first, second = min(splits, key=lambda pair: max(len(pair[0]), len(pair[1])))
        return [first, second]

    def sectionSizeFromContents(self, logical: int) -> QSize:  # noqa: N802 - Qt override
        size = super().sectionSizeFromContents(logical)
        model = self.model()
        text = model.headerData(logical, self.orientation()) if model is not None else None
        if not text:
            return size
        metrics = self.fontMetrics()
        lines = self.lines(str(text))
        # What the one-line text takes beyond the widest line is what wrapping saves.
        width = size.width() - metrics.horizontalAdvance(str(text)) + max(metrics.horizontalAdvance(line)
                                                                          for line in lines)
        return QSize(width, max(size.height(), 2 * metrics.lineSpacing() + 6))


class MiddleElided(QStyledItemDelegate):
    """Cells cut in the middle: file names that share their start ("granny_smith_0/1.jpg") stay apart."""

    def initStyleOption(self, option, index) -> None:  # noqa: N802 - Qt override
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideMiddle


class ImageDetail(QWidget):
    """The clicked image and every model's top-5, the true class marked in each."""

    PLACEHOLDER = "Click a row to see the image and every model's top-5; double-click or Enter opens it in the main window."

    def __init__(self, parent=None):
        super().__init__(parent)
        self.picture = QLabel(self.PLACEHOLDER)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setWordWrap(True)  # a narrow panel wraps the placeholder rather than cutting it
        self.picture.setMinimumSize(200, 150)
        self.caption = QLabel("")  # rich text: the file name in it is escaped
        self.caption.setWordWrap(True)
        self.tables = QWidget(self)
        self.tables_layout = QVBoxLayout(self.tables)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # the tables fit its width
        scroll.setWidget(self.tables)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picture)
        layout.addWidget(self.caption)
        layout.addWidget(scroll, 1)
        self.shown: dict[str, list] = {}
        self.maps: dict[str, QLabel] = {}
        self.truth_models: dict[str, TruthPredictionsModel] = {}
        self.row = None  # the image row shown, None for the placeholder

    def clear(self) -> None:
        """Back to the placeholder: the row shown belongs to results no longer shown."""
        self.row = None
        self.picture.clear()
        self.picture.setText(self.PLACEHOLDER)
        self.caption.setText("")
        self._remove_tables()

    def _remove_tables(self) -> None:
        while self.tables_layout.count():
            item = self.tables_layout.takeAt(0)
            widget = item.widget()
            if widget is not None:
                widget.hide()  # off the screen now; deleted when the event loop next gets to it
                widget.deleteLater()
        self.shown = {}
        self.maps = {}
        self.truth_models = {}

    def is_mistake(self, row) -> bool:
        return any(top and top[0] != row.truth for top in row.top5.values())

    def set_map(self, model: str, outcome) -> None:
        """The model's Grad-CAM over the image (shown for mistakes)."""
        picture = self.maps.get(model)
        if picture is None:
            return
        if isinstance(outcome, Exception):
            picture.setText(str(outcome))
        else:
            picture.setPixmap(QPixmap.fromImage(outcome.overlay_thumbnail).scaled(
                picture.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))
            picture.setToolTip(tooltip(f"Grad-CAM of {outcome.class_name}, {model}'s top-1: where it looked"))

    def show_row(self, row, image: QImage | None) -> None:
        from cnnviewer.core.inference import Prediction

        names = _categories()
        if image is not None:
            self.picture.setPixmap(QPixmap.fromImage(image).scaled(
                QSize(320, 180), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))
        else:
            self.picture.setText("(the image cannot be shown)")
        self.caption.setText(f"<b>{escape(os.path.basename(row.file))}</b> · true class {row.truth} "
                             f"{escape(names[row.truth])}")
        self._remove_tables()
        self.row = row
        mistake = self.is_mistake(row)
        for model, indices in row.top5.items():
            predictions = [Prediction(i, names[i], p) for i, p in zip(indices, row.probabilities[model], strict=True)]
            box = QGroupBox(f"{model} {'✓ right' if indices[0] == row.truth else '✗ wrong'}", self.tables)
            table_model = TruthPredictionsModel(row.truth, box)
            table_model.set_predictions(predictions)
            table = self._compact_table(table_model, box)
            inner = QVBoxLayout(box)
            inner.setContentsMargins(6, 4, 6, 4)
            inner.setSpacing(4)
            if mistake:
                # A fixed size: a wrapped label in the scrolled column was squeezed to no height at all, so
                # the map arrived but never showed.
                picture = QLabel("Grad-CAM…", box)
                make_plain(picture)  # may show an error sentence naming the file
                picture.setWordWrap(True)
                picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
                picture.setFixedSize(self.MAP, self.MAP)
                line = QHBoxLayout()
                line.addWidget(picture)
                line.addWidget(table, 1)
                inner.addLayout(line)
                self.maps[model] = picture
            else:
                inner.addWidget(table)
            if row.truth not in indices:
                missing = QLabel(f"✗ The true class, {row.truth} {names[row.truth]}, is not in this top-5.", box)
                missing.setWordWrap(True)
                missing.setTextFormat(Qt.TextFormat.PlainText)
                missing.setStyleSheet(f"color: {BAD.name()};")
                inner.addWidget(missing)
            self.tables_layout.addWidget(box)
            box.show()  # added to a visible parent: show now, not on the next event loop pass
            self.shown[model] = predictions
            self.truth_models[model] = table_model
        self.tables_layout.addStretch(1)  # the boxes at the top, their height their own


    MAP = 116  # px: each model's Grad-CAM beside its top-5 (five compact rows are about as tall)

    @staticmethod
    def _compact_table(table_model, parent) -> QTableView:
        """A top-5 table exactly as tall as its rows, one line each, with room for the class names: a table
        left to stretch wrapped the names in a 40 px column and stood over a band of blank space."""
        table = make_predictions_table(table_model, parent)
        table.setWordWrap(False)
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        table.setColumnWidth(3, 80)  # "11.60 %" and a short bar
        table.hideColumn(0)  # the rank is the row's place; its width goes to the class names
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        rows = table.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(table.fontMetrics().height() + 8)
        height = (table.horizontalHeader().sizeHint().height() + rows.defaultSectionSize() * table_model.rowCount()
                  + 2 * table.frameWidth())
        table.setFixedHeight(height)
        table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        return table


class TruthPredictionsModel(PredictionsModel):
    """A model's top-5 with the true class marked: bold, in the colour of a right answer, and ✓ before its
    name (so the mark is not told by colour alone)."""

    def __init__(self, truth: int, parent=None):
        super().__init__(parent)
        self.truth = truth

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self._rows[index.row()].index != self.truth:
            return super().data(index, role)
        if role == Qt.ItemDataRole.DisplayRole and index.column() == 2:
            return f"✓ {self._rows[index.row()].name}"
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(GOOD)
        if role == Qt.ItemDataRole.ToolTipRole:
            prediction = self._rows[index.row()]
            return tooltip(f"The true class, ImageNet class {prediction.index}: {prediction.name} "
                           f"({prediction.probability:.4f})")
        return super().data(index, role)


SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # a number for the proxy to sort by, where the text is "67 % (2/3)"


class ClassesModel(QAbstractTableModel):
    """One row per true class (core.evaluation.class_table): images, and each model's top-1 and top-5."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: tuple[ClassRow, ...] = ()
        self.models: list[str] = []
        self.headers: list[str] = []

    def set_rows(self, rows: tuple[ClassRow, ...], models: list[str]) -> None:
        self.beginResetModel()
        self.rows, self.models, self.headers = rows, list(models), short_names(list(models))
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()):  # noqa: N802
        return 0 if parent.isValid() else 3 + 2 * len(self.models)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal:
            return None
        if section < 3:
            names = ("Class", "Name", "Images")
            return names[section] if role == Qt.ItemDataRole.DisplayRole else None
        model, which = divmod(section - 3, 2)
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{self.headers[model]} top-{1 if which == 0 else 5}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(f"{self.models[model]}: the share of this class's images whose "
                           f"{'top-1 is' if which == 0 else 'top-5 holds'} the true class")
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.UserRole:
            return row
        if column < 3:
            value = (row.index, row.name, row.support)[column]
            if role == SORT_ROLE:
                return value
            if role == Qt.ItemDataRole.DisplayRole:
                return str(value)
            if role == Qt.ItemDataRole.TextAlignmentRole and column != 1:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return None
        model, which = divmod(column - 3, 2)
        score = row.scores[model]
        right, fraction = (score.top1, score.top1_fraction) if which == 0 else (score.top5, score.top5_fraction)
        if role == SORT_ROLE:
            return -1.0 if fraction is None else fraction
        if role == Qt.ItemDataRole.DisplayRole:
            return "—" if fraction is None else f"{fraction * 100:.0f} % ({right}/{score.seen})"
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(f"{score.model}: {right} of the {score.seen} images of {row.name} it classified")
        return None


class ConfusionsView(QWidget):
    """A model's most confused pairs, "true → predicted ×count", each with a few of its images."""

    pair_clicked = Signal(object, str)  # ConfusedPair, model

    THUMBNAIL = 64

    def __init__(self, images_model: ImagesModel, parent=None):
        super().__init__(parent)
        self.images_model = images_model
        self.model_combo = QComboBox(self)
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model_combo.currentTextChanged.connect(lambda _: self.refresh())
        self.list = QListWidget(self)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.itemClicked.connect(self._on_item_clicked)
        self.list.itemActivated.connect(self._on_item_clicked)
        self.note = QLabel("Click a pair to see its images in the Images tab.")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Model"))
        bar.addWidget(self.model_combo)
        bar.addSpacing(12)
        bar.addWidget(self.note, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.list, 1)
        self.report = None
        self.pairs: tuple = ()
        self._pictures: dict[str, list[QLabel]] = {}

    def set_report(self, report) -> None:
        self.report = report
        models = ran_models(report)
        if [self.model_combo.itemText(i) for i in range(self.model_combo.count())] != models:
            current = self.model_combo.currentText()
            self.model_combo.blockSignals(True)
            self.model_combo.clear()
            self.model_combo.addItems(models)
            if current in models:
                self.model_combo.setCurrentText(current)
            self.model_combo.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        model = self.model_combo.currentText()
        self.list.clear()
        self._pictures = {}
        self.pairs = confused_pairs(self.report, model) if self.report is not None and model else ()
        if not self.pairs:
            empty = QListWidgetItem("No mistakes by this model." if model else "No results yet.")
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.list.addItem(empty)
            return
        wanted = []
        for pair in self.pairs:
            item = QListWidgetItem(self.list)
            item.setData(Qt.ItemDataRole.UserRole, pair)
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(6, 4, 6, 4)
            text = QLabel(f"{pair.truth} {pair.truth_name}  →  {pair.predicted} {pair.predicted_name}   ×{pair.count}")
            text.setTextFormat(Qt.TextFormat.PlainText)
            line.addWidget(text)
            line.addSpacing(12)
            for path in pair.examples:
                picture = QLabel()
                picture.setFixedSize(self.THUMBNAIL, self.THUMBNAIL)
                picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
                picture.setToolTip(tooltip(path))
                self._pictures.setdefault(path, []).append(picture)
                icon = self.images_model.thumbnail(path)
                if icon is not None and not icon.isNull():
                    picture.setPixmap(icon.pixmap(self.THUMBNAIL, self.THUMBNAIL))
                else:
                    wanted.append(path)
                line.addWidget(picture)
            line.addStretch(1)  # the pictures beside their pair, not across the window from it
            item.setToolTip(tooltip(f"{pair.count} image(s) of {pair.truth_name} that {model} called "
                                    f"{pair.predicted_name}"))
            item.setSizeHint(row.sizeHint())
            self.list.setItemWidget(item, row)
        self.images_model.want(wanted)

    def set_thumbnail(self, path: str, image: QImage | None) -> None:
        for picture in self._pictures.get(path, []):
            if image is not None:
                picture.setPixmap(QPixmap.fromImage(image).scaled(
                    self.THUMBNAIL, self.THUMBNAIL, Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation))

    def _on_item_clicked(self, item: QListWidgetItem) -> None:
        pair = item.data(Qt.ItemDataRole.UserRole)
        if pair is not None:
            self.pair_clicked.emit(pair, self.model_combo.currentText())


ANY = "any"


class WorkersModel(RecordsModel):
    """One row per (model, worker process) of a run on a cluster: core.report.ClusterSummary's cells."""

    NUMBERS = (3, 6, 7, 8, 9, 10, 11, 12)  # PID, Threads, Images, Shards, the two img/s, MB, Load s: right-aligned

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        cell = self._rows[index.row()][index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.UserRole):
            return cell
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(f"{self.HEADERS[index.column()]}: {cell}")
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in self.NUMBERS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class WorkersView(QWidget):
    """A cluster run's workers: where the models ran, what was sent, how the work was split, and each worker
    process's own speed (never summed), then the shards run again and the resumed sessions."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.about = QLabel("", self)  # rich text of ours; the report's text in it is escaped
        self.about.setWordWrap(True)
        self.about.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model = WorkersModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(False)
        # As tall as its rows, the notes right under it (a few workers left a screen of empty table); many
        # workers fill the page and scroll.
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.notes = QLabel("", self)
        self.notes.setWordWrap(True)
        self.notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.about)
        layout.addWidget(self.table)
        layout.addWidget(self.notes)
        layout.addStretch(1)

    def set_summary(self, summary) -> None:
        """Show a core.report.ClusterSummary."""
        from cnnviewer.core.report import NOT_SUMMED, PROCESS_PEAK, WORKER_HEADERS

        self.model.HEADERS = WORKER_HEADERS
        self.model.set_records(summary.workers)
        self.about.setText(f"<b>Engine:</b> {escape(summary.where)}<br><b>Sent to the workers:</b> "
                           f"{escape(summary.sent)}<br><b>Split:</b> {escape(summary.split)}<br><b>{escape(NOT_SUMMED)}</b> "
                           f"{escape(PROCESS_PEAK)}")
        notes = []
        if summary.retries:
            notes.append("<b>Shards run again</b> (each image is counted once, from the attempt that finished):<br>"
                         + "<br>".join(f"• {escape(retry)}" for retry in summary.retries))
        if summary.resumed:
            notes.append("<b>Resumed sessions:</b><br>" + "<br>".join(f"• {escape(r)}" for r in summary.resumed))
        if not summary.workers:
            notes.insert(0, "No worker has finished a shard yet.")
        self.notes.setText("<br>".join(notes))
        self.notes.setVisible(bool(notes))


class Dashboard(QTabWidget):
    """Everything a report holds, in four tabs (and a Workers tab for a run on a cluster); ``show_report`` can be
    called again as results grow."""

    thumbnails_wanted = Signal(list)
    row_clicked = Signal(object)
    image_opened = Signal(str)  # a row double-clicked (or Enter): its file

    def __init__(self, parent=None):
        super().__init__(parent)
        self.report = None
        self.charts = Charts(self)
        self.summary_model = SummaryModel(self)
        self.summary = QTableView(self)
        self.summary.setHorizontalHeader(WrappingHeader(self.summary))
        self.summary.setModel(self.summary_model)
        self.summary.verticalHeader().hide()
        self.summary.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # Columns sized from the rows in view: measuring every cell of 450 results took 1.7 s of CPU.
        self.summary.horizontalHeader().setResizeContentsPrecision(0)
        self.conclusions = QLabel("")  # rich text of ours; the report's text in it is escaped
        self.conclusions.setWordWrap(True)
        self.conclusions.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        overview = QWidget(self)
        overview_layout = QVBoxLayout(overview)
        split = QSplitter(Qt.Orientation.Vertical, overview)
        upper = QWidget(split)
        upper_layout = QVBoxLayout(upper)
        upper_layout.setContentsMargins(0, 0, 0, 0)
        upper_layout.addWidget(self.charts, 1)
        upper_layout.addWidget(self.charts.legend_text)
        split.addWidget(upper)
        lower = QWidget(split)
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.summary, 1)
        lower_layout.addWidget(self.conclusions)
        split.addWidget(lower)
        split.setSizes([520, 260])
        overview_layout.addWidget(split)
        self.addTab(overview, "Dashboard")

        self.images_model = ImagesModel(self)
        self.images_model.thumbnails_wanted.connect(self.thumbnails_wanted)
        self.images_filter = ImagesFilter(self)
        self.images_filter.setSourceModel(self.images_model)
        self.images = QTableView(self)
        self.images.setModel(self.images_filter)
        self.images.setIconSize(QSize(64, 64))
        self.images.verticalHeader().setDefaultSectionSize(68)
        self.images.verticalHeader().hide()
        self.images.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.images.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.images.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.images.setTextElideMode(Qt.TextElideMode.ElideRight)  # each cell's whole text is in its tooltip
        self._file_names = MiddleElided(self.images)
        self.images.setItemDelegateForColumn(0, self._file_names)
        self.images.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.images.setWordWrap(False)
        # Fixed widths: ResizeToContents would ask every row for its size at each update (10,000 rows).
        self.images.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.images.horizontalHeader().setDefaultSectionSize(self.MODEL_COLUMN)
        self.images.horizontalHeader().setTextElideMode(Qt.TextElideMode.ElideRight)
        # The room is shared out by fit_columns (a wide window widens every model's column, not the last one).
        self.images.viewport().installEventFilter(self)
        # The current row, not a click: Up/Down, Page Up/Down and Home/End move the detail along too.
        self.images.selectionModel().currentRowChanged.connect(self._on_image_clicked)
        self.images.activated.connect(self._open_image)  # double-click or Enter, as in the main window's browser
        self.filter_combo = QComboBox(self)
        self.filter_combo.addItems(ImagesFilter.MODES)
        self.filter_combo.currentTextChanged.connect(self.images_filter.set_mode)
        self.truth_combo = self._class_combo("The true class of the images shown (type to search)")
        self.predicted_combo = self._class_combo("The class predicted (top-1) by the model chosen beside it")
        self.predicted_by_combo = self._model_combo("any model", "Whose top-1 the predicted class is")
        self.right_combo = self._model_combo(ANY, "Only images this model's top-1 got right")
        self.wrong_combo = self._model_combo(ANY, "Only images this model's top-1 got wrong")
        clear_filters = QPushButton("Clear")
        clear_filters.setToolTip("Show every image again")
        clear_filters.clicked.connect(lambda: self.filter_images())
        self.count_label = QLabel("")
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.detail = ImageDetail(self)
        images_page = QWidget(self)
        left = QWidget(images_page)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        # Two pairs of boxes a row: seven columns made the list side too wide to leave the detail room at 1280 px.
        bar = QGridLayout()
        bar.addWidget(QLabel("Show"), 0, 0)
        bar.addWidget(self.filter_combo, 0, 1)
        bar.addWidget(QLabel("True class"), 0, 2)
        bar.addWidget(self.truth_combo, 0, 3)
        bar.addWidget(QLabel("Predicted"), 1, 0)
        bar.addWidget(self.predicted_combo, 1, 1)
        bar.addWidget(QLabel("by"), 1, 2)
        bar.addWidget(self.predicted_by_combo, 1, 3)
        bar.addWidget(QLabel("Right:"), 2, 0)
        right_wrong = QHBoxLayout()
        right_wrong.addWidget(self.right_combo, 1)
        right_wrong.addWidget(QLabel("Wrong:"))
        right_wrong.addWidget(self.wrong_combo, 1)
        bar.addLayout(right_wrong, 2, 1)
        counted = QHBoxLayout()
        counted.addWidget(clear_filters)
        counted.addWidget(self.count_label, 1)
        bar.addLayout(counted, 2, 2, 1, 2)
        for column in (1, 3):
            bar.setColumnStretch(column, 1)
        left_layout.addLayout(bar)
        left_layout.addWidget(self.images, 1)
        page_split = QSplitter(images_page)
        page_split.addWidget(left)
        page_split.addWidget(self.detail)
        page_split.setStretchFactor(0, 1)
        page_split.setStretchFactor(1, 1)
        # A wide detail side: each model's top-5 (and its map for a mistake) readable at 1280 px.
        page_split.setSizes([580, 420])
        QVBoxLayout(images_page).addWidget(page_split)
        self.images_tab = self.addTab(images_page, "Images")
        self.images_filter.layoutChanged.connect(self._update_count)
        self.images_filter.rowsInserted.connect(self._update_count)
        self.images_filter.modelReset.connect(self._update_count)
        self.images_filter.modelReset.connect(self._forget_hidden_row)
        self.filter_combo.currentTextChanged.connect(lambda _: self._update_count())

        self.classes_model = ClassesModel(self)
        self.classes_proxy = QSortFilterProxyModel(self)
        self.classes_proxy.setSourceModel(self.classes_model)
        self.classes_proxy.setSortRole(SORT_ROLE)
        self.classes = QTableView(self)
        self.classes.setModel(self.classes_proxy)
        self.classes.setSortingEnabled(True)
        self.classes.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.classes.verticalHeader().hide()
        self.classes.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.classes.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.classes.setAlternatingRowColors(True)
        self.classes.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.classes.horizontalHeader().setDefaultSectionSize(130)
        self.classes.viewport().installEventFilter(self)
        self.classes.activated.connect(self._on_class_activated)
        classes_page = QWidget(self)
        classes_layout = QVBoxLayout(classes_page)
        classes_layout.addWidget(QLabel("Each true class of the set: click a header to sort; double-click a class "
                                        "to see its images."))
        classes_layout.addWidget(self.classes, 1)
        self.classes_tab = self.addTab(classes_page, "Classes")

        self.confusions = ConfusionsView(self.images_model, self)
        self.confusions.pair_clicked.connect(self._on_pair_clicked)
        self.confusions_tab = self.addTab(self.confusions, "Confusions")
        self._evaluated: object = None  # the report the Classes and Confusions tabs show
        self.currentChanged.connect(lambda _: self._refresh_evaluation())
        # Last, and only while a cluster run's report is shown: the other tabs keep their places.
        self.workers = WorkersView(self)
        self.workers.hide()

    MODEL_COLUMN = 140  # px: "✓ 97 % American black bear" needs ~190; the rest is elided, whole in the tooltip

    def _class_combo(self, tip: str) -> QComboBox:
        """An editable combo of classes ("any" first) that completes what is typed from anywhere in a name."""
        combo = QComboBox(self)
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(11)
        combo.setToolTip(tip)
        combo.addItem(ANY, None)
        completer = QCompleter(combo.model(), combo)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        combo.setCompleter(completer)
        combo.currentIndexChanged.connect(lambda _: self._apply_filters())
        # The start of the class shown, its number above all, not the end of a text wider than the box.
        combo.currentIndexChanged.connect(lambda _: Dashboard._show_start(combo))
        return combo

    def _model_combo(self, first: str, tip: str) -> QComboBox:
        combo = QComboBox(self)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(6)  # short names ("lite0"); the popup is as wide as its entries
        combo.setToolTip(tip)
        combo.addItem(first, None)
        combo.currentIndexChanged.connect(lambda _: self._apply_filters())
        return combo

    def show_report(self, report, data: DashboardData | None = None) -> None:
        """Show ``report``; ``data``: its DashboardData when a worker prepared it (a report opened from
        a file), else it is prepared here (a run's snapshots, which are small)."""
        if data is None or data.report is not report:
            data = prepare_dashboard(report, masks=False)
        self.report = report
        # The charts and the image table are redrawn in later turns of the event loop: one step each,
        # so no single step holds the GUI thread long while a benchmark is running.
        QTimer.singleShot(0, self, lambda: self.report is report and self.charts.show_report(report, data=data))
        QTimer.singleShot(0, self, lambda: self._show_images(report, data) if self.report is report else None)
        self.summary_model.set_report(report)
        self.conclusions.setText("<br>".join(data.lines))
        self._show_workers(report)

    def workers_tab(self) -> int:
        """The Workers tab's place; -1 while the report shown did not run on a cluster."""
        return self.indexOf(self.workers)

    def _show_workers(self, report) -> None:
        if "cluster" not in report.environment and self.workers_tab() < 0:
            return  # nothing to show or take away (and core.report, which imports torch, is not needed)
        from cnnviewer.core.report import cluster_summary

        summary = cluster_summary(report)
        if summary is None:
            if self.workers_tab() >= 0:
                self.removeTab(self.workers_tab())
            return
        self.workers.set_summary(summary)
        if self.workers_tab() < 0:
            self.addTab(self.workers, "Workers")
            self.setTabToolTip(self.workers_tab(), "Each worker process of the cluster run: its own speed, never "
                               "summed")

    def clear(self) -> None:
        """Show nothing: another folder was chosen, or a run starts (earlier results must not linger)."""
        from cnnviewer.core.benchmark import BenchmarkReport

        self.report = None
        empty = BenchmarkReport(root="", config={}, environment={})
        self.charts.show_report(empty)
        self.summary_model.set_report(empty)
        self._show_workers(empty)
        self.images_model.set_report(empty)
        self._fill_filters(empty)
        self.classes_model.set_rows((), [])
        self.confusions.set_report(empty)
        self._evaluated = empty
        self.conclusions.setText("")
        self.detail.clear()
        self._update_count()

    def _show_images(self, report, data: DashboardData | None = None) -> None:
        self.images_model.set_report(report, data)
        self._fill_filters(report)
        self.fit_columns()
        self._update_count()
        self._refresh_evaluation()

    def _refresh_evaluation(self) -> None:
        """The Classes and Confusions tabs, worked out when one of them is shown (a large report's table takes
        a moment: not at each snapshot of a run nobody is looking at there)."""
        report = self.images_model.report
        if report is None or self._evaluated is report or self.currentIndex() not in (self.classes_tab,
                                                                                         self.confusions_tab):
            return
        self._evaluated = report
        self.classes_model.set_rows(class_table(report), ran_models(report))
        self.fit_columns()
        self.confusions.set_report(report)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Resize and watched in (self.images.viewport(), self.classes.viewport()):
            self.fit_columns()
        return super().eventFilter(watched, event)

    def fit_columns(self) -> None:
        """Share the tables' width out: the fixed columns get what their text needs, every model column an
        equal part of the rest (never under what "✓ 97 % banana" needs: past that the table scrolls)."""
        fit_table(self.images, ((146, 200), (134, 160)), self.images_model.columnCount() - 2, self.MODEL_COLUMN, 300)
        fit_table(self.classes, ((56, 56), (150, 190), (64, 64)), self.classes_model.columnCount() - 3, 96, 160)

    def _fill_filters(self, report) -> None:
        """The filters' choices for this report: its true classes, the classes some model predicted, the
        models that ran; what was chosen stays chosen where the report still has it."""
        names = _categories() if report.images else ()
        truths = sorted({row.truth for row in report.images})
        predicted = sorted({top[0] for row in report.images for top in row.top5.values() if top})
        models = ran_models(report)
        for combo, values in ((self.truth_combo, truths), (self.predicted_combo, predicted)):
            self._refill(combo, [(f"{value} {names[value]}", value) for value in values])
        for combo in (self.predicted_by_combo, self.right_combo, self.wrong_combo):
            # The names as the Images columns head them ("lite0"): the whole name cut to "efficientnet_lit".
            self._refill(combo, list(zip(short_names(models), models, strict=True)))
            for number, model in enumerate(models, start=1):
                combo.setItemData(number, model, Qt.ItemDataRole.ToolTipRole)
        self._apply_filters()

    @staticmethod
    def _refill(combo: QComboBox, items: list[tuple[str, object]]) -> None:
        if [combo.itemData(i) for i in range(1, combo.count())] == [value for _, value in items]:
            return
        chosen = combo.currentData()
        combo.blockSignals(True)
        while combo.count() > 1:
            combo.removeItem(1)
        for text, value in items:
            combo.addItem(text, value)
        found = combo.findData(chosen) if chosen is not None else -1
        combo.setCurrentIndex(max(0, found))
        combo.blockSignals(False)
        Dashboard._show_start(combo)
        Dashboard._fit_popup(combo)

    @staticmethod
    def _show_start(combo: QComboBox) -> None:
        """An editable box shows its text from the start ("652 military uniform" from its number on)."""
        edit = combo.lineEdit()
        if edit is not None:
            edit.setCursorPosition(0)

    @staticmethod
    def _fit_popup(combo: QComboBox) -> None:
        """The list as wide as its longest entry: a popup as narrow as the box cut "295 American black bear"."""
        metrics = combo.view().fontMetrics()
        widest = max((metrics.horizontalAdvance(combo.itemText(i)) for i in range(combo.count())), default=0)
        combo.view().setMinimumWidth(widest + 2 * metrics.averageCharWidth() + combo.view().verticalScrollBar()
                                     .sizeHint().width())

    def filter_images(self, truth: int | None = None, predicted: int | None = None, predicted_by: str | None = None,
                      right: str | None = None, wrong: str | None = None) -> None:
        """Set the Images tab's filters (None: any) and show every image they keep."""
        for combo, value in ((self.truth_combo, truth), (self.predicted_combo, predicted),
                             (self.predicted_by_combo, predicted_by), (self.right_combo, right),
                             (self.wrong_combo, wrong)):
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(value)) if value is not None else 0)
            combo.blockSignals(False)
            self._show_start(combo)
        self.filter_combo.setCurrentIndex(0)
        self._apply_filters()

    def _apply_filters(self) -> None:
        self.images_filter.set_criteria(truth=self.truth_combo.currentData(),
                                        predicted=self.predicted_combo.currentData(),
                                        predicted_by=self.predicted_by_combo.currentData(),
                                        right=self.right_combo.currentData(), wrong=self.wrong_combo.currentData())

    def set_thumbnail(self, path: str, image: QImage | None) -> None:
        self.images_model.set_thumbnail(path, image)
        self.confusions.set_thumbnail(path, image)

    def _forget_hidden_row(self) -> None:
        """The detail shows no image the filters hide: it would read as one of the rows listed."""
        row = self.detail.row
        if row is not None and not self.images_filter.keeps(row.file):
            self.detail.clear()

    def _update_count(self) -> None:
        self.count_label.setText(f"{self.images_filter.rowCount()} of {self.images_model.rowCount()} images")

    def _on_image_clicked(self, index, _previous=None) -> None:
        if index.isValid():
            self.row_clicked.emit(self.images_filter.mapToSource(index).data(Qt.ItemDataRole.UserRole))

    def _open_image(self, index) -> None:
        if index.isValid():
            self.image_opened.emit(self.images_filter.mapToSource(index).data(Qt.ItemDataRole.UserRole).file)

    def _on_class_activated(self, index) -> None:
        row = self.classes_proxy.mapToSource(index).data(Qt.ItemDataRole.UserRole)
        if row is not None:
            self.filter_images(truth=row.index)
            self.setCurrentIndex(self.images_tab)

    def _on_pair_clicked(self, pair, model: str) -> None:
        self.filter_images(truth=pair.truth, predicted=pair.predicted, predicted_by=model)
        self.setCurrentIndex(self.images_tab)
