"""Fixtures for every test: a home of its own (for the session and for each test) and shared answers."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import (
    DATASETS,
    PHOTOS_13,
    ROOT,
    SAMPLES_88,
    VAL_100,
    Top5Cache,
    labelled_files,
    second_way,
    top1_accuracy,
    top5_indices,
)

if TYPE_CHECKING:
    from cnnviewer.core.benchmark import BenchmarkReport
    from tests.ray_cluster import LocalRayCluster

# Test modules written before tests/helpers.py import these from here; new code imports tests.helpers.
__all__ = ["DATASETS", "PHOTOS_13", "ROOT", "SAMPLES_88", "VAL_100", "labelled_files", "second_way",
           "top1_accuracy", "top5_indices"]

# Every variable through which cnnviewer, torch or a library finds a user's files, and the folder
# under a fresh home that stands in for it. CNNVIEWER_WEIGHTS_MIRROR is removed (downloads go only
# where a test points them).
HOME_VARIABLES = {
    "HOME": ".",
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
    "XDG_CACHE_HOME": ".cache",
    "TORCH_HOME": "torch",
    "CNNVIEWER_CONFIG_DIR": "config",
    "CNNVIEWER_DATA_DIR": "data",
    "CNNVIEWER_CACHE_DIR": "cache",
    "CNNVIEWER_LOG_FILE": "cnnviewer.log",
}
UNSET_VARIABLES = ("CNNVIEWER_WEIGHTS_MIRROR",)
SESSION_HOME = pytest.StashKey[Path]()
SAVED_ENVIRONMENT = pytest.StashKey[dict[str, str | None]]()


def point_home_at(home: Path) -> None:
    """Point every home variable at ``home`` (os.environ, so subprocesses inherit it too)."""
    for name, sub in HOME_VARIABLES.items():
        os.environ[name] = str(home / sub)
    for name in UNSET_VARIABLES:
        os.environ.pop(name, None)


def pytest_configure(config: pytest.Config) -> None:
    # Before any fixture of any scope: a module- or session-scoped fixture that loads settings or
    # looks for weights must not see the developer's own (a cached ResNet50 changes what runs).
    config.stash[SAVED_ENVIRONMENT] = {name: os.environ.get(name) for name in [*HOME_VARIABLES, *UNSET_VARIABLES]}
    home = Path(tempfile.mkdtemp(prefix="cnnviewer-tests-home-"))
    config.stash[SESSION_HOME] = home
    point_home_at(home)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the worker and window tests need no screen
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        # Under pytest-xdist each worker gets its share of the cores (torch reads this when imported, the
        # CLI's subprocesses inherit it): by default every worker would take them all, and their threads'
        # spin-waits doubled the suite's CPU time on two cores.
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in config.stash.get(SAVED_ENVIRONMENT, {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    home = config.stash.get(SESSION_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    assert DATASETS.is_dir(), f"the shared photos are expected at {DATASETS} (beside the checkout)"


@pytest.fixture(scope="session")
def session_home(pytestconfig: pytest.Config) -> Path:
    """The home every session- and module-scoped fixture sees."""
    return pytestconfig.stash[SESSION_HOME]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings, log and torch's weights cache in a fresh folder for each test, never another test's."""
    home = tmp_path_factory.mktemp("home")
    for name, sub in HOME_VARIABLES.items():
        monkeypatch.setenv(name, str(home / sub))
    for name in UNSET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def top5_cache(tmp_path_factory: pytest.TempPathFactory) -> Top5Cache:
    """Top-5 answers per (model, way of running, dataset), each classified once per run: under
    pytest-xdist, in the folder above every worker's base temp, which all workers of the run share."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return Top5Cache(shared=tmp_path_factory.getbasetemp().parent / "top5-answers")
    return Top5Cache()


@pytest.fixture(scope="session")
def photos_13_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[BenchmarkReport, Path]:
    """One benchmark of the embedded Lite0 and Lite1 on photos-13 (batch 4), with its results.csv.

    Tests that only need a real report to read or show share it; do not change it (copy.deepcopy).
    """
    from cnnviewer.core.benchmark import BenchmarkConfig, run_benchmark
    from cnnviewer.core.datasets import load_labelled_folder
    from cnnviewer.core.report import ResultsCsv

    results = tmp_path_factory.mktemp("photos-13-run") / "results.csv"
    writer = ResultsCsv(results)
    try:
        report = run_benchmark(load_labelled_folder(PHOTOS_13),
                               BenchmarkConfig(models=("efficientnet_lite0", "efficientnet_lite1"), batch_size=4),
                               on_rows=writer.add)
    finally:
        writer.close()
    return report, results


@pytest.fixture(scope="module")
def int8_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a cache folder shared by one test file's tests, a folder of 20 calibration photos from
    imagenet-samples-88): quantizing Lite0 takes seconds to half a minute, so once per file, not per test.
    A file uses it with ``pytestmark = pytest.mark.usefixtures("int8_cache")``."""
    calibration = tmp_path_factory.mktemp("calibration")
    for path, _ in labelled_files("imagenet-samples-88")[:20]:
        (calibration / path.name).symlink_to(path)
    return tmp_path_factory.mktemp("int8-cache"), calibration


@pytest.fixture
def int8_cache(int8_home: tuple[Path, Path], isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's cache folder is its file's shared one (monkeypatch puts the test's own back)."""
    monkeypatch.setenv("CNNVIEWER_CACHE_DIR", str(int8_home[0]))
    return int8_home[0]


@pytest.fixture
def ray_cluster() -> Iterator[Callable[..., LocalRayCluster]]:
    """``ray_cluster(workers=1, cpus=1)`` starts a real Ray cluster on 127.0.0.1 (a head and ``workers`` more
    nodes, tests/ray_cluster.py); every one started is stopped after the test, even a failed one. Skipped
    without ray. Per test, not per module: pytest-xdist runs a module's tests in several processes."""
    pytest.importorskip("ray")
    from tests.ray_cluster import LocalRayCluster

    started: list[LocalRayCluster] = []

    def start(workers: int = 1, cpus: int = 1, start_timeout_s: float = 90.0) -> LocalRayCluster:
        cluster = LocalRayCluster(workers=workers, cpus=cpus, start_timeout_s=start_timeout_s)
        started.append(cluster)
        return cluster.start()

    yield start
    with contextlib.ExitStack() as stops:  # each one stopped even when another's stop() raises
        for cluster in started:
            stops.callback(cluster.stop)
