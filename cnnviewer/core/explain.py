"""Grad-CAM: where a model looked for a class, as a map over the image (values 0..1), and its overlay.

Written with a forward hook and ``torch.autograd.grad`` rather than a library: the maintained package
(pytorch-grad-cam) pulls in OpenCV, matplotlib and scikit-learn, which a bundled desktop app would
carry for ~30 lines. Only the target layer's gradient is computed (no backward pass into the weights).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnviewer.core.errors import CnnviewerError, ImageLoadError, OutputError
from cnnviewer.core.files import atomic_write, output_target
from cnnviewer.core.inference import Classifier
from cnnviewer.core.ways import FP32, RunAs


class ExplainError(CnnviewerError):
    """The model cannot be explained this way (no convolutional stage to look at)."""


# The last convolutional stage of each family: its output is what the classifier head sees.
_TARGETS = (
    ("resnet", "layer4"), ("resnext", "layer4"), ("wide_resnet", "layer4"),
    ("googlenet", "inception5b"), ("inception_v3", "Mixed_7c"),
    ("vgg", "features"), ("alexnet", "features"), ("squeezenet", "features"), ("densenet", "features"),
    ("mobilenet", "features"), ("efficientnet_lite", "_bn1"), ("efficientnet", "features"),
    ("mnasnet", "layers"), ("shufflenet", "conv5"), ("regnet", "trunk_output"), ("convnext", "features"),
)


def target_layer(name: str, module: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads for this architecture; ExplainError for transformers."""
    for prefix, attribute in _TARGETS:
        if name.startswith(prefix):
            layer: nn.Module = getattr(module, attribute)
            return layer
    raise ExplainError(
        f"{name} cannot be explained with Grad-CAM: it is a transformer without a final convolutional "
        "stage. Choose a convolutional model (ResNet, GoogLeNet, Inception V3, VGG, MobileNet, EfficientNet...).")


@dataclass(frozen=True)
class Explanation:
    """A Grad-CAM map over the image the model saw, for one model and one class.

    ``probability`` is the class's, as the classification gives it; ``way`` is how the map was
    computed (FP32 when the classification ran a way without gradients, bf16 or ONNX Runtime).
    """

    model: str
    class_index: int
    class_name: str
    probability: float
    heatmap: np.ndarray  # float32, H x W of ``image``, 0..1; zero outside the centre crop the model saw
    image: Image.Image  # the image as decoded for the model (EXIF orientation applied): what the map lies over
    way: RunAs = FP32
    crop_box: tuple[float, float, float] | None = None  # the centre crop in ``image``: (left, top, side), pixels

    def crop_fractions(self) -> tuple[float, float, float, float]:
        """The centre crop as fractions of the image: (left, top, width, height), to draw it at any size."""
        width, height = self.image.size
        left, top, side = self.crop_box or (0.0, 0.0, float(min(width, height)))
        return left / width, top / height, side / width, side / height


def _crop_box(width: int, height: int, resize: int, crop: int) -> tuple[float, float, float]:
    """Where the model's centre crop lies in the original image: (left, top, side), in pixels."""
    scale = resize / min(width, height)
    side = crop / scale
    return (width - side) / 2, (height - side) / 2, side


def grad_cam(classifier: Classifier, image: Image.Image, class_index: int | None = None) -> Explanation:
    """Grad-CAM of ``class_index`` (default: the top-1) for an in-memory RGB image, mapped back onto it.

    The image goes through the classifier's own preprocessing and forward; ``classifier`` must run a
    way with gradients (FP32 eager torch). A file is explained with explain_file, which decodes it
    as classification does.
    """
    return _explain(classifier, classifier.preprocess(image), image, class_index, None)


