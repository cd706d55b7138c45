"""The way called auto: it never picks a way whose top-5 differs from FP32's, and it measures once per key."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from cnnviewer.core import auto
from cnnviewer.core.auto import Resolved, WayMeasurement, WayResult, cached_record, pick_way, resolve_way
from cnnviewer.core.catalog import get_entry
from cnnviewer.core.errors import CnnviewerError
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import load_model
from cnnviewer.core.ways import AUTO, BF16, FP32, ONNXRUNTIME, WAY_CHOICES, AutoWay, parse_way_choice
from cnnviewer.core.weights import file_sha256

TOP5 = ((285, 282, 281, 287, 904), (967, 968, 504, 925, 960), (652, 457, 834, 617, 400))


def measured(way, speed, top5=TOP5, error=None):
    return WayMeasurement(way, speed, top5 if error is None else (), error)


def test_auto_is_a_choice_that_reads_back_and_is_shown_with_its_way():
    assert parse_way_choice(" AUTO ") is AUTO and isinstance(AUTO, AutoWay) and str(AUTO) == "auto"
    assert parse_way_choice("bf16") == BF16 and WAY_CHOICES[:4] == ("auto", "fp32", "bf16", "onnxruntime")
    with pytest.raises(CnnviewerError, match="Unknown way of running 'int4'; choose from auto, fp32"):
        parse_way_choice("int4")
    assert Resolved(ONNXRUNTIME, auto=True).label == "auto: onnxruntime" and Resolved(BF16).label == "bf16"


def test_pick_way_takes_the_fastest_way_whose_top5_equals_fp32s_on_every_input():
    one_differs = (TOP5[0], TOP5[1], (652, 457, 834, 400, 617))  # same classes, two swapped in one row
    assert pick_way([measured(FP32, 10), measured(ONNXRUNTIME, 50, one_differs), measured(BF16, 30)]) == BF16
    assert pick_way([measured(FP32, 10), measured(ONNXRUNTIME, 50, one_differs), measured(BF16, 30, TOP5[:2])]) \
        == FP32  # an input missing is not "equal on every input"
    assert pick_way([measured(FP32, 10), measured(ONNXRUNTIME, 50, error="export failed")]) == FP32
    assert pick_way([measured(FP32, 10), measured(ONNXRUNTIME, 9)]) == FP32  # slower: FP32 stays
    assert pick_way([measured(FP32, 10), measured(ONNXRUNTIME, 11), measured(BF16, 12)]) == BF16


def test_auto_on_lite0_runs_a_way_whose_top5_equals_fp32s_on_the_probe_set_and_measures_once():
    entry = get_entry("efficientnet_lite0")
    resolved = resolve_way(entry, "cpu", AUTO)
    record = resolved.record
    assert resolved.auto and record is not None and resolved.way == record.way
    assert record.probe == auto.PROBE_DESCRIPTION and record.device == "cpu" and auto.cache_file().is_file()
    assert {w.way for w in record.ways} >= {"fp32"} and all(w.images_per_second > 0 for w in record.ways)
    # Run both ways here, apart from the measurement, and compare.
    probes = [image for _, image in auto.probe_images()]
    assert len(probes) == 12

    def top5(way):
        classifier = Classifier(load_model(entry, "cpu", way, channels_last=True))
        return [tuple(p.index for p in row) for row in classifier.predict_batch(
            __import__("torch").stack([classifier.preprocess(image) for image in probes]))]

    assert top5(resolved.way) == top5(FP32)
    # The second time the cache answers: a record marked here comes back as it is, with nothing measured.
    marked = dataclasses.replace(record, ways=(*record.ways, WayResult("marker", 1234.5, False)))
    auto.save_record(marked)
    again = resolve_way(entry, "cpu", AUTO)
    assert again.record == marked and again.way == resolved.way
    # Keyed: other weights (or another model) are never answered from this record.
    assert cached_record(entry.name, "0" * 64, "cpu") is None
    assert cached_record("efficientnet_lite1", file_sha256(entry.weights_path()), "cpu") is None
    assert resolve_way(entry, "cpu", FP32) == Resolved(FP32)  # a way asked for is used as it is


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"format": 1, "records": {"x": 5}}', b"\xff\xfe"])
def test_a_damaged_or_foreign_cache_is_ignored_with_a_log_line(content, caplog):
    sha = "1" * 64
    key = auto.cache_key("efficientnet_lite0", sha)
    auto.cache_file().parent.mkdir(parents=True, exist_ok=True)
    auto.cache_file().write_bytes(content.replace(b'"x"', f'"{auto._key_text(key)}"'.encode()))
    with caplog.at_level(logging.WARNING, logger="cnnviewer.core.auto"):
        assert cached_record("efficientnet_lite0", sha) is None
    assert "auto measures again" in caplog.text
    record = auto.AutoRecord("efficientnet_lite0", sha, "cpu", key["device_name"], key["versions"], "probe",
                             "2026-01-01T00:00:00+00:00", (WayResult("fp32", 1.0, True),), "fp32")
    auto.save_record(record)  # the damaged file is replaced by a good one
    assert cached_record("efficientnet_lite0", sha) == record


def test_a_benchmark_says_auto_is_choosing_while_it_measures(tmp_path, monkeypatch):
    """While auto measures a model's ways, the progress says so: "Timing ... (round 1 of 3)" read like the
    benchmark's own timing rounds, which come later."""
    from cnnviewer.core.benchmark import BenchmarkConfig
    from cnnviewer.core.datasets import load_labelled_folder
    from cnnviewer.core.session import run_to_folder
    from tests.helpers import PHOTOS_13

    monkeypatch.setenv("CNNVIEWER_CACHE_DIR", str(tmp_path / "cache"))  # nothing measured yet
    texts: list[str] = []
    config = BenchmarkConfig(models=("efficientnet_lite0",), ways=(AUTO,), batch_size=4, limit=4, timing_rounds=0)
    run_to_folder(load_labelled_folder(PHOTOS_13), config, tmp_path / "run", progress=lambda p: texts.append(p.text))
    steps = [text for text in texts if text.startswith("choosing the fastest way: ")]
    assert "choosing the fastest way: loading fp32 (1 of " in " ".join(steps)
    assert any(text.startswith("choosing the fastest way: timing fp32 (round 1 of ") for text in steps), steps
    assert not any(text.startswith(("Loading", "Timing")) for text in texts), texts
