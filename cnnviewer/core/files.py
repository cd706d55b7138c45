"""Writing files safely: a whole new file or none, through symlinks, never over a device or a folder."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cnnviewer.core.errors import OutputError


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def reason_for_write_error(exc: OSError) -> str:
    """Why a file could not be written, as a person would say it."""
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is used up"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        return "a part of the path is a file, not a folder"
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long for this system"
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    return exc.strerror or str(exc)


def output_target(path: str | os.PathLike) -> Path:
    """The regular file that writing ``path`` creates or replaces: symbolic links are followed (the
    file they point to is written, the link stays); a folder, device, FIFO or socket is refused."""
    path = Path(os.fspath(path))
    try:
        target = Path(os.path.realpath(path, strict=False))
        info = os.stat(target)
    except FileNotFoundError:
        return target  # a new name (or a dangling link: the file it names is created)
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written ({reason_for_write_error(exc)})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{path}: is a folder; give a file name")
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(f"{path}: is not a regular file (a device, pipe or socket); give a file name")
    return target


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Write through a uniquely named temporary file beside the target, then rename it into place.

    Never half a file under the name, never a device node or a link replaced: see output_target.
    A new file gets the user's umask, a replaced one keeps its permissions. Every failure raises
    OutputError naming the file. Returns the file written.
    """
    shown = Path(os.fspath(path))
    target = output_target(shown)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{shown}: cannot be written ({reason_for_write_error(exc)})") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{shown}: cannot be written ({reason_for_write_error(exc)})") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
