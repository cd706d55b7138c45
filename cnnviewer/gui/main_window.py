"""The main window: browser on the left, preview in the centre, predictions on the right."""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QByteArray,
    QEvent,
    QMargins,
    QObject,
    QRect,
    QSettings,
    QSize,
    QStandardPaths,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSpinBox,
    QSplitter,
    QStatusBar,
    QToolBar,
    QWidget,
)

from cnnviewer import __version__
from cnnviewer.core.errors import CnnviewerError, ImageLoadError, WeightsMissingError
from cnnviewer.core.images import IMAGE_SUFFIXES
from cnnviewer.core.paths import config_dir, log_file
from cnnviewer.core.settings import FALLBACK_MODEL, Settings, remember_model
from cnnviewer.core.ways import AUTO, AUTO_LABEL, FP32, INT8, AutoWay, RunAs, parse_way_choice
from cnnviewer.gui import context_menus
from cnnviewer.gui.browser import THUMBNAIL_SIZE, FileBrowser, list_images
from cnnviewer.gui.model_picker import ModelPicker
from cnnviewer.gui.predictions import PredictionsPanel, used_text
from cnnviewer.gui.preview import PreviewPanel
from cnnviewer.gui.text import escape, make_plain, tooltip
from cnnviewer.gui.weights_manager import show_weights_manager
from cnnviewer.workers import jobs
from cnnviewer.workers.base import CancelToken
from cnnviewer.workers.runner import TaskRunner

if TYPE_CHECKING:
    from cnnviewer.gui.compare import CompareDialog

log = logging.getLogger("cnnviewer.gui")

MODEL_ROLE = Qt.ItemDataRole.UserRole
READY_ROLE = Qt.ItemDataRole.UserRole + 1
OWNER = "main"  # this window's namespace in the task runner: its kinds never cancel another window's
RESULTS_KEPT = 64  # classifications kept to show again at once; a few KB each

#: What a kept classification is filed under: (absolute path, size, mtime_ns, model, device, way or auto, top-k).
ResultKey = tuple[str, int, int, str, str, RunAs | AutoWay, int]


def error_text(exc: Exception) -> str:
    """What the window says about a failed job: the core's sentence with the window's hint, or the
    unexpected error and where its details are."""
    if isinstance(exc, CnnviewerError):
        return exc.for_window()
    return f"Unexpected error: {type(exc).__name__}: {exc}. The details are in {log_file()}."


def window_settings() -> QSettings:
    """The window's own settings file, beside the core settings (so tests can isolate both)."""
    return QSettings(str(config_dir() / "window.ini"), QSettings.Format.IniFormat)


settings_log = logging.getLogger(__name__)
_reported: set[tuple[str, str, str]] = set()


class BadSetting(ValueError):
    """A stored value that cannot be used; the message says what was expected."""


def whole_number(low: int, high: int):
    def parse(value) -> int:
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, int) and not isinstance(text, bool):
            number = text
        elif isinstance(text, str) and text.lstrip("-").isdigit() and len(text) <= 12:
            number = int(text)
        else:
            raise BadSetting(f"a whole number from {low} to {high}")
        if not low <= number <= high:
            raise BadSetting(f"a whole number from {low} to {high}")
        return number
    return parse


def flag(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise BadSetting("true or false")


def text_of(longest: int):
    def parse(value) -> str:
        if not isinstance(value, str) or len(value) > longest or "\0" in value:
            raise BadSetting(f"text of at most {longest} characters")
        return value
    return parse


def saved_bytes(value) -> QByteArray:
    if not isinstance(value, QByteArray):
        raise BadSetting("a saved window layout (@ByteArray)")
    return value


def read_setting(settings: QSettings, key: str, default, parse):
    """One stored value, checked by ``parse``; a missing one is ``default``, and so is a bad one, which is
    logged once (a hand-edited or damaged window.ini must never stop the window from opening)."""
    value = settings.value(key)
    if value is None:
        return default
    try:
        return parse(value)
    except BadSetting as exc:
        note_bad_setting(settings, key, value, str(exc), default)
        return default


def note_bad_setting(settings: QSettings, key: str, value, expected: str, default) -> None:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:80] + "…"
    if (settings.fileName(), key, shown) in _reported:
        return
    _reported.add((settings.fileName(), key, shown))
    settings_log.warning("%s: %s is %s, not %s; using %r instead", settings.fileName(), key, shown, expected,
                         default)


class StatusBar(QStatusBar):
    """A status bar whose temporary message is elided to the room left of its permanent widgets.

    QStatusBar draws a long message under its permanent widgets' edge, cut mid-letter, so it ran into
    the model label ("Download them with `cresnet50 · cpu"). Here the message ends in "…" before the
    label, with the whole sentence in the tooltip and in currentMessage().
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self._deadline: float | None = None  # time.monotonic() when the message goes; None: it stays
        self._showing = False
        self._permanent: list[QWidget] = []
        self.messageChanged.connect(self._on_message_changed)

    def addPermanentWidget(self, widget: QWidget, stretch: int | None = 0) -> None:  # noqa: N802 - Qt override
        super().addPermanentWidget(widget, stretch or 0)
        self._permanent.append(widget)
        widget.installEventFilter(self)  # a label that grows or moves leaves less room: elide again

    def showMessage(self, text: str, timeout: int | None = 0) -> None:  # noqa: N802 - Qt override
        self._full = text
        self._deadline = time.monotonic() + timeout / 1000 if timeout else None
        self._show_elided(timeout or 0)

    def currentMessage(self) -> str:  # noqa: N802 - Qt override
        """The whole message, however much of it fits."""
        return self._full if super().currentMessage() else ""

    def shown_message(self) -> str:
        """The message as drawn: elided to message_room()."""
        return super().currentMessage()

    def message_room(self) -> int:
        """The width QStatusBar gives its message (from 6 px in to 2 px short of the first permanent widget
        shown, or 12 px short of the right edge, the size grip's place), less two spaces."""
        right = self.width() - 12
        # Where Qt last laid them out: when that changes, eventFilter elides again.
        for widget in self._permanent:
            if widget.isVisible():
                right = min(right, widget.x() - 2)
        gap = self.fontMetrics().horizontalAdvance("  ")  # so "…" does not touch the label's first letter
        return max(0, right - 6 - gap)

    def _show_elided(self, timeout: int) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, self.message_room())
        self.setToolTip(tooltip(self._full) if shown != self._full else "")
        self._showing = True
        try:
            super().showMessage(shown, timeout)
        finally:
            self._showing = False

    def _reelide(self) -> None:
        if not self._full or not super().currentMessage():
            return
        if self._deadline is None:
            self._show_elided(0)
        else:
            left_ms = int((self._deadline - time.monotonic()) * 1000)
            if left_ms > 0:  # otherwise Qt's own timer is about to clear it
                self._show_elided(left_ms)

    def _on_message_changed(self, text: str) -> None:
        if not text and not self._showing:  # timed out or cleared
            self._full = ""
            self._deadline = None
            self.setToolTip("")

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._reelide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Move, QEvent.Type.Show, QEvent.Type.Hide):
            self._reelide()
        return super().eventFilter(watched, event)


MIN_CALIBRATION_PHOTOS = 16  # core.quantize.MIN_CALIBRATION_IMAGES, without importing onnxruntime at start-up


def _photos_in(folder: str, enough: int = MIN_CALIBRATION_PHOTOS, look_at: int = 20_000) -> int:
    """How many photos ``folder`` (and its sub-folders) holds, counting up to ``enough`` and looking at no more
    than ``look_at`` entries: it runs on the GUI thread when a calibration folder is picked."""
    from itertools import islice

    from cnnviewer.core.images import is_image_path

    found = 0
    try:
        for path in islice(Path(folder).rglob("*"), look_at):
            if is_image_path(path) and path.is_file():
                found += 1
                if found >= enough:
                    break
    except OSError as exc:  # an unreadable sub-folder: what was counted so far
        log.info("counting the photos in %s stopped: %s", folder, exc)
    return found


