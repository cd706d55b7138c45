"""Weights files: download (resumable, bounded, hash-checked, locked), import, list, verify, remove."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import http.client
import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnviewer.core.catalog import (
    EMBEDDED_SOURCE,
    IMPORTED_NAME,
    Availability,
    ModelEntry,
    WeightsIdentity,
    availability_of,
    catalog,
    checkpoints_dir,
    get_entry,
    imported_file_name,
    imported_label,
)
from cnnviewer.core.errors import CnnviewerError, OutputError
from cnnviewer.core.files import atomic_write
from cnnviewer.core.paths import config_dir, imported_weights_dir

log = logging.getLogger(__name__)

TORCHVISION_PREFIX = "https://download.pytorch.org/models/"
MIRROR_ENV = "CNNVIEWER_WEIGHTS_MIRROR"
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")  # the same rule torch.hub uses for its check_hash
CHUNK = 1 << 16
# A download may exceed the catalog's size by this much before it is stopped (the published sizes
# are rounded, and a mirror may serve a re-saved file), and never be larger than the fallback.
SIZE_MARGIN = 0.05
SIZE_SLACK = 1 << 20
UNKNOWN_SIZE_LIMIT = 4 << 30
# The overall deadline of a download assumes at least this average speed: a server that trickles a
# byte now and then never trips the per-read timeout, and must still end.
MIN_AVERAGE_SPEED = 64 << 10
PARTIAL = ".partial"
LOCK = ".lock"
STATES = ("verified", "imported", "not checked", "hash mismatch")
MAX_RECORD_BYTES = 8 << 20
Entry = dict[str, Any]  # one file's entry in the record: state, size, mtime, source, sha256


class WeightsError(CnnviewerError):
    """A download, import, verification or removal that did not work; the sentence says why."""


class DownloadCancelled(WeightsError):
    """The user cancelled; a resumable partial file is kept, never anything under the final name."""


@dataclass(frozen=True)
class DownloadProgress:
    done: int
    total: int | None
    bytes_per_second: float

    @property
    def seconds_left(self) -> float | None:
        if not self.total or self.bytes_per_second <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.bytes_per_second)


@dataclass(frozen=True)
class CachedFile:
    """One weights file on this machine, as ``cnnviewer weights list`` shows it."""

    path: Path
    size: int
    model: str | None  # the catalog entry whose file this is, if any
    state: str  # one of STATES, "partial download" or "no hash in name"
    imported_from: str = ""  # imported weights: the name of the file the user imported
    in_use: bool = True  # False for an imported file while torchvision's own file is cached

    @property
    def shown(self) -> str:
        """The state as a person reads it; imported files say which file and which content."""
        if self.state != "imported":
            return self.state
        match = IMPORTED_NAME.match(self.path.name)
        label = imported_label(self.imported_from or self.path.name, match.group("sha256") if match else "")
        return label if self.in_use else f"{label}, not used: torchvision's file is cached"


def hash_prefix(filename: str) -> str | None:
    """The SHA-256 prefix a torchvision-style name carries (``resnet50-11ad3fa6.pth``), if any."""
    match = HASH_REGEX.search(filename)
    return match.group(1) if match and len(match.group(1)) >= 6 else None


def weights_url(entry: ModelEntry) -> str:
    """The entry's download URL, with ``CNNVIEWER_WEIGHTS_MIRROR`` in place of torchvision's host."""
    if entry.weights_url is None:
        raise WeightsError(f"{entry.name} has embedded weights; there is nothing to download.")
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror and entry.weights_url.startswith(TORCHVISION_PREFIX):
        return mirror.rstrip("/") + "/" + entry.weights_url[len(TORCHVISION_PREFIX):]
    return entry.weights_url


def sha256_of(path: Path, should_cancel: Callable[[], bool] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            if should_cancel is not None and should_cancel():
                raise DownloadCancelled("cancelled")
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(path: Path, wait: bool) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created here, removed on release).

    flock locks an open file description, so it excludes other threads as well as other processes.
    Raises BlockingIOError when another holds it and ``wait`` is false.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            # The holder before us removes the file on release: a lock on that unlinked file guards
            # nothing, so lock the file that is there now.
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


# -- the record of what was checked -----------------------------------------------------------
# weights-checked.json maps a file's path to what is known of it while its size and mtime stay the
# same: its state, where it came from, and its SHA-256 (so a file is hashed once, not on every run).

_logged_records: set[tuple[str, int, int]] = set()


def _record_path() -> Path:
    return config_dir() / "weights-checked.json"


def _valid_entry(key: str, value: object, problems: list[str]) -> Entry | None:
    """The entry with every value checked: a bad state, size or mtime drops it (as if never recorded),
    a bad source or digest becomes empty; each problem is added to ``problems``."""
    where = f"the entry {key[:200]!r}"
    if not isinstance(value, dict):
        problems.append(f"{where} is not a mapping")
        return None
    state, size, mtime = value.get("state"), value.get("size"), value.get("mtime")
    if state not in STATES:
        problems.append(f"{where} has an unknown state")
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        problems.append(f"{where} has a size that is not a whole number of bytes")
        return None
    if not isinstance(mtime, (int, float)) or isinstance(mtime, bool) or not math.isfinite(mtime):
        problems.append(f"{where} has a modification time that is not a number")
        return None
    source, digest = value.get("source", ""), value.get("sha256", "")
    if not isinstance(source, str) or len(source) > 4096:
        problems.append(f"{where} has a source that is not a short text")
        source = ""
    if not isinstance(digest, str) or (digest and not re.fullmatch(r"[0-9a-f]{64}", digest)):
        problems.append(f"{where} has a SHA-256 that is not 64 hex digits")
        digest = ""
    return {"state": state, "size": size, "mtime": mtime, "source": source, "sha256": digest}


def _read_record() -> dict[str, Entry]:
    """The validated record; an unreadable, oversized or malformed file reads as an empty record."""
    path = _record_path()
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            raw = handle.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("%s cannot be read (%s); starting from an empty record", path, exc.strerror or exc)
        return {}
    problems: list[str] = []
    record = {}
    if len(raw) > MAX_RECORD_BYTES:
        problems.append(f"it is larger than {MAX_RECORD_BYTES >> 20} MB")
    else:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # a deeply nested file overflows the JSON parser
            problems.append(f"it is not valid JSON ({type(exc).__name__})")
            data = {}
        if not isinstance(data, dict):
            problems.append("it is not a JSON object")
            data = {}
        for key, value in data.items():
            entry = _valid_entry(key, value, problems)
            if entry is not None:
                record[key] = entry
    stamp = (str(path), info.st_size, info.st_mtime_ns)
    if problems and stamp not in _logged_records:  # once per version of the file, not on every read
        _logged_records.add(stamp)
        for problem in problems:
            log.warning("%s: %s; using the default instead", path, problem)
    return record


def _current(entry: Entry | None, path: Path) -> Entry | None:
    """The recorded entry while the file still has the size and mtime it had when recorded."""
    try:
        stat = path.stat()
    except OSError:
        return None
    if entry and entry["size"] == stat.st_size and entry["mtime"] == stat.st_mtime:
        return entry
    return None


def _remember(path: Path, state: str | None = None, source: str | None = None, sha256: str | None = None) -> None:
    """Record what is known of ``path`` now; values not given are kept from a current entry."""
    try:
        stat = path.stat()
        target = _record_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target.with_name(target.name + LOCK), wait=True):
            record = _read_record()
            old = _current(record.get(str(path)), path) or {}
            record[str(path)] = {
                "state": state or old.get("state", "not checked"),
                "size": stat.st_size,
                "mtime": stat.st_mtime,
                "source": old.get("source", "") if source is None else source,
                "sha256": old.get("sha256", "") if sha256 is None else sha256,
            }
            record = {key: value for key, value in record.items() if os.path.isfile(key)}  # forget deleted files
            text = json.dumps(record, indent=1).encode("utf-8")
            atomic_write(target, lambda handle: handle.write(text))
    except (OSError, OutputError) as exc:
        log.warning("the record of checked weights was not updated: %s", exc)  # a convenience only


def _recorded(path: Path) -> Entry | None:
    return _current(_read_record().get(str(path)), path)


def _recorded_state(path: Path) -> str | None:
    entry = _recorded(path)
    return entry["state"] if entry else None


def file_sha256(path: str | os.PathLike[str], should_cancel: Callable[[], bool] | None = None) -> str:
    """The file's SHA-256, hashed once and remembered while its size and mtime stay the same."""
    path = Path(os.fspath(path))
    entry = _recorded(path)
    if entry and entry["sha256"]:
        return str(entry["sha256"])
    digest = sha256_of(path, should_cancel)
    _remember(path, sha256=digest)
    return digest


