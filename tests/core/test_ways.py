"""A way of running is one value (RunAs): its labels, parsing, what this machine offers, and who carries it."""

from __future__ import annotations

import pytest

from cnnviewer.core.engines import onnxruntime_available
from cnnviewer.core.errors import CnnviewerError
from cnnviewer.core.models import bf16_supported
from cnnviewer.core.ways import BF16, FP32, ONNXRUNTIME, WAYS, RunAs, available_ways, parse_way, parse_ways, way_of


def test_each_way_has_one_label_and_reads_back():
    assert [way.label for way in WAYS.values()] == ["fp32", "bf16", "onnxruntime", "int8"]
    for label, way in WAYS.items():
        assert parse_way(label) == way and parse_way(f" {label.upper()} ") is way and str(way) == label
        assert way_of(way.precision, way.engine) == way
    assert FP32.has_gradients and not BF16.has_gradients and not ONNXRUNTIME.has_gradients
    assert parse_ways("fp32, bf16,fp32,,onnxruntime") == (FP32, BF16, ONNXRUNTIME) and parse_ways(" ") == ()


def test_a_way_that_does_not_exist_is_a_sentence():
    with pytest.raises(CnnviewerError, match="Unknown way of running 'int4'; choose from fp32, bf16, onnxruntime, int8"):
        parse_ways("fp32,int4")
    with pytest.raises(CnnviewerError, match="Unknown precision 'fp8'"):
        RunAs("fp8")
    with pytest.raises(CnnviewerError, match="Unknown engine 'tensorrt'"):
        RunAs("fp32", "tensorrt")
    with pytest.raises(CnnviewerError, match="ONNX Runtime runs the FP32 weights or their int8"):
        way_of("bf16", "onnxruntime")


def test_the_ways_offered_are_the_ones_this_machine_runs():
    ways = available_ways("cpu")
    assert ways[0] == FP32
    assert (BF16 in ways) == bf16_supported("cpu")
    assert (ONNXRUNTIME in ways) == onnxruntime_available()
    assert ONNXRUNTIME not in available_ways("meta")  # ONNX Runtime is offered on the CPU only