def explain_file(classifier: Classifier, path: str | os.PathLike[str], class_index: int | None = None,
                 gradients: Classifier | None = None) -> Explanation:
    """Grad-CAM of ``class_index`` (default: the top-1 the classification shows) for the file ``path``.

    The file is decoded by ``classifier.decode`` and run by ``classifier.forward``, exactly as when it
    is classified, so the class and probability are the classification's. Where the classifier's way
    has no gradients (bf16, ONNX Runtime), the class and probability still come from it, and the map
    from ``gradients``, an FP32 torch Classifier of the same model; ``Explanation.way`` then says FP32.
    Raises ImageLoadError for a file that cannot be read.
    """
    model = classifier
    if not classifier.loaded.way.has_gradients:
        if (gradients is None or not gradients.loaded.way.has_gradients
                or gradients.entry.name != classifier.entry.name):
            raise ExplainError(f"Grad-CAM needs gradients, which {classifier.entry.name} run as "
                               f"{classifier.loaded.way} does not give; it needs {classifier.entry.name} in FP32 "
                               "beside it.")
        model = gradients
    decoded = classifier.decode(path)
    if decoded.tensor is None or decoded.image is None:
        raise ImageLoadError(decoded.path, decoded.error or "cannot be read")
    shown = None  # the map's own forward gives the classification's probabilities
    if model is not classifier:
        shown = torch.softmax(classifier.forward(decoded.tensor.unsqueeze(0)).float(), dim=1)[0]
    return _explain(model, decoded.tensor, decoded.image, class_index, shown)


def _explain(classifier: Classifier, tensor: torch.Tensor, image: Image.Image, class_index: int | None,
             shown: torch.Tensor | None) -> Explanation:
    """The map of one preprocessed image; ``shown``: the probabilities the classification gave, when it
    ran another way than ``classifier`` (else this forward's own are the classification's)."""
    entry = classifier.entry
    if not classifier.loaded.way.has_gradients:
        raise ExplainError(f"Grad-CAM needs gradients, which {entry.name} run as {classifier.loaded.way} does not "
                           "give; explain it with the FP32 model.")
    module = classifier.loaded.module
    layer = target_layer(entry.name, module)
    captured: dict[str, torch.Tensor] = {}

    def forward_hook(_module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured["activation"] = output

    handle = layer.register_forward_hook(forward_hook)
    try:
        # The input asks for gradients too, so a model whose weights are frozen is explained as well.
        logits = classifier.forward(tensor.unsqueeze(0).requires_grad_(True), gradients=True)
    finally:
        handle.remove()
    probabilities = torch.softmax(logits.detach().float(), dim=1)[0] if shown is None else shown
    index = int(probabilities.argmax()) if class_index is None else int(class_index)
    if not 0 <= index < logits.shape[1]:
        raise ExplainError(f"class {index} is not an ImageNet-1k class index (0-999)")
    activation = captured.get("activation")
    if activation is None or not activation.requires_grad:  # a detached head, or a model with frozen weights
        raise ExplainError(f"{entry.name} cannot be explained with Grad-CAM: no gradient reaches its "
                           "last convolutional stage.")
    # Only the activation's gradient is computed: no parameter gets a .grad, nothing is left behind.
    (gradient,) = torch.autograd.grad(logits[0, index], activation, allow_unused=True)
    if gradient is None:  # the layer's output did not lead to the class score
        raise ExplainError(f"{entry.name} cannot be explained with Grad-CAM: no gradient reaches its "
                           "last convolutional stage.")
    weights = gradient.float().mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activation.detach().float()).sum(dim=1))[0].cpu().numpy().astype(np.float32)
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else np.zeros_like(cam)
    resize, crop = entry.preprocessing.resize_size, entry.preprocessing.crop_size
    heatmap = _onto_image(cam, image.size, resize, crop)
    return Explanation(entry.name, index, entry.categories[index], float(probabilities[index]), heatmap, image,
                       classifier.loaded.way, _crop_box(image.size[0], image.size[1], resize, crop))


