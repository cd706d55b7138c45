"""Weights in torch's hub cache: download (resumable, hash-checked), import, list, verify, remove."""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnnviewer.core.catalog import EMBEDDED_SOURCE, ModelEntry, catalog, checkpoints_dir, get_entry
from cnnviewer.core.errors import CnnviewerError
from cnnviewer.core.paths import config_dir

TORCHVISION_PREFIX = "https://download.pytorch.org/models/"
MIRROR_ENV = "CNNVIEWER_WEIGHTS_MIRROR"
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")  # the same rule torch.hub uses for its check_hash
CHUNK = 1 << 16


class WeightsError(CnnviewerError):
    """A download, import, verification or removal that did not work; the sentence says why."""


class DownloadCancelled(WeightsError):
    """The user cancelled; the partial file is kept for a later resume, never under the final name."""


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
    """One file of the weights cache, as ``cnnviewer weights list`` shows it."""

    path: Path
    size: int
    model: str | None  # the catalog entry whose file this is, if any
    state: str  # "verified", "imported", "not checked", "hash mismatch"


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


# -- the record of what was checked -----------------------------------------------------------


def _record_path() -> Path:
    return config_dir() / "weights-checked.json"


def _read_record() -> dict:
    try:
        data = json.loads(_record_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _remember(path: Path, state: str, source: str = "") -> None:
    record = _read_record()
    stat = path.stat()
    record[str(path)] = {"state": state, "size": stat.st_size, "mtime": stat.st_mtime, "source": source}
    try:
        target = _record_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        pass  # the record is a convenience; the files themselves are what matter


def _recorded_state(path: Path) -> str | None:
    entry = _read_record().get(str(path))
    try:
        stat = path.stat()
    except OSError:
        return None
    if entry and entry.get("size") == stat.st_size and entry.get("mtime") == stat.st_mtime:
        return entry.get("state")
    return None


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
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"the disk is full: there is no room for the file in {checkpoints_dir()}"
    if isinstance(exc, OSError):
        return f"the file cannot be written ({exc.strerror or exc})"
    return str(exc)


def download_weights(
    entry: ModelEntry,
    progress: Callable[[DownloadProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Stream the entry's weights into the cache; checked against the name's hash, then renamed.

    An interrupted download is kept as ``NAME.partial`` and resumed with an HTTP Range request.
    Every failure raises :class:`WeightsError` with one sentence; nothing is ever left under the
    final name unless its hash matched.
    """
    if entry.source == EMBEDDED_SOURCE:
        raise WeightsError(f"{entry.name} has embedded weights; there is nothing to download.")
    url = weights_url(entry)
    final = checkpoints_dir() / entry.weights_filename
    partial = final.with_name(final.name + ".partial")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"Cannot create the weights folder {final.parent}: {exc.strerror or exc}.") from exc
    expected = hash_prefix(final.name)
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "cnnviewer"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have and response.status == 206
            if not resumed:
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            started, done = time.monotonic(), have
            with open(partial, "ab" if resumed else "wb") as out:
                while True:
                    if should_cancel is not None and should_cancel():
                        raise DownloadCancelled(
                            f"Download of {entry.name} cancelled; {done} bytes are kept in {partial.name} "
                            "and the next download resumes from there.")
                    block = response.read(CHUNK)
                    if not block:
                        break
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
        raise WeightsError(f"Download of {entry.name} failed: {_network_reason(exc, url)}.") from exc
    if expected:
        digest = sha256_of(partial, should_cancel)
        if not digest.startswith(expected):
            partial.unlink(missing_ok=True)
            raise WeightsError(
                f"Download of {entry.name} failed: the file's SHA-256 ({digest[:12]}…) does not match the "
                f"hash in its name ({expected}); it was corrupted on the way and has been deleted.")
    os.replace(partial, final)
    _remember(final, "verified" if expected else "not checked", url)
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


def import_weights(source: str | os.PathLike, model: str | None = None) -> tuple[ModelEntry, Path]:
    """Check a weights file carried over by hand and copy it into the cache under torchvision's name.

    The model comes from ``model`` or from the file name; a hash in the name is checked; the file is
    read with ``weights_only=True`` and must fit the architecture key for key and shape for shape.
    """
    from cnnviewer.core.models import WeightsFileError, build_for_weights, fit_state_dict, read_state_dict

    source = Path(os.fspath(source))
    if not source.is_file():
        raise WeightsError(f"{source}: no such file")
    if model:
        entry = get_entry(model)
    else:
        entry = entry_for_filename(source.name)
        if entry is None:
            raise WeightsError(
                f"{source}: cannot tell which model these weights are for from the file name; "
                "say it with --model NAME.")
    if entry.source == EMBEDDED_SOURCE:
        raise WeightsError(f"{entry.name} has embedded weights; there is nothing to import.")
    expected = hash_prefix(source.name)
    if expected:
        digest = sha256_of(source)
        if not digest.startswith(expected):
            raise WeightsError(
                f"{source}: the file's SHA-256 ({digest[:12]}…) does not match the hash in its name "
                f"({expected}); the file is damaged or renamed. Nothing was imported.")
    try:
        state = read_state_dict(source)
        fit_state_dict(entry, build_for_weights(entry), state, str(source))
    except WeightsFileError as exc:
        raise WeightsError(f"{exc} Nothing was imported.") from exc
    final = checkpoints_dir() / entry.weights_filename
    partial = final.with_name(final.name + ".partial")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, partial)
        os.replace(partial, final)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise WeightsError(f"Cannot copy {source} into {final.parent}: {_network_reason(exc, '')}.") from exc
    official = expected is not None and source.name == entry.weights_filename
    _remember(final, "verified" if official else "imported", str(source))
    return entry, final


# -- list, verify, remove ---------------------------------------------------------------------


def list_cache() -> list[CachedFile]:
    """Every weights file in the cache, with the model it belongs to and what is known of it."""
    folder = checkpoints_dir()
    if not folder.is_dir():
        return []
    by_file = {entry.weights_filename: entry.name for entry in catalog() if entry.source != EMBEDDED_SOURCE}
    rows = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.endswith(".partial"):
            continue
        rows.append(CachedFile(path, path.stat().st_size, by_file.get(path.name),
                               _recorded_state(path) or "not checked"))
    return rows


def verify(name: str | None = None, should_cancel: Callable[[], bool] | None = None) -> list[CachedFile]:
    """Hash the cached files (one model's, or all) against the hashes in their names."""
    rows = list_cache()
    if name is not None:
        entry = get_entry(name)
        rows = [row for row in rows if row.model == entry.name]
        if not rows:
            raise WeightsError(f"{entry.name} has no weights file in {checkpoints_dir()}.")
    checked = []
    for row in rows:
        expected = hash_prefix(row.path.name)
        if expected is None:
            state = "no hash in name"
        elif sha256_of(row.path, should_cancel).startswith(expected):
            state = "verified"
        elif _recorded_state(row.path) == "imported":
            state = "imported"  # a file the user imported under --model: keys were checked, not a hash
        else:
            state = "hash mismatch"
        if state in ("verified", "hash mismatch"):
            _remember(row.path, state)
        checked.append(CachedFile(row.path, row.size, row.model, state))
    return checked


def remove(name: str) -> Path:
    entry = get_entry(name)
    if entry.source == EMBEDDED_SOURCE:
        raise WeightsError(f"{entry.name} has embedded weights, installed as a Python package; "
                           "uninstall the package to remove them.")
    path = checkpoints_dir() / entry.weights_filename
    if not path.exists():
        raise WeightsError(f"{entry.name} has no weights file in {checkpoints_dir()}.")
    try:
        path.unlink()
    except OSError as exc:
        raise WeightsError(f"Cannot remove {path}: {exc.strerror or exc}.") from exc
    path.with_name(path.name + ".partial").unlink(missing_ok=True)
    return path
