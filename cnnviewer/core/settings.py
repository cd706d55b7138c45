"""Settings shared by the CLI and the window (the last model used), kept as versioned JSON."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from cnnviewer.core.paths import config_dir

SCHEMA_VERSION = 1
FALLBACK_MODEL = "efficientnet_lite0"
PREFERRED_MODEL = "resnet50"


@dataclass
class Settings:
    """What the command line and the window share between runs (the window's own layout is in QSettings)."""

    schema_version: int = SCHEMA_VERSION
    last_model: str | None = None

    @staticmethod
    def path() -> Path:
        return config_dir() / "settings.json"

    @classmethod
    def load(cls) -> Settings:
        try:
            raw = json.loads(cls.path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(raw, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["schema_version"] = SCHEMA_VERSION
        if not isinstance(values.get("last_model"), (str, type(None))):
            values.pop("last_model")
        return cls(**values)

    def save(self) -> None:
        """Write atomically (temp file, then rename) so a crash never leaves half a file."""
        path = self.path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(asdict(self), handle, indent=2)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def default_model_name(settings: Settings | None = None) -> str:
    """The last model used if it is still ready, else ResNet50 if cached, else the embedded Lite0."""
    from cnnviewer.core.catalog import catalog

    settings = settings or Settings.load()
    ready = {entry.name for entry in catalog() if entry.availability().ready}
    if settings.last_model in ready:
        return settings.last_model
    if PREFERRED_MODEL in ready:
        return PREFERRED_MODEL
    return FALLBACK_MODEL


def remember_model(name: str) -> None:
    """Record the model just used, so the next run starts with it; a write failure is not fatal."""
    settings = Settings.load()
    if settings.last_model == name:
        return
    settings.last_model = name
    try:
        settings.save()
    except OSError:
        pass
