"""The preview: the image as it will be classified, fit to the view, with 100 % and wheel zoom."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QFrame,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from cnnviewer.core.units import human_bytes
from cnnviewer.gui.text import make_plain, tooltip

#: The class box's narrowest, in letters: "mortarboard" and "ice bear" whole, longer names cut at the end.
CLASS_BOX_LETTERS = 10


class ElidedLabel(QLabel):
    """One line that ends in "…" where it does not fit, never wider than its room; the whole text is
    ``text()`` and the tooltip."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        # Ignored: a long caption must not widen the centre and squeeze the docks.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        self.setText(text)
        self.setToolTip(tooltip(text) if text else "")

    def displayed_text(self) -> str:
        """What is drawn: the text, cut with "…" to the label's width."""
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width())

    def paintEvent(self, event):  # noqa: N802 - Qt override
        painter = QPainter(self)
        self.style().drawItemText(painter, self.contentsRect(), int(self.alignment() | Qt.TextFlag.TextSingleLine),
                                  self.palette(), self.isEnabled(), self.displayed_text(), self.foregroundRole())


def _outline(colour: QColor, style: Qt.PenStyle, parent: QGraphicsPixmapItem) -> QGraphicsRectItem:
    pen = QPen(colour, 1.5, style)
    pen.setCosmetic(True)  # the same thin line at every zoom
    item = QGraphicsRectItem(parent)
    item.setPen(pen)
    item.hide()
    return item


class ImageView(QGraphicsView):
    """Fits the image until the user zooms; the wheel zooms around the cursor."""

    zoom_changed = Signal(float)
    heat_changed = Signal(bool)  # a Grad-CAM map is drawn (True) or no longer (False)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._item)
        # The Grad-CAM map sits on the photo as a child item: zoom and scroll move them together.
        self._heat = QGraphicsPixmapItem(self._item)
        self._heat.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._heat.setOpacity(0.6)
        self._heat.hide()
        # The centre crop the model saw, dashed white over a dark line so it shows on light and dark photos.
        self._crop = (_outline(QColor(0, 0, 0, 150), Qt.PenStyle.SolidLine, self._item),
                      _outline(QColor(255, 255, 255, 230), Qt.PenStyle.DashLine, self._item))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._fit = True

    def set_heat(self, heat: QImage | None, crop: tuple[float, float, float, float] | None = None) -> None:
        """Draw a map over the photo, stretched to cover it (the map may be smaller than the photo), and
        the outline of ``crop``, the centre crop the model saw (fractions: left, top, width, height)."""
        for line in self._crop:
            line.hide()
        if heat is None or not self.has_image():
            self._heat.hide()
            self.heat_changed.emit(False)
            return
        self._heat.setPixmap(QPixmap.fromImage(heat))
        photo = self._item.pixmap()
        self._heat.setTransform(QTransform.fromScale(photo.width() / heat.width(), photo.height() / heat.height()))
        self._heat.show()
        if crop is not None:
            left, top, width, height = crop
            rect = QRectF(left * photo.width(), top * photo.height(), width * photo.width(), height * photo.height())
            for line in self._crop:
                line.setRect(rect)
                line.show()
        self.heat_changed.emit(True)

    def crop_outline(self) -> QRectF | None:
        """The crop outline drawn, in the photo's pixels; None when none is drawn."""
        return self._crop[1].rect() if self._crop[1].isVisible() else None

    def heat_image(self) -> QImage | None:
        """The map drawn over the photo (RGBA), None when none is."""
        return self._heat.pixmap().toImage() if self._heat.isVisible() else None

    def heat_visible(self) -> bool:
        return self._heat.isVisible()

    def set_heat_opacity(self, opacity: float) -> None:
        self._heat.setOpacity(opacity)

    def set_image(self, image: QImage | None) -> None:
        was_drawn = self._heat.isVisible()
        self._heat.hide()
        for line in self._crop:
            line.hide()
        if was_drawn:
            self.heat_changed.emit(False)
        self._item.setPixmap(QPixmap.fromImage(image) if image is not None else QPixmap())
        self.scene().setSceneRect(self._item.boundingRect())
        self.fit()

    def has_image(self) -> bool:
        return not self._item.pixmap().isNull()

    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        self._fit = True
        if self.has_image():
            self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)
        self.zoom_changed.emit(self.zoom())

    def actual_size(self) -> None:
        self._fit = False
        self.resetTransform()
        self.zoom_changed.emit(1.0)

    def zoom_by(self, factor: float) -> None:
        new = self.zoom() * factor
        if not 0.02 <= new <= 32:
            return
        self._fit = False
        self.scale(factor, factor)
        self.zoom_changed.emit(self.zoom())

    def wheelEvent(self, event):  # noqa: N802 - Qt override
        if not self.has_image():
            return
        self.zoom_by(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event):  # noqa: N802
        super().resizeEvent(event)
        if self._fit:
            self.fit()


