"""The error types the core raises; each carries a sentence meant for a person."""

from __future__ import annotations

import os


class CnnviewerError(Exception):
    """Base of every error the core raises on purpose; ``str()`` is the user-facing sentence."""


class ImageLoadError(CnnviewerError):
    """An image file could not be read; names the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnknownModelError(CnnviewerError):
    """A model name that is not in the catalog."""


class WeightsMissingError(CnnviewerError):
    """A model's pretrained weights are not on this machine (never fall back to random ones)."""


class OutputError(CnnviewerError):
    """A file cnnviewer was asked to write that cannot be written; names the file and the reason."""


class WeightsFileError(CnnviewerError):
    """A weights file that cannot be used: unreadable, unsafe, or made for another architecture."""
