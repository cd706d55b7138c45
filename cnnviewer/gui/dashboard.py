"""The benchmark dashboard: charts (pyqtgraph), the summary table and the per-image table."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnnviewer.gui.predictions import PredictionsModel, RecordsModel, make_predictions_table
from cnnviewer.gui.text import escape, make_plain, tooltip

if TYPE_CHECKING:  # the module itself imports torch: not at the window's start
    from cnnviewer.core.benchmark import BenchmarkReport

COLOURS = [(70, 130, 200), (230, 130, 40), (80, 170, 90), (200, 70, 70), (140, 100, 190), (120, 120, 120)]
GOOD, BAD = QColor(30, 130, 60), QColor(190, 30, 40)
PARTIAL = QColor(120, 120, 120)  # a result cut short by Cancel: its row in grey, its bars hatched

# What one turn of the event loop may draw, whatever the report holds (core.report_check bounds the rest).
MAX_CHARTED = 20  # results in the charts (more are unreadable there); the summary table lists all
MAX_POINTS = 400  # latency dots per result: enough to show the distribution's shape
MAX_SENTENCES = 20  # conclusions under the table (laying out more took 50 ms); report.md has them all


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


def latency_points(values, limit: int = MAX_POINTS) -> np.ndarray:
    """At most ``limit`` values spread evenly over the sorted ones (order statistics): the same shape."""
    if len(values) <= limit:
        return np.asarray(values, dtype=float)
    # In pieces: converting a million Python floats in one call holds Python's lock (and the window) ~50 ms.
    data = np.concatenate([np.asarray(values[i:i + 65536], dtype=float) for i in range(0, len(values), 65536)])
    return np.sort(data)[np.linspace(0, len(data) - 1, limit).round().astype(int)]


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
    charted = tuple([m for m in report.models if m.error is None and m.images][:MAX_CHARTED])
    timed = tuple(m for m in charted if m.timed)
    return charted, timed, tuple(latency_points(m.latencies_ms or [m.latency_ms["p50"]]) for m in timed)


def prepare_dashboard(report, masks: bool = True) -> DashboardData:
    """Everything slow about showing ``report``; no widgets, so a worker can run it. ``masks``: also the
    Images tab's filters (otherwise worked out when a filter is first chosen)."""
    from cnnviewer.core.report import conclusions

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

    set_results = RecordsModel.set_records
    total_images = 0  # the run's images, for "partial (48 of 100)"

    def set_report(self, report) -> None:
        from cnnviewer.core.benchmark import OLD_MEMORY_CAPTION, memory_caption

        self.total_images = len(report.images)
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
        if role == Qt.ItemDataRole.ForegroundRole and m.partial:
            return QBrush(PARTIAL)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
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
                f"{m.peak_rss_mb:.0f}", f"{m.param_mb:.0f}", f"{m.load_s:.2f}", status)[index.column()]


class ImagesModel(QAbstractTableModel):
    """One row per image: thumbnail, true label, each model's top-1 and whether it was right."""

    thumbnails_wanted = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list = []
        self.models: list[str] = []
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
        self.rows = list(report.images)
        self.models = [m.name for m in report.models if m.error is None]
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
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return ("Image", "True label", *self.models)[section]
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
                return tooltip(f"label in the folder: {row.label}")
            return None
        model = self.models[column - 2]
        top = row.top5.get(model)
        if role == Qt.ItemDataRole.DisplayRole:
            if not top:
                return "—"
            mark = "✓" if top[0] == row.truth else "✗"
            return f"{mark} {_categories()[top[0]]} ({row.probabilities[model][0] * 100:.0f} %)"
        if role == Qt.ItemDataRole.ForegroundRole and top:
            return QBrush(GOOD if top[0] == row.truth else BAD)
        return None

    def _request_thumbnails(self) -> None:
        wanted, self._wanted = sorted(self._wanted), set()
        wanted = [path for path in wanted if path not in self._icons]
        if wanted:
            self.thumbnails_wanted.emit(wanted)
            for path in wanted:
                self._icons.setdefault(path, QIcon())  # asked for once

    def set_thumbnail(self, path: str, image: QImage | None) -> None:
        self._icons[path] = QIcon(QPixmap.fromImage(image)) if image is not None else QIcon()
        if self._row_of is None:
            self._row_of = {}
            for number, row in enumerate(self.rows):
                self._row_of.setdefault(row.file, number)
        found = self._row_of.get(path)
        if found is not None:
            index = self.index(found, 0)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class ImagesFilter(QAbstractTableModel):
    """The rows of an ImagesModel that the filter keeps: all images, only mistakes (any model wrong), or
    only disagreements (models' top-1 differ).

    The rows are picked in one numpy step from masks made once per report: a QSortFilterProxyModel asks
    Python about every row, which held the window 0.4 s for 50,000 images at each change.
    """

    MODES = ("All images", "Mistakes", "Disagreements")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.mode = self.MODES[0]
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

    def _select(self) -> np.ndarray:
        if self._source is None:
            return np.arange(0)
        if self.mode == "Mistakes":
            return np.flatnonzero(self._source.masks()[0])
        if self.mode == "Disagreements":
            return np.flatnonzero(self._source.masks()[1])
        return np.arange(self._source.rowCount())

    def _on_source_reset(self) -> None:
        self._rows = self._select()
        self.endResetModel()

    def _on_source_changed(self, top_left, bottom_right, roles=()) -> None:
        for source_row in range(top_left.row(), bottom_right.row() + 1):
            row = int(np.searchsorted(self._rows, source_row))
            if row < len(self._rows) and self._rows[row] == source_row:
                self.dataChanged.emit(self.index(row, top_left.column()), self.index(row, bottom_right.column()),
                                      roles)

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


