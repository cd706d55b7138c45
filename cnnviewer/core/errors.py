"""The error types the core raises; each carries a sentence meant for a person."""

from __future__ import annotations

import os


class CnnviewerError(Exception):
    """Base of every error the core raises on purpose; ``str()`` is the user-facing sentence.

    The sentence names the action ("choose FP32 on the CPU"), never one face's controls. Each face
    adds its own hint: ``cli_hint`` (a flag or a command) and ``gui_hint`` (a menu item or a button);
    ``for_cli()`` and ``for_window()`` give the sentence with that face's hint.
    """

    def __init__(self, *args: object, cli_hint: str = "", gui_hint: str = "") -> None:
        super().__init__(*args)
        self.cli_hint = cli_hint
        self.gui_hint = gui_hint

    def for_cli(self) -> str:
        return f"{self} {self.cli_hint}".strip()

    def for_window(self) -> str:
        return f"{self} {self.gui_hint}".strip()


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
