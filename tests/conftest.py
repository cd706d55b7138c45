"""Shared fixtures: the real photos beside the checkout, and an isolated home for every test."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATASETS = SHARED / "datasets"
VAL_100 = DATASETS / "imagenet-val-100"
SAMPLES_88 = DATASETS / "imagenet-samples-88"
PHOTOS_13 = DATASETS / "photos-13"


def manifest() -> list[dict]:
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


def top5_indices(classifier, files, fast_decode=False) -> list[tuple[int, ...]]:
    """Each file's top-5 class indices from ``classifier`` (files: (path, truth) pairs)."""
    return [tuple(p.index for p in r.predictions)
            for r in classifier.classify_files([p for p, _ in files], batch_size=16, fast_decode=fast_decode)]


def top1_accuracy(results, files) -> float:
    """Top-1 % of top5_indices results against the files' true classes."""
    return 100.0 * sum(r[0] == truth for r, (_, truth) in zip(results, files)) / len(files)


def second_way() -> str:
    """A way of running besides fp32 that this machine offers (bf16, else onnxruntime); skips if none."""
    from cnnviewer.core.engines import onnxruntime_available
    from cnnviewer.core.models import bf16_supported

    if bf16_supported():
        return "bf16"
    if onnxruntime_available():
        return "onnxruntime"
    pytest.skip("neither native bf16 nor onnxruntime here: only one way of running")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Settings, log and torch's weights cache in a fresh folder, never the developer's own."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("CNNVIEWER_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("CNNVIEWER_LOG_FILE", str(home / "cnnviewer.log"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    return home


def pytest_sessionstart(session):
    assert DATASETS.is_dir(), f"the shared photos are expected at {DATASETS} (beside the checkout)"
