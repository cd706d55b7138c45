"""The cache holds files cnnviewer later runs: only files this user wrote, in folders only they can write, are used."""

from __future__ import annotations

import argparse
import json
import os
import stat

import pytest

from cnnviewer.core import auto, onnx_cache
from cnnviewer.core.catalog import get_entry
from cnnviewer.core.paths import cache_dir
from cnnviewer.core.ways import ONNXRUNTIME

LITE0 = get_entry("efficientnet_lite0")
SHA = "0" * 64


def test_an_export_is_kept_in_a_private_folder_and_refused_once_others_could_have_written_it():
    path = onnx_cache.save_export(LITE0, SHA, b"an export's bytes")
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert onnx_cache.load_export(LITE0.name, SHA) is not None
    os.chmod(path, 0o664)  # group-writable: someone else could have replaced it
    assert onnx_cache.load_export(LITE0.name, SHA) is None
    os.chmod(path, 0o600)
    os.chmod(path.parent, 0o777)
    assert onnx_cache.load_export(LITE0.name, SHA) is None
    os.chmod(path.parent, 0o700)
    assert onnx_cache.load_export(LITE0.name, SHA) is not None
    if os.geteuid() == 0:  # only root can give a file away
        os.chown(path, 12345, 12345)
        assert onnx_cache.load_export(LITE0.name, SHA) is None


def test_the_export_key_names_every_package_that_shapes_the_graph():
    names = set(onnx_cache.export_key(LITE0.name, SHA)["versions"])
    assert {"cnnviewer", "torch", "torchvision", "efficientnet-lite-pytorch", "onnx", "onnxruntime"} <= names
    assert set(auto.cache_key(LITE0.name, SHA)["versions"]) == names


def _record(chosen: str, onnx_equal: bool) -> auto.AutoRecord:
    key = auto.cache_key(LITE0.name, SHA, "cpu")
    ways = (auto.WayResult("fp32", 10.0, True), auto.WayResult("onnxruntime", 30.0, onnx_equal))
    return auto.AutoRecord(LITE0.name, SHA, key["device"], key["device_name"], key["versions"], "probe",
                           "2026-11-30T00:00:00Z", ways, chosen)


@pytest.mark.parametrize(("chosen", "onnx_equal", "kept"), [("onnxruntime", True, True), ("onnxruntime", False, False),
                                                           ("int8", True, False), ("bf16", True, False)])
def test_a_record_is_used_only_when_its_choice_is_a_measured_way_with_fp32s_top5(chosen, onnx_equal, kept):
    auto.save_record(_record(chosen, onnx_equal))
    found = auto.cached_record(LITE0.name, SHA, "cpu")
    assert (found is not None and found.chosen == chosen) if kept else found is None


def test_a_measurement_file_others_could_write_is_not_used():
    auto.save_record(_record("onnxruntime", True))
    assert auto.cached_record(LITE0.name, SHA, "cpu") is not None
    os.chmod(auto.cache_file(), 0o666)
    assert auto.cached_record(LITE0.name, SHA, "cpu") is None


def test_the_fast_path_runs_only_the_recipe_the_catalog_gives_now_and_never_with_calibrate():
    from cnnviewer.cli import _fast_classifier
    from cnnviewer.core.models import load_model

    load_model(LITE0, "cpu", ONNXRUNTIME)  # exports and keeps it
    args = argparse.Namespace(device="cpu", model=LITE0.name, calibrate=None)
    assert _fast_classifier(args, ONNXRUNTIME) is not None
    assert _fast_classifier(argparse.Namespace(device="cpu", model=LITE0.name, calibrate=str(cache_dir())),
                            ONNXRUNTIME) is None
    [record_file] = (cache_dir() / "onnx").glob(f"{LITE0.name}-fp32-*.json")
    record = json.loads(record_file.read_text())
    record["preprocessing"]["resize_size"] += 32  # an export made for another recipe
    record_file.write_text(json.dumps(record))
    assert _fast_classifier(args, ONNXRUNTIME) is None
