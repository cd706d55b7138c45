"""The FP32 ONNX export of each model, kept across runs (keyed by weights and versions) so it is made once."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnviewer.core.files import read_cache_record, read_small, write_private
from cnnviewer.core.paths import cache_dir

if TYPE_CHECKING:
    from cnnviewer.core.catalog import ModelEntry

log = logging.getLogger(__name__)

#: Bumped when what is exported or recorded changes, so older files are made again.
FORMAT = 1
#: The record beside an export: the key, the file's size and SHA-256, the class names, the preprocessing.
MAX_RECORD_BYTES = 1 << 20


def versions(*packages: str) -> dict[str, str]:
    """The installed version of each package (read from its metadata: nothing is imported); "" when absent.

    Read once per process (5 ms each time, and every cache key asks): the code this process runs is what
    was installed when it started, whatever is installed meanwhile."""
    return dict(_versions(packages))


@functools.lru_cache(maxsize=8)
def _versions(packages: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    from importlib.metadata import PackageNotFoundError, version

    from cnnviewer import __version__

    found = {"cnnviewer": __version__}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = ""
    return tuple(found.items())


#: The packages whose versions an export depends on: the exporter, the runtime, and the model code itself.
GRAPH_PACKAGES = ("torch", "torchvision", "efficientnet-lite-pytorch", "onnx", "onnxruntime")


def export_key(model: str, weights_sha256: str, folded: bool = True) -> dict[str, Any]:
    """What an export depends on: the model, its weights, BatchNorm folding, and the exporter's and
    runtime's versions (a newer exporter may write a different graph)."""
    return {"format": FORMAT, "model": model, "weights_sha256": weights_sha256, "folded": folded,
            "versions": versions(*GRAPH_PACKAGES)}


def onnx_dir() -> Path:
    """Where exports live: ``<cache>/onnx``; deleting it only costs one export per model."""
    return cache_dir() / "onnx"


def fp32_export_file(model: str, weights_sha256: str, folded: bool = True) -> Path:
    """Where the FP32 export of ``model`` with these weights is (or would be) kept, for these versions."""
    key = export_key(model, weights_sha256, folded)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return onnx_dir() / f"{model}-fp32-{digest}.onnx"


def _record_file(path: Path) -> Path:
    return path.with_suffix(".json")


@dataclass(frozen=True)
class CachedExport:
    """A checked export: its file, its bytes (read once, given to ONNX Runtime as they are) and its record."""

    path: Path
    data: bytes
    categories: tuple[str, ...]
    preprocessing: dict[str, Any]  # catalog.Preprocessing's fields
    title: str


def load_export(model: str, weights_sha256: str, folded: bool = True) -> CachedExport | None:
    """The cached export when its record matches the key and the file its recorded size and SHA-256;
    None on a miss. A damaged file or record is a miss with a log line (the next load exports again)."""
    path = fp32_export_file(model, weights_sha256, folded)
    try:
        raw = read_cache_record(_record_file(path), path, MAX_RECORD_BYTES)
        if raw is None:
            return None
        record = json.loads(raw)
        if not isinstance(record, dict) or record.get("key") != export_key(model, weights_sha256, folded):
            raise ValueError("its record is for another model, weights or version")
        size = record["size"]
        if not isinstance(size, int) or os.stat(path).st_size != size:
            raise ValueError("its size is not the one recorded (truncated?)")
        data = read_small(path, size)
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            raise ValueError("its SHA-256 is not the one recorded (damaged)")
        categories = tuple(str(name) for name in record["categories"])
        return CachedExport(path, data, categories, dict(record["preprocessing"]), str(record["title"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("the cached ONNX export %s is not used and will be made again: %s", path, exc)
        return None


def save_export(entry: ModelEntry, weights_sha256: str, data: bytes, folded: bool = True) -> Path:
    """Keep ``data`` (an FP32 export of ``entry``) in the cache: the file first, then its record, each
    written whole or not at all (so a record never vouches for half a file)."""
    from dataclasses import asdict

    path = fp32_export_file(entry.name, weights_sha256, folded)
    write_private(path, data, cache_dir())
    record = {"key": export_key(entry.name, weights_sha256, folded), "size": len(data),
              "sha256": hashlib.sha256(data).hexdigest(), "title": entry.title,
              "preprocessing": asdict(entry.preprocessing), "categories": list(entry.categories)}
    write_private(_record_file(path), json.dumps(record).encode(), cache_dir())
    return path


def forget_export(model: str, weights_sha256: str, folded: bool = True) -> None:
    """Drop a cached export that ONNX Runtime could not load, so the next load makes it again."""
    path = fp32_export_file(model, weights_sha256, folded)
    for file in (_record_file(path), path):
        try:
            file.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("%s could not be removed: %s", file, exc)


def fp32_export_path(entry: ModelEntry) -> Path:
    """The file of ``entry``'s FP32 ONNX export (BatchNorm folded, input "x" N x 3 x H x W, output
    "logits"), checked; on a miss the model is loaded and exported first (this imports torch)."""
    from cnnviewer.core.weights import file_sha256

    sha = file_sha256(entry.weights_path())
    cached = load_export(entry.name, sha)
    if cached is None:
        from cnnviewer.core.models import load_model
        from cnnviewer.core.ways import ONNXRUNTIME

        load_model(entry, "cpu", ONNXRUNTIME)  # exports and saves on a miss
        cached = load_export(entry.name, sha)
    if cached is None:
        from cnnviewer.core.errors import CnnviewerError

        raise CnnviewerError(f"The ONNX export of {entry.name} could not be kept in {onnx_dir()}; see the log.")
    return cached.path
