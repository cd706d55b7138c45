"""The preview: the image as it will be classified, fit to the view, with 100 % and wheel zoom."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap, QTransform
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from cnnviewer.core.units import human_bytes
from cnnviewer.gui.text import make_plain, tooltip


class ImageView(QGraphicsView):
    """Fits the image until the user zooms; the wheel zooms around the cursor."""

    zoom_changed = Signal(float)

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
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._fit = True

    def set_heat(self, heat: QImage | None) -> None:
        """Draw a map over the photo, stretched to cover it (the map may be smaller than the photo)."""
        if heat is None or not self.has_image():
            self._heat.hide()
            return
        self._heat.setPixmap(QPixmap.fromImage(heat))
        photo = self._item.pixmap()
        self._heat.setTransform(QTransform.fromScale(photo.width() / heat.width(), photo.height() / heat.height()))
        self._heat.show()

    def heat_visible(self) -> bool:
        return self._heat.isVisible()

    def set_heat_opacity(self, opacity: float) -> None:
        self._heat.setOpacity(opacity)

    def set_image(self, image: QImage | None) -> None:
        self._heat.hide()
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
    """The image view plus a line of facts (file size, dimensions, colour mode)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.view = ImageView(self)
        self.placeholder = QLabel("Double-click a photo in the browser (or drop one here) to classify it.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.facts = QLabel("")
        self.facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.zoom_label = QLabel("")
        self.view.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.explain_box = QCheckBox("Grad-CAM")
        self.explain_box.setToolTip("Show where the model looked for the class (click a prediction to switch class)")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.opacity.setMinimumWidth(90)
        self.opacity.setMaximumWidth(140)
        self.opacity.setToolTip("Opacity of the map")
        self.opacity.valueChanged.connect(lambda v: self.view.set_heat_opacity(v / 100))
        self.scale = QLabel()
        self.scale.setToolTip("Colour scale: low (left) to high (right) contribution to the class")
        self.explain_caption = QLabel("")
        # Long captions must not widen the centre and squeeze the docks: they are cut instead.
        for label in (self.explain_caption, self.facts):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        make_plain(self.placeholder, self.facts, self.explain_caption)  # file names and error sentences
        controls = QHBoxLayout()
        controls.addWidget(self.explain_box)
        controls.addWidget(QLabel("opacity"))
        controls.addWidget(self.opacity)
        controls.addWidget(QLabel("low"))
        controls.addWidget(self.scale)
        controls.addWidget(QLabel("high"))
        controls.addStretch(1)
        controls.addWidget(self.zoom_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.placeholder, 1)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.facts)
        layout.addLayout(controls)
        # A line of its own: the class, its probability and the way the map was computed must be readable.
        layout.addWidget(self.explain_caption)
        self.view.hide()

    def set_colour_scale(self, image: QImage) -> None:
        self.scale.setPixmap(QPixmap.fromImage(image))

    def show_explanation(self, outcome) -> None:
        self.view.set_heat(outcome.heat)
        text = (f"Grad-CAM: {outcome.class_name} (class {outcome.class_index}, {outcome.probability * 100:.2f} %) "
                f"· {outcome.model} · {outcome.way.label}")
        if outcome.map_way != outcome.way:  # bf16 and ONNX Runtime have no gradients: the FP32 copy drew the map
            text += f" · map computed in {outcome.map_way.label}; classified as {outcome.way.label}"
        self.explain_caption.setText(text)
        self.explain_caption.setToolTip(tooltip(text))

    def clear_explanation(self, text: str = "") -> None:
        self.view.set_heat(None)
        self.explain_caption.setText(text)

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