def result_key(path: str, model: str, device: str, way: RunAs | AutoWay, top_k: int) -> ResultKey | None:
    """What a classification of ``path`` is kept under; None when the file cannot be looked at (the request
    then runs, and says why)."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return (os.path.abspath(path), stat.st_size, stat.st_mtime_ns, model, device, way, top_k)


def file_state(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of ``path``, to tell whether it was rewritten; None when it cannot be looked at."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return (stat.st_size, stat.st_mtime_ns)


def predictions_text(outcome: jobs.ClassifyOutcome) -> str:
    """A classification as plain text for the clipboard: the file, the model, the way, then one
    "index<TAB>name<TAB>probability" line per class (probability in 0..1, as the command line's JSON)."""
    lines = [f"File: {outcome.path}", f"Model: {outcome.model}",
             f"Run as: {outcome.way_label} on {outcome.device}"]
    lines += [f"{p.index}\t{p.name}\t{p.probability:.4f}" for p in outcome.classification.predictions]
    return "\n".join(lines)


RUN_AS_TIP = ("auto: the fastest way whose top-5 equals fp32's on a fixed set of probe images, measured once "
              "per model on this machine; fp32: plain; bf16: the fast path where the hardware has bfloat16; "
              "onnxruntime: the same FP32 weights on ONNX Runtime (CPU); int8: an 8-bit quantization of them on "
              "ONNX Runtime, calibrated once on a folder of your photos (Models > Choose int8 calibration "
              "folder…), fast on CPUs with VNNI or AMX")


#: The window's size on a first start, where the screen has room for it (and its frame).
FIRST_SIZE = QSize(1280, 800)
#: The frame a window manager adds, until the window is shown and its real frame is known.
FRAME_GUESS = QMargins(4, 30, 4, 4)


def fitted(available: QRect, frame: QMargins, wanted: QSize) -> QRect:
    """Where a window of ``wanted`` size goes (its geometry, without the frame) so that it and its
    ``frame`` lie inside ``available``, the screen less its panels: as big as wanted where it fits,
    smaller where not, centred."""
    room_w = available.width() - frame.left() - frame.right()
    room_h = available.height() - frame.top() - frame.bottom()
    width, height = min(wanted.width(), room_w), min(wanted.height(), room_h)
    return QRect(available.x() + frame.left() + (room_w - width) // 2,
                 available.y() + frame.top() + (room_h - height) // 2, width, height)


def default_folder() -> str:
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return pictures if pictures and os.path.isdir(pictures) else str(Path.home())


class MainWindow(QMainWindow):
    """Every long step runs on the task runner; each request has an id and stale results are dropped.

    The other windows get the runner and this small public interface for the model choice:
    ``catalog_rows()``, ``selected_model()``, ``current_device()``, ``current_way()``, ``ways_offered()``
    and ``top_k()``.
    """

    #: The image on show changed (selection, open_path, next/previous); "" when none is (another folder).
    current_changed = Signal(str)

    def __init__(self, settings: QSettings | None = None, runner: TaskRunner | None = None):
        super().__init__()
        self.setWindowTitle("cnnviewer")
        self.setAcceptDrops(True)
        self.settings = settings or window_settings()
        self._owns_runner = runner is None
        self.runner = runner if runner is not None else TaskRunner(self)
        self.explain_class: int | None = None  # None: the top-1 of the classification shown
        self._catalog: dict[str, jobs.CatalogRow] = {}
        self._ways: dict[str, list[RunAs]] = {"cpu": [FP32]}  # device -> ways offered, from the catalog job
        # device -> model -> the way auto runs it here: cached measurements (catalog job) and loads since
        self._auto_choices: dict[str, dict[str, RunAs]] = {}
        # Cancelled when the model, device or way changes: only then does a measurement for auto stop
        # (another photo asked for meanwhile waits for the measurement and uses it).
        self._keep_measuring = CancelToken()
        self._measuring: tuple[int, str, str] | None = None  # (ask, model, device) of a measurement under way
        self.current_path: str | None = None
        self.classified_path: str | None = None  # the image the user asked to classify
        self.last_outcome: jobs.ClassifyOutcome | None = None
        self.compare_dialog: CompareDialog | None = None
        # The classification asked for last: (ask number, request id, path, what runs it). A result or
        # error of an earlier ask is kept but not shown (the runner cannot drop one already sent when
        # the newer ask was answered from the kept results, without a request).
        self._asks = 0
        self._in_flight: tuple[int, int, str, str] | None = None
        # model -> how many times its weights changed: a result asked for before a change is of the old weights
        self._weights_changes: dict[str, int] = {}
        # Classifications already made, newest last, so returning to an image shows its result at once.
        self._results: OrderedDict[ResultKey, jobs.ClassifyOutcome] = OrderedDict()

        self.browser = FileBrowser(self)
        self.preview = PreviewPanel(self)
        self.predictions = PredictionsPanel(self)
        self.predictions.action_requested.connect(self._on_panel_action)
        self.predictions.table.clicked.connect(self._on_prediction_clicked)
        self.preview.explain_box.toggled.connect(self._on_explain_toggled)

        centre = QSplitter(Qt.Orientation.Vertical, self)
        centre.addWidget(self.preview)
        centre.addWidget(self.browser.strip)
        centre.setStretchFactor(0, 1)
        centre.setHandleWidth(6)  # Qt's 4 px (drawn 1-2 px) was hard to find and to grab
        self.browser.strip.setFixedHeight(self.browser.strip_height())  # one row of thumbnails, labels whole
        self.setCentralWidget(centre)

        self.browser_dock = self._dock("Files", "browserDock", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.predictions_dock = self._dock("Predictions", "predictionsDock", self.predictions,
                                           Qt.DockWidgetArea.RightDockWidgetArea)
        # The panels' widths on a first start; a window started smaller than that (a small screen) gives them
        # these widths as soon as it is made big enough.
        self._first_widths = {self.browser_dock: 300, self.predictions_dock: 380}
        self.resizeDocks(list(self._first_widths), list(self._first_widths.values()), Qt.Orientation.Horizontal)
        # The widths the panels should have: Qt takes them from the docks when the window is made small and
        # gives everything to the image when it grows again, leaving "# | Class | strawbe..." behind.
        self.dock_widths: dict[QDockWidget, int] = {}
        self._window_width = -1

        self._make_toolbar()
        self._make_menus()
        self._make_viewer_actions()
        self.setStatusBar(StatusBar(self))
        self.status_model = QLabel("")
        make_plain(self.status_model)
        self.statusBar().addPermanentWidget(self.status_model)

        self.browser.file_selected.connect(self._on_file_selected)
        self.browser.file_activated.connect(self._on_file_activated)
        self.browser.folder_changed.connect(self._on_folder_changed)
        self.browser.folder_context_requested.connect(self._on_folder_context)
        self.browser.path_rejected.connect(lambda text: self.statusBar().showMessage(text, 15000))
        self.browser.path_error_cleared.connect(
            lambda text: self.statusBar().clearMessage() if self.statusBar().currentMessage() == text else None)

        self._fit_on_show = True  # on the first show, the window and its frame are put inside the screen
        self._restore_settings()
        context_menus.install(self)  # right-click menus, recent folders, the pointer to the samples
        self.browser.path_bar.window_keys = self.window_keys()
        # The file tree, not the path bar: there Space, Enter and the arrows browse at once.
        self.browser.tree.setFocus(Qt.FocusReason.OtherFocusReason)
        self.predictions.model.modelReset.connect(self._update_copy_action)
        self.current_changed.connect(lambda _path: self._update_copy_action())
        self._update_copy_action()
        self._catalog_requested = False
        self._start_up_frozen = False

    # -- construction -------------------------------------------------------------------------

    def _dock(self, title, name, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.installEventFilter(self)
        # Closable, or Qt greys out its View menu entry: a panel could not be hidden to give the image room.
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _make_toolbar(self) -> None:
        bar = QToolBar("Model", self)
        bar.setObjectName("modelToolbar")
        self.addToolBar(bar)
        bar.addWidget(QLabel(" Model "))
        self.model_combo = ModelPicker(self, speed_context=lambda: (self.current_device(), self.current_choice().label),
                                       auto_choices=lambda device: self._auto_choices.get(device, {}))
        self.model_combo.setMinimumContentsLength(30)
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setToolTip("Every torchvision ImageNet-1k classifier and the embedded models; "
                                    "grey ones need their weights first")
        self.model_combo.addItem("loading the model catalog…")
        self.model_combo.setEnabled(False)
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        bar.addWidget(self.model_combo)
        self.weights_action = QAction("Get weights…", self)
        self.weights_action.setToolTip("Download or import the weights of the selected model")
        self.weights_action.setEnabled(False)
        self.weights_action.triggered.connect(lambda: self.open_weights_dialog())
        bar.addAction(self.weights_action)
        bar.addWidget(QLabel("  Device "))
        self.device_combo = QComboBox(self)
        # Sized to the longest entry each time entries change: Qt's default sizes a combo box once, at
        # first show, when it lists only "cpu" and "fp32", and then cut "onnxruntime" to "onnx".
        self.device_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.device_combo.addItem("cpu")
        self.device_combo.currentTextChanged.connect(self._on_device_changed)
        bar.addWidget(self.device_combo)
        bar.addWidget(QLabel("  Run as "))
        self.run_as_combo = QComboBox(self)
        self.run_as_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.run_as_combo.addItem(AUTO_LABEL, AUTO)
        self.run_as_combo.setToolTip(tooltip(RUN_AS_TIP))
        self.run_as_combo.currentTextChanged.connect(self._on_way_changed)
        bar.addWidget(self.run_as_combo)
        bar.addWidget(QLabel("  Top "))
        self.top_k_spin = QSpinBox(self)
        self.top_k_spin.setRange(1, 20)
        self.top_k_spin.setValue(5)
        self.top_k_spin.valueChanged.connect(lambda _: self._reclassify())
        bar.addWidget(self.top_k_spin)
        bar.addSeparator()
        self.classify_action = QAction("Classify", self)
        self.classify_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("F5")])
        self.classify_action.setToolTip("Classify the selected image (double-click or Enter in the browser)")
        self.classify_action.triggered.connect(self.classify_selected)
        bar.addAction(self.classify_action)
        self.auto_action = QAction("Classify on selection", self)
        self.auto_action.setCheckable(True)
        self.auto_action.setToolTip("Classify each image as you move through the browser")
        bar.addAction(self.auto_action)
        self.explain_action = QAction("Grad-CAM", self)
        self.explain_action.setCheckable(True)
        self.explain_action.setShortcut(QKeySequence("Ctrl+E"))
        self.explain_action.setToolTip("Overlay where the model looked (Ctrl+E); click a prediction to switch class")
        self.explain_action.toggled.connect(self.preview.explain_box.setChecked)
        self.preview.explain_box.toggled.connect(self.explain_action.setChecked)
        bar.addAction(self.explain_action)
        self._shown_explanation: jobs.ExplainOutcome | None = None  # the map on show, what Save Grad-CAM saves
        self.save_explain_action = QAction("Save Grad-CAM…", self)
        self.save_explain_action.setShortcut(QKeySequence("Ctrl+Shift+S"))
        self.save_explain_action.setToolTip("Save the overlay as a picture and the map beside it as .npy")
        self.save_explain_action.setEnabled(False)  # while a map is on show
        self.save_explain_action.triggered.connect(self.save_explanation_dialog)
        self.preview.view.heat_changed.connect(self._on_heat_changed)
        self.explain_class_action = QAction("Explain class…", self)
        self.explain_class_action.setShortcut(QKeySequence("Ctrl+Shift+E"))
        self.explain_class_action.triggered.connect(self.pick_class)
        self.preview.class_chosen.connect(self._on_class_chosen)
        self.preview.class_refused.connect(lambda text: self.statusBar().showMessage(text, 15000))
        self.compare_action = QAction("Compare models…", self)
        self.compare_action.setShortcut(QKeySequence("Ctrl+M"))
        self.compare_action.triggered.connect(self.open_compare)
        bar.addAction(self.compare_action)

    def _make_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_image = file_menu.addAction("&Open image…", self.open_image_dialog)
        open_image.setShortcut(QKeySequence.StandardKey.Open)
        open_folder = file_menu.addAction("Open &folder…", self.open_folder_dialog)
        open_folder.setShortcut(QKeySequence("Ctrl+Shift+O"))
        file_menu.addAction("Open &sample photos", self.browser.open_samples)
        bench = file_menu.addAction("&Benchmark folder…", lambda: self.open_benchmark())
        bench.setShortcut(QKeySequence("Ctrl+B"))
        file_menu.addAction("Open benchmark &report…", self.open_report_dialog)
        file_menu.addAction("&Import weights…", self.import_weights_dialog)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("&Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)

        view_menu = self.menuBar().addMenu("&View")
        for text, shortcut, slot in (
            ("&Fit to window", "Ctrl+0", self.preview.view.fit),
            ("&Actual size (100 %)", "Ctrl+1", self.preview.view.actual_size),
            ("Zoom &in", QKeySequence.StandardKey.ZoomIn, lambda: self.preview.view.zoom_by(1.25)),
            ("Zoom &out", QKeySequence.StandardKey.ZoomOut, lambda: self.preview.view.zoom_by(0.8)),
        ):
            action = view_menu.addAction(text, slot)
            action.setShortcut(QKeySequence(shortcut) if isinstance(shortcut, str) else shortcut)
        view_menu.addSeparator()
        view_menu.addAction(self.browser_dock.toggleViewAction())
        view_menu.addAction(self.predictions_dock.toggleViewAction())
        view_menu.addSeparator()
        self.benchmark_window_action = view_menu.addAction("&Benchmark window", self.show_benchmark_window)
        self.benchmark_window_action.setShortcut(QKeySequence("Ctrl+Shift+B"))

        image_menu = self.menuBar().addMenu("&Image")
        image_menu.addAction(self.classify_action)
        image_menu.addAction(self.auto_action)
        image_menu.addAction(self.explain_action)
        image_menu.addAction(self.explain_class_action)
        image_menu.addAction(self.save_explain_action)
        image_menu.addAction(self.compare_action)

        models_menu = self.menuBar().addMenu("&Models")
        manager = models_menu.addAction("&Weights manager…", self.open_weights_manager)
        manager.setShortcut(QKeySequence("Ctrl+Shift+W"))
        self.calibration_action = models_menu.addAction("Choose int8 &calibration folder…",
                                                        self.choose_calibration_folder)

        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("&About cnnviewer", self.show_about)

    # -- settings -----------------------------------------------------------------------------

    def _restore_settings(self) -> None:
        """Every value of window.ini is read through read_setting: checked, and the default if bad."""
        s = self.settings
        if s.status() != QSettings.Status.NoError:
            settings_log.warning("%s cannot be read (%s); the window starts with its defaults", s.fileName(),
                                 s.status().name)
        geometry = read_setting(s, "geometry", None, saved_bytes)
        if geometry is None or not self.restoreGeometry(geometry):
            if geometry is not None:
                note_bad_setting(s, "geometry", geometry, "a window geometry Qt can restore", "1280 x 800")
            screen = self.screen() or QApplication.primaryScreen()
            if screen is not None:
                self.setGeometry(fitted(screen.availableGeometry(), FRAME_GUESS, FIRST_SIZE))
            else:
                self.resize(FIRST_SIZE)
        state = read_setting(s, "windowState", None, saved_bytes)
        if state is not None and not self.restoreState(state):
            note_bad_setting(s, "windowState", state, "a dock layout Qt can restore", "the default layout")
        elif state is not None:
            self._first_widths = {}  # the widths saved are the ones wanted
        self.top_k_spin.blockSignals(True)
        self.top_k_spin.setValue(read_setting(s, "topK", 5, whole_number(self.top_k_spin.minimum(),
                                                                         self.top_k_spin.maximum())))
        self.top_k_spin.blockSignals(False)
        self.auto_action.setChecked(read_setting(s, "classifyOnSelection", False, flag))
        self.explain_action.setChecked(read_setting(s, "gradCam", False, flag))
        self.preview.opacity.setValue(read_setting(s, "camOpacity", 60, whole_number(self.preview.opacity.minimum(),
                                                                                  self.preview.opacity.maximum())))
        self._migrate_model_key(s)
        self._wanted_model: str | None = None  # the core's default model unless something asks for another
        self._wanted_device = read_setting(s, "device", "cpu", text_of(100))
        self._wanted_run_as = read_setting(s, "runAs", AUTO_LABEL, text_of(100))
        self.calibration_folder: str = read_setting(s, "int8CalibrationFolder", "", text_of(4096))
        self._fill_ways(self._wanted_run_as)  # fp32 (offered everywhere) or auto show before the catalog is there
        folder = read_setting(s, "lastFolder", None, text_of(4096))
        if not folder or not os.path.isdir(folder):
            folder = default_folder()
        self.browser.go_to(folder)

    @staticmethod
    def _migrate_model_key(s: QSettings) -> None:
        """The model was once kept in window.ini too; it is the core's setting now, shared with the command
        line. An old key is read once: it becomes the core's last model if that has none, and goes."""
        old = read_setting(s, "model", None, text_of(200))
        if s.contains("model"):
            s.remove("model")
        if old and Settings.load().last_model is None:
            remember_model(old)

    def save_settings(self) -> None:
        """The window's own layout and choices; the model is the core's (remember_model), not stored here."""
        self.set_panels_hidden(False)  # else the next start would open with the panels gone
        s = self.settings
        s.setValue("geometry", self.saveGeometry())
        s.setValue("windowState", self.saveState())
        if self.browser.folder:
            s.setValue("lastFolder", self.browser.folder)
        s.setValue("device", self.device_combo.currentText())
        s.setValue("runAs", self.run_as_combo.currentText())
        s.setValue("int8CalibrationFolder", self.calibration_folder)
        s.setValue("topK", self.top_k_spin.value())
        s.setValue("classifyOnSelection", self.auto_action.isChecked())
        s.setValue("gradCam", self.explain_action.isChecked())
        s.setValue("camOpacity", self.preview.opacity.value())
        s.sync()

    # -- workers ------------------------------------------------------------------------------

    def running_workers(self) -> int:
        """Worker threads busy right now (the runner's, which other windows share)."""
        return self.runner.active_threads()

    def _on_error(self, kind: str, exc: Exception) -> None:
        """The one place every failure of this window's jobs is shown."""
        text = error_text(exc)
        self.statusBar().showMessage(text, 15000)
        self._error_shown = text
        if kind == "preview":
            self.preview.show_message(text)
        elif kind == "catalog":
            self.model_combo.clear()
            self.model_combo.addItem("the model catalog could not be loaded")
            self.predictions.show_error(text)
        elif kind == "classify":
            self.last_outcome = None  # the panel no longer shows it
            self._in_flight = None
            title = (f"<b>{escape(os.path.basename(self.classified_path or ''))}</b><br>"
                     f"{escape(self.selected_model())} cannot run")
            actions = []
            if isinstance(exc, WeightsMissingError):
                actions = [("get_weights", "Get weights…"), ("use_instead", f"Use {self.model_instead()} instead")]
            self.predictions.show_error(text, actions, title=title)

    def _error_handler(self, kind: str):
        return lambda exc: self._on_error(kind, exc)

    # -- dock widths --------------------------------------------------------------------------

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        old, new = event.oldSize().width(), event.size().width()
        self._window_width = new
        if old < 0 or not self.dock_widths:
            self.dock_widths = {dock: max(dock.width(), self._first_widths.get(dock, 0)) for dock in self._docked()}
        elif new > old:
            self._give_docks_their_width()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        # A dock resized while the window keeps its width, the mouse held down: the user dragged its edge.
        if (event.type() == QEvent.Type.Resize and watched in self.dock_widths and self.width() == self._window_width
                and QApplication.mouseButtons() != Qt.MouseButton.NoButton):
            self.dock_widths[watched] = watched.width()
        return super().eventFilter(watched, event)

    def _docked(self) -> list[QDockWidget]:
        return [dock for dock in (self.browser_dock, self.predictions_dock)
                if not dock.isHidden() and not dock.isFloating()]

    def _give_docks_their_width(self) -> None:
        """Back to the widths the panels had (or were dragged to) before the window was made smaller."""
        squeezed = [dock for dock in self._docked() if dock in self.dock_widths
                    and dock.width() < self.dock_widths[dock]]
        if squeezed:
            self.resizeDocks(squeezed, [self.dock_widths[dock] for dock in squeezed], Qt.Orientation.Horizontal)

    # -- catalog ------------------------------------------------------------------------------

    def fit_on_screen(self) -> bool:
        """Put the window, frame and all, inside its screen's free area when it is not (a first start
        sized before the frame was known, a layout saved on a bigger screen); True if it was moved."""
        screen = self.screen()
        if screen is None or self.windowState() & (Qt.WindowState.WindowMaximized | Qt.WindowState.WindowFullScreen):
            return False
        available, frame, inner = screen.availableGeometry(), self.frameGeometry(), self.geometry()
        if available.contains(frame):
            return False
        margins = QMargins(inner.left() - frame.left(), inner.top() - frame.top(),
                           frame.right() - inner.right(), frame.bottom() - inner.bottom())
        self.setGeometry(fitted(available, margins, self.size()))
        return True

    def _update_copy_action(self) -> None:
        """Copy predictions only while a classification of the image on show is shown."""
        outcome = self.last_outcome
        self.copy_action.setEnabled(outcome is not None and outcome.classification.ok
                                    and outcome.path == self.current_path)

    def window_keys(self) -> list[QKeySequence]:
        """The window's shortcuts that the path bar must not take for itself (Ctrl+E, Ctrl+M...): those
        of every window-wide action, less the editing keys a line edit needs (copy, paste, undo...)."""
        editing = [key for standard in (QKeySequence.StandardKey.Copy, QKeySequence.StandardKey.Cut,
                                        QKeySequence.StandardKey.Paste, QKeySequence.StandardKey.Undo,
                                        QKeySequence.StandardKey.Redo, QKeySequence.StandardKey.SelectAll)
                   for key in QKeySequence.keyBindings(standard)]
        keys: list[QKeySequence] = []
        for action in self.findChildren(QAction):
            if action.shortcutContext() == Qt.ShortcutContext.WidgetShortcut:
                continue
            for key in action.shortcuts():
                first = key[0] if key.count() else None  # type: ignore[index]  # missing from the stubs
                held = first.keyboardModifiers() if first is not None else Qt.KeyboardModifier.NoModifier
                if not held & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                               | Qt.KeyboardModifier.MetaModifier):
                    continue  # plain keys (Space, Backspace, Tab...) are typing or the line edit's own
                if key not in editing and key not in keys:
                    keys.append(key)
        return keys

    def showEvent(self, event):  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._fit_on_show:
            self._fit_on_show = False
            self.fit_on_screen()
            # Again once the window manager has added its frame, unless the window was moved or resized since.
            shown = self.geometry()
            QTimer.singleShot(0, self, lambda: self.geometry() == shown and self.fit_on_screen())
        if not self._catalog_requested:
            # Only now import torch: the window is already on screen.
            self.torch_was_imported_before_show = "torch" in sys.modules
            self._catalog_requested = True
            QTimer.singleShot(0, self, self._load_catalog)

    def _load_catalog(self) -> None:
        self.statusBar().showMessage("Loading torch and the model catalog…")
        self.runner.submit(OWNER, "catalog", jobs.load_catalog, lane="io", on_returned=self._on_catalog_loaded,
                           on_error=self._error_handler("catalog"))

    def _on_catalog_loaded(self, info: jobs.CatalogInfo) -> None:
        self._catalog = {row.name: row for row in info.rows}
        self._ways = dict(info.ways)
        for device, chosen in info.auto_choices.items():
            self._auto_choices.setdefault(device, {}).update(chosen)
        # The core's choice (the last model used, by the window or the command line) unless this window
        # asked for another (weights just arrived) or already shows one.
        wanted = self._wanted_model or self.selected_model()
        self._wanted_model = None
        if wanted not in self._catalog:
            wanted = info.default_model
        combo = self.model_combo
        combo.blockSignals(True)
        combo.set_rows(info.rows, wanted)  # grouped "Ready" / "Needs weights", with acc@1, GMACs, size, images/s
        combo.setEnabled(True)
        combo.blockSignals(False)
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        self.device_combo.addItems(info.devices)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findText(self._wanted_device)))
        self.device_combo.blockSignals(False)
        self._fill_ways(self._wanted_run_as)
        ready = sum(r.ready for r in info.rows)
        if self.statusBar().currentMessage().startswith("Loading torch"):  # never hide an error said meanwhile
            self.statusBar().showMessage(f"{len(info.rows)} models, {ready} with weights on this machine.", 8000)
        scale = self.preview.scale.pixmap()
        if scale is None or scale.isNull():
            from cnnviewer.core.explain import colour_scale  # torch is imported by now

            self.preview.set_colour_scale(jobs.pil_to_qimage(colour_scale(120, 12)))
            self._fill_class_names()
        self._update_status_model()
        if not self._start_up_frozen:
            # What start-up imported (torch, torchvision, Qt: ~400,000 objects) lives as long as the
            # process. Freezing it keeps the cyclic garbage collector from walking it all again: a
            # full collection during a benchmark otherwise held every thread, the GUI's too, 178 ms.
            self._start_up_frozen = True
            gc.freeze()
        self._update_weights_action()
        if self._reclassify_after_catalog:
            self._reclassify_after_catalog = False
            self._reclassify()
        if self._pending_classify:
            path, self._pending_classify = self._pending_classify, None
            self.classify(path)

    _pending_classify: str | None = None
    _reclassify_after_catalog = False
    weights_dialog = None

    def _fill_ways(self, wanted: str) -> None:
        """The Run-as picker lists auto, then the ways the current device offers; ``wanted`` (a label) stays if
        offered, else auto."""
        combo = self.run_as_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(AUTO_LABEL, AUTO)
        for way in self.ways_offered():
            combo.addItem(way.label, way)
        combo.setCurrentIndex(max(0, combo.findText(wanted)))
        combo.blockSignals(False)
        self._way_text = combo.currentText()
        self._update_run_as_tip()

    _way_text = AUTO_LABEL  # the Run-as choice before the current one: int8 without a folder goes back to it

    # -- the model choice, for the other windows ----------------------------------------------

    def selected_model(self) -> str | None:
        return self.model_combo.currentData(MODEL_ROLE)

    def catalog_rows(self) -> list[jobs.CatalogRow]:
        """Every model of the catalog as the picker shows it (empty until the catalog is loaded)."""
        return list(self._catalog.values())

    def current_device(self) -> str:
        return self.device_combo.currentText() or "cpu"

    def ways_offered(self) -> list[RunAs]:
        """The ways of running the current device offers (fp32 first)."""
        return list(self._ways.get(self.current_device(), [FP32]))

    def current_choice(self) -> RunAs | AutoWay:
        """What the Run-as box asks for: a way, or auto (resolved per model in the worker that loads it)."""
        way = self.run_as_combo.currentData()
        if isinstance(way, (RunAs, AutoWay)):
            return way
        return parse_way_choice(self.run_as_combo.currentText() or AUTO_LABEL)

    def current_way(self) -> RunAs:
        """The way the selected model runs now: the box's way, or auto's choice for the model (FP32 while auto
        has not chosen one yet)."""
        choice = self.current_choice()
        if isinstance(choice, RunAs):
            return choice
        model = self.selected_model()
        return (self.auto_choice(model, self.current_device()) if model else None) or FP32

    def auto_choice(self, model: str, device: str) -> RunAs | None:
        """The way auto runs ``model`` on ``device`` here, when it is known (measured before); None if not yet."""
        return self.runner.model_cache.chosen(model, device) or self._auto_choices.get(device, {}).get(model)

    def choice_label(self, model: str | None = None) -> str:
        """"fp32", "auto: onnxruntime" (auto's choice for ``model``, default the selected one) or "auto" (not known)."""
        choice = self.current_choice()
        if isinstance(choice, RunAs):
            return choice.label
        model = model or self.selected_model()
        chosen = self.auto_choice(model, self.current_device()) if model else None
        return f"{AUTO_LABEL}: {chosen.label}" if chosen is not None else AUTO_LABEL

    def top_k(self) -> int:
        return self.top_k_spin.value()

    def select_model(self, name: str) -> bool:
        index = self.model_combo.findData(name, MODEL_ROLE)
        if index < 0:
            return False
        self.model_combo.setCurrentIndex(index)
        return True

    def model_instead(self) -> str:
        """The model to offer when the chosen one has no weights: the one used last that has them (the
        core remembers only those), else the embedded default."""
        last = Settings.load().last_model
        row = self._catalog.get(last or "")
        if last and last != self.selected_model() and row is not None and row.ready:
            return last
        return FALLBACK_MODEL

    def _update_status_model(self) -> None:
        model = self.selected_model()
        self.status_model.setText(used_text(model, self.choice_label(model), self.current_device()) if model else "")
        self._update_run_as_tip()

    def _update_run_as_tip(self) -> None:
        """The Run-as box's tooltip says what auto runs the selected model as, once that is known."""
        model = self.selected_model() if hasattr(self, "model_combo") else None
        if not model:
            self.run_as_combo.setToolTip(tooltip(f"{RUN_AS_TIP}.{self._int8_tip()}"))
            return
        chosen = self.auto_choice(model, self.current_device())
        if chosen is not None:
            said = f"Here auto runs {model} as {chosen.label} (measured once; cached)."
        else:
            said = (f"auto has not measured {model} on this machine yet: its first classification does, once "
                    "(seconds for a small model, about a minute for a big one; the status bar shows the steps).")
        self.run_as_combo.setToolTip(tooltip(f"{RUN_AS_TIP}.\n{said}{self._int8_tip()}"))

    def _int8_tip(self) -> str:
        """What the tooltip says of int8: its calibration folder, and whether this CPU makes it fast."""
        if INT8 not in self.ways_offered():
            return ""
        from cnnviewer.core.quantize import int8_supported  # numpy only: no torch

        fast = ("This CPU has VNNI or AMX: int8 is its fastest way." if int8_supported() else
                "This CPU has neither VNNI nor AMX: int8 runs, but no faster than onnxruntime.")
        folder = (f"int8 is calibrated on the photos in {self.calibration_folder}" if self.calibration_folder
                  else "int8 asks for a calibration folder (16 or more photos) when you pick it")
        return f"\n{folder} (Models > Choose int8 calibration folder… changes it). {fast}"

    def choose_calibration_folder(self) -> str:
        """Ask for int8's calibration folder (a QFileDialog); remembered. The folder, or "" when refused."""
        folder = QFileDialog.getExistingDirectory(
            self, "Choose int8 calibration folder (16 or more photos, not the ones to classify)",
            self.calibration_folder or self.browser.folder or "")
        if folder and _photos_in(folder) < MIN_CALIBRATION_PHOTOS:  # said now, not at the next classification
            kept = f"; int8 stays calibrated on {self.calibration_folder}" if self.calibration_folder else ""
            self.statusBar().showMessage(f"{folder} holds fewer than {MIN_CALIBRATION_PHOTOS} photos, too few to "
                                         f"calibrate int8{kept}.", 12000)
            return ""
        if folder:
            self.set_calibration_folder(folder)
        return folder

    def set_calibration_folder(self, folder: str) -> None:
        """int8 is calibrated on ``folder``'s photos from now on (its next load quantizes once, then cached)."""
        if folder == self.calibration_folder:
            return
        self.calibration_folder = folder
        self.settings.setValue("int8CalibrationFolder", folder)
        self._results = OrderedDict((k, v) for k, v in self._results.items() if k[5] != INT8)
        self._update_run_as_tip()
        self.statusBar().showMessage(f"int8 is calibrated on the photos in {folder} from now on.", 8000)
        if self.current_choice() == INT8:
            self._reclassify()

    def _restart_measuring(self) -> None:
        """The model, device or way changed: a measurement for auto may stop once its request is superseded."""
        self._keep_measuring.cancel()
        self._keep_measuring = CancelToken()

    def _on_model_changed(self, _index: int) -> None:
        self._restart_measuring()
        self._update_status_model()
        self._update_weights_action()
        model = self.selected_model()
        row = self._catalog.get(model or "")
        if model and row is not None and row.ready:
            remember_model(model)  # the core's choice: the command line's default from now on
        self._reclassify()

    def _on_device_changed(self, _text: str) -> None:
        self._restart_measuring()
        self._fill_ways(self.run_as_combo.currentText())  # bf16 and ONNX Runtime depend on the device
        self._update_status_model()
        self._reclassify()

    def _on_way_changed(self, text: str) -> None:
        if self.current_choice() == INT8 and not self.calibration_folder and not self.choose_calibration_folder():
            self.run_as_combo.blockSignals(True)  # refused: back to the way before, as if never picked
            self.run_as_combo.setCurrentIndex(max(0, self.run_as_combo.findText(self._way_text)))
            self.run_as_combo.blockSignals(False)
            self.statusBar().showMessage(f"int8 needs a folder of 16 or more photos to calibrate on; still running "
                                         f"as {self._way_text}.", 15000)
            return
        self._way_text = text
        self._restart_measuring()
        self._update_status_model()
        self.model_combo.refresh_speeds()  # auto shows each model's speed the way auto runs it
        self._reclassify()

    def _reclassify(self) -> None:
        """Switching model, device or top-k re-classifies the image on show."""
        if self.classified_path and self.classified_path == self.current_path:
            self.classify(self.classified_path)

    # -- browsing and classifying -------------------------------------------------------------

    def _on_folder_changed(self, folder: str) -> None:
        self._leave_image_outside(folder)
        paths = list_images(folder)
        self.browser.reset_strip(paths)
        if paths:
            self.runner.submit(OWNER, "thumbnails", jobs.thumbnails_job, paths[: len(self.browser._strip_items)],
                               THUMBNAIL_SIZE, lane="io", on_yielded=lambda item: self.browser.set_thumbnail(*item),
                               on_error=self._error_handler("thumbnails"))

    def _on_file_selected(self, path: str) -> None:
        self.show_preview(path)
        if self.auto_action.isChecked():
            self.classify(path)

    def _on_file_activated(self, path: str) -> None:
        if path != self.current_path or file_state(path) != self._previewed:  # F5 after the file was rewritten
            self.show_preview(path)
        self.classify(path)

    def show_preview(self, path: str) -> None:
        changed = path != self.current_path
        if path != self.current_path:
            self.explain_class = None
            self.preview.clear_explanation()
        if path != self.classified_path:
            self.current_path = path  # before a kept result is shown: results show for the current image only
            self._show_state_of(path)
        self.current_path = path
        self._previewed = file_state(path)
        self.runner.submit(OWNER, "preview", jobs.preview_job, path, lane="io", on_returned=self.preview.show_preview,
                           on_error=self._error_handler("preview"))
        if changed:
            self.current_changed.emit(path)

    _previewed: tuple[int, int] | None = None  # file_state() of the image the preview was asked for
    _error_shown = ""  # the last error _on_error put in the status bar

    def _leave_image_outside(self, folder: str) -> None:
        """Another folder is shown: what the window said about an image elsewhere (its preview, zoom, result,
        error) goes; an image in ``folder`` (a file opened there) keeps them."""
        current = self.current_path
        if current is not None and os.path.dirname(current) == folder:
            return
        self.runner.cancel(OWNER, "preview")  # an older preview would land in the emptied view
        self.preview.show_message("Click a photo in the browser to preview it; double-click to classify it.")
        self.preview.zoom_label.setText("")
        if self._error_shown and self.statusBar().currentMessage() == self._error_shown:
            self.statusBar().clearMessage()
        if current is None:
            return
        self.current_path = self.classified_path = None
        self.last_outcome = None
        self.explain_class = None
        self.preview.clear_explanation()
        self.predictions.clear(f"<b>{escape(os.path.basename(folder) or folder)}</b><br>"
                               "Click a photo to preview it; double-click or press Enter to classify it.")
        self.current_changed.emit("")

    def _show_state_of(self, path: str) -> None:
        """What the panel says about a newly selected image: its kept result, that it is being classified,
        or how to classify it."""
        earlier = self._kept_result(path)
        if earlier is not None:
            self._show_outcome(earlier, earlier=True)
            return
        self.last_outcome = None
        name = os.path.basename(path)
        asked = self._in_flight
        if asked is not None and asked[2] == path and self.runner.is_running(asked[1]):
            self.classified_path = path  # its result will show when it comes
            self.predictions.show_classifying(name, asked[3])
            return
        self.classified_path = None
        if path == self._pending_classify:
            self.predictions.clear(f"<b>{escape(name)}</b><br>Classifying once the model catalog is loaded…")
        else:
            self.predictions.clear(f"<b>{escape(name)}</b><br>Double-click or press Enter to classify it.")

    def classify_selected(self) -> None:
        path = self.browser.selected_path()
        if path and os.path.isfile(path):
            self._on_file_activated(path)

    def classify(self, path: str) -> int | None:
        """Classify ``path`` with the chosen model, device and way on the interactive lane; the request id, or
        None when the result of the same file, model, device, way and top-k was kept and is shown again."""
        model = self.selected_model()
        name = os.path.basename(path)
        if model is None:  # the catalog is still loading: do it as soon as it is there
            self._pending_classify = path
            self.predictions.clear(f"<b>{escape(name)}</b><br>Classifying once the model catalog is loaded…")
            self.predictions.show_busy("Loading the model catalog…")
            return None
        self.current_path = self.classified_path = path
        device, way, top_k = self.current_device(), self.current_choice(), self.top_k()
        self._asks += 1
        ask = self._asks
        key = result_key(path, model, device, way, top_k)
        earlier = self._kept(key)
        if earlier is not None:
            self.runner.cancel(OWNER, "classify")  # an older ask still running would be shown over it
            self._in_flight = None
            self._show_outcome(earlier, earlier=True)
            return None
        used = used_text(model, self.choice_label(model), device)
        if self.last_outcome is not None and self.last_outcome.path == path:
            # Re-classified (another model, way or top-k): the result on show names what made it, and stays
            # until the new one comes.
            self.predictions.show_busy(f"Classifying {name} with {used}…")
        else:
            self.predictions.show_classifying(name, used)
        measuring = self._measuring
        if isinstance(way, AutoWay) and measuring is not None and measuring[1:] == (model, device):
            # The request measuring this model goes on (superseded, its steps are no longer shown): this one waits.
            self.predictions.show_busy(f"Classifying {name} once the fastest way for {model} is chosen "
                                       "(measured once)…")
        weights = self._weights_changes.get(model, 0)
        rid = self.runner.submit(
            OWNER, "classify", jobs.classify_job, self.runner.model_cache, path, model, device, top_k, way,
            self._keep_measuring, self.calibration_folder or None,
            on_returned=lambda outcome: self._on_classified(outcome, key, ask, weights),
            on_error=lambda exc: self._on_classify_error(exc, ask),
            on_progress=lambda d, t, text: self._on_classify_progress(text, ask, model, device),
            on_cancelled=lambda _kept: self._end_measuring(ask))
        self._in_flight = (ask, rid, path, used)
        return rid

    def _kept_result(self, path: str) -> jobs.ClassifyOutcome | None:
        """The kept result of ``path`` with the model, device, way and top-k chosen now, if any."""
        model = self.selected_model()
        if model is None:
            return None
        return self._kept(result_key(path, model, self.current_device(), self.current_choice(), self.top_k()))

    def _kept(self, key: ResultKey | None) -> jobs.ClassifyOutcome | None:
        """The result kept under ``key``, now the most recently used; None if there is none."""
        earlier = self._results.get(key) if key is not None else None
        if earlier is not None and key is not None:
            self._results.move_to_end(key)
        return earlier

    def _keep_result(self, key: ResultKey | None, outcome: jobs.ClassifyOutcome) -> None:
        # Kept only if the file is still the one the request read: one rewritten meanwhile may have been
        # read either way.
        if key is None or outcome.classification.error is not None:
            return
        # The key holds what was asked (auto, say); the outcome the way it ran: compare the file's part only.
        if result_key(outcome.path, outcome.model, outcome.device, key[5], key[-1]) != key:
            return
        self._results[key] = outcome
        self._results.move_to_end(key)
        while len(self._results) > RESULTS_KEPT:
            self._results.popitem(last=False)

    def _shows_ask(self, ask: int) -> bool:
        """Whether the panel is about this ask: the latest one, of the image on show."""
        asked = self._in_flight
        return asked is not None and asked[0] == ask == self._asks and asked[2] == self.current_path

    def _on_classify_progress(self, text: str, ask: int, model: str = "", device: str = "") -> None:
        if text.startswith(jobs.CHOOSING):  # auto measures the ways (once): the status bar follows each step
            self._measuring = (ask, model, device)
            self.statusBar().showMessage(text)
        elif text.startswith("Calibrating"):  # int8 is quantized (once per model and folder): half a minute
            self.statusBar().showMessage(text)
        if self._shows_ask(ask):
            self.predictions.show_busy(text[:1].upper() + text[1:])

    def _end_measuring(self, ask: int) -> None:
        """The request ``ask`` ended: a measurement it made is over, and its last step leaves the status bar."""
        if self._measuring is None or self._measuring[0] != ask:
            return
        self._measuring = None
        if self.statusBar().currentMessage().startswith(jobs.CHOOSING):
            self.statusBar().clearMessage()

    def _on_classify_error(self, exc: Exception, ask: int) -> None:
        self._end_measuring(ask)
        if self._shows_ask(ask):
            self._on_error("classify", exc)
        else:  # the user moved on; asking again for that image says it again
            log.info("a classification no longer on show failed: %s", exc)
            if ask == self._asks:
                self._in_flight = None

    def _on_classified(self, outcome: jobs.ClassifyOutcome | None, key: ResultKey | None = None,
                       ask: int | None = None, weights: int | None = None) -> None:
        if ask is not None:
            self._end_measuring(ask)
        if outcome is None:
            return
        if weights is not None and weights != self._weights_changes.get(outcome.model, 0):
            # Made with the weights of before (they changed while it ran): neither kept nor shown, nor is
            # auto's choice for them remembered; the image on show is classified again with the new ones.
            if ask == self._asks:
                self._in_flight = None
                self._reclassify()
            return
        if outcome.auto:  # what auto chose for this model is known from now on (shown before the next load)
            self._auto_choices.setdefault(outcome.device, {})[outcome.model] = outcome.way
            self._update_status_model()
            self.model_combo.refresh_speeds()
        self._keep_result(key, outcome)
        if ask is not None and ask != self._asks:
            return  # something newer was asked and answered; this one is kept for when it is asked again
        self._in_flight = None
        if outcome.path != self.current_path:
            return  # the user moved on to another image meanwhile; kept for when they come back
        self._show_outcome(outcome)

    def _show_outcome(self, outcome: jobs.ClassifyOutcome, earlier: bool = False) -> None:
        """Show a classification, new or kept from an earlier run (``earlier``), of the current image."""
        self.classified_path = outcome.path
        self.last_outcome = outcome
        result = outcome.classification
        remember_model(outcome.model)
        if result.error is not None:  # `not result.ok`, spelled so the reason is known to be a str
            text = error_text(ImageLoadError(result.path, result.error))
            self.predictions.show_error(text, title=f"<b>{escape(os.path.basename(result.path))}</b><br>"
                                        "could not be classified")
            self.statusBar().showMessage(text, 15000)
            return
        self.predictions.show_result(outcome)
        if earlier:
            self.predictions.show_timings(outcome, earlier=True)
        if self.explain_action.isChecked():
            self.explain()
        top = result.predictions[0]
        chosen = ""
        if outcome.choose_ms is not None and not earlier:
            chosen = (f" · auto chose {outcome.way.label} for {outcome.model} in {outcome.choose_ms / 1000:.0f} s "
                      "(once: kept for next time)")
        self.statusBar().showMessage(f"{os.path.basename(result.path)}: {top.name} ({top.probability * 100:.2f} %) "
                                     f"by {outcome.model}{chosen}", 15000 if chosen else 8000)

    # -- Grad-CAM -----------------------------------------------------------------------------

    def explain(self) -> int | None:
        """Compute (or take from the cache) the map for the classified image and the chosen class.

        The class is explicit: the one clicked, else the top-1 the table shows (never the top-1 of
        another forward pass), explained by the model already loaded for the classification's way."""
        outcome = self.last_outcome
        if outcome is None or not outcome.classification.ok or not outcome.classification.predictions:
            self.preview.clear_explanation("Grad-CAM: classify the image first (double-click or Enter).")
            return None
        class_index = self.explain_class
        if class_index is None:
            class_index = outcome.classification.predictions[0].index
        self.preview.clear_explanation(f"Grad-CAM with {outcome.model}…")
        return self.runner.submit(OWNER, "explain", jobs.explain_job, self.runner.model_cache, self.runner.explanations,
                                  outcome.path, outcome.model, outcome.device, outcome.way, class_index,
                                  outcome.auto, self.calibration_folder or None, on_returned=self._on_explained,
                                  on_error=self._on_explain_error)

    def _on_explained(self, outcome: jobs.ExplainOutcome) -> None:
        if self.explain_action.isChecked() and outcome.path == self.current_path:
            # A class picked by name, or clicked before Top was lowered, may not be in the table: say so.
            shown = self.last_outcome.classification.predictions if self.last_outcome is not None else []
            note = "" if any(p.index == outcome.class_index for p in shown) else f"not in the top {len(shown)}"
            self.preview.show_explanation(outcome, note)
            self._shown_explanation = outcome
            self._on_heat_changed(True)

    def _on_heat_changed(self, drawn: bool) -> None:
        if not drawn:
            self._shown_explanation = None
        self.save_explain_action.setEnabled(drawn and self._shown_explanation is not None)

    def _fill_class_names(self) -> None:
        """The class picker's 1000 names; they come with torchvision, so only once torch is imported."""
        from cnnviewer.core.labels import imagenet_categories

        self.preview.set_class_names(imagenet_categories())

    def pick_class(self) -> None:
        """Explain class…: into the class picker, to type a class's name."""
        picker = self.preview.class_picker
        picker.setFocus(Qt.FocusReason.ShortcutFocusReason)
        picker.lineEdit().selectAll()

    def _on_class_chosen(self, class_index: int) -> None:
        self.explain_class = class_index
        if not self.explain_action.isChecked():
            self.explain_action.setChecked(True)  # choosing a class asks to see it
        else:
            self.explain()

    def save_explanation_dialog(self) -> None:
        """Save Grad-CAM…: where to save the map on show (PNG or JPEG; the map goes beside it as .npy)."""
        shown = self._shown_explanation
        if shown is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save Grad-CAM", self.save_suggestion(shown),
                                              "PNG picture (*.png);;JPEG picture (*.jpg *.jpeg)")
        if path and self.may_replace_map(path):
            self.save_explanation_to(path)

    def save_suggestion(self, shown) -> str:
        """The name Save Grad-CAM… offers: in the folder of the last save, else Pictures (or home), never the
        photo's folder by default: it is often a dataset, which a map saved by pressing Enter would pollute."""
        stem = os.path.splitext(os.path.basename(shown.path))[0]
        folder = self._save_folder or default_folder()
        return os.path.join(folder, f"{stem}-gradcam-{shown.model}-{shown.class_index}.png")

    def may_replace_map(self, picture: str) -> bool:
        """The file dialog asked about the picture only: ask before the .npy beside it is replaced too."""
        npy = os.path.splitext(picture)[0] + ".npy"
        if not os.path.exists(npy):
            return True
        self.replace_question = QMessageBox(
            QMessageBox.Icon.Question, "Save Grad-CAM",
            f"{os.path.basename(npy)} already exists beside it. Replace it with this map?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        self.replace_question.setDefaultButton(QMessageBox.StandardButton.Cancel)
        try:
            return self.replace_question.exec() == QMessageBox.StandardButton.Yes
        finally:
            self.replace_question.deleteLater()
            self.replace_question = None

    _save_folder: str | None = None
    replace_question: QMessageBox | None = None

    def save_explanation_to(self, path: str) -> int | None:
        """Save the map on show to ``path``, at the photo's own size, and the map as ``<stem>.npy`` beside it."""
        shown = self._shown_explanation
        if shown is None:
            return None
        self._save_folder = os.path.dirname(os.path.abspath(path))
        self.statusBar().showMessage(f"Saving the Grad-CAM to {os.path.basename(path)}…")
        return self.runner.submit(OWNER, "save_explanation", jobs.save_explanation_job, self.runner.model_cache,
                                  shown.path, shown.model, shown.device, shown.way, shown.class_index, path,
                                  self.preview.opacity.value() / 100, shown.stamp, self.calibration_folder or None,
                                  on_returned=self._on_explanation_saved,
                                  on_error=self._error_handler("save_explanation"))

    def _on_explanation_saved(self, written: tuple[str, str]) -> None:
        picture, heatmap = written
        self.statusBar().showMessage(f"Grad-CAM saved to {picture}, and the map to {os.path.basename(heatmap)}.",
                                     15000)

    def _on_explain_error(self, exc: Exception) -> None:
        text = exc.for_window() if isinstance(exc, CnnviewerError) else f"Grad-CAM failed: {error_text(exc)}"
        self.preview.clear_explanation(text)
        self.statusBar().showMessage(text, 15000)

    def _on_explain_toggled(self, on: bool) -> None:
        if on:
            self.explain()
        else:
            self.preview.clear_explanation()

    def _on_prediction_clicked(self, index) -> None:
        prediction = index.data(Qt.ItemDataRole.UserRole)
        if prediction is None:
            return
        self.explain_class = prediction.index
        if not self.explain_action.isChecked():
            self.explain_action.setChecked(True)  # clicking a class asks to see it
        else:
            self.explain()

    def _on_panel_action(self, action: str) -> None:
        if action == "use_instead":
            self.select_model(self.model_instead())
        elif action == "get_weights":
            self.open_weights_dialog()

    # -- weights ------------------------------------------------------------------------------

    def open_weights_dialog(self, model: str | None = None):
        """The download / import dialog for ``model`` (default: the selected one) if it needs weights."""
        from cnnviewer.gui.weights_dialog import WeightsDialog

        row = self._catalog.get(model or self.selected_model() or "")
        if row is None or row.ready:
            return None
        for open_one in self.findChildren(WeightsDialog):  # one per model: a second Download would cancel the first
            if open_one.row.name == row.name and open_one.isVisible():
                open_one.raise_()
                open_one.activateWindow()
                return open_one
        dialog = WeightsDialog(self, row, self.runner)
        dialog.weights_ready.connect(self._on_weights_ready)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.weights_dialog = dialog
        return dialog

    def import_weights_dialog(self) -> None:
        """File > Import weights: the model comes from the file name, or the user picks it."""
        path, _ = QFileDialog.getOpenFileName(self, "Import weights", "",
                                              "PyTorch weights (*.pth *.pt *.bin);;All files (*)")
        if path:
            self.import_weights(path)

    def import_weights(self, path: str, model: str | None = None) -> int | None:
        """Import a weights file for ``model`` (default: from the file name, else the user picks); the request id.

        Its own request kind in this window's namespace: a download in a weights dialog goes on."""
        from PySide6.QtWidgets import QInputDialog

        from cnnviewer.core.weights import entry_for_filename

        if model is None:
            entry = entry_for_filename(os.path.basename(path))
            model = entry.name if entry else None
        if model is None:
            names = sorted(name for name, row in self._catalog.items() if row.availability != "embedded")
            model, ok = QInputDialog.getItem(self, "Import weights", tooltip(f"Which model are these weights for?\n{path}"),
                                             names, 0, False)
            if not ok:
                return None
        chosen = model
        self.statusBar().showMessage(f"Checking {path}…")
        return self.runner.submit(OWNER, "weights", jobs.import_job, path, chosen, lane="io",
                                  on_returned=lambda final: self._on_weights_ready(chosen, final),
                                  on_error=self._error_handler("weights"))

    def weights_changed(self, model: str) -> None:
        """``model``'s weights were downloaded, imported or removed: nothing it computed before is shown again."""
        for key in [key for key in self._results if key[3] == model]:
            del self._results[key]
        self._weights_changes[model] = self._weights_changes.get(model, 0) + 1
        self.runner.model_cache.forget(model)
        self.runner.explanations.forget(model)
        for chosen in self._auto_choices.values():  # auto measures the new weights again (core keys by digest)
            chosen.pop(model, None)
        self._update_status_model()

    def open_weights_manager(self):
        """Models > Weights manager (Ctrl+Shift+W)."""
        return show_weights_manager(self, self._on_weights_managed)

    def _on_weights_managed(self, model: str) -> None:
        self.weights_changed(model)
        self._load_catalog()  # the picker shows it ready, or needing weights again

    def _on_weights_ready(self, model: str, path: str | None = None) -> None:
        self.weights_changed(model)
        self.statusBar().showMessage(f"Weights of {model} are ready" + (f": {path}" if path else "."), 10000)
        self._wanted_model = model
        self._load_catalog()  # availability changed; the picker marks it ready and re-selects it
        self._reclassify_after_catalog = True

    def _update_weights_action(self) -> None:
        row = self._catalog.get(self.selected_model() or "")
        self.weights_action.setEnabled(row is not None and not row.ready)

    # -- opening things -----------------------------------------------------------------------

    def open_path(self, path: str) -> bool:
        """A folder is shown; a file is selected, previewed and classified (``cnnviewer PATH``, drops)."""
        path = os.path.abspath(os.path.expanduser(path))
        if not os.path.exists(path):
            self.statusBar().showMessage(f"{path}: no such file or folder", 15000)
            self.preview.show_message(f"{path}: no such file or folder")
            return False
        self.browser.go_to(path)
        if os.path.isfile(path):
            self._on_file_activated(path)
        return True

    def open_image_dialog(self) -> None:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self.browser.folder or "",
                                              f"Images ({patterns});;All files (*)")
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder", self.browser.folder or "")
        if folder:
            self.open_path(folder)

    def dragEnterEvent(self, event):  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])

    # -- viewer basics: full screen, the image alone, next/previous, copy, open with --------------

    def _make_viewer_actions(self) -> None:
        """F11, Tab, Esc, Space, Backspace, Ctrl+Shift+C, Ctrl+C in the predictions, Ctrl+Alt+O.

        Tab acts where the focus is on the image (or the window itself), Space and Backspace there, on the
        thumbnails and in the file tree: in a text field Tab still moves the focus and Space types."""
        view_menu, image_menu = self._menu("&View"), self._menu("&Image")
        view_menu.addSeparator()
        self.full_screen_action = QAction("F&ull screen", self)
        self.full_screen_action.setCheckable(True)
        self.full_screen_action.setShortcut(QKeySequence("F11"))
        self.full_screen_action.triggered.connect(self.set_full_screen)
        view_menu.addAction(self.full_screen_action)
        self.panels_action = QAction("&Hide panels (image alone)", self)
        self.panels_action.setCheckable(True)
        self.panels_action.setShortcut(QKeySequence(Qt.Key.Key_Tab))
        self.panels_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.panels_action.triggered.connect(self.set_panels_hidden)
        view_menu.addAction(self.panels_action)
        self.back_action = QAction("Back to the window", self)
        self.back_action.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.back_action.setEnabled(False)  # only while full screen or panels hidden: Esc is the dialogs' otherwise
        self.back_action.triggered.connect(self.back_to_window)
        self.addAction(self.back_action)
        self.next_action = QAction("&Next image", self)
        self.next_action.setShortcut(QKeySequence(Qt.Key.Key_Space))
        self.next_action.triggered.connect(lambda: self.step_image(1))
        self.previous_action = QAction("&Previous image", self)
        self.previous_action.setShortcut(QKeySequence(Qt.Key.Key_Backspace))
        self.previous_action.triggered.connect(lambda: self.step_image(-1))
        for action in (self.next_action, self.previous_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            view_menu.addAction(action)
        # Tab not in the file tree: there it moves the focus on (a keyboard user must get out of it). Space and
        # Backspace step there too: the window starts with the focus in the tree, and a viewer's Space that
        # does nothing until the picture is clicked is broken (the tree's type-ahead still has letters).
        for widget in (self, self.preview.view):
            widget.addAction(self.panels_action)
        for widget in (self, self.preview.view, self.browser.strip, self.browser.tree):
            widget.addActions([self.next_action, self.previous_action])
        image_menu.addSeparator()
        self.copy_action = QAction("Copy &predictions", self)
        self.copy_action.setShortcut(QKeySequence("Ctrl+Shift+C"))
        self.copy_action.setToolTip("The file, model and way, then index, name and probability per line")
        self.copy_action.triggered.connect(self.copy_predictions)
        image_menu.addAction(self.copy_action)
        # Ctrl+C in the predictions copies the selected rows (all if none) as their right-click Copy does; the
        # table's own Ctrl+C copied one cell.
        self.copy_rows_action = QAction("Copy", self.predictions.table)
        self.copy_rows_action.setShortcut(QKeySequence.StandardKey.Copy)
        self.copy_rows_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.copy_rows_action.triggered.connect(self._copy_prediction_rows)
        self.predictions.table.addAction(self.copy_rows_action)
        self.open_with_action = QAction("Open with &system viewer", self)
        self.open_with_action.setShortcut(QKeySequence("Ctrl+Alt+O"))  # Ctrl+Shift+O is Open folder
        self.open_with_action.triggered.connect(self.open_with_system_viewer)
        image_menu.addAction(self.open_with_action)

    def _menu(self, title: str):
        for action in self.menuBar().actions():
            if action.menu() is not None and action.text() == title:
                return action.menu()
        return self.menuBar().addMenu(title)

    def set_full_screen(self, on: bool) -> None:
        state = self.windowState()
        self.setWindowState(state | Qt.WindowState.WindowFullScreen if on else state & ~Qt.WindowState.WindowFullScreen)
        self.full_screen_action.setChecked(on)
        self._update_back_action()

    def is_full_screen(self) -> bool:
        return bool(self.windowState() & Qt.WindowState.WindowFullScreen)

    _hidden_for_image: list[QWidget] = []  # what Tab hid, to show again

    def panels_hidden(self) -> bool:
        return self.panels_action.isChecked()

    def set_panels_hidden(self, hidden: bool) -> None:
        """Tab: the image alone (no docks, toolbars, menus, status bar or thumbnails), or everything back."""
        if hidden == bool(self._hidden_for_image):
            self.panels_action.setChecked(hidden)
            return
        if hidden:
            # Hidden menus no longer carry their shortcuts: the window carries them meanwhile.
            for menu_action in self.menuBar().actions():
                menu = menu_action.menu()
                if isinstance(menu, QWidget):
                    self.addActions([a for a in menu.actions() if not a.isSeparator()])
            bars: list[QWidget] = [self.menuBar(), self.statusBar(), *self.findChildren(QToolBar),
                                   *self.findChildren(QDockWidget), self.browser.strip]
            self._hidden_for_image = [w for w in bars if w.isVisible() and w.parentWidget() is not None]
            for widget in self._hidden_for_image:
                widget.hide()
            self.preview.view.setFocus()  # so Tab, Space and Backspace go on working
        else:
            shown, self._hidden_for_image = self._hidden_for_image, []
            for widget in shown:
                widget.show()
        self.panels_action.setChecked(hidden)
        self._update_back_action()

    def back_to_window(self) -> None:
        """Esc: panels back and full screen left."""
        self.set_panels_hidden(False)
        if self.is_full_screen():
            self.set_full_screen(False)

    def _update_back_action(self) -> None:
        self.back_action.setEnabled(self.panels_hidden() or self.is_full_screen())

    def step_image(self, step: int) -> str | None:
        """Space / Backspace: the next (1) or previous (-1) image of the folder, in the thumbnails' order;
        past the last it wraps round to the first (and back), and the status bar says so."""
        folder = self.browser.folder
        paths = self.browser.images  # listed once per folder: a key press must not scan the disk again
        if not paths:
            self.statusBar().showMessage(f"No images in {folder or 'this folder'}.", 5000)
            return None
        current = os.path.normpath(self.current_path) if self.current_path else None
        names = [os.path.normpath(p) for p in paths]
        position = names.index(current) + step if current in names else (0 if step > 0 else len(paths) - 1)
        path = paths[position % len(paths)]
        self.browser.go_to(path)
        place = f"{os.path.basename(path)} ({position % len(paths) + 1} of {len(paths)})"
        if position >= len(paths):
            self.statusBar().showMessage(f"{place}: past the last image, back to the first.", 5000)
        elif position < 0:
            self.statusBar().showMessage(f"{place}: before the first image, round to the last.", 5000)
        else:
            self.statusBar().showMessage(place, 3000)
        return path

    def copy_predictions(self) -> str | None:
        """Ctrl+Shift+C: the classification on show as text on the clipboard; the text, None if none is shown."""
        outcome = self.last_outcome
        if outcome is None or not outcome.classification.ok or outcome.path != self.current_path:
            self.statusBar().showMessage("Nothing to copy: classify the image first (double-click or Enter).", 8000)
            return None
        text = predictions_text(outcome)
        QApplication.clipboard().setText(text)
        self.statusBar().showMessage(f"Copied the predictions for {os.path.basename(outcome.path)}.", 5000)
        return text

    def _copy_prediction_rows(self) -> None:
        table = self.predictions.table
        rows = sorted({index.row() for index in table.selectionModel().selectedRows()})
        context_menus.copy_rows(table, rows or list(range(table.model().rowCount())))

    def open_with_system_viewer(self) -> bool:
        """Ctrl+Alt+O: the current image in the desktop's own image viewer (QDesktopServices, so a URL
        handler set for "file" receives it instead)."""
        path = self.current_path
        if not path:
            self.statusBar().showMessage("Select an image first, then open it with the system viewer.", 8000)
            return False
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(path)):
            self.statusBar().showMessage(f"No program on this system opened {path}.", 10000)
            return False
        return True

    # -- benchmark ----------------------------------------------------------------------------

    benchmark_window = None

    def open_benchmark(self, folder: str | None = None):
        """File > Benchmark folder, or a folder's context menu in the browser."""
        from cnnviewer.gui.benchmark_window import BenchmarkWindow

        if self.benchmark_window is None:
            self.benchmark_window = BenchmarkWindow(self, self.runner)
            self.benchmark_window.image_opened.connect(self._on_benchmark_image)
        window = self.benchmark_window
        window.refresh_choices()  # weights may have arrived since it was last opened
        window.show()
        window.raise_()
        if folder:
            window.set_folder(folder)
        elif not window.folder:
            window.choose_folder()
        return window

    def open_report_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open benchmark report", "", "report.json (*.json)")
        if path:
            self.open_benchmark_report(path)

    def open_benchmark_report(self, path: str):
        from cnnviewer.gui.benchmark_window import BenchmarkWindow

        if self.benchmark_window is None:
            self.benchmark_window = BenchmarkWindow(self, self.runner)
            self.benchmark_window.image_opened.connect(self._on_benchmark_image)
        self.benchmark_window.show()
        self.benchmark_window.open_report(path)
        return self.benchmark_window

    def _on_benchmark_image(self, path: str) -> None:
        """An image double-clicked in the benchmark window: shown and classified here, this window in front."""
        self.open_path(path)
        self.raise_()
        self.activateWindow()

    def show_benchmark_window(self) -> bool:
        """View > Benchmark window: back to the benchmark window, if one was opened; False otherwise."""
        window = self.benchmark_window
        if window is None:
            self.statusBar().showMessage("No benchmark window yet: File > Benchmark folder… opens one.", 8000)
            return False
        window.show()
        window.raise_()
        window.activateWindow()
        return True

    def _on_folder_context(self, folder: str, position) -> None:
        from PySide6.QtWidgets import QMenu

        menu = QMenu(self)
        menu.addAction("Benchmark this folder…", lambda: self.open_benchmark(folder))
        menu.exec(position)

    # -- compare ------------------------------------------------------------------------------

    def open_compare(self) -> None:
        from cnnviewer.gui.compare import CompareDialog

        if not self.current_path:
            self.statusBar().showMessage("Select an image first, then compare models on it.", 8000)
            return
        if self.compare_dialog is None:
            self.compare_dialog = CompareDialog(self, self.runner)
        self.compare_dialog.open_for(self.current_path, [r for r in self._catalog.values() if r.ready])

    # -- about and closing --------------------------------------------------------------------

    def show_about(self) -> None:
        QMessageBox.about(self, "About cnnviewer", about_text(self.current_device()))

    quit_question: QMessageBox | None = None  # "Quit and keep the results so far?", while it is shown
    _quit_answered = False  # Quit was chosen: the next close goes ahead whatever runs

    def confirm_quit_during_benchmark(self) -> bool:
        """Whether the window may close now. While a benchmark runs it asks first, and returns False: the
        question does not block (a run goes on meanwhile); Quit closes the window, which cancels the run and
        keeps its report so far, and Cancel leaves the window and the run as they were."""
        bench = self.benchmark_window
        if self._quit_answered or bench is None or not bench.is_running():
            return True
        if self.quit_question is None:
            number, models = bench.running_model()
            where = f" (model {number} of {models})" if number else ""
            box = QMessageBox(QMessageBox.Icon.Question, "Quit cnnviewer",
                              f"A benchmark is running{where}. Quit and keep the results so far?",
                              QMessageBox.StandardButton.NoButton, self)
            quit_button = box.addButton("Quit", QMessageBox.ButtonRole.AcceptRole)
            box.addButton(QMessageBox.StandardButton.Cancel)
            box.setDefaultButton(quit_button)  # Ctrl+Q then Enter quits; Escape keeps the run
            box.finished.connect(lambda _: self._on_quit_answered(box.clickedButton() is quit_button))
            self.quit_question = box
            box.open()
        self.quit_question.raise_()
        return False

    def _on_quit_answered(self, quit_now: bool) -> None:
        box, self.quit_question = self.quit_question, None
        if box is not None:
            box.deleteLater()
        if quit_now:
            self._quit_answered = True
            self.close()

    def closeEvent(self, event):  # noqa: N802 - Qt override
        if not self.confirm_quit_during_benchmark():
            event.ignore()
            return
        self.save_settings()
        self._keep_measuring.cancel()  # a measurement for auto stops with its request
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        if self.benchmark_window is not None:
            self.benchmark_window.close()  # it cancels its run; what finished is kept on disk
        if self._owns_runner:
            self.runner.shutdown(5000)  # cancels every request, delivers nothing more, waits for the threads
        else:
            self.runner.forget_owner(OWNER)
        super().closeEvent(event)


