"""Grad-CAM: where a model looked for a class, as a map over the image (values 0..1), and its overlay.

Written with two hooks rather than a library: the maintained package (pytorch-grad-cam) pulls in
OpenCV, matplotlib and scikit-learn, which a bundled desktop app would carry for ~30 lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnviewer.core.errors import CnnviewerError
from cnnviewer.core.inference import Classifier


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
    """A Grad-CAM map at the image's own size, for one model and one class."""

    model: str
    class_index: int
    class_name: str
    probability: float
    heatmap: np.ndarray  # float32, H x W of the image, 0..1


def _crop_box(width: int, height: int, resize: int, crop: int) -> tuple[float, float, float]:
    """Where the model's centre crop lies in the original image: (left, top, side), in pixels."""
    scale = resize / min(width, height)
    side = crop / scale
    return (width - side) / 2, (height - side) / 2, side


def grad_cam(classifier: Classifier, image: Image.Image, class_index: int | None = None) -> Explanation:
    """Grad-CAM of ``class_index`` (default: the top-1) for an RGB image, mapped back onto the image."""
    entry = classifier.entry
    module = classifier.loaded.module
    layer = target_layer(entry.name, module)
    captured: dict[str, torch.Tensor] = {}

    def forward_hook(_module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        output.retain_grad()
        captured["activation"] = output

    handle = layer.register_forward_hook(forward_hook)
    try:
        parameter = next(module.parameters())
        batch = classifier.preprocess(image).unsqueeze(0).to(classifier.loaded.device, parameter.dtype)
        with torch.enable_grad():
            module.zero_grad(set_to_none=True)
            logits = module(batch)
            probabilities = torch.softmax(logits.detach().float(), dim=1)[0]
            index = int(probabilities.argmax()) if class_index is None else int(class_index)
            if not 0 <= index < logits.shape[1]:
                raise ExplainError(f"class {index} is not an ImageNet-1k class index (0-999)")
            logits[0, index].backward()
    finally:
        handle.remove()
    activation = captured["activation"]
    gradient = activation.grad
    if gradient is None:  # the layer's output did not lead to the class score (a detached head, say)
        raise ExplainError(f"{entry.name} cannot be explained with Grad-CAM: no gradient reached its "
                           "last convolutional stage.")
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activation).sum(dim=1))[0].detach().float().cpu().numpy().astype(np.float32)
    module.zero_grad(set_to_none=True)
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else np.zeros_like(cam)
    heatmap = _onto_image(cam, image.size, entry.preprocessing.resize_size, entry.preprocessing.crop_size)
    return Explanation(entry.name, index, entry.categories[index], float(probabilities[index]), heatmap)


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


def overlay(image: Image.Image, heatmap: np.ndarray, opacity: float = 0.6) -> Image.Image:
    """The map in colour over the image, stronger where the map is high; ``opacity`` 0 shows the image.

    Where the map is zero (including outside the centre crop the model saw) the photo stays as it is.
    """
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    alpha = (float(np.clip(opacity, 0.0, 1.0)) * np.sqrt(np.clip(heatmap, 0, 1)))[..., None]
    blended = base * (1 - alpha) + colourise(heatmap).astype(np.float32) * alpha
    return Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8), "RGB")


def colour_scale(width: int = 256, height: int = 16) -> Image.Image:
    """The colour scale as a picture, low on the left, high on the right."""
    ramp = np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))
    return Image.fromarray(colourise(ramp), "RGB")


def can_explain(name: str) -> bool:
    return any(name.startswith(prefix) for prefix, _ in _TARGETS)


def heat_rgba(heatmap: np.ndarray, max_side: int = 1600) -> np.ndarray:
    """The map as RGBA for drawing over a picture: colour by value, alpha growing with the value."""
    height, width = heatmap.shape
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        heatmap = np.asarray(Image.fromarray(heatmap.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR))
    rgba = np.empty(heatmap.shape + (4,), np.uint8)
    rgba[..., :3] = colourise(heatmap)
    rgba[..., 3] = (np.sqrt(np.clip(heatmap, 0, 1)) * 255).astype(np.uint8)
    return rgba
