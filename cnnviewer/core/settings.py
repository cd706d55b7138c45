"""Settings shared by the CLI and the window (the last model used), kept as versioned JSON."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cnnviewer.core.errors import OutputError
from cnnviewer.core.files import atomic_write, read_small
from cnnviewer.core.paths import config_dir

SCHEMA_VERSION = 1
FALLBACK_MODEL = "efficientnet_lite0"
PREFERRED_MODEL = "resnet50"
MAX_SETTINGS_BYTES = 64 * 1024  # a real settings.json is under 100 bytes
MAX_MODEL_NAME = 200

log = logging.getLogger(__name__)
_warned: set[str] = set()  # each problem is logged once, though every command and classification reads the file


def _warn_once(message: str, *args: object) -> None:
    text = message % args
    if text not in _warned:
        _warned.add(text)
        log.warning(text)


@dataclass(frozen=True)
class Settings:
    """What the command line and the window share between runs (the window's own layout is in QSettings)."""

    schema_version: int = SCHEMA_VERSION
    last_model: str | None = None

    @staticmethod
    def path() -> Path:
        return config_dir() / "settings.json"

    @classmethod
    def load(cls) -> Settings:
        """The stored settings; a file that is missing, unreadable, too large, not JSON or nested too
        deeply gives the defaults, and each stored value that is not what it should be gives its default,
        with a line in the log: settings are a convenience and must never stop a command."""
        path = cls.path()
        try:
            raw = json.loads(read_small(path, MAX_SETTINGS_BYTES).decode("utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." thousands deep
            _warn_once("%s cannot be used (%s); using the default settings", path, _reason(exc))
            return cls()
        if not isinstance(raw, dict):
            _warn_once("%s holds %s, not an object of settings; using the default settings", path,
                       type(raw).__name__)
            return cls()
        last_model = raw.get("last_model")
        if last_model is not None and not (isinstance(last_model, str) and 0 < len(last_model) <= MAX_MODEL_NAME):
            _warn_once("%s: last_model is %s, not a model name; using none", path, _shown(last_model))
            last_model = None
        return cls(last_model=last_model)

    def save(self) -> None:
        """Write atomically (core.files.atomic_write), so a crash never leaves half a file; OutputError
        says why it could not be written."""
        data = json.dumps(asdict(self), indent=2).encode("utf-8")
        atomic_write(self.path(), lambda handle: handle.write(data))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def default_model_name(settings: Settings | None = None) -> str:
    """The last model used if it is still ready, else ResNet50 if cached, else the embedded Lite0."""
    from cnnviewer.core.catalog import catalog

    settings = settings or Settings.load()
    ready = {entry.name for entry in catalog() if entry.availability().ready}
    if settings.last_model is not None and settings.last_model in ready:
        return settings.last_model
    if PREFERRED_MODEL in ready:
        return PREFERRED_MODEL
    return FALLBACK_MODEL


def remember_model(name: str) -> None:
    """Record the model just used, so the next run starts with it; a write failure is not fatal."""
    settings = Settings.load()
    if settings.last_model == name:
        return
    try:
        replace(settings, last_model=name).save()
    except OutputError as exc:
        log.warning("the last model used is not remembered: %s", exc)