def short_names(names: list[str]) -> list[str]:
    """Tick labels without the part all names share ("efficientnet_lite0/1/2" -> "lite0/1/2"):
    pyqtgraph drops labels that overlap, and the narrow charts lost all but one."""
    if len(names) < 2:
        return list(names)
    prefix = os.path.commonprefix(names)
    cut = max(prefix.rfind("_"), prefix.rfind("-")) + 1
    if cut == 0 or any(len(name) == cut for name in names):
        return list(names)
    return [name[cut:] for name in names]


class Charts(pg.GraphicsLayoutWidget):
    """Top-1/top-5 with interval whiskers, throughput, latency distributions, accuracy vs latency, memory."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground("w")
        windows = set(QApplication.topLevelWidgets())
        self.accuracy = self._plot("Top-1 / top-5 accuracy (%), 95 % Wilson intervals", 0, 0)
        self.throughput = self._plot("Throughput (images/s)", 0, 1)
        self.memory = self._plot("Peak memory above start / parameters (MB)", 0, 2)
        self.latency = self._plot("Latency at batch 1 (ms)", 1, 0)
        self.scatter = self._plot("Top-1 (%) against latency p50 (ms)", 1, 1, colspan=2)
        # pyqtgraph makes each plot's context menus and option panels without a parent: owned here,
        # they go when the charts go instead of living (hidden) until the process ends.
        for widget in QApplication.topLevelWidgets():
            if widget not in windows and widget.parent() is None and widget is not self:
                widget.setParent(self, widget.windowFlags())
        self.legend_text = QLabel("", self)  # placed under the charts by the dashboard
        self._generation = 0  # the report being drawn; a chain of draws for an older one stops
        self._points: tuple = ()  # latency dots of each timed result drawn
        self._timed: tuple = ()  # the results drawn that have speed figures

    def _plot(self, title, row, column, colspan=1):
        plot = self.addPlot(row=row, col=column, colspan=colspan, title=title)
        plot.showGrid(y=True, alpha=0.3)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        return plot

    def _ticks(self, plot, names):
        plot.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(short_names(names))]])

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
            self.legend_text.setText("No model has results yet.")
            return
        from cnnviewer.core.benchmark import memory_caption

        memory = memory_caption(list(report.models))
        self.memory.setTitle(f"{memory[0].upper()}{memory[1:-5]} / parameters (MB)")
        partial = [m.name for m in ran if m.partial]
        self.legend_text.setText(
            "Accuracy: <span style='color:#4682c8'>■</span> top-1 &nbsp; <span style='color:#50aa5a'>■</span> top-5"
            " &nbsp;·&nbsp; latency: dots are single runs, lines p50 (thick) / p90 / p99 (thin)"
            f" &nbsp;·&nbsp; memory: <span style='color:#c84646'>■</span> {memory[:-5]} &nbsp; "
            "<span style='color:#8c64be'>■</span> parameters"
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

    @staticmethod
    def _bars(ran, colour) -> dict:
        """BarGraphItem's brushes and pens: solid, or hatched with a dashed edge for a partial result."""
        brushes, pens = [], []
        for m in ran:
            if m.partial:
                brushes.append(QBrush(QColor(*colour), Qt.BrushStyle.BDiagPattern))
                pens.append(pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DashLine))
            else:
                brushes.append(pg.mkBrush(colour))
                pens.append(pg.mkPen("k", width=0.5))
        return {"brushes": brushes, "pens": pens}

    def _draw_accuracy(self, ran) -> None:
        x = np.arange(len(ran), dtype=float)
        self.accuracy.clear()
        top1 = np.array([m.top1 * 100 for m in ran])
        top5 = np.array([m.top5 * 100 for m in ran])
        self.accuracy.addItem(pg.BarGraphItem(x=x - 0.2, height=top1, width=0.38, **self._bars(ran, COLOURS[0])))
        self.accuracy.addItem(pg.BarGraphItem(x=x + 0.2, height=top5, width=0.38, **self._bars(ran, COLOURS[2])))
        for offset, values, cis in ((-0.2, top1, [m.top1_ci for m in ran]), (0.2, top5, [m.top5_ci for m in ran])):
            low = values - np.array([c[0] * 100 for c in cis])
            high = np.array([c[1] * 100 for c in cis]) - values
            self.accuracy.addItem(pg.ErrorBarItem(x=x + offset, y=values, top=high, bottom=low, beam=0.15,
                                                  pen=pg.mkPen("k", width=1.5)))
        self.accuracy.setYRange(0, 105)
        self._ticks(self.accuracy, [m.name for m in ran])

    def _draw_throughput(self, ran) -> None:
        timed = self._timed  # a partial result has no throughput to draw
        self.throughput.clear()
        self.throughput.addItem(pg.BarGraphItem(x=np.arange(len(timed), dtype=float),
                                                height=[m.throughput_ips for m in timed], width=0.6,
                                                brushes=[COLOURS[i % len(COLOURS)] for i in range(len(timed))]))
        self._ticks(self.throughput, [m.name for m in timed])

    def _draw_latency(self, ran) -> None:
        """The dots in one item per colour and each percentile's lines in one item: pyqtgraph's cost is
        per item and per brush (four items per result took 200 ms for 40 results)."""
        ran = self._timed  # the dots are those of the results with speed figures
        self.latency.clear()
        if not ran:
            return
        rng = np.random.default_rng(0)
        jitters = [i + rng.uniform(-0.15, 0.15, len(values)) for i, values in enumerate(self._points)]
        for colour in range(min(len(ran), len(COLOURS))):
            mine = range(colour, len(ran), len(COLOURS))
            self.latency.addItem(pg.ScatterPlotItem(np.concatenate([jitters[i] for i in mine]),
                                                    np.concatenate([self._points[i] for i in mine]), size=6,
                                                    brush=COLOURS[colour], pen=None))
        ends = np.repeat(np.arange(len(ran), dtype=float), 2) + np.tile([-0.3, 0.3], len(ran))
        for key, width in (("p50", 3), ("p90", 1.5), ("p99", 1)):
            heights = np.repeat([m.latency_ms[key] for m in ran], 2).astype(float)
            self.latency.addItem(pg.PlotCurveItem(ends, heights, connect="pairs", pen=pg.mkPen("k", width=width)))
        self._ticks(self.latency, [m.name for m in ran])

    def _draw_scatter(self, ran) -> None:
        ran = self._timed
        self.scatter.clear()
        if not ran:
            return
        x = np.array([m.latency_ms["p50"] for m in ran], dtype=float)
        y = np.array([m.top1 * 100 for m in ran], dtype=float)
        for colour in range(min(len(ran), len(COLOURS))):  # one item per colour, as for the latencies
            self.scatter.addItem(pg.ScatterPlotItem(x[colour::len(COLOURS)], y[colour::len(COLOURS)], size=12,
                                                    brush=COLOURS[colour], pen=pg.mkPen("k")))
        self.scatter.setYRange(0, 105)
        self.scatter.setXRange(0, float(x.max()) * 1.4 + 1)

    def _draw_scatter_labels(self, ran) -> None:
        """The names beside the points, a step of their own (text items are pyqtgraph's slowest)."""
        ran = self._timed
        for i, (m, name) in enumerate(zip(ran, short_names([m.name for m in ran]), strict=True)):
            label = pg.TextItem(name, color="k", anchor=(-0.1, 0.5 + 1.2 * (i % 3 - 1)))
            label.setPos(m.latency_ms["p50"], m.top1 * 100)
            self.scatter.addItem(label)

    def _draw_memory(self, ran) -> None:
        x = np.arange(len(ran), dtype=float)
        self.memory.clear()
        self.memory.addItem(pg.BarGraphItem(x=x - 0.2, height=[m.peak_rss_mb for m in ran], width=0.38,
                                            **self._bars(ran, COLOURS[3])))
        self.memory.addItem(pg.BarGraphItem(x=x + 0.2, height=[m.param_mb for m in ran], width=0.38,
                                            **self._bars(ran, COLOURS[4])))
        self._ticks(self.memory, [m.name for m in ran])


