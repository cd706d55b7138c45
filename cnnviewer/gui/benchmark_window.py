"""Benchmark a folder from the window: choose models, run with progress and Cancel, watch the dashboard."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QMargins, QRect, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QTextLayout, QTextOption
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnnviewer.core.cluster import cluster_available, configured_address
from cnnviewer.core.errors import CnnviewerError
from cnnviewer.core.ways import AUTO, INT8, parse_way, parse_way_choice
from cnnviewer.gui.dashboard import Dashboard, DashboardData, prepare_dashboard
from cnnviewer.gui.main_window import fitted, flag, read_setting, text_of
from cnnviewer.gui.text import escape, make_plain, tooltip
from cnnviewer.workers import jobs
from cnnviewer.workers.benchmark_job import BenchmarkSnapshot, benchmark_job, progress_text

if TYPE_CHECKING:
    from cnnviewer.core.benchmark import BenchmarkReport, Progress
    from cnnviewer.core.cluster import ClusterOptions
    from cnnviewer.core.datasets import LabelledSet
    from cnnviewer.core.report import RunFolder
    from cnnviewer.core.ways import AutoWay, RunAs
    from cnnviewer.workers.runner import TaskRunner

OWNER = "benchmark"  # this window's namespace in the task runner: its requests never cancel another's
# The window's choices for clusters, in the main window's settings file beside its other choices.
CLUSTER_ADDRESS_KEY = "benchmark/clusterAddress"
RUN_ON_CLUSTER_KEY = "benchmark/runOnCluster"


def seconds_left(models: int, number: int, model_fraction: float, elapsed: float, turn_elapsed: float,
                 images_s: float | None = None) -> float | None:
    """Time left in a run of ``models`` turns (load, images, latency samples), now in turn ``number`` with
    ``model_fraction`` of its images done, ``elapsed`` seconds since the first turn began, ``turn_elapsed``
    since this one did, and ``images_s`` the seconds all its images would take at the rate of those timed
    so far (None until enough are); None before anything says how fast the run goes.

    Each turn to come is taken to last as long as the finished ones did on average (before one has
    finished: as long as the current one's images so far say), and the current one at least that long,
    or longer when its own rate says its images still need more. So the figure falls as time passes, and
    rises only when a model turns out slower than those before it, not each time a model loads.
    """
    finished = number - 1
    if finished > 0:
        per_turn = (elapsed - turn_elapsed) / finished
    elif model_fraction >= 0.02:
        per_turn = turn_elapsed / model_fraction
    else:
        return None
    this_turn = max(0.0, per_turn - turn_elapsed)
    if images_s is not None:
        this_turn = max(this_turn, images_s * (1 - model_fraction))
    return this_turn + per_turn * max(0, models - number)


class StatusLabel(QLabel):
    """Plain text in up to ``lines`` lines of the width it gets, broken between words (inside a word too long for
    a line, such as a path), and always that high, so a longer or shorter text moves nothing; a text that needs more lines is cut with
    "…" in its middle (a sentence ending in a folder keeps the folder's own name), the whole of it in the
    tooltip. ``text()`` is the whole text, ``shown_text()`` what is drawn (its lines joined by newlines)."""

    def __init__(self, lines: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)  # errors name files and folders
        self.setWordWrap(False)  # broken here: QLabel's own wrapping leaves a long path sticking out
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        # The panel's width sets the label's, never the other way round.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.lines = lines
        self._full = ""
        self._fit_height()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        self._full = text
        self._break()

    def text(self) -> str:
        return self._full

    def shown_text(self) -> str:
        return super().text()

    def _fit_height(self) -> None:
        margins = self.contentsMargins()
        self.setFixedHeight(self.lines * self.fontMetrics().lineSpacing() + margins.top() + margins.bottom())

    def _broken(self, text: str, width: int) -> list[str]:
        """``text`` in lines of at most ``width`` px: between words where it can, inside a long word where not."""
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        lines: list[str] = []
        for paragraph in text.split("\n"):
            layout = QTextLayout(paragraph, self.font())
            layout.setTextOption(option)
            layout.beginLayout()
            while (line := layout.createLine()).isValid():
                line.setLineWidth(width)
                lines.append(paragraph[line.textStart(): line.textStart() + line.textLength()].rstrip())
            layout.endLayout()
        return lines

    def _break(self) -> None:
        width = max(1, self.contentsRect().width())
        full = self._full
        lines = self._broken(full, width)
        if len(lines) > self.lines:  # the most of its two ends that fits, "…" between them
            low, high = 0, len(full)
            while low < high:
                kept = (low + high + 1) // 2
                cut = full[: (kept + 1) // 2] + "…" + full[len(full) - kept // 2:]
                if len(self._broken(cut, width)) <= self.lines:
                    low = kept
                else:
                    high = kept - 1
            lines = self._broken(full[: (low + 1) // 2] + "…" + full[len(full) - low // 2:], width)
        shown = "\n".join(lines)
        self.setToolTip(tooltip(full) if "".join(shown.split()) != "".join(full.split()) else "")
        super().setText(shown)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._break()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_height()
            self._break()


def default_out_dir(folder: str) -> str:
    """A new folder for one run under ~/cnnviewer-benchmarks, named after the set and the time
    (with -2, -3... when taken, as the command line names its own)."""
    base = Path.home() / "cnnviewer-benchmarks" / f"{Path(folder).name or 'folder'}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    name, number = base, 1
    while os.path.lexists(name):
        number += 1
        name = base.with_name(f"{base.name}-{number}")
    return str(name)


def open_report_job(token, report, path: str) -> DashboardData:
    """Read, check and prepare a report.json in a worker: a large one takes seconds, and the window
    goes on answering meanwhile (load_json parses in short steps, so it never holds the others up)."""
    from cnnviewer.core.report import load_json

    return prepare_dashboard(load_json(path))


def kept_sentence(report: BenchmarkReport, out_dir: str) -> str:
    """What a cancelled run left behind, in one sentence short enough to be read whole in the panel: how many
    models finished, which was cut short, and the folder last (each model's count of images is in the table)."""
    finished = sum(1 for m in report.models if m.complete)
    cut = [m.name for m in report.models if m.partial]
    parts = [f"{finished} model{'s' if finished != 1 else ''} finished"] if finished else []
    if cut:
        parts.append(f"{cut[0] if len(cut) == 1 else f'{len(cut)} models'} cut short")
    return f"Cancelled: {', '.join(parts) or 'nothing classified yet'}; report in {out_dir}"


def cluster_workers(report: BenchmarkReport) -> int:
    """How many worker processes a cluster run's report names so far (0 before any shard finished)."""
    cluster = report.environment.get("cluster") if isinstance(report.environment, dict) else None
    workers = cluster.get("workers", []) if isinstance(cluster, dict) else []
    return len({(w.get("host"), w.get("pid")) for w in workers if isinstance(w, dict)})


class BenchmarkWindow(QMainWindow):
    """Runs on the task runner's benchmark lane; partial results appear as each model finishes.

    Every run ends in ``run_ended`` ("returned", "errored" or "cancelled"), and with it Start comes back.
    """

    run_ended = Signal(str)
    image_opened = Signal(str)  # an Images row double-clicked (or Enter): the file, for the main window

    def __init__(self, main_window, runner: TaskRunner):
        super().__init__(main_window)
        self.setWindowFlag(Qt.WindowType.Window)
        self.main = main_window
        self.runner = runner
        self.setWindowTitle("Benchmark — cnnviewer")
        self.resize(*self.PREFERRED)
        self._fitted = False  # sized to its screen when first shown
        self.folder: str | None = None
        self.dataset: LabelledSet | None = None  # the folder as read when chosen; a run uses this very list
        self.out_dir: str | None = None
        self._out_dir_before: str | None = None  # what Open report folder showed before the run in flight
        self.request_id: int | None = None  # the run in flight, until one of its three endings arrives
        self.report: BenchmarkReport | None = None
        self._run_folder: RunFolder | None = None
        self._started = 0.0
        self._cluster: ClusterOptions | None = None  # the run in flight goes to this cluster; None: here
        self._cluster_workers = 0
        self._refused = False  # what is said is Start's refusal of the choices shown: it goes when they change

        self.folder_label = QLabel("No folder chosen.")  # rich text: the folder's name in it is escaped
        self.folder_label.setWordWrap(True)
        choose = QPushButton("Choose folder…")
        choose.clicked.connect(self.choose_folder)
        self.labels_note = QLabel("")  # rich text: the labels and sentences in it are escaped
        self.labels_note.setWordWrap(True)
        self.models = QListWidget(self)
        self.models.itemChanged.connect(self._forget_refusal)  # a model ticked or unticked
        self.batch_size = QSpinBox(self)
        self.batch_size.setRange(1, 256)
        self.batch_size.setValue(16)
        self.limit = QSpinBox(self)
        self.limit.setRange(0, 1_000_000)
        self.limit.setSpecialValueText("all")
        self.batch_size.valueChanged.connect(self._forget_refusal)
        self.limit.valueChanged.connect(self._forget_refusal)  # fewer images: int8's sample may fit, or not
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.setEnabled(False)  # until a folder with labelled images is read
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        open_report = QPushButton("Open report.json…")
        open_report.clicked.connect(self.open_report_dialog)
        self.open_folder_button = QPushButton("Open report folder")
        self.open_folder_button.setToolTip("Show the run's folder (report.json, report.md, results.csv, charts) "
                                           "in the file manager")
        self.open_folder_button.setEnabled(False)  # until a run made its folder, or a report was opened
        self.open_folder_button.clicked.connect(self.open_report_folder)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        # The run's sentence, read whole at 1280 px; an error takes its place (the progress line keeps the same
        # text). Both are STATUS_LINES high whatever they say: a red line that grew made the controls jump.
        self.progress_text = StatusLabel(self.STATUS_LINES, self)
        self.error_note = StatusLabel(self.STATUS_LINES, self)
        self.error_note.setStyleSheet("color: #b00020;")
        self.error_note.hide()
        self._turn: tuple[int, int] = (0, 0)  # (model number, models) of the run in flight, from its progress
        self._turn_started = self._first_turn_started = 0.0
        self._first_batch: tuple[float, float] | None = None  # (time, model fraction) of this turn's first batch

        setup = QWidget(self)
        form = QFormLayout()
        form.addRow("Batch size", self.batch_size)
        form.addRow("Images", self.limit)
        self.device_note = QLabel("")
        make_plain(self.device_note)
        self.device_note.setToolTip("The device comes from the main window's toolbar")
        form.addRow("Device", self.device_note)
        self.ways = QWidget(self)
        self._ways_layout = QGridLayout(self.ways)  # two boxes a row: five ways do not fit the panel's width
        self._ways_layout.setContentsMargins(0, 0, 0, 0)
        self.ways.setToolTip("Tick more than one to compare them on the same images: the report gives each "
                             "way's top-1 change and speed against fp32. auto: each model's fastest way here whose "
                             "top-5 equals fp32's. int8 calibrates on a sample of the folder (10 %, 16 to 64 "
                             "photos), which then no way scores")
        form.addRow("Run as", self.ways)
        self.cluster_panel = self._make_cluster_panel()
        if self._cluster_offered:
            form.addRow("Cluster", self.cluster_panel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(setup)
        layout.addWidget(choose)
        layout.addWidget(self.folder_label)
        layout.addWidget(self.labels_note)
        layout.addWidget(QLabel("Models (weights on this machine)"))
        layout.addWidget(self.models, 1)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_text)
        layout.addWidget(self.error_note)
        reports = QVBoxLayout()  # one above the other: side by side they made the panel 280 px wide
        reports.addWidget(open_report)
        reports.addWidget(self.open_folder_button)
        layout.addLayout(reports)

        self.dashboard = Dashboard(self)
        self.dashboard.thumbnails_wanted.connect(self._load_thumbnails)
        self.dashboard.row_clicked.connect(self._show_row)
        self.dashboard.image_opened.connect(self.image_opened)
        # Scrolled when the screen is short: the models list shrinks first, then the panel scrolls, so the
        # window fits a 1280 x 800 screen with the progress, the run's sentence and its buttons in view.
        self.models.setMinimumHeight(3 * self.models.fontMetrics().lineSpacing() + 8)
        setup_scroll = QScrollArea(self)
        setup_scroll.setWidget(setup)
        setup_scroll.setWidgetResizable(True)
        setup_scroll.setFrameShape(QFrame.Shape.NoFrame)
        setup_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        setup_scroll.setMinimumWidth(setup.minimumSizeHint().width() + setup_scroll.verticalScrollBar()
                                     .sizeHint().width())
        split = QSplitter(self)
        split.addWidget(setup_scroll)
        split.addWidget(self.dashboard)
        split.setSizes([250, 1030])
        split.setStretchFactor(1, 1)  # a wider window widens the dashboard, not the set-up panel
        self.setCentralWidget(split)
        self.refresh_choices()

    # -- set-up -------------------------------------------------------------------------------

    def _make_cluster_panel(self) -> QWidget:
        """Run on cluster and the address it uses: shown only where Ray is installed (the bundle has none)."""
        panel = QWidget(self)
        self.cluster_box = QCheckBox("Run on cluster", panel)
        self.cluster_box.clicked.connect(self._on_cluster_clicked)  # the user's tick only, not a disabled box's
        self.cluster_box.toggled.connect(self._forget_refusal)  # also off with the address it needs
        self.cluster_address = QLineEdit(panel)
        self.cluster_address.setClearButtonEnabled(True)
        self.cluster_address.setPlaceholderText("host:port")
        self.cluster_address.setToolTip("The Ray cluster's address (host:port of its head, as `ray start --head` "
                                        "prints it); empty: RAY_ADDRESS when it is set")
        # Says which address a run uses, then where the run is; always CLUSTER_NOTE_LINES high, so typing an
        # address (3 lines of "No address…" become 1 of "At …") moves neither the ways nor Start under the mouse.
        self.cluster_note = StatusLabel(self.CLUSTER_NOTE_LINES, panel)
        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.cluster_box)
        column.addWidget(self.cluster_address)
        column.addWidget(self.cluster_note)
        settings = self.main.settings
        self.cluster_address.setText(read_setting(settings, CLUSTER_ADDRESS_KEY, "", text_of(1000)))
        self._wants_cluster = read_setting(settings, RUN_ON_CLUSTER_KEY, False, flag)
        self.cluster_address.textChanged.connect(self._on_cluster_address_changed)
        self.cluster_address.editingFinished.connect(settings.sync)
        self._cluster_offered = cluster_available()  # finds ray without importing it
        panel.setVisible(self._cluster_offered)
        self._update_cluster_box()
        return panel

    def cluster_address_used(self) -> str | None:
        """The cluster a run with Run on cluster ticked goes to: the address entered here, else RAY_ADDRESS;
        None when neither is set."""
        return configured_address(self.cluster_address.text().strip() or None)

    def runs_on_cluster(self) -> bool:
        """Start sends the run to the cluster: Ray is installed, an address is set and the box is ticked."""
        return self._cluster_offered and self.cluster_box.isEnabled() and self.cluster_box.isChecked()

    def _forget_refusal(self) -> None:
        """A choice changed after Start refused the last ones: the refusal no longer applies, so it goes (a run's
        own error stays: it says how that run ended and where its results are)."""
        if self._refused and not self.is_running():
            self._say("")

    def _on_cluster_clicked(self, checked: bool) -> None:
        self._forget_refusal()
        self._wants_cluster = checked
        self.main.settings.setValue(RUN_ON_CLUSTER_KEY, checked)
        self.main.settings.sync()
        self._update_cluster_box()

    def _on_cluster_address_changed(self, text: str) -> None:
        self._forget_refusal()  # a refusal names the address; with none, Run on cluster goes off too
        self.main.settings.setValue(CLUSTER_ADDRESS_KEY, text.strip())
        self._update_cluster_box()

    def _update_cluster_box(self) -> None:
        """Enabled with an address to use; ticked as the user last left it (a box disabled for want of an
        address shows unticked, and the tick comes back with the address)."""
        address = self.cluster_address_used()
        typed = bool(self.cluster_address.text().strip())
        self.cluster_box.setEnabled(address is not None and not self.is_running())
        self.cluster_address.setEnabled(not self.is_running())  # the run in flight was set up from it
        self.cluster_box.setChecked(address is not None and self._wants_cluster)
        if address is None:
            tip = "No cluster address: enter one below, or set RAY_ADDRESS before starting cnnviewer"
            note = "No address: enter the head's, or set RAY_ADDRESS"
        else:
            tip = (f"Send the models and images to the Ray cluster at {address} (accuracy only: speed per "
                   "worker, no timing rounds; int8 runs only here)")
            note = f"At {address}" + ("" if typed else " (RAY_ADDRESS)")
        self.cluster_box.setToolTip(tooltip(tip))
        if not self.is_running():
            self.cluster_note.setText(note)

    def refresh_choices(self) -> None:
        """The models with weights, the device and the ways of running, as the main window offers them now
        (weights may have arrived, or the catalog finished loading, since this window was last shown)."""
        if self.is_running():
            return  # the run in flight was set up from what is shown; it stays as it is
        self._fill_models()
        self._fill_ways()
        self.device_note.setText(self.main.current_device())

    def _fill_models(self) -> None:
        from cnnviewer.gui.compare import default_comparison

        ready = [row for row in self.main.catalog_rows() if row.ready]
        checked = set(self.checked_models()) or set(default_comparison([row.name for row in ready]))
        self.models.clear()
        for row in sorted(ready, key=lambda r: r.name):
            item = QListWidgetItem(f"{row.name} ({row.availability})")
            item.setData(Qt.ItemDataRole.UserRole, row.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if row.name in checked else Qt.CheckState.Unchecked)
            self.models.addItem(item)
        if not {"resnet50", "googlenet", "inception_v3"} <= {row.name for row in ready}:
            self.models.setToolTip("The lab report's ResNet50, GoogLeNet and Inception V3 need their weights "
                                   "(Get weights… in the main window); the embedded models are ticked instead.")

    def _fill_ways(self) -> None:
        """One box per way this machine offers; the ticks kept, or the toolbar's way ticked the first time."""
        offered: list[RunAs | AutoWay] = [AUTO, *(parse_way(str(way)) for way in self.main.ways_offered())]
        boxes = self.ways.findChildren(QCheckBox)
        if [box.text() for box in boxes] == [way.label for way in offered]:
            return
        ticked = {box.text() for box in boxes if box.isChecked()} or {self.main.current_choice().label}
        layout = self._ways_layout
        while layout.count():
            item = layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.setParent(None)  # gone now, not at the next turn: findChildren must not list it
                widget.deleteLater()
        for number, way in enumerate(offered):
            box = QCheckBox(way.label, self.ways)
            box.setChecked(way.label in ticked)
            box.toggled.connect(self._forget_refusal)
            layout.addWidget(box, number // 2, number % 2)

    PREFERRED = (1280, 860)  # the least a first opening asks for: the dashboard's tables and charts uncut
    SHARE = 0.85  # of a bigger screen's free area: at 1920 x 1080 the dashboard gets the room it has
    FRAME = (16, 48)  # px a window manager's frame and title bar may add, before the window has been framed
    STATUS_LINES = 5  # the run's sentence and an error, whole in the panel's 232 px: a path takes two or three
    CLUSTER_NOTE_LINES = 3  # "No address: enter the head's, or set RAY_ADDRESS", the longest, in the field's width

    def fit_to(self, available: QRect) -> None:
        """Size the window to ``available`` (a screen's free area) less its frame: PREFERRED or SHARE of it,
        whichever is more, and no more than it has (1280 x 860 is taller than a 1280 x 800 screen); centred."""
        inner, outer = self.geometry(), self.frameGeometry()
        guess = QMargins(self.FRAME[0] // 2, self.FRAME[1] - self.FRAME[0] // 2, self.FRAME[0] // 2, self.FRAME[0] // 2)
        frame = QMargins(max(inner.left() - outer.left(), guess.left()), max(inner.top() - outer.top(), guess.top()),
                         max(outer.right() - inner.right(), guess.right()),
                         max(outer.bottom() - inner.bottom(), guess.bottom()))
        wanted = QSize(max(self.PREFERRED[0], int(available.width() * self.SHARE)),
                       max(self.PREFERRED[1], int(available.height() * self.SHARE)))
        self.setGeometry(fitted(available, frame, wanted))

    def showEvent(self, event):  # noqa: N802 - Qt override
        if not self._fitted:
            self._fitted = True
            screen = self.main.screen() if self.main is not None else self.screen()
            self.fit_to(screen.availableGeometry())
        super().showEvent(event)
        self.refresh_choices()

    def checked_ways(self) -> list[RunAs | AutoWay]:
        """The ways of running ticked, in the toolbar's order (auto: each model's own fastest way with fp32's
        top-5; int8 calibrates on a sample of the folder that no way then scores)."""
        return [parse_way_choice(box.text()) for box in self.ways.findChildren(QCheckBox) if box.isChecked()]

    def checked_models(self) -> list[str]:
        return [self.models.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.models.count())
                if self.models.item(i).checkState() == Qt.CheckState.Checked]

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Benchmark folder", self.folder or self.main.browser.folder
                                                  or "")
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str) -> bool:
        """Read the labels now, so unmatched ones are listed before anything runs; a run uses this reading."""
        from cnnviewer.core.datasets import load_labelled_folder

        self.folder, self.dataset = folder, None
        if not self.is_running():  # what is shown belongs to another folder (or run): it goes
            self._clear_results()
        try:
            dataset = load_labelled_folder(folder)
        except CnnviewerError as exc:
            self.folder_label.setText(f"<b>{escape(folder)}</b>")
            self.labels_note.setText(escape(exc.for_window()))
            self.labels_note.setStyleSheet("color: #b00020;")
            self.start_button.setEnabled(False)
            return False
        self.dataset = dataset
        self.folder_label.setText(f"<b>{escape(folder)}</b><br>{len(dataset.images)} labelled images "
                                  f"({escape(dataset.layout)})")
        problems = dataset.problems
        self.labels_note.setStyleSheet("color: #8a5a00;" if problems else "")
        self.labels_note.setText("<br>".join(f"⚠ {escape(p)}" for p in problems) if problems
                                 else "Every label matched.")
        self.start_button.setEnabled(bool(dataset.images) and not self.is_running())
        return True

    # -- running ------------------------------------------------------------------------------

    def start(self) -> int | None:
        """Start a run of the ticked models and ways on the folder as it was read; returns the request id."""
        from cnnviewer.core.benchmark import BenchmarkConfig
        from cnnviewer.core.report import prepare_run_folder

        if self.is_running():
            return self.request_id
        if self.dataset is None and self.folder:  # a report was opened since: its folder is read now
            self.set_folder(self.folder)
        models, ways = self.checked_models(), self.checked_ways()
        # Only what is missing is asked for: with a folder chosen, "choose a folder" sent users looking for one.
        needed = [] if self.dataset is not None and self.dataset.images else ["choose a folder of labelled images"]
        ticks = [what for what, have in (("one model", models), ("one way to run", ways)) if not have]
        if ticks:
            needed.append("tick at least " + " and ".join(ticks))
        if needed or self.dataset is None:
            sentence = " and ".join(needed)
            self._refuse(f"{sentence[0].upper()}{sentence[1:]}.")
            return None
        cluster = self._cluster_options()
        if cluster is not None and INT8 in ways:
            self._refuse(f"int8 does not run on the cluster at {cluster.address} (its calibration and quantized "
                         "model stay on this machine); untick int8 or Run on cluster.")
            return None
        out_dir = default_out_dir(self.dataset.root)
        try:
            # int8 calibrates on the main window's calibration folder when one is chosen, else on a sample of
            # this folder (then scored by no way); a folder too small for a sample is refused here, at once.
            calibrate = getattr(self.main, "calibration_folder", "") or None
            config = BenchmarkConfig(models=tuple(models), batch_size=self.batch_size.value(),
                                     limit=self.limit.value() or None, device=self.main.current_device(),
                                     ways=tuple(ways), calibrate_folder=calibrate,
                                     # speed on a cluster is each worker's own, from its shards: no rounds
                                     timing_rounds=0 if cluster is not None else BenchmarkConfig.timing_rounds)
            if INT8 in ways and calibrate is None:
                from cnnviewer.core.calibration import benchmark_calibration

                images = self.dataset.images[: config.limit] if config.limit else self.dataset.images
                benchmark_calibration([INT8], [image.path for image in images], self.dataset.root)
        except CnnviewerError as exc:  # the choices (int8 on too few photos, a batch size): goes when they change
            self._refuse(f"The benchmark did not start: {exc.for_window()}")
            return None
        try:
            run_folder = prepare_run_folder(out_dir)  # a new folder per run: an earlier run is never replaced
        except CnnviewerError as exc:  # the disk, not the choices: it stays until the next Start
            self._say(f"The benchmark did not start: {exc.for_window()}", error=True)
            return None
        self._out_dir_before = self.out_dir
        self.out_dir, self._run_folder = out_dir, run_folder
        self._cluster, self._cluster_workers = cluster, 0
        self._clear_results()
        self._started = time.monotonic()
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self._turn = (0, 0)
        where = f" on the cluster at {cluster.address}" if cluster is not None else ""
        self._say(f"Starting{where}; results go to {out_dir}")
        self.request_id = self.runner.submit(
            OWNER, "run", benchmark_job, self.dataset, config, out_dir, self.runner.pause_for_interactive, cluster,
            lane="benchmark", on_returned=self._on_returned, on_yielded=self._on_yielded,
            on_error=self._on_error, on_cancelled=self._on_cancelled)
        self._update_folder_button()
        self._update_cluster_box()
        self._show_cluster_state()
        return self.request_id

    def _cluster_options(self) -> ClusterOptions | None:
        """The cluster a run started now goes to, or None to run on this machine."""
        if not self.runs_on_cluster():
            return None
        from cnnviewer.core.cluster import ClusterOptions

        return ClusterOptions(address=self.cluster_address_used())

    def _cluster_place(self) -> str:
        """"the cluster at ADDRESS", with its worker processes once a shard has said how many."""
        if self._cluster is None:
            return ""
        workers = self._cluster_workers
        return f"the cluster at {self._cluster.address}" + (f": {workers} worker{'s' if workers != 1 else ''}"
                                                              if workers else "")

    def _show_cluster_state(self) -> None:
        if self._cluster is not None and self.is_running():
            self.cluster_note.setText(f"Running on {self._cluster_place()}")

    def cancel(self) -> bool:
        """Stop the run after its current batch (or before it starts); what it finished is kept."""
        if self.request_id is None or not self.runner.cancel_request(self.request_id):
            return False
        self._say("Cancelling after the current batch; the results so far are kept…")
        self.cancel_button.setEnabled(False)
        return True

    def is_running(self) -> bool:
        """A run was started and none of its endings has arrived yet (queued counts as running)."""
        return self.request_id is not None

    def running_model(self) -> tuple[int, int]:
        """(model number, models) of the run in flight; (0, 0) before its first model starts."""
        return self._turn if self.is_running() else (0, 0)

    def _on_yielded(self, item: BenchmarkSnapshot | Progress) -> None:
        """The job sends two kinds of thing: a copy of the report after each model, and its progress."""
        if isinstance(item, BenchmarkSnapshot):
            self.show_report(item.report)
            if self._cluster is not None:
                self._cluster_workers = max(self._cluster_workers, cluster_workers(item.report))
                self._show_cluster_state()
        else:
            self._on_progress(item)

    RUNNING_AT_MOST = 990  # 99 %: a run is not 100 % done while its last model still measures latency

    def _on_progress(self, p: Progress) -> None:
        self.progress.setValue(min(self.RUNNING_AT_MOST, int(p.fraction * 1000)))
        now = time.monotonic()
        text = progress_text(p)
        number, models = p.model_number, p.models
        model_fraction = min(1.0, max(0.0, p.done / p.total if p.total else 1.0))
        if number != self._turn[0]:
            self._turn_started, self._first_batch = now, None
            if self._turn[0] == 0:
                self._first_turn_started = now  # a run queued behind another starts here, not at Start
        self._turn = (number, models)
        if self._first_batch is None and model_fraction > 0:
            self._first_batch = (now, model_fraction)  # the images' rate is timed from here: loading is not in it
        images_s = None
        if self._first_batch is not None and model_fraction - self._first_batch[1] >= 0.25:
            images_s = (now - self._first_batch[0]) / (model_fraction - self._first_batch[1])
        left = seconds_left(models, number, model_fraction, now - self._first_turn_started, now - self._turn_started,
                            images_s)
        self._say(f"{text} · about {left:.0f} s left" if left is not None and left >= 0.5 else text)

    def _on_returned(self, report: BenchmarkReport) -> None:
        self.show_report(report)
        self.progress.setValue(self.progress.maximum())
        where = ""
        if self._cluster is not None:
            self._cluster_workers = max(self._cluster_workers, cluster_workers(report))
            where = f" on {self._cluster_place()}"
        self._end("returned", f"Done{where} in {time.monotonic() - self._started:.0f} s; report in {self.out_dir}")

    def _on_error(self, exc: Exception) -> None:
        text = exc.for_window() if isinstance(exc, CnnviewerError) else f"{type(exc).__name__}: {exc}"
        kept = self.out_dir and os.path.exists(os.path.join(self.out_dir, "report.json"))
        # Said once: core's own sentence names the cluster's address when it is about the connection.
        address = self._cluster.address if self._cluster is not None else None
        where = f" on the cluster at {address}" if address and address not in text else ""
        self._end("errored", f"The benchmark{where} stopped: {text}" + (f" What had finished is in {self.out_dir}"
                                                                        if kept else ""), error=True)

    def _on_cancelled(self, kept: object = None) -> None:
        """Cancelled while running or still queued: Start comes back, and the sentence says what was kept.

        ``kept`` is the session's final report (cancelled: true, as written to report.json), or None
        when the run never started."""
        from cnnviewer.core import benchmark  # imported by the job already: costs nothing here

        out_dir = self.out_dir or ""
        if isinstance(kept, benchmark.BenchmarkReport):
            self.show_report(kept)
            self._end("cancelled", kept_sentence(kept, out_dir))
        elif out_dir and os.path.exists(os.path.join(out_dir, "report.json")):  # it stopped on an error
            self._end("cancelled", f"Cancelled; what the run finished is in {out_dir}")
        else:  # it never started: nothing was written, so the folder made for it goes too (in _end)
            self._end("cancelled", "Cancelled before it started; nothing was run and no folder was kept.")

    def _drop_empty_run_folder(self) -> None:
        """A run that wrote nothing (cancelled before it started, a cluster that could not be reached) leaves no
        empty folder behind, and Open report folder shows again what it showed before the run."""
        folder = self._run_folder
        if folder is None:
            return
        # rmdir only, of the folders made for the run: one that holds anything (or cannot be read) stays, and so
        # does the button's folder. Nothing here may raise: the rest of _end gives Start back.
        folder.remove_if_empty()
        if not os.path.exists(folder.path):  # os.path: never raises, unlike Path.exists on an unreadable parent
            self.out_dir = self._out_dir_before

    def _end(self, outcome: str, text: str, error: bool = False) -> None:
        self._drop_empty_run_folder()
        self.request_id, self._run_folder, self._cluster = None, None, None
        self._update_cluster_box()
        self._say(text, error)
        self.start_button.setEnabled(self.dataset is not None and bool(self.dataset.images))
        self.cancel_button.setEnabled(False)
        self._update_folder_button()
        self.run_ended.emit(outcome)

    def _refuse(self, text: str) -> None:
        """Start's red line about the choices shown: it goes as soon as one of them changes."""
        self._say(text, error=True)
        self._refused = True

    def _say(self, text: str, error: bool = False) -> None:
        self._refused = False
        self.progress_text.setStyleSheet("color: #b00020;" if error else "")
        self.progress_text.setText(text)
        self.error_note.setText(text if error else "")
        self.error_note.setVisible(error)
        self.progress_text.setVisible(not error)

    def show_report(self, report, data: DashboardData | None = None) -> None:
        self.report = report
        self.dashboard.show_report(report, data)

    def _clear_results(self) -> None:
        """No earlier report, image detail, progress or sentence left on screen."""
        self.report = None
        self.dashboard.clear()
        self.progress.setValue(0)
        self._say("")
        self._update_folder_button()

    def report_folder(self) -> str | None:
        """The folder of the run or report shown, once it exists on disk."""
        return self.out_dir if self.out_dir and os.path.isdir(self.out_dir) else None

    def report_folder_url(self) -> QUrl | None:
        """What Open report folder hands to the desktop: the report folder as a file URL."""
        folder = self.report_folder()
        return QUrl.fromLocalFile(folder) if folder is not None else None

    def _update_folder_button(self) -> None:
        folder = self.report_folder()
        self.open_folder_button.setEnabled(folder is not None)
        self.open_folder_button.setToolTip(tooltip(f"Show {folder} in the file manager") if folder
                                           else "No report folder yet: start a run or open a report.json")

    def open_report_folder(self) -> bool:
        """Show the report folder in the desktop's file manager; False when there is none (yet), or when no
        file manager could be opened (then the window says so, naming the folder to open by hand)."""
        url = self.report_folder_url()
        if url is None:
            return False
        if QDesktopServices.openUrl(url):
            return True
        self._say(f"No file manager could be opened to show {url.toLocalFile()}; open that folder yourself.",
                  error=True)
        return False

    # -- reports and images -------------------------------------------------------------------

    def open_report_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open report", self.out_dir or "", "report.json (*.json)")
        if path:
            self.open_report(path)

    def open_report(self, path: str) -> int:
        """Open a report.json: read and checked in a worker, then shown; a bad one is one sentence
        here and the dashboard keeps what it showed. Returns the request id."""
        self._say(f"Opening {path}…")
        return self.runner.submit(OWNER, "open-report", open_report_job, path, lane="io",
                                  on_returned=lambda data: self._on_report_opened(path, data),
                                  on_error=self._on_report_error)

    def _on_report_opened(self, path: str, data: DashboardData) -> None:
        report = data.report
        if not self.is_running():  # a run in flight keeps its folder and its Start state
            self.out_dir = os.path.dirname(path)
            self.folder, self.dataset = report.root, None  # read again if Start is pressed
            self.start_button.setEnabled(True)
        self.folder_label.setText(f"<b>{escape(report.root)}</b><br>report: {escape(path)}")
        self.labels_note.setText("")
        if not self.is_running():
            self.progress.setValue(0)
        self._say(f"Opened {path}")
        self.dashboard.detail.clear()  # the row shown was the previous report's
        self.show_report(report, data)
        self._update_folder_button()

    def _on_report_error(self, exc: Exception) -> None:
        self._say(exc.for_window() if isinstance(exc, CnnviewerError) else f"{type(exc).__name__}: {exc}",
                  error=True)

    def _load_thumbnails(self, paths: list[str]) -> None:
        self.runner.submit(OWNER, "thumbnails", jobs.thumbnails_job, paths, 64, lane="io",
                           on_yielded=lambda item: self.dashboard.set_thumbnail(*item), exclusive=False)

    def _show_row(self, row) -> None:
        """The image and every model's top-5; for a mistake, where each model looked too."""
        detail = self.dashboard.detail

        def shown(image) -> None:
            detail.show_row(row, image)
            # Each result's map by the model run the way that result was: one request per way. The user
            # asked for them, so they go on the interactive lane, which a running benchmark makes room for.
            for way, keys in self._keys_by_way(list(detail.maps)).items():
                self.runner.submit(OWNER, f"maps {way.label}", jobs.explain_many_job, self.runner.model_cache,
                                   self.runner.explanations, row.file, keys, self.main.current_device(), 240, way,
                                   lane="interactive", on_yielded=lambda item: detail.set_map(*item))

        self.runner.submit(OWNER, "detail", jobs.preview_job, row.file, lane="io",
                           on_returned=lambda data: shown(data.image), on_error=lambda exc: shown(None))

    def _keys_by_way(self, keys: list[str]) -> dict[RunAs, list[str]]:
        """Result keys grouped by the way each result ran (a report from elsewhere may name an old one:
        then the toolbar's way)."""
        groups: dict[RunAs, list[str]] = {}
        for key in keys:
            result = self.report.result(key) if self.report is not None else None
            try:
                way = parse_way(result.run_as) if result is not None else self.main.current_way()
            except CnnviewerError:
                way = self.main.current_way()
            groups.setdefault(way, []).append(key)
        return groups

    def closeEvent(self, event):  # noqa: N802 - Qt override
        self.cancel()  # closing the window stops its run; what finished is kept on disk
        super().closeEvent(event)
