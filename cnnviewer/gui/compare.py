"""Compare models: the current image classified by several models side by side, each with its top-k."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnnviewer.core.errors import CnnviewerError
from cnnviewer.gui.predictions import PredictionsModel, make_predictions_table
from cnnviewer.gui.text import escape, make_plain
from cnnviewer.workers import jobs

if TYPE_CHECKING:
    from cnnviewer.core.ways import AutoWay, RunAs
    from cnnviewer.gui.main_window import MainWindow
    from cnnviewer.workers.runner import TaskRunner

LAB_REPORT_MODELS = ("resnet50", "googlenet", "inception_v3")
EMBEDDED_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
OWNER = "compare"  # this dialog's namespace in the task runner
MAPS_KEY = "compare/gradcamMaps"  # in the main window's settings: whether the Grad-CAM maps are wanted
COLUMN_WIDTH = 260  # a column's narrowest: three fit beside the model list at the dialog's first size


def default_comparison(ready: list[str]) -> list[str]:
    """The lab report's three when their weights are here, else the three embedded models."""
    if all(name in ready for name in LAB_REPORT_MODELS):
        return list(LAB_REPORT_MODELS)
    return [name for name in EMBEDDED_MODELS if name in ready]


class CompareDialog(QDialog):
    """Runs on the task runner's interactive lane with the main window's device, way and top-k."""

    def __init__(self, main_window: MainWindow, runner: TaskRunner) -> None:
        super().__init__(main_window)
        self.main_window = main_window  # not `window`: that would hide QWidget.window()
        self.runner = runner
        self.way: RunAs | AutoWay | None = None  # the way (or auto) the columns shown were classified
        self.ways_run: dict[str, RunAs] = {}  # model -> the way its column ran (auto chooses per model)
        self.device = "cpu"
        self.setWindowTitle("Compare models")
        self.resize(1240, 560)
        self.path: str | None = None
        self.image_label = QLabel("")  # rich text: the file's name in it is escaped
        self.models = QListWidget(self)
        self.models.setToolTip("Models whose weights are on this machine")
        self.run_button = QPushButton("Compare")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        self.progress = QLabel("")
        # Wrapped: one line as wide as "Press Compare to classify this image…" widened the model list.
        self.progress.setWordWrap(True)
        make_plain(self.progress)
        self.maps_box = QCheckBox("Grad-CAM maps")
        self.maps_box.setToolTip("Where each model looked for its own top-1 class")
        from cnnviewer.gui.main_window import flag, read_setting

        self.maps_box.setChecked(read_setting(main_window.settings, MAPS_KEY, False, flag))
        self.maps_box.toggled.connect(self._on_maps_toggled)
        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(QLabel("Models"))
        left_layout.addWidget(self.models, 1)
        left_layout.addWidget(self.maps_box)
        left_layout.addWidget(self.run_button)
        left_layout.addWidget(self.progress)

        self.results = QWidget(self)
        self.results_layout = QHBoxLayout(self.results)
        # Columns stay at the left and take the room first (each at most twice COLUMN_WIDTH wide): a stretch of
        # 1 here took a share of it, and names were cut beside an empty quarter of the dialog.
        self.results_layout.addStretch(0)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.results)

        splitter = QSplitter(self)
        splitter.addWidget(left)
        splitter.addWidget(scroll)
        splitter.setHandleWidth(6)
        # The list keeps its width when results come or the dialog is resized: the columns take the change.
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setCollapsible(0, False)
        splitter.setSizes([230, 1010])
        self.splitter = splitter
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.image_label)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)
        self.columns: dict[str, tuple[QGroupBox, PredictionsModel, QLabel]] = {}
        self.maps: dict[str, QLabel] = {}
        self.explained: dict[str, object] = {}
        main_window.current_changed.connect(self.follow)

    def _show_path(self, path: str | None) -> None:
        self.path = path
        self.run_button.setEnabled(bool(path))
        if path:
            self.image_label.setText(f"<b>{escape(os.path.basename(path))}</b>  ({escape(path)})")
        else:
            self.image_label.setText("No image selected: select one in the main window.")

    def follow(self, path: str) -> None:
        """The main window's current image changed: the dialog is about it now, and Compare runs it. The
        columns of the image before go (and its work with them)."""
        if (path or None) == self.path:
            return
        self.runner.cancel(OWNER, "compare")
        self.runner.cancel(OWNER, "maps")
        self._clear_columns()
        self._show_path(path or None)
        self.progress.setText("Press Compare to classify this image with the ticked models." if path else "")

    def open_for(self, path: str, ready_rows) -> None:
        self._show_path(path)
        ready = [row.name for row in ready_rows]
        checked = set(default_comparison(ready))
        previously = {self.models.item(i).data(Qt.ItemDataRole.UserRole)
                      for i in range(self.models.count())
                      if self.models.item(i).checkState() == Qt.CheckState.Checked}
        checked = previously & set(ready) or checked
        self.models.clear()
        for row in ready_rows:
            item = QListWidgetItem(f"{row.name} ({row.availability})")
            item.setData(Qt.ItemDataRole.UserRole, row.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if row.name in checked else Qt.CheckState.Unchecked)
            self.models.addItem(item)
        self._clear_columns()
        self.show()
        self.raise_()
        self.run()

    def checked_models(self) -> list[str]:
        return [self.models.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.models.count())
                if self.models.item(i).checkState() == Qt.CheckState.Checked]

    def _clear_columns(self) -> None:
        for box, _, _ in self.columns.values():
            box.deleteLater()
        self.columns = {}
        self.maps = {}
        self.explained = {}

    def run(self) -> None:
        models = self.checked_models()
        self._clear_columns()
        if not models or not self.path:
            self.progress.setText("Tick at least one model.")
            return
        for name in models:
            box = QGroupBox(name, self.results)
            model = PredictionsModel(box)
            table = make_predictions_table(model, box)
            table.setMinimumWidth(COLUMN_WIDTH)
            box.setMaximumWidth(2 * COLUMN_WIDTH)
            note = QLabel("waiting…", box)
            note.setWordWrap(True)
            picture = QLabel(box)
            make_plain(note, picture)  # error sentences name the file
            picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
            picture.setVisible(self.maps_box.isChecked())
            self.maps[name] = picture
            inner = QVBoxLayout(box)
            inner.addWidget(picture)
            inner.addWidget(table, 1)
            inner.addWidget(note)
            self.results_layout.insertWidget(self.results_layout.count() - 1, box, 1)  # before the stretch
            box.show()
            self.columns[name] = (box, model, note)
        self.progress.setText(f"0 of {len(models)} done")
        self._total = len(models)
        self._done = 0
        self.way = self.main_window.current_choice()
        self.ways_run = {}
        self.device = self.main_window.current_device()
        self.runner.submit(OWNER, "compare", jobs.compare_job, self.runner.model_cache, self.path, models, self.device,
                           self.main_window.top_k(), self.way, self.main_window.calibration_folder or None,
                           on_yielded=self._on_item, on_progress=self._on_progress, on_error=self._on_error)

    def _on_error(self, exc: Exception) -> None:
        self.progress.setText(exc.for_window() if isinstance(exc, CnnviewerError) else f"{type(exc).__name__}: {exc}")

    def _on_progress(self, done: int, total: int, text: str) -> None:
        self.progress.setText(f"{self._done} of {self._total} done · {text}")

    def _on_item(self, item) -> None:
        name, outcome = item
        if name not in self.columns:
            return  # a column of the image before
        box, model, note = self.columns[name]
        self._done += 1
        self.progress.setText(f"{self._done} of {self._total} done")
        self._show_outcome(model, note, outcome)
        if self._done == self._total and self.maps_box.isChecked():
            self._start_maps()  # after the last column is filled: maps for every model that ran

    def _show_outcome(self, model, note, outcome) -> None:
        if isinstance(outcome, Exception):
            text = outcome.for_window() if isinstance(outcome, CnnviewerError) else f"{type(outcome).__name__}: {outcome}"
            note.setText(text)
            note.setStyleSheet("color: #b00020;")
            return
        result = outcome.classification
        if not result.ok:
            note.setText(result.error)
            note.setStyleSheet("color: #b00020;")
            return
        model.set_predictions(result.predictions)
        self.ways_run[outcome.model] = outcome.way
        load = f"load {outcome.load_ms:.0f} ms · " if outcome.load_ms is not None else ""
        chose = f"chose in {outcome.choose_ms / 1000:.0f} s · " if outcome.choose_ms is not None else ""
        note.setText(f"{outcome.way_label} · {chose}{load}inference {result.timings.inference_ms:.0f} ms")
        note.setStyleSheet("")

    def _on_maps_toggled(self, on: bool) -> None:
        self.main_window.settings.setValue(MAPS_KEY, on)
        for picture in self.maps.values():
            picture.setVisible(on)
        if on and self.columns and self._done == self._total and not self.explained:
            self._start_maps()

    def _start_maps(self) -> None:
        """Each model's map of its own top-1, by the copy that classified it (the same way and device)."""
        models = [name for name, (_, model, _) in self.columns.items() if model.rowCount()]
        for name in models:
            self.maps[name].setText("Grad-CAM…")
        way = self.main_window.current_way()
        # "resnet50 (onnxruntime)": each model's map by the copy that ran its column (auto chooses per model).
        keys = {f"{name} ({self.ways_run[name].label})" if name in self.ways_run else name: name for name in models}
        self._map_keys = keys
        self.runner.submit(OWNER, "maps", jobs.explain_many_job, self.runner.model_cache, self.runner.explanations,
                           self.path, list(keys), self.device, 300, way, self.main_window.calibration_folder or None,
                           on_yielded=self._on_map, on_error=self._on_error)

    _map_keys: dict[str, str] = {}  # what the maps job was given -> the model's column

    def _on_map(self, item) -> None:
        key, outcome = item
        name = self._map_keys.get(key, key)
        picture = self.maps.get(name)
        if picture is None:
            return
        self.explained[name] = outcome
        if isinstance(outcome, Exception):
            picture.setText(outcome.for_window() if isinstance(outcome, CnnviewerError) else
                            f"{type(outcome).__name__}: {outcome}")
            picture.setWordWrap(True)
        else:
            picture.setPixmap(QPixmap.fromImage(outcome.overlay_thumbnail))
            picture.setToolTip(f"Grad-CAM of {outcome.class_name} ({outcome.probability * 100:.2f} %)")

    def closeEvent(self, event):  # noqa: N802 - Qt override
        self.runner.cancel(OWNER, "compare")  # a closed dialog's work would hold up the interactive lane
        self.runner.cancel(OWNER, "maps")
        super().closeEvent(event)

    def results_by_model(self) -> dict[str, list]:
        """What each column shows (for tests and screenshots)."""
        return {name: model.predictions() for name, (_, model, _) in self.columns.items()}
