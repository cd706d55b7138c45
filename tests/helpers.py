"""Helpers shared by the tests: the shared photos, top-5 answers computed once, the CLI, window waits."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cnnviewer.core.inference import Classifier

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATASETS = SHARED / "datasets"
VAL_100 = DATASETS / "imagenet-val-100"
SAMPLES_88 = DATASETS / "imagenet-samples-88"
PHOTOS_13 = DATASETS / "photos-13"
EMBEDDED = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")

Top5 = tuple[int, ...]


def manifest() -> list[dict[str, str]]:
    """Every shared photo with its true class index (``../shared/datasets/manifest.csv``)."""
    with open(DATASETS / "manifest.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def labelled_files(dataset: str) -> list[tuple[Path, int]]:
    """(path, true class index) for one shared dataset folder."""
    base = DATASETS / dataset
    rows = []
    for row in manifest():
        if row["set"] != dataset:
            continue
        candidates = [base / row["file"], base / row["imagenet_name"] / row["file"]]
        path = next((p for p in candidates if p.is_file()), None)
        assert path is not None, f"{row['file']} of {dataset} is listed in manifest.csv but not found"
        rows.append((path, int(row["imagenet_index"])))
    return rows


def top5_indices(classifier: Classifier, files: list[tuple[Path, int]], fast_decode: bool = False) -> list[Top5]:
    """Each file's top-5 class indices from ``classifier``'s model (files: (path, truth) pairs); ``fast_decode``
    False decodes every image whole (the reference), True as cnnviewer does."""
    from cnnviewer.core.inference import Classifier

    reader = Classifier(classifier.loaded, fast_decode=fast_decode)
    results = list(reader.classify_files([p for p, _ in files], batch_size=16))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return [tuple(p.index for p in r.predictions) for r in results]


def top1_accuracy(results: list[Top5], files: list[tuple[Path, int]]) -> float:
    """Top-1 % of top5_indices results against the files' true classes."""
    return 100.0 * sum(r[0] == truth for r, (_, truth) in zip(results, files, strict=True)) / len(files)


def top5_accuracy(results: list[Top5], files: list[tuple[Path, int]]) -> float:
    """Top-5 % of top5_indices results against the files' true classes."""
    return 100.0 * sum(truth in r for r, (_, truth) in zip(results, files, strict=True)) / len(files)


def second_way() -> str:
    """A way of running besides fp32 that this machine offers (bf16, else onnxruntime); skips if none."""
    from cnnviewer.core.engines import onnxruntime_available
    from cnnviewer.core.models import bf16_supported

    if bf16_supported():
        return "bf16"
    if onnxruntime_available():
        return "onnxruntime"
    pytest.skip("neither native bf16 nor onnxruntime here: only one way of running")


# -- top-5 answers, computed once per session --------------------------------------------------


@dataclass(frozen=True)
class Way:
    """How a model is loaded and fed for one cached set of answers."""

    load: dict[str, Any]  # load_model keyword arguments
    fast_decode: bool


WAYS = {
    # Plain FP32 eager: the weights as published, no BatchNorm folding, NCHW, every JPEG decoded whole.
    "reference": Way({"fold": False}, fast_decode=False),
    # What cnnviewer runs (window, CLI, benchmark): BatchNorm folded, NHWC, large JPEGs decoded small.
    "fp32": Way({"channels_last": True}, fast_decode=True),
    "bf16": Way({"way": "bf16", "channels_last": True}, fast_decode=True),
    "onnxruntime": Way({"way": "onnxruntime"}, fast_decode=True),
}


class Top5Cache:
    """Each file's top-5 per (model, way, dataset), classified once per test session.

    Classifying the 100 validation photos takes seconds per model on two cores, and the accuracy,
    fast-path and benchmark tests all compare against the same answers. With ``shared`` (a folder all
    pytest-xdist workers of one run see), the first worker to ask classifies and writes the answers
    there, and the others wait for that file instead of classifying again.
    """

    def __init__(self, shared: Path | None = None) -> None:
        self._answers: dict[tuple[str, str, str], list[Top5]] = {}
        self._facts: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._shared = shared

    def get(self, model: str, way: str, dataset: str = "imagenet-val-100") -> list[Top5]:
        """Each file's top-5 class indices, in labelled_files(dataset) order."""
        key = (model, way, dataset)
        with self._lock:
            if key not in self._answers:
                self._answers[key], self._facts[key] = self._shared_or_computed(key)
            return self._answers[key]

    def facts(self, model: str, way: str, dataset: str = "imagenet-val-100") -> dict[str, Any]:
        """How the model that gave get()'s answers ran: precision, engine, channels_last, folded_batchnorms."""
        self.get(model, way, dataset)
        return self._facts[(model, way, dataset)]

    def _shared_or_computed(self, key: tuple[str, str, str]) -> tuple[list[Top5], dict[str, Any]]:
        if self._shared is None:
            return self._computed(key)
        from filelock import FileLock  # torch's own dependency

        self._shared.mkdir(parents=True, exist_ok=True)
        stem = self._shared / "-".join(key)
        answers_file = stem.with_name(stem.name + ".json")
        with FileLock(stem.with_name(stem.name + ".lock")):
            if answers_file.is_file():
                saved = json.loads(answers_file.read_text(encoding="utf-8"))
                return [tuple(a) for a in saved["answers"]], saved["facts"]
            answers, facts = self._computed(key)
            answers_file.write_text(json.dumps({"answers": answers, "facts": facts}), encoding="utf-8")
            return answers, facts

    @staticmethod
    def _computed(key: tuple[str, str, str]) -> tuple[list[Top5], dict[str, Any]]:
        from cnnviewer.core.catalog import get_entry
        from cnnviewer.core.inference import Classifier
        from cnnviewer.core.models import load_model
        from cnnviewer.core.ways import parse_way

        model, way, dataset = key
        recipe = WAYS[way]
        load = dict(recipe.load)
        loaded = load_model(get_entry(model), way=parse_way(load.pop("way", "fp32")), **load)
        answers = top5_indices(Classifier(loaded), labelled_files(dataset), recipe.fast_decode)
        facts = {"precision": loaded.precision, "engine": loaded.engine, "channels_last": loaded.channels_last,
                 "folded_batchnorms": loaded.folded_batchnorms}
        return answers, facts


