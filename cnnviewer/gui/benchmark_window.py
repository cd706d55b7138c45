"""Benchmark a folder from the window: choose models, run with progress and Cancel, watch the dashboard."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnnviewer.core.errors import CnnviewerError
from cnnviewer.gui.dashboard import Dashboard, DashboardData, prepare_dashboard
from cnnviewer.gui.text import escape, make_plain
from cnnviewer.workers import jobs


def default_out_dir(folder: str) -> str:
    base = Path.home() / "cnnviewer-benchmarks"
    return str(base / f"{Path(folder).name or 'folder'}-{dt.datetime.now():%Y%m%d-%H%M%S}")


def open_report_job(token, report, path: str) -> DashboardData:
    """Read, check and prepare a report.json in a worker: a large one takes seconds, and the window
    goes on answering meanwhile (load_json parses in short steps, so it never holds the others up)."""
    from cnnviewer.core.report import load_json

    return prepare_dashboard(load_json(path))


class BenchmarkWindow(QMainWindow):
    """Runs in the main window's worker pools; partial results appear as each model finishes."""

    def __init__(self, main_window):
        super().__init__(main_window)
        self.setWindowFlag(Qt.WindowType.Window)
        self.main = main_window
        self.setWindowTitle("Benchmark — cnnviewer")
        self.resize(1280, 860)
        self.folder: str | None = None
        self.out_dir: str | None = None
        self.request_id: int | None = None
        self.report = None
        self._started = 0.0

        self.folder_label = QLabel("No folder chosen.")  # rich text: the folder's name in it is escaped
        self.folder_label.setWordWrap(True)
        choose = QPushButton("Choose folder…")
        choose.clicked.connect(self.choose_folder)
        self.labels_note = QLabel("")  # rich text: the labels and sentences in it are escaped
        self.labels_note.setWordWrap(True)
        self.models = QListWidget(self)
        self.batch_size = QSpinBox(self)
        self.batch_size.setRange(1, 256)
        self.batch_size.setValue(16)
        self.limit = QSpinBox(self)
        self.limit.setRange(0, 1_000_000)
        self.limit.setSpecialValueText("all")
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        open_report = QPushButton("Open report.json…")
        open_report.clicked.connect(self.open_report_dialog)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress_text = QLabel("")
        self.progress_text.setWordWrap(True)
        make_plain(self.progress_text)  # errors name files and folders

        setup = QWidget(self)
        form = QFormLayout()
        form.addRow("Batch size", self.batch_size)
        form.addRow("Images", self.limit)
        self.device_note = QLabel("")
        self.device_note.setToolTip("The device comes from the main window's toolbar")
        form.addRow("Device", self.device_note)
        self.ways = QWidget(self)
        self.ways.setLayout(QHBoxLayout())
        self.ways.layout().setContentsMargins(0, 0, 0, 0)
        self.ways.setToolTip("Tick more than one to compare them on the same images: the report gives each "
                             "way's top-1 change and speed against fp32")
        form.addRow("Run as", self.ways)
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
        layout.addWidget(open_report)

        self.dashboard = Dashboard(self)
        self.dashboard.thumbnails_wanted.connect(self._load_thumbnails)
        self.dashboard.row_clicked.connect(self._show_row)
        split = QSplitter(self)
        split.addWidget(setup)
        split.addWidget(self.dashboard)
        split.setSizes([280, 1000])
        self.setCentralWidget(split)
        self._fill_models()

    # -- set-up -------------------------------------------------------------------------------

    def _fill_models(self) -> None:
        from cnnviewer.gui.compare import default_comparison

        ready = [row for row in self.main._catalog.values() if row.ready]
        checked = set(default_comparison([row.name for row in ready]))
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

    def showEvent(self, event):  # noqa: N802 - Qt override
        super().showEvent(event)
        self.device_note.setText(self.main.device_combo.currentText())
        if not self.ways.findChildren(QCheckBox):  # the ways this machine offers; the toolbar's one ticked
            combo = self.main.run_as_combo
            for index in range(combo.count()):
                box = QCheckBox(combo.itemText(index), self.ways)
                box.setChecked(index == combo.currentIndex())
                self.ways.layout().addWidget(box)
            self.ways.layout().addStretch(1)

    def checked_ways(self) -> list[str]:
        """The ways of running ticked, in the toolbar's order (the toolbar's own when none is offered yet)."""
        boxes = self.ways.findChildren(QCheckBox)
        if not boxes:
            return [self.main.run_as_combo.currentText() or "fp32"]
        return [box.text() for box in boxes if box.isChecked()]

    def checked_models(self) -> list[str]:
        return [self.models.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.models.count())
                if self.models.item(i).checkState() == Qt.CheckState.Checked]

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Benchmark folder", self.folder or self.main.browser.folder
                                                  or "")
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str) -> bool:
        """Read the labels now, so unmatched ones are listed before anything runs."""
        from cnnviewer.core.datasets import load_labelled_folder

        self.folder = folder
        try:
            dataset = load_labelled_folder(folder)
        except CnnviewerError as exc:
            self.folder_label.setText(f"<b>{escape(folder)}</b>")
            self.labels_note.setText(escape(exc))
            self.labels_note.setStyleSheet("color: #b00020;")
            self.start_button.setEnabled(False)
            return False
        self.folder_label.setText(f"<b>{escape(folder)}</b><br>{len(dataset.images)} labelled images "
                                  f"({escape(dataset.layout)})")
        problems = dataset.problems
        self.labels_note.setStyleSheet("color: #8a5a00;" if problems else "")
        self.labels_note.setText("<br>".join(f"⚠ {escape(p)}" for p in problems) if problems
                                 else "Every label matched.")
        self.start_button.setEnabled(bool(dataset.images))
        return True

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        models, ways = self.checked_models(), self.checked_ways()
        if not self.folder or not models or not ways:
            self.progress_text.setText("Choose a folder and tick at least one model and one way to run.")
            return
        self.out_dir = default_out_dir(self.folder)
        self.report = None
        self._started = time.monotonic()
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.progress_text.setText(f"Starting; results go to {self.out_dir}")
        self.request_id = self.main._start(
            "benchmark", self.main.inference_pool, jobs.benchmark_job, self.folder, models,
            self.batch_size.value(), self.limit.value() or None, self.main.device_combo.currentText(),
            self.out_dir, ways, returned=self._on_finished, yielded=self._on_snapshot,
            progressed=self._on_progress, on_error=self._on_error)

    def cancel(self) -> None:
        if self.request_id is not None and self.main.cancel_request(self.request_id):
            self.progress_text.setText("Cancelling; the results so far are kept…")
            self.cancel_button.setEnabled(False)

    def is_running(self) -> bool:
        return self.request_id is not None and self.request_id in self.main._workers

    def _on_progress(self, done: int, total: int, text: str) -> None:
        self.progress.setValue(done)
        elapsed = time.monotonic() - self._started
        fraction = done / max(1, total)
        left = f" · about {elapsed / fraction * (1 - fraction):.0f} s left" if fraction > 0.02 else ""
        self.progress_text.setText(f"{text}{left}")

    def _on_snapshot(self, snapshot) -> None:
        self.show_report(snapshot.report)
        if snapshot.report.cancelled:
            self._done(f"Cancelled; the partial results are in {self.out_dir}")

    def _on_finished(self, report) -> None:
        self.show_report(report)
        self._done(f"Done in {time.monotonic() - self._started:.0f} s; report in {self.out_dir}")

    def _on_error(self, exc: Exception) -> None:
        text = str(exc) if isinstance(exc, CnnviewerError) else f"{type(exc).__name__}: {exc}"
        self._done(f"The benchmark stopped: {text}")
        self.progress_text.setStyleSheet("color: #b00020;")

    def _done(self, text: str) -> None:
        self.progress_text.setStyleSheet("")
        self.progress_text.setText(text)
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def show_report(self, report, data: DashboardData | None = None) -> None:
        self.report = report
        self.dashboard.show_report(report, data)

    # -- reports and images -------------------------------------------------------------------

    def open_report_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open report", self.out_dir or "", "report.json (*.json)")
        if path:
            self.open_report(path)

    def open_report(self, path: str) -> int:
        """Open a report.json: read and checked in a worker, then shown; a bad one is one sentence
        here and the dashboard keeps what it showed. Returns the request id."""
        self.progress_text.setStyleSheet("")
        self.progress_text.setText(f"Opening {path}…")
        return self.main._start("open-report", self.main.io_pool, open_report_job, path,
                                returned=lambda data: self._on_report_opened(path, data),
                                on_error=self._on_report_error)

    def _on_report_opened(self, path: str, data: DashboardData) -> None:
        report = data.report
        self.out_dir = os.path.dirname(path)
        self.folder = report.root
        self.folder_label.setText(f"<b>{escape(report.root)}</b><br>report: {escape(path)}")
        self.progress_text.setText(f"Opened {path}")
        self.show_report(report, data)

    def _on_report_error(self, exc: Exception) -> None:
        text = str(exc) if isinstance(exc, CnnviewerError) else f"{type(exc).__name__}: {exc}"
        self.progress_text.setText(text)
        self.progress_text.setStyleSheet("color: #b00020;")

    def _load_thumbnails(self, paths: list[str]) -> None:
        self.main._start("dashboard-thumbnails", self.main.io_pool, jobs.thumbnails_job, paths, 64,
                         yielded=lambda item: self.dashboard.images_model.set_thumbnail(*item), exclusive=False)

    def _show_row(self, row) -> None:
        """The image and every model's top-5; for a mistake, where each model looked too."""
        detail = self.dashboard.detail

        def shown(image) -> None:
            detail.show_row(row, image)
            if detail.maps:
                self.main._start("dashboard-maps", self.main.inference_pool, jobs.explain_many_job,
                                 self.main.model_cache, self.main.explanations, row.file, list(detail.maps),
                                 self.main.device_combo.currentText(), 240,
                                 yielded=lambda item: detail.set_map(*item))

        self.main._start("dashboard-detail", self.main.io_pool, jobs.preview_job, row.file,
                         returned=lambda data: shown(data.image), on_error=lambda exc: shown(None))

    def closeEvent(self, event):  # noqa: N802 - Qt override
        self.cancel()
        super().closeEvent(event)