class ImageDetail(QWidget):
    """The clicked image and every model's top-5."""

    PLACEHOLDER = "Click a row to see the image and every model's top-5."

    def __init__(self, parent=None):
        super().__init__(parent)
        self.picture = QLabel(self.PLACEHOLDER)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(240, 200)
        self.caption = QLabel("")  # rich text: the file name in it is escaped
        self.caption.setWordWrap(True)
        self.tables = QWidget(self)
        self.tables_layout = QVBoxLayout(self.tables)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.tables)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picture)
        layout.addWidget(self.caption)
        layout.addWidget(scroll, 1)
        self.shown: dict[str, list] = {}
        self.maps: dict[str, QLabel] = {}

    def clear(self) -> None:
        """Back to the placeholder: the row shown belongs to results no longer shown."""
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
            picture.setPixmap(QPixmap.fromImage(outcome.overlay_thumbnail))
            picture.setToolTip(f"Grad-CAM of {outcome.class_name}, this model's top-1")

    def show_row(self, row, image: QImage | None) -> None:
        from cnnviewer.core.inference import Prediction

        names = _categories()
        if image is not None:
            self.picture.setPixmap(QPixmap.fromImage(image).scaled(
                QSize(360, 260), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))
        else:
            self.picture.setText("(the image cannot be shown)")
        self.caption.setText(f"<b>{escape(os.path.basename(row.file))}</b> · true class {row.truth} "
                             f"{escape(names[row.truth])}")
        self._remove_tables()
        mistake = self.is_mistake(row)
        for model, indices in row.top5.items():
            predictions = [Prediction(i, names[i], p) for i, p in zip(indices, row.probabilities[model], strict=True)]
            box = QGroupBox(f"{model} {'✓' if indices[0] == row.truth else '✗'}", self.tables)
            table_model = PredictionsModel(box)
            table_model.set_predictions(predictions)
            table = make_predictions_table(table_model, box)
            table.setMinimumHeight(175)
            inner = QVBoxLayout(box)
            if mistake:
                picture = QLabel("Grad-CAM…", box)
                make_plain(picture)  # may show an error sentence naming the file
                picture.setWordWrap(True)
                picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
                inner.addWidget(picture)
                self.maps[model] = picture
            inner.addWidget(table)
            self.tables_layout.addWidget(box)
            box.show()  # added to a visible parent: show now, not on the next event loop pass
            self.shown[model] = predictions