def weights_identity(entry: ModelEntry, path: str | os.PathLike[str] | None = None,
                     with_sha256: bool = False) -> WeightsIdentity:
    """Which file ``entry`` runs with (``path``, a loaded model's file, or the one it would load now).

    ``with_sha256`` hashes the file when its digest is not remembered yet (reports record it).
    """
    path = Path(os.fspath(path)) if path is not None else entry.weights_path()
    availability = availability_of(entry, path)
    recorded = _recorded(path) or {}
    original = ""
    if availability is Availability.IMPORTED and recorded.get("source"):
        original = Path(recorded["source"]).name
    digest = recorded.get("sha256", "")
    if with_sha256 and not digest and availability.ready:
        try:
            digest = file_sha256(path)
        except OSError as exc:
            log.warning("%s could not be hashed: %s", path, exc)
    return WeightsIdentity(entry.name, availability, path, entry.weights_id, original, digest)


# -- download ---------------------------------------------------------------------------------


def _network_reason(exc: BaseException, url: str) -> str:
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason} for {url}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"the connection to {host} timed out"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return f"the connection to {host} timed out"
        if isinstance(reason, socket.gaierror):
            return f"cannot find {host}: this computer seems to be offline (or the name is wrong)"
        if isinstance(reason, ConnectionRefusedError):
            return f"{host} refused the connection"
        return f"cannot reach {host} ({reason})"
    if isinstance(exc, (http.client.IncompleteRead, ConnectionError, http.client.HTTPException)):
        return f"the connection to {host} broke off before the file was complete"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full: there is no room for the file in {checkpoints_dir()}"
    if isinstance(exc, OSError):
        return f"the file cannot be written ({exc.strerror or exc})"
    return str(exc)