# -- the command line ---------------------------------------------------------------------------


def run(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``cnnviewer ARGS`` in a subprocess, as a user runs it (offscreen, the session's isolated home)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "cnnviewer", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def run_inprocess(*args: str, env_extra: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``cnnviewer ARGS`` in this process: (exit code, stdout, stderr), as run() gives them.

    It calls the function pyproject's ``[project.scripts]`` names (the console script and ``python -m
    cnnviewer`` call it too) the way they do: ``sys.exit(main())`` with ``sys.argv`` set, real streams
    with an encoding, the log set up afresh. A subprocess imports torch again each time (3-10 s on
    two cores), so tests of what a command prints and returns use this; tests of start-up, signals,
    closed streams, resource limits or another user need run() or a subprocess of their own.
    """
    import importlib
    import io
    import logging
    import tomllib

    script = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]["cnnviewer"]
    module, _, function = script.partition(":")
    main = getattr(importlib.import_module(module), function)
    raw = (io.BytesIO(), io.BytesIO())
    out, err = (io.TextIOWrapper(buffer, encoding="utf-8", line_buffering=True) for buffer in raw)
    # A new process starts with no log handler and sets up its own on the log file of its environment.
    log = logging.getLogger("cnnviewer")
    saved_log = (log.handlers[:], log.level)
    saved_streams = (sys.argv, sys.stdout, sys.stderr)
    saved_env = {name: os.environ.get(name) for name in env_extra or {}}
    log.handlers = []
    os.environ.update(env_extra or {})
    sys.argv, sys.stdout, sys.stderr = ["cnnviewer", *args], out, err
    try:
        sys.exit(main())
    except SystemExit as exc:  # how Python turns sys.exit's argument into a status
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    finally:
        sys.argv, sys.stdout, sys.stderr = saved_streams
        for handler in log.handlers:
            handler.close()
        log.handlers, level = saved_log
        log.setLevel(level)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    out.flush()
    err.flush()
    stdout, stderr = (buffer.getvalue().decode("utf-8", errors="surrogateescape") for buffer in raw)
    return code, stdout, stderr


def cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """run()'s answer, from run_inprocess(): for tests of what a command prints, returns and writes."""
    code, stdout, stderr = run_inprocess(*args, env_extra=env_extra)
    return subprocess.CompletedProcess(["cnnviewer", *args], code, stdout, stderr)


# -- the window ---------------------------------------------------------------------------------

ARTIFACTS = Path(os.environ.get("CNNVIEWER_ARTIFACTS", ROOT / "test-artifacts"))


def save_screenshot(widget: Any, name: str) -> Path:
    """Screenshots of the main states, to be looked at by a person."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert widget.grab().save(str(path)), f"could not save {path}"
    return path


def wait_for_outcome(qtbot: Any, window: Any, path: str | os.PathLike[str], model: str | None = None,
                     timeout: int = 60_000) -> Any:
    """Wait until the predictions panel shows ``path`` (by ``model`` when given); the outcome."""
    path = str(path)
    qtbot.waitUntil(
        lambda: window.last_outcome is not None and window.last_outcome.path == path
        and (model is None or window.last_outcome.model == model),
        timeout=timeout,
    )
    return window.last_outcome


def compare_after_classifying(qtbot: Any, window: Any, path: str) -> Any:
    """Classify ``path`` in the window, then open the compare dialog on it; the dialog."""
    window.open_path(path)
    wait_for_outcome(qtbot, window, path)
    window.open_compare()
    return window.compare_dialog


def replaced(data: Any, keys: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of JSON-like ``data`` with the item at the path ``keys`` set to ``value``."""
    import json

    copy = json.loads(json.dumps(data))
    target = copy
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return copy