class Dashboard(QTabWidget):
    """Everything a report holds, in three tabs; ``show_report`` can be called again as results grow."""

    thumbnails_wanted = Signal(list)
    row_clicked = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.report = None
        self.charts = Charts(self)
        self.summary_model = SummaryModel(self)
        self.summary = QTableView(self)
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
        # Fixed widths: ResizeToContents would ask every row for its size at each update (10,000 rows).
        self.images.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.images.horizontalHeader().setDefaultSectionSize(210)
        # The current row, not a click: Up/Down, Page Up/Down and Home/End move the detail along too.
        self.images.selectionModel().currentRowChanged.connect(self._on_image_clicked)
        self.filter_combo = QComboBox(self)
        self.filter_combo.addItems(ImagesFilter.MODES)
        self.filter_combo.currentTextChanged.connect(self.images_filter.set_mode)
        self.count_label = QLabel("")
        self.detail = ImageDetail(self)
        images_page = QWidget(self)
        left = QWidget(images_page)
        left_layout = QVBoxLayout(left)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show"))
        bar.addWidget(self.filter_combo)
        bar.addStretch(1)
        bar.addWidget(self.count_label)
        left_layout.addLayout(bar)
        left_layout.addWidget(self.images, 1)
        page_split = QSplitter(images_page)
        page_split.addWidget(left)
        page_split.addWidget(self.detail)
        page_split.setSizes([760, 420])
        QVBoxLayout(images_page).addWidget(page_split)
        self.addTab(images_page, "Images")
        self.images_filter.layoutChanged.connect(self._update_count)
        self.images_filter.rowsInserted.connect(self._update_count)
        self.images_filter.modelReset.connect(self._update_count)
        self.filter_combo.currentTextChanged.connect(lambda _: self._update_count())

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

    def clear(self) -> None:
        """Show nothing: another folder was chosen, or a run starts (earlier results must not linger)."""
        from cnnviewer.core.benchmark import BenchmarkReport

        self.report = None
        empty = BenchmarkReport(root="", config={}, environment={})
        self.charts.show_report(empty)
        self.summary_model.set_report(empty)
        self.images_model.set_report(empty)
        self.conclusions.setText("")
        self.detail.clear()
        self._update_count()

    def _show_images(self, report, data: DashboardData | None = None) -> None:
        self.images_model.set_report(report, data)
        self.images.setColumnWidth(0, 250)
        self._update_count()

    def _update_count(self) -> None:
        self.count_label.setText(f"{self.images_filter.rowCount()} of {self.images_model.rowCount()} images")

    def _on_image_clicked(self, index, _previous=None) -> None:
        if index.isValid():
            self.row_clicked.emit(self.images_filter.mapToSource(index).data(Qt.ItemDataRole.UserRole))