def size_limit(entry: ModelEntry) -> int:
    """The most bytes a download of ``entry`` may bring: the catalog's size plus a margin."""
    expected = int(entry.file_size_mb * 2**20)
    if expected <= 0:
        return UNKNOWN_SIZE_LIMIT
    return int(expected * (1 + SIZE_MARGIN)) + SIZE_SLACK


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} minutes"


@contextlib.contextmanager
def _file_lock(entry: ModelEntry, final: Path) -> Iterator[None]:
    """One writer per cached file: a second download (another thread or process) is told so."""
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(_locked(final.with_name(final.name + LOCK), wait=False))
    except BlockingIOError:
        raise WeightsError(
            f"Another download of {entry.name} is running (into {final.name}{PARTIAL} in {final.parent}); "
            "wait for it to finish, then use the model.") from None
    with stack:
        yield


def download_weights(
    entry: ModelEntry,
    progress: Callable[[DownloadProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    timeout: float = 30.0,
    deadline: float | None = None,
) -> Path:
    """Stream the entry's weights into the cache; checked against the name's hash, then renamed.

    ``timeout`` bounds each wait for data; ``deadline`` (seconds; default: the time the file takes at
    MIN_AVERAGE_SPEED) bounds the whole download. A download that runs past the catalog's size plus a
    margin is stopped and deleted. An interrupted download is kept as ``NAME.partial`` when the server
    can resume it with an HTTP Range request, and deleted when it cannot. A second download of the same
    file while one runs is refused. Every failure raises :class:`WeightsError` with one sentence;
    nothing is ever left under the final name unless its hash matched.
    """
    if entry.source == EMBEDDED_SOURCE:
        raise WeightsError(f"{entry.name} has embedded weights; there is nothing to download.")
    url = weights_url(entry)
    final = entry.cached_weights_path()
    with contextlib.ExitStack() as stack:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_file_lock(entry, final))
        except OSError as exc:
            raise WeightsError(f"Cannot write into the weights folder {final.parent}: "
                               f"{exc.strerror or exc}.") from exc
        return _download(entry, url, final, progress, should_cancel, timeout, deadline)


def _download(entry: ModelEntry, url: str, final: Path, progress: Callable[[DownloadProgress], None] | None,
              should_cancel: Callable[[], bool] | None, timeout: float, deadline: float | None) -> Path:
    partial = final.with_name(final.name + PARTIAL)
    expected = hash_prefix(final.name)
    limit = size_limit(entry)
    have = partial.stat().st_size if partial.exists() else 0
    if have > limit:
        partial.unlink(missing_ok=True)  # larger than the file can be: not a prefix of it
        have = 0
    if deadline is None:
        deadline = timeout + max(limit - have, SIZE_SLACK) / MIN_AVERAGE_SPEED
    ends = time.monotonic() + deadline
    request = urllib.request.Request(url, headers={"User-Agent": "cnnviewer"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    resumable: bool | None = None  # unknown until the server answers: a partial file from before is kept
    done = have

    def failed(reason: str, keep: bool) -> WeightsError:
        """The sentence for a failure; the partial file stays only when a later download can resume it."""
        if keep and resumable is not False and partial.exists():
            return WeightsError(f"Download of {entry.name} failed: {reason}; the {_mb(done)} downloaded so far "
                                f"are kept in {partial} and the next download resumes from there.")
        partial.unlink(missing_ok=True)
        return WeightsError(f"Download of {entry.name} failed: {reason}; the partial file was deleted.")

    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = bool(have) and response.status == 206
            resumable = resumed or response.headers.get("Accept-Ranges", "").strip().lower() == "bytes"
            if not resumed:
                have = done = 0
            length = response.headers.get("Content-Length", "").strip()
            total = have + int(length) if length.isdigit() else None
            if total is not None and total > limit:
                raise failed(f"the server announced {_mb(total)}, more than the {_mb(limit)} the catalog allows "
                             f"for {final.name}; nothing more was downloaded", keep=False)
            started = time.monotonic()
            with open(partial, "ab" if resumed else "wb") as out:
                while True:
                    if should_cancel is not None and should_cancel():
                        if resumable:
                            raise DownloadCancelled(
                                f"Download of {entry.name} cancelled; {done} bytes are kept in {partial.name} "
                                "and the next download resumes from there.")
                        out.close()
                        partial.unlink(missing_ok=True)
                        raise DownloadCancelled(f"Download of {entry.name} cancelled; the server cannot resume "
                                                "it, so the partial file was deleted.")
                    if time.monotonic() > ends:
                        raise failed(f"it did not finish within {_duration(deadline)}", keep=True)
                    # read1: whatever has arrived, so the deadline and Cancel are checked between trickles
                    block = response.read1(CHUNK)
                    if not block:
                        break
                    if done + len(block) > limit:
                        raise failed(f"the server sent more than the {_mb(limit)} the catalog allows for "
                                     f"{final.name}, so it was stopped", keep=False)
                    out.write(block)
                    done += len(block)
                    if progress is not None:
                        elapsed = max(time.monotonic() - started, 1e-6)
                        progress(DownloadProgress(done, total, (done - have) / elapsed))
            if total is not None and done < total:
                raise http.client.IncompleteRead(b"", total - done)
    except WeightsError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        if isinstance(exc, urllib.error.HTTPError) and exc.code == 416:
            partial.unlink(missing_ok=True)  # the partial file is no prefix of this one: start again
        # A full disk gets its space back rather than keep a partial file nobody sees.
        keep = not (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT))
        raise failed(_network_reason(exc, url), keep=keep) from exc
    digest = sha256_of(partial, should_cancel)
    if expected and not digest.startswith(expected):
        partial.unlink(missing_ok=True)
        raise WeightsError(
            f"Download of {entry.name} failed: the file's SHA-256 ({digest[:12]}…) does not match the "
            f"hash in its name ({expected}); it was corrupted on the way and has been deleted.")
    os.replace(partial, final)
    _remember(final, "verified" if expected else "not checked", url, digest)
    return final


# -- import -----------------------------------------------------------------------------------


def entry_for_filename(filename: str) -> ModelEntry | None:
    """The catalog entry whose torchvision file name this is (exactly, or with another hash)."""
    for entry in catalog():
        if entry.weights_filename == filename:
            return entry
    stem = HASH_REGEX.split(filename)[0] if hash_prefix(filename) else None
    if stem:
        for entry in catalog():
            if entry.source != EMBEDDED_SOURCE and HASH_REGEX.split(entry.weights_filename)[0] == stem:
                return entry
    return None


def _copy_hashing(source: Path, folder: Path) -> tuple[Path, str]:
    """A private copy of ``source`` in ``folder`` and the SHA-256 of exactly what was copied."""
    digest = hashlib.sha256()
    fd, name = tempfile.mkstemp(dir=folder, prefix=".import-", suffix=".tmp")
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), digest.hexdigest()


def import_weights(source: str | os.PathLike[str], model: str | ModelEntry | None = None) -> tuple[ModelEntry, Path]:
    """Check a weights file carried over by hand and store it.

    The model comes from ``model`` or from the file name; a hash in the name is checked; the file is
    read with ``weights_only=True`` and must fit the architecture key for key and shape for shape.
    Only a file whose SHA-256 matches the hash in torchvision's own name goes into torch's cache
    under that name (torchvision would load it as its own); any other is kept in cnnviewer's folder
    as ``MODEL-SHA256[:16].pth`` and shown everywhere as imported. Importing another file for the
    same model replaces the previous import.
    """
    from cnnviewer.core.models import WeightsFileError, build_for_weights, fit_state_dict, read_state_dict

    source = Path(os.fspath(source))
    if not source.is_file():
        raise WeightsError(f"{source}: no such file")
    entry: ModelEntry | None
    if isinstance(model, ModelEntry):
        entry = model
    elif model:
        entry = get_entry(model)
    else:
        entry = entry_for_filename(source.name)
        if entry is None:
            raise WeightsError(
                f"{source}: cannot tell which model these weights are for from the file name; "
                "name the model they are for.", cli_hint="Add --model NAME.",
                gui_hint="Pick the model they are for in the list.")
    if entry.source == EMBEDDED_SOURCE:
        raise WeightsError(f"{entry.name} has embedded weights; there is nothing to import.")
    try:
        state = read_state_dict(source)
        fit_state_dict(entry, build_for_weights(entry), state, str(source))
    except WeightsFileError as exc:
        reason = str(exc).rstrip()
        raise WeightsError(f"{reason}{'' if reason.endswith('.') else '.'} Nothing was imported.") from exc
    del state
    folder = imported_weights_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        copy, digest = _copy_hashing(source, folder)
    except OSError as exc:
        raise WeightsError(f"Cannot copy {source} into {folder}: {_network_reason(exc, '')}.") from exc
    try:
        named = hash_prefix(source.name)
        if named and not digest.startswith(named):
            raise WeightsError(
                f"{source}: the file's SHA-256 ({digest[:12]}…) does not match the hash in its name "
                f"({named}); the file is damaged or renamed. Nothing was imported.")
        published = hash_prefix(entry.weights_filename)
        if published and digest.startswith(published):
            final = entry.cached_weights_path()
            final.parent.mkdir(parents=True, exist_ok=True)
            with _file_lock(entry, final), open(copy, "rb") as src:
                atomic_write(final, lambda out: shutil.copyfileobj(src, out, 1 << 20))
            state_name = "verified"
        else:
            final = folder / imported_file_name(entry.name, digest)
            with _locked(folder / f"{entry.name}{LOCK}", wait=True):
                os.replace(copy, final)
                for other in folder.glob(f"{entry.name}-*.pth"):
                    match = IMPORTED_NAME.match(other.name)
                    if other != final and match and match.group("model") == entry.name:
                        other.unlink(missing_ok=True)
            state_name = "imported"
    except OSError as exc:
        raise WeightsError(f"Cannot store {source} for {entry.name}: {_network_reason(exc, '')}.") from exc
    except OutputError as exc:
        raise WeightsError(f"Cannot store {source} for {entry.name}: {exc}.") from exc
    finally:
        copy.unlink(missing_ok=True)
    _remember(final, state_name, str(source.resolve()), digest)
    return entry, final


# -- list, verify, remove ---------------------------------------------------------------------


def _model_of_cached(name: str) -> str | None:
    by_file = {entry.weights_filename: entry.name for entry in catalog() if entry.source != EMBEDDED_SOURCE}
    return by_file.get(name.removesuffix(PARTIAL))


def list_cache() -> list[CachedFile]:
    """Every weights file here: torch's cache (partial downloads included) and the imported files."""
    rows = []
    folder = checkpoints_dir()
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.endswith(LOCK) or path.name.startswith("."):
                continue
            model = _model_of_cached(path.name)
            if path.name.endswith(PARTIAL):
                rows.append(CachedFile(path, path.stat().st_size, model, "partial download"))
                continue
            state = _recorded_state(path)
            if state not in ("verified", "hash mismatch"):
                state = "not checked"  # "imported" under torchvision's name was an older cnnviewer's way
            rows.append(CachedFile(path, path.stat().st_size, model, state))
    imported = imported_weights_dir()
    if imported.is_dir():
        for path in sorted(imported.iterdir()):
            match = IMPORTED_NAME.match(path.name)
            if not match or not path.is_file():
                continue
            model = match.group("model")
            try:
                entry = get_entry(model)
            except CnnviewerError:
                entry = None
            recorded = _recorded(path) or {}
            source = recorded.get("source", "")
            in_use = entry is not None and entry.weights_path() == path
            rows.append(CachedFile(path, path.stat().st_size, entry.name if entry else None, "imported",
                                   Path(source).name if source else "", in_use))
    return rows


def recorded_check(path: str | os.PathLike[str]) -> str | None:
    """What the last verification found for ``path`` ("verified", "hash mismatch"...) while the file is unchanged."""
    return _recorded_state(Path(os.fspath(path)))


def _verify_embedded(entry: ModelEntry, should_cancel: Callable[[], bool] | None) -> list[CachedFile]:
    # The embedded packages keep torchvision's naming (efficientnet-lite0-57934424.pth), so their file is
    # checked by the same rule as a download.
    path = entry.weights_path()
    if not path.is_file():
        raise WeightsError(f"{path.name}: the embedded weights of {entry.name} are not installed "
                           f"(the Python package {entry.weights_package} is missing).")
    expected = hash_prefix(path.name)
    if expected is None:
        return [CachedFile(path, path.stat().st_size, entry.name, "no hash in name")]
    digest = sha256_of(path, should_cancel)
    state = "verified" if digest.startswith(expected) else "hash mismatch"
    _remember(path, state, sha256=digest)
    return [CachedFile(path, path.stat().st_size, entry.name, state)]


def verify(name: str | None = None, should_cancel: Callable[[], bool] | None = None) -> list[CachedFile]:
    """Hash the complete weights files (one model's, or all downloaded and imported ones) against the
    hashes in their names; a model named with embedded weights has its installed file hashed."""
    rows = [row for row in list_cache() if row.state != "partial download"]
    if name is not None:
        entry = get_entry(name)
        if entry.source == EMBEDDED_SOURCE:
            return _verify_embedded(entry, should_cancel)
        rows = [row for row in rows if row.model == entry.name]
        if not rows:
            raise WeightsError(f"{entry.name} has no weights file in {checkpoints_dir()} or {imported_weights_dir()}.")
    checked = []
    for row in rows:
        match = IMPORTED_NAME.match(row.path.name) if row.state == "imported" else None
        expected = match.group("sha256") if match else hash_prefix(row.path.name)
        if expected is None:
            checked.append(CachedFile(row.path, row.size, row.model, "no hash in name"))
            continue
        digest = sha256_of(row.path, should_cancel)
        good = digest.startswith(expected)
        state = ("imported" if good else "hash mismatch") if match else ("verified" if good else "hash mismatch")
        _remember(row.path, state, sha256=digest)
        checked.append(CachedFile(row.path, row.size, row.model, state, row.imported_from, row.in_use))
    return checked


def remove(name: str) -> list[Path]:
    """Delete every weights file of a model: torchvision's, a partial download, and imported ones."""
    entry = get_entry(name)
    if entry.source == EMBEDDED_SOURCE:
        raise WeightsError(f"{entry.name} has embedded weights, installed as a Python package; "
                           "uninstall the package to remove them.")
    cached = entry.cached_weights_path()
    paths = [cached, cached.with_name(cached.name + PARTIAL)]
    folder = imported_weights_dir()
    if folder.is_dir():
        paths += sorted(p for p in folder.glob(f"{entry.name}-*.pth")
                        if (m := IMPORTED_NAME.match(p.name)) and m.group("model") == entry.name)
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise WeightsError(f"{entry.name} has no weights file in {checkpoints_dir()} or {folder}.")
    try:
        # never pull a partial file from under a running download
        with _file_lock(entry, cached) if cached.parent.is_dir() else contextlib.nullcontext():
            for path in paths:
                path.unlink(missing_ok=True)
    except OSError as exc:
        raise WeightsError(f"Cannot remove the weights of {entry.name}: {exc.strerror or exc} "
                           f"({exc.filename or cached.parent}).") from exc
    return paths
