"""Weights: download from a real HTTP server on 127.0.0.1, import, verify, remove, and refusals."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch
import torchvision

from cnnviewer.core.catalog import Availability, checkpoints_dir, get_entry
from cnnviewer.core.models import build_architecture, load_model
from cnnviewer.core.weights import (
    TORCHVISION_PREFIX,
    DownloadCancelled,
    WeightsError,
    download_weights,
    hash_prefix,
    import_weights,
    list_cache,
    remove,
    verify,
    weights_url,
)
from tests.weights_server import WeightsServer, save_code_pickle, state_dict_bytes


@pytest.fixture
def server(monkeypatch):
    with WeightsServer() as running:
        monkeypatch.setenv("CNNVIEWER_WEIGHTS_MIRROR", running.mirror)
        yield running


@pytest.fixture
def small():
    """A real state_dict (ShuffleNetV2 x0.5, random weights) under a name with its true hash prefix."""
    state = build_architecture(get_entry("shufflenet_v2_x0_5")).state_dict()
    data = state_dict_bytes(state)
    name = f"shufflenetv2_x0.5-{hashlib.sha256(data).hexdigest()[:10]}.pth"
    entry = dataclasses.replace(get_entry("shufflenet_v2_x0_5"), weights_filename=name,
                                weights_url=TORCHVISION_PREFIX + name)
    return entry, state, data


def cache_files():
    folder = checkpoints_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_mirror_replaces_torchvisions_prefix(monkeypatch):
    entry = get_entry("resnet50")
    assert weights_url(entry) == "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
    monkeypatch.setenv("CNNVIEWER_WEIGHTS_MIRROR", "http://mirror.example/tv/")
    assert weights_url(entry) == "http://mirror.example/tv/resnet50-11ad3fa6.pth"
    assert hash_prefix("resnet50-11ad3fa6.pth") == "11ad3fa6"
    assert hash_prefix("mnasnet0.5_top1_67.823-3ffadce67e.pth") == "3ffadce67e"


def test_download_then_load(server, small):
    entry, state, data = small
    server.files[entry.weights_filename] = data
    seen = []
    path = download_weights(entry, progress=seen.append)
    assert path == checkpoints_dir() / entry.weights_filename and path.read_bytes() == data
    assert seen[-1].done == seen[-1].total == len(data)
    assert entry.availability() is Availability.CACHED
    module = load_model(entry, fold=False).module  # exactly the file's tensors
    for key, value in state.items():
        assert torch.equal(module.state_dict()[key], value), key
    assert cache_files() == [entry.weights_filename]
    assert [row.state for row in list_cache()] == ["verified"]


def test_a_flipped_byte_is_a_hash_error_and_leaves_the_cache_unchanged(server, small):
    entry, _, data = small
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    server.files[entry.weights_filename] = bytes(damaged)
    with pytest.raises(WeightsError, match="does not match the hash in its name"):
        download_weights(entry)
    assert cache_files() == []
    assert entry.availability() is Availability.MISSING


def test_connection_closed_half_way_then_resumed_with_range(server, small):
    entry, _, data = small
    server.files[entry.weights_filename] = data
    server.mode[entry.weights_filename] = "cut"
    with pytest.raises(WeightsError, match="broke off"):
        download_weights(entry, timeout=5)
    assert entry.weights_filename not in cache_files()  # nothing that looks like a good file
    partial = checkpoints_dir() / (entry.weights_filename + ".partial")
    assert 0 < partial.stat().st_size < len(data)
    server.mode[entry.weights_filename] = "ok"
    path = download_weights(entry)
    assert path.read_bytes() == data and not partial.exists()
    assert server.requests[-1]["range"] == f"bytes={len(data) // 2}-"


def test_cancel(server, small):
    entry, _, data = small
    server.files[entry.weights_filename] = data
    server.mode[entry.weights_filename] = "slow"
    calls = []
    with pytest.raises(DownloadCancelled, match="cancelled"):
        download_weights(entry, progress=calls.append, should_cancel=lambda: len(calls) >= 2)
    assert entry.weights_filename not in cache_files()


def test_404(server, small):
    entry, _, _ = small
    with pytest.raises(WeightsError, match="HTTP 404"):
        download_weights(entry)
    assert cache_files() == []


def test_offline_is_one_sentence(monkeypatch, small):
    monkeypatch.setenv("CNNVIEWER_WEIGHTS_MIRROR", "http://127.0.0.1:9/models")  # nothing listens there
    with pytest.raises(WeightsError, match="refused the connection"):
        download_weights(small[0], timeout=5)


def test_pickle_that_would_create_a_file_is_refused_on_import(tmp_path):
    marker = tmp_path / "created-by-pickle"
    path = tmp_path / "resnet18-weights.pth"
    save_code_pickle(path, marker, key="fc.weight")
    with pytest.raises(WeightsError, match="refused.*Python code"):
        import_weights(path, "resnet18")
    assert not marker.exists()
    assert cache_files() == []


def test_another_architectures_state_dict_is_a_clear_error(tmp_path):
    path = tmp_path / "mystery.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match=r"do not fit resnet18: \d+ missing key\(s\).*unexpected key"):
        import_weights(path, "resnet18")
    assert cache_files() == []


@pytest.mark.parametrize("content", [b"", b"\x00" * 1000, b"PK\x03\x04 truncated zip"], ids=["empty", "zeros", "zip"])
def test_unreadable_weights_files_are_clear_errors(tmp_path, content):
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="not a readable PyTorch weights file"):
        import_weights(path, "resnet18")
    assert cache_files() == []


def test_truncated_real_weights_file(tmp_path):
    data = state_dict_bytes(torchvision.models.resnet18(weights=None).state_dict())
    path = tmp_path / "resnet18-cut.pth"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError, match="not a readable PyTorch weights file"):
        import_weights(path, "resnet18")


def test_import_by_file_name_checks_the_hash_then_loads(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    data = state_dict_bytes(state)
    path = tmp_path / f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    path.write_bytes(data)
    entry, final = import_weights(path)  # no --model: the name says resnet18
    assert entry.name == "resnet18" and final.name == "resnet18-f37072fd.pth"
    module = load_model(get_entry("resnet18")).module
    assert torch.equal(module.state_dict()["fc.weight"], state["fc.weight"])
    assert [(row.model, row.state) for row in verify("resnet18")] == [("resnet18", "imported")]
    wrong = tmp_path / "resnet18-00000000.pth"
    wrong.write_bytes(data)
    with pytest.raises(WeightsError, match="does not match the hash in its name"):
        import_weights(wrong)


def test_import_needs_a_model_when_the_name_does_not_say(tmp_path):
    path = tmp_path / "best.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match="--model"):
        import_weights(path)


def test_verify_finds_a_damaged_cached_file_and_remove_deletes_it(server, small):
    entry, _, data = small
    server.files[entry.weights_filename] = data
    path = download_weights(entry)
    assert [row.state for row in verify()] == ["verified"]
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 1
    path.write_bytes(bytes(damaged))
    assert [row.state for row in verify()] == ["hash mismatch"]
    resnet = checkpoints_dir() / get_entry("resnet18").weights_filename
    resnet.write_bytes(b"x")
    assert remove("resnet18") == resnet and not resnet.exists()
    with pytest.raises(WeightsError, match="no weights file"):
        remove("resnet18")
    with pytest.raises(WeightsError, match="embedded"):
        remove("efficientnet_lite0")