def heatmap_at(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The map stretched to ``size`` (width, height): to draw it over another copy of the same photo."""
    if (heatmap.shape[1], heatmap.shape[0]) == tuple(size):
        return heatmap
    stretched = Image.fromarray(heatmap.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(stretched, dtype=np.float32), 0.0, 1.0)


def _onto_image(cam: np.ndarray, size: tuple[int, int], resize: int, crop: int) -> np.ndarray:
    """Stretch the map over the centre crop it came from; outside the crop the model saw nothing."""
    width, height = size
    left, top, side = _crop_box(width, height, resize, crop)
    span = max(1, int(round(side)))
    stretched = np.asarray(Image.fromarray((cam * 255).astype(np.float32), "F").resize(
        (span, span), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    canvas = np.zeros((height, width), np.float32)
    x0, y0 = int(round(left)), int(round(top))
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(width, x0 + span), min(height, y0 + span)
    canvas[ys:ye, xs:xe] = stretched[ys - y0: ye - y0, xs - x0: xe - x0]
    return np.clip(canvas, 0.0, 1.0)


# How far past the centre crop the drawn map fades out, as a fraction of the crop's side: enough that no
# hard edge shows at full opacity, little enough that nobody reads it as evidence the model never saw.
FADE_FRACTION = 0.04


def fade_outside(heatmap: np.ndarray, box: tuple[float, float, float],
                 fraction: float = FADE_FRACTION) -> np.ndarray:
    """The map for drawing: past the crop ``box`` ((left, top, side) in the map's pixels) each edge value
    fades to 0 over ``fraction`` of the side instead of ending in a hard rectangle; inside, unchanged."""
    height, width = heatmap.shape
    left, top, side = box
    span = max(1, int(round(side)))
    x0, y0 = max(0, int(round(left))), max(0, int(round(top)))
    x1, y1 = min(width, int(round(left)) + span) - 1, min(height, int(round(top)) + span) - 1
    if x1 < x0 or y1 < y0:
        return heatmap
    columns, rows = np.arange(width), np.arange(height)
    dx = np.maximum(np.maximum(x0 - columns, columns - x1), 0).astype(np.float32)
    dy = np.maximum(np.maximum(y0 - rows, rows - y1), 0).astype(np.float32)
    fade = np.clip(1 - np.hypot(dy[:, None], dx[None, :]) / max(1.0, fraction * side), 0, 1)
    fade = fade * fade * (3 - 2 * fade)  # smoothstep: no visible kink where the fade begins or ends
    edge = heatmap[np.clip(rows, y0, y1)[:, None], np.clip(columns, x0, x1)[None, :]]
    faded: np.ndarray = (edge * fade).astype(np.float32)
    return faded


def drawn_map(explanation: Explanation, size: tuple[int, int] | None = None) -> np.ndarray:
    """The map as it is drawn over a copy of the photo of ``size`` (default: the explained image's):
    stretched to it, and faded out past the centre crop (fade_outside)."""
    width, height = explanation.image.size
    size = size or (width, height)
    heatmap = heatmap_at(explanation.heatmap, size)
    if explanation.crop_box is None:
        return heatmap
    left, top, side = explanation.crop_box
    scale_x, scale_y = size[0] / width, size[1] / height
    return fade_outside(heatmap, (left * scale_x, top * scale_y, side * scale_x))


_PICTURE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def picture_format(path: str | os.PathLike[str]) -> str:
    """The Pillow format a picture is written in, by the name's suffix (PNG unless it names another)."""
    return _PICTURE_FORMATS.get(Path(os.fspath(path)).suffix.lower(), "PNG")


def save_explanation(explanation: Explanation, path: str | os.PathLike[str], opacity: float = 0.6,
                     image: Image.Image | None = None, heatmap_path: str | os.PathLike[str] | None = None,
                     keep_map: bool = True) -> tuple[Path, Path | None]:
    """Write the overlay picture to ``path`` (PNG, or JPEG... by its suffix) and the map beside it as
    ``<stem>.npy`` (or to ``heatmap_path``; not at all when ``keep_map`` is false); returns the files written.

    Both are at the size of ``image``, the photo at its own size (load_image), when given, else of the
    image as decoded for the model (a large JPEG is decoded smaller). The .npy holds float32 values in
    0..1, zero outside the centre crop the model saw; the picture fades the map out past the crop.
    Each file is written atomically, and a new picture is removed again if the map cannot be written.
    Raises OutputError naming the file and the reason (read-only folder, disk full...).
    """
    picture_path = Path(os.fspath(path))
    npy_path = Path(os.fspath(heatmap_path)) if heatmap_path is not None else picture_path.with_suffix(".npy")
    if keep_map and output_target(picture_path) == output_target(npy_path):
        raise OutputError(f"{picture_path}: is where the map would be saved too; give the picture a .png or "
                          ".jpg name")
    photo = image if image is not None else explanation.image
    buffer = io.BytesIO()
    np.save(buffer, heatmap_at(explanation.heatmap, photo.size).astype(np.float32))
    picture = overlay(photo, drawn_map(explanation, photo.size), opacity)
    picture_was_there = output_target(picture_path).exists()
    written_picture = atomic_write(picture_path, lambda handle: picture.save(handle,
                                                                             format=picture_format(picture_path)))
    if not keep_map:
        return written_picture, None
    try:
        written_npy = atomic_write(npy_path, lambda handle: handle.write(buffer.getvalue()))
    except BaseException:
        if not picture_was_there:  # both files or neither: half of what was asked for would mislead
            written_picture.unlink(missing_ok=True)
        raise
    return written_picture, written_npy


# A perceptually ordered blue -> cyan -> yellow -> red scale (like "turbo"), as anchor colours.
_ANCHORS = np.array([[48, 18, 59], [70, 134, 251], [27, 229, 181], [164, 252, 60], [251, 185, 56],
                     [228, 70, 10], [122, 4, 3]], dtype=np.float32)


def colourise(heatmap: np.ndarray) -> np.ndarray:
    """0..1 map -> H x W x 3 uint8 colours."""
    positions = np.clip(heatmap, 0, 1) * (len(_ANCHORS) - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, len(_ANCHORS) - 1)
    t = (positions - low)[..., None]
    colours: np.ndarray = (_ANCHORS[low] * (1 - t) + _ANCHORS[high] * t).astype(np.uint8)
    return colours


# From this value up the map is drawn at the opacity chosen; below it, it fades smoothly to nothing at 0.
ALPHA_FULL = 0.5


def heat_alpha(heatmap: np.ndarray) -> np.ndarray:
    """How opaque the map is drawn at each value, 0..1: a smoothstep from 0 to ALPHA_FULL.

    Faint values are nearly transparent and the opacity rises with no kink where the map leaves 0. The
    square root once used here gave a value of 0.003 5 % opacity in the scale's darkest colour: on a
    white photo the faint, flat parts of the map showed as grey blocks whose edges followed the
    last zero of the map, sharp because the root is steepest there.
    """
    t = np.clip(heatmap / ALPHA_FULL, 0.0, 1.0).astype(np.float32)
    alpha: np.ndarray = t * t * (3 - 2 * t)
    return alpha


def overlay(image: Image.Image, heatmap: np.ndarray, opacity: float = 0.6) -> Image.Image:
    """The map in colour over the image, stronger where the map is high; ``opacity`` 0 shows the image.

    Where the map is zero (including outside the centre crop the model saw) the photo stays as it is.
    """
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    alpha = (float(np.clip(opacity, 0.0, 1.0)) * heat_alpha(heatmap))[..., None]
    blended = base * (1 - alpha) + colourise(heatmap).astype(np.float32) * alpha
    return Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8), "RGB")


def colour_scale(width: int = 256, height: int = 16) -> Image.Image:
    """The colour scale as a picture, low on the left, high on the right."""
    ramp = np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))
    return Image.fromarray(colourise(ramp), "RGB")


def can_explain(name: str) -> bool:
    return any(name.startswith(prefix) for prefix, _ in _TARGETS)


def heat_rgba(heatmap: np.ndarray, max_side: int = 1600) -> np.ndarray:
    """The map as RGBA for drawing over a picture: colour by value, alpha as heat_alpha gives it."""
    height, width = heatmap.shape
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        heatmap = np.asarray(Image.fromarray(heatmap.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR))
    rgba = np.empty(heatmap.shape + (4,), np.uint8)
    rgba[..., :3] = colourise(heatmap)
    rgba[..., 3] = np.round(heat_alpha(heatmap) * 255).astype(np.uint8)
    return rgba