class PreviewPanel(QWidget):
    """The image view plus a line of facts (file size, dimensions, colour mode), and the Grad-CAM row."""

    class_chosen = Signal(int)  # a class picked by name in the class picker: explain it
    class_refused = Signal(str)  # a typed name that is not one class: the sentence that says why

    def __init__(self, parent=None):
        super().__init__(parent)
        self.view = ImageView(self)
        self.placeholder = QLabel("Double-click a photo in the browser (or drop one here) to classify it.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.facts = QLabel("")
        self.facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.zoom_label = QLabel("")
        # As wide as the widest zoom from the start: a label sized for "83 %" cut "112 %" to "112 9".
        self.zoom_label.setMinimumWidth(self.zoom_label.fontMetrics().horizontalAdvance("3200 %") + 4)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # No figure without a picture: a resize re-fits the empty view, and "100 %" of nothing misleads.
        self.view.zoom_changed.connect(
            lambda z: self.zoom_label.setText(f"{z * 100:.0f} %" if self.view.has_image() else ""))
        self.explain_box = QCheckBox("Grad-CAM")
        self.explain_box.setToolTip("Show where the model looked for the class (click a prediction to switch class)")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.opacity.setMinimumWidth(60)
        self.opacity.setMaximumWidth(140)
        self.opacity.setToolTip("Opacity of the map")
        self.opacity.valueChanged.connect(lambda v: self.view.set_heat_opacity(v / 100))
        self.scale = QLabel()
        self.scale.setToolTip("Colour scale: low (left) to high (right) contribution to the class")
        self.scale.setFixedSize(96, 12)
        self.scale.setScaledContents(True)
        self._pending_class_text: str | None = None
        self.class_picker = self._make_class_picker()
        self.explain_caption = ElidedLabel()
        # Long file names must not widen the centre and squeeze the docks: they are cut instead.
        self.facts.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        make_plain(self.placeholder, self.facts)  # file names and error sentences
        facts = QHBoxLayout()
        facts.addWidget(self.facts, 1)
        # The colour scale sits under the picture it explains, not in the Grad-CAM row: there it took the
        # room the class box needs, and a narrow window left "rtarboard" of "mortarboard".
        facts.addWidget(QLabel("low"))
        facts.addWidget(self.scale)
        facts.addWidget(QLabel("high"))
        facts.addSpacing(6)
        facts.addWidget(self.zoom_label)  # here, not in the Grad-CAM row, whose caption it once cut
        controls = QHBoxLayout()
        controls.addWidget(self.explain_box)
        controls.addWidget(self.class_picker, 1)
        controls.addSpacing(6)
        controls.addWidget(QLabel("opacity"))
        controls.addWidget(self.opacity)
        controls.addStretch(0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.placeholder, 1)
        layout.addWidget(self.view, 1)
        layout.addLayout(facts)
        layout.addLayout(controls)
        # A line of its own: the class, its probability and the way the map was computed must be readable.
        layout.addWidget(self.explain_caption)
        self.view.hide()

    def _make_class_picker(self) -> QComboBox:
        """Any of the 1000 classes, found by typing part of its name or its index ("granny", "948")."""
        picker = QComboBox(self)
        line = QLineEdit(picker)
        line.setPlaceholderText("explain class…")
        picker.setLineEdit(line)
        picker.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        picker.setMinimumContentsLength(CLASS_BOX_LETTERS)  # it grows with the room
        picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        picker.setMaximumWidth(picker.fontMetrics().horizontalAdvance("x" * 34))  # the longest names, no more
        picker.setMaxVisibleItems(16)
        picker.setToolTip("Explain any ImageNet class: type part of its name or its index (Ctrl+Shift+E)")
        picker.setEnabled(False)  # until the names are there (they come with torchvision, after start-up)
        completer = QCompleter(picker.model(), picker)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        completer.setMaxVisibleItems(12)
        picker.setCompleter(completer)
        completer.activated.connect(self._on_class_text)  # the text overload: "948 Granny Smith"
        picker.activated.connect(lambda row: self._on_class_text(picker.itemText(row)))
        line.returnPressed.connect(lambda: self._on_class_text(line.text()))
        return picker

    def set_class_names(self, names) -> None:
        """Fill the class picker with "index name" for each class (once)."""
        if self.class_picker.count():
            return
        self.class_picker.addItems([f"{index} {name}" for index, name in enumerate(names)])
        self.class_picker.setCurrentIndex(-1)
        self.class_picker.setEnabled(True)

    def class_of(self, text: str) -> int:
        """The class a picker text names: an entry of its list ("948 Granny Smith"), else what the command
        line's ``explain --class`` takes (core.labels.class_of); raises UnknownClass with the reason."""
        from cnnviewer.core.labels import class_of

        text = " ".join(text.split())
        head = text.split(" ", 1)[0]
        if head.isdigit() and int(head) < self.class_picker.count() and (
                text == head or self.class_picker.itemText(int(head)).casefold() == text.casefold()):
            return int(head)
        return class_of(text)

    def _on_class_text(self, text: str) -> None:
        # One Enter reaches here up to three times (the completer, the combo, the line edit): the last text
        # of this turn of the event loop is resolved once, so one explain request is made, not three.
        first = self._pending_class_text is None
        self._pending_class_text = text
        if first:
            QTimer.singleShot(0, self, self._resolve_class_text)

    def _resolve_class_text(self) -> None:
        from cnnviewer.core.labels import UnknownClass

        text, self._pending_class_text = self._pending_class_text or "", None
        try:
            index = self.class_of(text)
        except UnknownClass as exc:
            self.class_refused.emit(f"Grad-CAM: {exc}.")
            return
        self.class_picker.setEditText(self.class_picker.itemText(index))
        self.class_chosen.emit(index)

    def set_colour_scale(self, image: QImage) -> None:
        self.scale.setPixmap(QPixmap.fromImage(image))

    def show_explanation(self, outcome, note: str = "") -> None:
        """Draw the map and say what it explains; ``note`` follows the probability ("not in the top 3")."""
        self.view.set_heat(outcome.heat, outcome.crop)
        note = f", {note}" if note else ""
        text = (f"Grad-CAM: {outcome.class_name} (class {outcome.class_index}, {outcome.probability * 100:.2f} %"
                f"{note}) · {outcome.model} · {outcome.way_label}")
        if outcome.map_way != outcome.way:  # bf16 and ONNX Runtime have no gradients: the FP32 copy drew the map
            text += f" · map computed in {outcome.map_way.label}; classified as {outcome.way_label}"
        self.explain_caption.set_full_text(text)
        if not self.class_picker.hasFocus() and outcome.class_index < self.class_picker.count():
            self.class_picker.setEditText(self.class_picker.itemText(outcome.class_index))

    def clear_explanation(self, text: str = "") -> None:
        self.view.set_heat(None)
        self.explain_caption.set_full_text(text)

    def show_preview(self, data) -> None:
        info = data.info
        self.placeholder.hide()
        self.view.show()
        self.view.set_image(data.image)
        frames = f" · {info.frames} frames (first shown)" if info.frames > 1 else ""
        self.facts.setText(f"{info.path.rsplit('/', 1)[-1]} · {human_bytes(info.file_size)} · "
                           f"{info.width} × {info.height} · {info.format} {info.mode}{frames}")

    def show_message(self, text: str) -> None:
        self.view.hide()
        self.view.set_image(None)
        self.placeholder.setText(text)
        self.placeholder.show()
        self.facts.setText("")
