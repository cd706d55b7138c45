"""Speeds measured on this machine: images/s per model, device and way of running, from complete benchmark results."""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from cnnviewer.core.errors import OutputError
from cnnviewer.core.files import atomic_write, read_small
from cnnviewer.core.paths import data_dir

if TYPE_CHECKING:
    from cnnviewer.core.benchmark import BenchmarkReport

log = logging.getLogger(__name__)

FILE_NAME = "measured-speeds.json"
MAX_BYTES = 1 << 20  # a few hundred models times a few devices and ways fit many times over
# Two benchmark threads finishing together must not each write the file read before the other's write.
_lock = threading.Lock()


def speeds_path() -> Path:
    return data_dir() / FILE_NAME


def _key(model: str, device: str, run_as: str) -> str:
    return f"{model}|{device}|{run_as}"


# What the file held when it was last read, by its path, size and modification time: the model picker asks
# at every keystroke, on the GUI thread, and a stat costs far less than reading and parsing the file.
# (Written atomically, the file is a new inode each time: a rewrite within one mtime tick is seen too.)
_cache: dict[str, tuple[tuple[str, int, int, int], dict[str, float]]] = {}


def _read() -> dict[str, float]:
    """The stored speeds; a missing file is empty, and an unreadable or malformed one is logged and read as empty."""
    path = speeds_path()
    try:
        stat = path.stat()
    except OSError:
        stamp = None
    else:
        stamp = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        kept = _cache.get("speeds")
        if kept is not None and kept[0] == stamp:
            return dict(kept[1])
    found = _parse(path)
    if stamp is not None:
        _cache["speeds"] = (stamp, dict(found))
    return found


def _parse(path: Path) -> dict[str, float]:
    try:
        raw = read_small(path, MAX_BYTES)  # a FIFO in its place must not hang the model picker
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("%s cannot be read (%s); the measured speeds start afresh", path, exc.strerror or exc)
        return {}
    except ValueError as exc:
        log.warning("%s is not a file of measured speeds (%s); they start afresh", path, exc)
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        log.warning("%s is not a file of measured speeds (%s); they start afresh", path, exc)
        return {}
    # One bad entry drops that entry only: the others were measured and are still true.
    return {key: float(value) for key, value in data.items()
            if isinstance(key, str) and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0}


def record(report: BenchmarkReport) -> int:
    """Keep the end-to-end images/s of every complete result of ``report``; the number of speeds kept.

    A partial, failed or untimed result is left out (its figure, if any, is not this machine's speed).
    Never raises: a speed not kept costs a blank cell in the model picker, not the report.
    """
    device = str(report.environment.get("device") or report.config.get("device") or "cpu")
    found = {}
    for result in report.models:
        if result.complete and result.timed and result.end_to_end_ips and result.end_to_end_ips > 0:
            found[_key(result.model or result.name, device, result.run_as)] = float(result.end_to_end_ips)
    if not found:
        return 0
    with _lock:
        stored = _read()
        stored.update(found)
        text = json.dumps(dict(sorted(stored.items())), indent=1).encode("utf-8")
        path = speeds_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda handle: handle.write(text))
        except (OSError, OutputError) as exc:
            log.warning("the measured speeds were not kept in %s: %s", path, exc)
            return 0
    return len(found)


def speeds(device: str, run_as: str = "fp32") -> dict[str, float]:
    """Model name -> images/s measured on ``device`` run as ``run_as`` (a label of cnnviewer.core.ways)."""
    suffix = f"|{device}|{run_as}"
    return {key[: -len(suffix)]: value for key, value in _read().items() if key.endswith(suffix)}
