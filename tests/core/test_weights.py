"""Weights: download from a real HTTP server on 127.0.0.1, import, verify, remove, and refusals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest
import torch
import torchvision

from cnnviewer.core.catalog import Availability, checkpoints_dir, get_entry
from cnnviewer.core.models import build_architecture, load_model
from cnnviewer.core.paths import config_dir, imported_weights_dir
from cnnviewer.core.weights import (
    TORCHVISION_PREFIX,
    DownloadCancelled,
    WeightsError,
    download_weights,
    file_sha256,
    hash_prefix,
    import_weights,
    list_cache,
    remove,
    size_limit,
    verify,
    weights_identity,
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
    data = state_dict_bytes(torchvision.models.get_model(SMALL, weights=None).state_dict())
    path = tmp_path / "shufflenet-cut.pth"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError, match="not a readable PyTorch weights file"):
        import_weights(path, SMALL)


def test_import_by_file_name_checks_the_hash_then_loads(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    data = state_dict_bytes(state)
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"resnet18-{digest[:8]}.pth"
    path.write_bytes(data)
    entry, final = import_weights(path)  # no --model: the name says resnet18
    # Random weights are not torchvision's file: kept apart, under their own content hash.
    assert entry.name == "resnet18" and final == imported_weights_dir() / f"resnet18-{digest[:16]}.pth"
    module = load_model(get_entry("resnet18"), fold=False).module
    assert torch.equal(module.state_dict()["fc.weight"], state["fc.weight"])
    assert [(row.model, row.state) for row in verify("resnet18")] == [("resnet18", "imported")]
    wrong = tmp_path / "resnet18-00000000.pth"
    wrong.write_bytes(data)
    with pytest.raises(WeightsError, match="does not match the hash in its name"):
        import_weights(wrong)


def test_import_needs_a_model_when_the_name_does_not_say(tmp_path):
    path = tmp_path / "best.pth"
    torch.save(torchvision.models.get_model(SMALL, weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match="cannot tell which model these weights are for from the file name"):
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
    assert remove("resnet18") == [resnet] and not resnet.exists()
    with pytest.raises(WeightsError, match="no weights file"):
        remove("resnet18")
    with pytest.raises(WeightsError, match="embedded"):
        remove("efficientnet_lite0")


# -- issue 11: a download is bounded in size and in time ----------------------------------------


def partial_of(entry):
    return checkpoints_dir() / (entry.weights_filename + ".partial")


def test_an_endless_response_stops_at_the_catalogs_size_and_is_deleted(server, small):
    entry, _, data = small
    server.files[entry.weights_filename] = data
    server.mode[entry.weights_filename] = "endless"  # no length: the same bytes again and again
    with pytest.raises(WeightsError, match="more than the .* MB the catalog allows.*partial file was deleted"):
        download_weights(entry, timeout=5)
    assert cache_files() == []  # nothing under the final name, no partial file left behind
    assert size_limit(entry) < 2 * entry.file_size_mb * 2**20


def test_an_announced_length_beyond_the_catalogs_size_is_refused_before_downloading(server, small):
    entry, _, data = small
    server.files[entry.weights_filename] = data
    server.mode[entry.weights_filename] = "liar"
    seen = []
    with pytest.raises(WeightsError, match=r"announced \d+\.\d MB, more than"):
        download_weights(entry, progress=seen.append, timeout=5)
    assert seen == [] and cache_files() == []


def test_a_trickle_hits_the_overall_deadline_and_keeps_what_came(server, small):
    entry, _, data = small
    server.files[entry.weights_filename] = data
    server.mode[entry.weights_filename] = "trickle"  # a byte every 0.25 s: no single read ever times out
    started = time.monotonic()
    with pytest.raises(WeightsError, match="did not finish within 1 s.*kept in .*next download resumes"):
        download_weights(entry, timeout=5, deadline=1.0)
    assert time.monotonic() - started < 4  # the deadline, not the trickle, ended it
    assert 0 < partial_of(entry).stat().st_size < len(data)
    rows = list_cache()
    assert [(row.path.name, row.model, row.state) for row in rows] == [
        (partial_of(entry).name, None, "partial download")]  # a partial file is shown, not hidden


def test_the_partial_file_of_a_server_that_cannot_resume_is_deleted(server, small):
    entry, _, data = small
    server.files[entry.weights_filename] = data
    server.mode[entry.weights_filename] = "cut"
    server.no_ranges.add(entry.weights_filename)
    with pytest.raises(WeightsError, match="broke off.*partial file was deleted"):
        download_weights(entry, timeout=5)
    assert cache_files() == []


def test_an_offline_attempt_keeps_the_partial_file_for_later(monkeypatch, small):
    entry = small[0]
    checkpoints_dir().mkdir(parents=True)
    partial_of(entry).write_bytes(b"x" * 1000)
    monkeypatch.setenv("CNNVIEWER_WEIGHTS_MIRROR", "http://127.0.0.1:9/models")  # nothing listens there
    with pytest.raises(WeightsError, match="refused the connection; the 0.0 MB downloaded so far are kept"):
        download_weights(entry, timeout=5)
    assert partial_of(entry).stat().st_size == 1000  # the server never said it cannot resume


def test_partial_downloads_are_listed_with_their_model_and_removed_with_it(isolated_home):
    entry = get_entry("resnet18")
    checkpoints_dir().mkdir(parents=True)
    partial = checkpoints_dir() / (entry.weights_filename + ".partial")
    partial.write_bytes(b"x" * 1000)
    assert [(row.path, row.size, row.model, row.state) for row in list_cache()] == [
        (partial, 1000, "resnet18", "partial download")]
    assert entry.availability() is Availability.MISSING
    assert remove("resnet18") == [partial] and not partial.exists()


# -- issue 12: one download of a file at a time -------------------------------------------------


def wait_until(condition, seconds=10.0):
    ends = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < ends, "timed out"
        time.sleep(0.01)


def start_download(entry, outcome: dict) -> threading.Thread:
    """A real second thread that downloads ``entry``; ``outcome`` gets "path" or "error"."""
    def download() -> None:
        try:
            outcome["path"] = download_weights(entry, timeout=10)
        except WeightsError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=download)
    thread.start()
    return thread


def test_a_second_download_of_the_same_file_is_told_another_one_runs(server, small):
    entry, _, data = small
    server.files[entry.weights_filename] = data
    server.mode[entry.weights_filename] = "hold"  # half the file, then the rest once released
    first: dict = {}
    thread = start_download(entry, first)
    try:
        wait_until(lambda: server.sent.get(entry.weights_filename))  # the first one is under way
        with pytest.raises(WeightsError, match="Another download of shufflenet_v2_x0_5 is running"):
            download_weights(entry, timeout=10)
    finally:
        server.release.set()
        thread.join(30)
    assert "error" not in first, first.get("error")
    assert first["path"].read_bytes() == data  # not corrupted by the second one
    assert len(server.requests) == 1
    assert cache_files() == [entry.weights_filename]  # no lock file or partial file left behind
    server.mode[entry.weights_filename] = "ok"
    assert download_weights(entry).read_bytes() == data  # the lock was given back


def test_remove_does_not_pull_a_partial_file_from_under_a_download(server):
    entry = get_entry("resnet18")
    server.files[entry.weights_filename] = os.urandom(1 << 20)
    server.mode[entry.weights_filename] = "hold"
    outcome: dict = {}
    thread = start_download(entry, outcome)
    try:
        wait_until(lambda: partial_of(entry).exists() and partial_of(entry).stat().st_size)
        with pytest.raises(WeightsError, match="Another download of resnet18 is running"):
            remove("resnet18")
        assert partial_of(entry).exists()
    finally:
        server.release.set()
        thread.join(30)
    assert "does not match the hash in its name" in str(outcome["error"])  # it ran to its end
    assert cache_files() == []


# -- issue 13: imported weights never pass for torchvision's --------------------------------------


SMALL = "shufflenet_v2_x0_5"  # 5 MB of weights: for tests where which model does not matter


def random_weights(tmp_path, name="best.pth", seed=0, model="resnet18"):
    """A real state_dict of ``model`` with random weights (say, a fine-tuned copy) in ``name``."""
    torch.manual_seed(seed)
    state = torchvision.models.get_model(model, weights=None).state_dict()
    path = tmp_path / name
    path.write_bytes(state_dict_bytes(state))
    return path, state


def test_an_import_that_is_not_the_published_file_never_takes_torchvisions_name(tmp_path):
    path, state = random_weights(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    entry, final = import_weights(path, "resnet18")
    # Where torchvision itself looks for resnet18(weights="IMAGENET1K_V1"): nothing may be there.
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    assert not (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)).exists()
    assert cache_files() == []
    assert final == imported_weights_dir() / f"resnet18-{digest[:16]}.pth"
    assert entry.availability() is Availability.IMPORTED and entry.weights_path() == final
    label = f"imported: best.pth (sha256 {digest[:8]}…)"
    identity = weights_identity(entry)
    assert identity.label == label and identity.weights_id == label and identity.sha256 == digest
    loaded = load_model(entry, fold=False)
    assert torch.equal(loaded.module.state_dict()["fc.weight"], state["fc.weight"])
    assert loaded.weights_path == final and weights_identity(entry, loaded.weights_path).description == label
    [row] = list_cache()
    assert (row.path, row.model, row.shown) == (final, "resnet18", label)


def test_an_import_whose_sha256_matches_torchvisions_name_goes_into_torchs_cache(tmp_path, small):
    entry, state, data = small  # an entry whose published name carries the true hash of these bytes
    path = tmp_path / "copied-from-a-usb-stick.pth"
    path.write_bytes(data)
    got, final = import_weights(path, entry)
    assert final == checkpoints_dir() / entry.weights_filename and final.read_bytes() == data
    assert entry.availability() is Availability.CACHED
    assert weights_identity(entry).weights_id == entry.weights_id  # the published weights, named as such
    assert [row.state for row in list_cache()] == ["verified"]
    assert not imported_weights_dir().exists() or not any(imported_weights_dir().iterdir())


def test_the_published_file_wins_over_an_import_and_a_new_import_replaces_the_old(tmp_path):
    entry = get_entry(SMALL)
    first, _ = random_weights(tmp_path, "first.pth", seed=1, model=SMALL)
    second, _ = random_weights(tmp_path, "second.pth", seed=2, model=SMALL)
    _, old = import_weights(first, SMALL)
    _, new = import_weights(second, SMALL)
    assert not old.exists() and entry.weights_path() == new
    assert weights_identity(entry).label.startswith("imported: second.pth (sha256 ")
    cached = entry.cached_weights_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(first.read_bytes())  # as a download would put torchvision's file there
    assert entry.availability() is Availability.CACHED and entry.weights_path() == cached
    shown = {row.path: row.shown for row in list_cache()}
    assert shown[new].endswith("not used: torchvision's file is cached")
    assert sorted(remove(SMALL)) == sorted([cached, new]) and entry.availability() is Availability.MISSING


def test_a_benchmark_report_names_imported_weights_and_their_sha256(tmp_path):
    from cnnviewer.core.benchmark import BenchmarkConfig, run_benchmark
    from cnnviewer.core.datasets import load_labelled_folder
    from tests.helpers import PHOTOS_13

    path, _ = random_weights(tmp_path, model="shufflenet_v2_x0_5")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    import_weights(path, "shufflenet_v2_x0_5")
    config = BenchmarkConfig(models=("shufflenet_v2_x0_5",), batch_size=1, limit=1, latency_samples=1)
    [result] = run_benchmark(load_labelled_folder(PHOTOS_13), config).models
    assert result.error is None and result.weights == f"imported: best.pth (sha256 {digest[:8]}…)"
    assert result.weights_sha256 == digest
    assert result.published["acc1"] is None and result.published["acc5"] is None  # torchvision's are not theirs
    lite = get_entry("efficientnet_lite0")  # published weights keep their published name, and get a digest
    identity = weights_identity(lite, with_sha256=True)
    assert identity.weights_id == lite.weights_id
    assert identity.sha256 == hashlib.sha256(lite.weights_path().read_bytes()).hexdigest()


# -- issue 7 (part): the record of checked files is validated -----------------------------------


def record_path():
    return config_dir() / "weights-checked.json"


def test_a_file_is_hashed_once_and_remembered_by_size_and_mtime(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"a" * 4096)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == digest
    stat = path.stat()
    path.write_bytes(b"b" * 4096)  # same size; the mtime put back: the record is trusted, not re-hashed
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_sha256(path) == digest
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a changed file is hashed again
    assert file_sha256(path) == hashlib.sha256(b"b" * 4096).hexdigest()


def test_a_deeply_nested_record_reads_as_empty_with_a_line_in_the_log(tmp_path, caplog):
    path, _ = random_weights(tmp_path, model=SMALL)
    _, final = import_weights(path, SMALL)
    record_path().write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="cnnviewer.core.weights"):
        rows = list_cache()
        assert [row.state for row in rows] == ["imported"]  # still listed, from the file name
        assert weights_identity(get_entry(SMALL)).availability is Availability.IMPORTED
    assert "not valid JSON (RecursionError); using the default instead" in caplog.text
    assert caplog.text.count("not valid JSON") == 1  # once per version of the file, not per read
    assert file_sha256(final)  # and the record is written afresh
    assert str(final) in json.loads(record_path().read_text(encoding="utf-8"))


def test_bad_values_in_the_record_fall_back_to_the_defaults(tmp_path, caplog):
    path, _ = random_weights(tmp_path, model=SMALL)
    _, final = import_weights(path, SMALL)
    stat = final.stat()
    good = {"state": "imported", "size": stat.st_size, "mtime": stat.st_mtime, "source": str(path)}
    record_path().write_text(json.dumps({
        str(final): {**good, "sha256": "not hex", "source": ["a", "list"]},
        "/elsewhere/a.pth": {**good, "state": "trusted-by-me"},
        "/elsewhere/b.pth": {**good, "size": "big"},
        "/elsewhere/c.pth": [1, 2],
    }), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="cnnviewer.core.weights"):
        identity = weights_identity(get_entry(SMALL))
    assert identity.original_name == "" and identity.sha256 == ""  # the defaults, not the bad values
    assert identity.label.startswith(f"imported: {final.name} (sha256 ")
    for problem in ("SHA-256 that is not 64 hex digits", "source that is not a short text", "unknown state",
                    "size that is not a whole number", "is not a mapping"):
        assert problem in caplog.text
    record_path().write_text(json.dumps([1, 2, 3]), encoding="utf-8")
    assert [row.state for row in verify()] == ["imported"]


def test_threads_that_record_at_once_lose_no_entry(tmp_path):
    files = []
    for index in range(24):
        path = tmp_path / f"w{index}.pth"
        path.write_bytes(index.to_bytes(4, "big"))
        files.append(path)
    threads = [threading.Thread(target=lambda part=files[i::6]: [file_sha256(p) for p in part]) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    record = json.loads(record_path().read_text(encoding="utf-8"))
    assert sorted(record) == sorted(str(p) for p in files)  # every read-modify-write under the lock
