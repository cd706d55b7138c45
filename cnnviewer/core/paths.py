"""Where cnnviewer keeps its own files: settings, the log, and the bundled resources."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def config_dir() -> Path:
    """The folder for settings; ``CNNVIEWER_CONFIG_DIR`` overrides it (tests use this)."""
    override = os.environ.get("CNNVIEWER_CONFIG_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "cnnviewer"


def data_dir() -> Path:
    """cnnviewer's own data folder; ``CNNVIEWER_DATA_DIR`` overrides it (tests use this)."""
    override = os.environ.get("CNNVIEWER_DATA_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "cnnviewer"


def cache_dir() -> Path:
    """Files cnnviewer can make again (model exports, measurements): ``CNNVIEWER_CACHE_DIR`` overrides it."""
    override = os.environ.get("CNNVIEWER_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnviewer"


def imported_weights_dir() -> Path:
    """Imported weights that are not torchvision's published files: kept out of torch's cache, so
    torchvision never loads them under its own names."""
    return data_dir() / "weights"


def log_file() -> Path:
    """The log that keeps full tracebacks, so users see one sentence and support sees the rest."""
    override = os.environ.get("CNNVIEWER_LOG_FILE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "cnnviewer" / "cnnviewer.log"


def resources_dir() -> Path:
    """The ``resources/`` folder: in a PyInstaller bundle, a source checkout, or an installed prefix."""
    candidates = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "resources")
    candidates.append(Path(__file__).resolve().parents[2] / "resources")
    candidates.append(Path(sys.prefix) / "share" / "cnnviewer" / "resources")
    for candidate in candidates:
        if (candidate / "imagenet_synsets.txt").is_file():
            return candidate
    raise FileNotFoundError("cnnviewer's resources folder is missing; reinstall cnnviewer")


def sample_photos() -> list[Path]:
    """The free-licence sample photos shipped in ``resources/samples``."""
    return sorted(p for p in (resources_dir() / "samples").iterdir() if p.suffix.lower() in {".jpg", ".png"})
