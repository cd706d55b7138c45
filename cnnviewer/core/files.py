"""Writing files safely: a whole new file or none, through symlinks, never over a device or a folder."""

from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cnnviewer.core.errors import OutputError

log = logging.getLogger(__name__)


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread at once)."""
    try:
        # bytes: a text codec may have to be imported, which fails once a process has dropped privileges
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Umask:"):
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
    if exc.errno == errno.EFBIG:
        return "the file would be larger than this system allows"
    if exc.errno == errno.EIO:
        return "an input/output error (the disk may be failing)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        return "a part of the path is a file, not a folder"
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long for this system"
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    return exc.strerror or str(exc)


def output_target(path: str | os.PathLike[str]) -> Path:
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
    if not os.access(target, os.W_OK):  # renaming over it would succeed, but the user protected it
        raise OutputError(f"{path}: is read-only; give another file name or make it writable")
    return target


def _temporary_prefix(name: str) -> str:
    """A hidden prefix for the temporary file that keeps its name within the 255 bytes a name may have."""
    return "." + os.fsdecode(os.fsencode(name)[:200]) + "."


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Write through a uniquely named temporary file beside the target, then rename it into place.

    Never half a file under the name, never a device node or a link replaced: see output_target.
    A new file gets the user's umask, a replaced one keeps its permissions and, where this process
    may set them, its owner and group. Every failure raises OutputError naming the file. Returns the
    file written.
    """
    shown = Path(os.fspath(path))
    target = output_target(shown)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            old: os.stat_result | None = os.stat(target)
        except FileNotFoundError:
            old = None
        mode = stat.S_IMODE(old.st_mode) if old else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_temporary_prefix(target.name), suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{shown}: cannot be written ({reason_for_write_error(exc)})") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            if old and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                try:  # root replacing a user's file: it stays theirs
                    os.fchown(handle.fileno(), old.st_uid, old.st_gid)
                except PermissionError:
                    pass
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


def read_small(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a small regular file; OSError, or ValueError with the reason (not a regular file,
    larger than ``limit``)."""
    # O_NONBLOCK: a FIFO in the file's place must not hang the caller waiting for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"larger than {limit // 1024} KB")
    return data


def write_private(path: str | os.PathLike[str], data: bytes, root: str | os.PathLike[str]) -> Path:
    """atomic_write ``data`` to ``path`` in folders only this user may write: ``root`` (cnnviewer's cache) and
    ``path``'s own folder are made with mode 0700 where missing. The cache keeps files cnnviewer later runs
    (model exports), and a file another user could plant must not be one (read_private refuses it)."""
    target = Path(os.fspath(path))
    for folder in dict.fromkeys((Path(os.fspath(root)), target.parent)):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{folder}: cannot be made ({exc.strerror or exc})") from exc
    return atomic_write(target, lambda handle: handle.write(data))


def read_private(path: str | os.PathLike[str], limit: int) -> bytes:
    """read_small, of a cache file this user wrote: ValueError when it or its folder could have been written
    by someone else (untrusted_reason); FileNotFoundError and other OSErrors as read_small raises them."""
    reason = untrusted_reason(path)
    if reason:
        raise ValueError(f"{reason}, so it could have been put there by someone else")
    return read_small(path, limit)


def untrusted_reason(path: str | os.PathLike[str]) -> str | None:
    """Why a cached file must not be used, or None: it, or its folder, belongs to another user or can be
    written by others (then someone else could have put it there). OSError when it cannot be looked at."""
    file = Path(os.fspath(path))
    for item in (file, file.parent):
        status = os.stat(item)
        if status.st_uid != os.geteuid():
            return f"{item} belongs to another user"
        if status.st_mode & 0o022:
            return f"{item} can be written by other users"
    return None


def read_cache_record(record: str | os.PathLike[str], vouched: str | os.PathLike[str], limit: int) -> bytes | None:
    """The bytes of a cache record that vouches for the file ``vouched`` (its size and hash, say); None when
    there is no record, or when its folder cannot be read (a miss, never a failure). ValueError when the
    record or the file could have been written by another user (untrusted_reason); OSError when reading fails."""
    record = Path(os.fspath(record))
    try:
        os.stat(record)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("the cache %s cannot be read (%s); what it holds is made again", record.parent, exc)
        return None
    reason = untrusted_reason(vouched)
    if reason:
        raise ValueError(f"{reason}, so it could have been put there by someone else")
    return read_private(record, limit)
