"""Measured speeds: kept per model, device and way from complete results only, and a bad file never stops a run."""

from __future__ import annotations

import json
import logging
from typing import Any

from cnnviewer.core.benchmark import BenchmarkReport, ModelResult
from cnnviewer.core.measured import record, speeds, speeds_path
from cnnviewer.core.paths import data_dir


def result(name: str, ips: float | None, run_as: str = "fp32", **state: Any) -> ModelResult:
    timed: dict[str, Any] = {"complete": True, "latency_ms": {"p50": 5.0}} if ips is not None else {}
    return ModelResult(name=name if run_as == "fp32" else f"{name} ({run_as})", title=name, weights="w", model=name,
                       run_as=run_as, images=8, end_to_end_ips=ips, **{**timed, **state})


def report(*models: ModelResult, device: str = "cpu") -> BenchmarkReport:
    return BenchmarkReport(root="photos", config={"device": device}, environment={"device": device},
                           models=list(models))


def test_round_trip_per_device_and_way(isolated_home):
    assert speeds_path().parent == data_dir()  # the tests' data folder, never the user's
    assert record(report(result("resnet50", 41.5), result("resnet50", 77.0, "bf16"), result("alexnet", 300.0))) == 3
    assert record(report(result("resnet50", 900.0), device="cuda")) == 1
    assert speeds("cpu") == {"resnet50": 41.5, "alexnet": 300.0}
    assert speeds("cpu", "bf16") == {"resnet50": 77.0}
    assert speeds("cuda") == {"resnet50": 900.0}
    record(report(result("resnet50", 45.0)))  # a newer run replaces the figure, the others stay
    assert speeds("cpu") == {"resnet50": 45.0, "alexnet": 300.0}
    assert json.loads(speeds_path().read_text())["alexnet|cpu|fp32"] == 300.0


def test_partial_failed_and_untimed_results_are_not_kept(isolated_home):
    kept = record(report(
        result("resnet50", 40.0, partial=True, complete=False),  # cut short by Cancel
        result("vgg16", None, error="the weights are missing", error_kind="weights"),
        result("alexnet", 50.0, complete=False),  # still running when the report was written
        result("googlenet", 0.0),
    ))
    assert kept == 0
    assert speeds("cpu") == {}
    assert not speeds_path().exists()


def test_a_corrupt_file_is_logged_and_started_afresh(isolated_home, caplog):
    speeds_path().parent.mkdir(parents=True, exist_ok=True)
    speeds_path().write_bytes(b"\x00{not json")
    with caplog.at_level(logging.WARNING, logger="cnnviewer.core.measured"):
        assert speeds("cpu") == {}
    assert "start afresh" in caplog.text and str(speeds_path()) in caplog.text
    assert record(report(result("resnet50", 41.5))) == 1
    assert speeds("cpu") == {"resnet50": 41.5}


def test_bad_entries_are_dropped_one_by_one(isolated_home):
    speeds_path().parent.mkdir(parents=True, exist_ok=True)
    speeds_path().write_text(json.dumps({"a|cpu|fp32": "fast", "b|cpu|fp32": -1, "c|cpu|fp32": True,
                                         "d|cpu|fp32": 12.5, "e|cpu|fp32": 1e400}))
    assert speeds("cpu") == {"d": 12.5}


def test_an_unwritable_folder_costs_the_figure_not_the_report(isolated_home, caplog):
    data_dir().parent.mkdir(parents=True, exist_ok=True)
    data_dir().write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING, logger="cnnviewer.core.measured"):
        assert record(report(result("resnet50", 41.5))) == 0
    assert "were not kept" in caplog.text


def test_the_file_is_read_again_only_when_it_changed(isolated_home, monkeypatch):
    """The model picker asks at every keystroke, on the GUI thread: the file is parsed once per version."""
    from cnnviewer.core import measured

    record(report(result("resnet50", 41.5)))
    parsed: list[object] = []
    real = measured._parse
    monkeypatch.setattr(measured, "_parse", lambda path: parsed.append(path) or real(path))
    for _ in range(50):
        assert speeds("cpu") == {"resnet50": 41.5}
    assert len(parsed) <= 1
    record(report(result("resnet50", 44.0)))  # a new run: read again
    assert speeds("cpu") == {"resnet50": 44.0}
    speeds_path().write_text(json.dumps({"resnet50|cpu|fp32": 39.0}))  # rewritten by hand, in place
    assert speeds("cpu") == {"resnet50": 39.0}


def test_a_fifo_in_place_of_the_file_does_not_hang(isolated_home, caplog):
    """The model picker reads the file on the GUI thread: a FIFO there (no writer) must not block it."""
    import os

    speeds_path().parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(speeds_path())
    with caplog.at_level(logging.WARNING):
        assert speeds("cpu") == {}
    assert "not a regular file" in caplog.text