def about_text(device: str) -> str:
    import platform

    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    lines = [f"<b>cnnviewer {__version__}</b>",
             "See what image-classification CNNs see, and compare them honestly.<br>",
             f"Python {platform.python_version()} · Qt {qVersion()} · PySide6 {pyside_version}"]
    torch = sys.modules.get("torch")
    torchvision = sys.modules.get("torchvision")
    if torch is not None:
        lines.append(f"torch {torch.__version__} · torchvision {getattr(torchvision, '__version__', '?')}")
        from cnnviewer.core.catalog import checkpoints_dir

        lines.append(f"Weights cache: {escape(checkpoints_dir())}")
    lines.append(f"Device: {escape(device)}")
    lines.append(f"Settings: {escape(config_dir())}")
    lines.append(f"Log file (full error details): {escape(log_file())}")
    return "<br>".join(lines)


def run_window(path: str | None = None) -> MainWindow:
    window = MainWindow()
    window.show()
    if path:
        QTimer.singleShot(0, lambda: window.open_path(path))
    return window


def ensure_app() -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):  # none yet (a bare QCoreApplication cannot make widgets anyway)
        app = QApplication(sys.argv[:1])
        app.setApplicationName("cnnviewer")
        app.setOrganizationName("cnnviewer")
        app.setApplicationVersion(__version__)
    return app
