"""Weights files as untrusted input: damaged values, and files built to cost far more than their size."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib

import pytest
import torch

from cnnviewer.core.catalog import checkpoints_dir, get_entry
from cnnviewer.core.models import (
    MAX_PICKLE_BYTES,
    WeightsFileError,
    build_for_weights,
    fit_state_dict,
    load_model,
    read_state_dict,
)

ENTRY = get_entry("mobilenet_v3_small")  # small, with BatchNorm layers to fold
_MARKER = 123457  # an element count a pickle stores as a 4-byte int, found and replaced below


def _state() -> dict[str, torch.Tensor]:
    return build_for_weights(ENTRY).state_dict()


def _save(state, path, zipped: bool = True):
    torch.save(state, path, _use_new_zipfile_serialization=zipped)
    return path


def _write_zip(path, entries) -> None:
    """A zip archive from (name, data, size unpacked, method) entries: method 8 is deflate; data given as
    an int is that many zero bytes left as a hole (a sparse file: nothing written, read back as zeros)."""
    directory = bytearray()
    with open(path, "wb") as out:
        for name, data, size, method in entries:
            raw, offset = name.encode(), out.tell()
            stored = data if isinstance(data, int) else len(data)
            crc = zlib.crc32(data) if isinstance(data, bytes) and method == zipfile.ZIP_STORED else 0  # never checked
            out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, stored, size, len(raw), 0))
            out.write(raw)
            out.seek(data, os.SEEK_CUR) if isinstance(data, int) else out.write(data)
            directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, stored, size,
                                     len(raw), 0, 0, 0, 0, 0, offset) + raw
        at = out.tell()
        out.write(directory + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                                          len(directory), at, 0))


def _records(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _declaring(path, key: str, numel: int, zipped: bool) -> dict[str, bytes]:
    """A weights file of one tensor ``key`` whose pickle declares ``numel`` float elements (zip: its records,
    the tensor's still holding the few it had)."""
    _save({key: torch.zeros(_MARKER)}, path, zipped)
    marker, declared = pickle.dumps(_MARKER, 2)[2:-1], pickle.dumps(numel, 2)[2:-1]  # opcode and argument
    if zipped:
        records = _records(path)
        name = next(name for name in records if name.endswith("data.pkl"))
        assert records[name].count(marker) == 2  # the storage's size and the tensor's shape
        records[name] = records[name].replace(marker, declared)
        return records
    path.write_bytes(path.read_bytes().replace(marker, declared, 2))  # in the pickle, not the data after it
    return {}


# -- damaged values ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "zipped", "said"), [(float("nan"), True, "NaN"),
                                                      (float("inf"), False, "infinite")])
def test_nan_or_infinite_weights_are_refused_naming_the_file_and_the_tensor(tmp_path, value, zipped, said):
    state = _state()
    state["features.1.block.0.1.running_var"][3] = value  # one number in a BatchNorm's statistics
    path = _save(state, tmp_path / "damaged.pth", zipped)
    with pytest.raises(WeightsFileError) as caught:
        fit_state_dict(ENTRY, build_for_weights(ENTRY), read_state_dict(path), str(path))
    assert str(caught.value) == (f"{path}: refused: the tensor 'features.1.block.0.1.running_var' holds {said}"
                                 f"{' (not-a-number)' if said == 'NaN' else ''} values; these weights are damaged")
    checkpoints_dir().mkdir(parents=True, exist_ok=True)  # a file put in the cache by hand: the same
    os.replace(path, ENTRY.cached_weights_path())
    with pytest.raises(WeightsFileError, match="features.1.block.0.1.running_var"):
        load_model(ENTRY)


def test_good_weights_and_training_checkpoints_still_load_in_both_formats(tmp_path):
    model = build_for_weights(ENTRY)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for parameter in model.parameters():
        parameter.grad = torch.full_like(parameter, 0.01)
    optimizer.step()  # momentum buffers: a checkpoint as training scripts save it
    expected = model.state_dict()
    checkpoint = {"epoch": 7, "state_dict": expected, "optimizer": optimizer.state_dict(), "tags": {"best"}}
    fresh = build_for_weights(ENTRY)
    for zipped in (True, False):
        for name, saved in (("weights", expected), ("checkpoint", checkpoint)):
            state = read_state_dict(_save(saved, tmp_path / f"{name}-{zipped}.pth", zipped))
            fresh.load_state_dict({k: torch.zeros_like(v) for k, v in expected.items()})
            fit_state_dict(ENTRY, fresh, state, name)
            assert all(torch.equal(fresh.state_dict()[k], v) for k, v in expected.items()), (name, zipped)


# -- files that would cost more than their size ------------------------------------------------

_PEAK = """
import json, os, resource, sys, traceback
from cnnviewer.core.catalog import get_entry
from cnnviewer.core.models import WeightsFileError, build_for_weights, fit_state_dict, read_state_dict
entry = get_entry(sys.argv[1])
children = []
for path in sys.argv[2:]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            try:
                fit_state_dict(entry, build_for_weights(entry), read_state_dict(path), path)
                outcome = "loaded"
            except WeightsFileError as exc:
                outcome = str(exc)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux
            os.write(write_end, json.dumps([peak, outcome]).encode())
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(write_end)
    children.append((pid, read_end))
for pid, read_end in children:
    with os.fdopen(read_end, "rb") as pipe:
        print(pipe.read().decode())
    assert os.waitpid(pid, 0)[1] == 0, path
"""


def _peak_mb(*paths) -> list[tuple[int, str]]:
    """Peak resident memory (MB) of processes, side by side, that each load one file as ENTRY's weights.

    One process imports torch (seconds of CPU per import on two cores, and a peak of its own
    that would hide a smaller cost), then forks a child per file: each child's peak starts at what the
    parent holds, so the peaks differ by what the files cost."""
    proc = subprocess.run([sys.executable, "-c", _PEAK, ENTRY.name, *map(str, paths)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [(peak, outcome) for peak, outcome in map(json.loads, proc.stdout.splitlines())]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux, sparse files")
def test_no_file_costs_much_more_memory_than_a_good_one(tmp_path):
    """The target: no file takes 1.5 GB above a process that loaded good weights. Here a 2 MB zip bomb
    (2 GiB of deflated zeros) and a 512 MB tensor of the wrong shape each cost less than 256 MB."""
    unpacked = 2 << 30
    records = _declaring(tmp_path / "small.pth", "classifier.3.weight", unpacked // 4, zipped=True)
    # Deflate, fully flushed after each 16 MiB of zeros, gives the same bytes each time: repeat them.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(16 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    deflated = block * (unpacked // (16 << 20)) + compressor.flush()
    bomb = tmp_path / "bomb.pth"
    _write_zip(bomb, [(name, deflated, unpacked, zipfile.ZIP_DEFLATED) if name.endswith("/data/0")
                      else (name, data, len(data), zipfile.ZIP_STORED) for name, data in records.items()])
    assert bomb.stat().st_size < 3 << 20
    large = tmp_path / "large.pth"  # what a file of this size may hold; a shape check needs none of it
    records = _declaring(tmp_path / "small.pth", "classifier.3.bias", 128 << 20, zipped=True)
    _write_zip(large, [(name, 512 << 20, 512 << 20, zipfile.ZIP_STORED) if name.endswith("/data/0")
                       else (name, data, len(data), zipfile.ZIP_STORED) for name, data in records.items()])
    good = _save(_state(), tmp_path / "good.pth")
    (baseline, loaded), (bomb_peak, bomb_outcome), (large_peak, large_outcome) = _peak_mb(good, bomb, large)
    assert loaded == "loaded"
    assert f"{bomb}: refused: " in bomb_outcome and "is compressed inside the archive" in bomb_outcome
    assert f"{large}: these weights do not fit mobilenet_v3_small" in large_outcome
    assert "classifier.3.bias: file (134217728,), model (1000,)" in large_outcome
    assert bomb_peak - baseline < 256 and large_peak - baseline < 256, (baseline, bomb_peak, large_peak)


@pytest.mark.parametrize("zipped", [True, False])
def test_tensors_that_claim_more_data_than_the_file_holds_are_refused(tmp_path, zipped):
    path = tmp_path / "claims.pth"
    records = _declaring(path, "classifier.3.bias", 10**13, zipped)  # 40 TB: more than can be allocated
    if zipped:
        _write_zip(path, [(name, data, len(data), zipfile.ZIP_STORED) for name, data in records.items()])
    with pytest.raises(WeightsFileError, match="its tensors claim more data than the file holds"):
        read_state_dict(path)


@pytest.mark.parametrize("zipped", [True, False])
def test_a_pickle_too_long_to_read_in_seconds_is_refused(tmp_path, zipped):
    path = _save({"classifier.3.bias": torch.zeros(1000), "history": [0] * (MAX_PICKLE_BYTES // 2 + 10_000)},
                 tmp_path / "long.pth", zipped)
    with pytest.raises(WeightsFileError, match=r"refused: .*(pickle is larger than|data.pkl' holds)"):
        read_state_dict(path)


def test_a_zip_directory_too_large_to_parse_cheaply_is_refused(tmp_path):
    path = tmp_path / "directory.pth"
    records = _records(_save({"classifier.3.bias": torch.zeros(1000)}, tmp_path / "one.pth"))
    archive = next(iter(records)).split("/")[0]
    padding = [(f"{archive}/.data/{i:06d}{'x' * 200}", b"", 0, zipfile.ZIP_STORED) for i in range(40_000)]
    _write_zip(path, [(n, d, len(d), zipfile.ZIP_STORED) for n, d in records.items()] + padding)
    with pytest.raises(WeightsFileError, match="refused: its zip directory takes 10.0 MB"):
        read_state_dict(path)


def test_other_archives_and_special_files_are_refused_with_a_sentence(tmp_path):
    good = _save({"classifier.3.bias": torch.zeros(1000)}, tmp_path / "good.pth")
    repacked = tmp_path / "repacked.pth"  # the same file zipped again by another tool: deflated
    with zipfile.ZipFile(repacked, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in _records(good).items():
            archive.writestr(name, data)
    with pytest.raises(WeightsFileError, match="is compressed inside the archive"):
        read_state_dict(repacked)
    old = tmp_path / "old.tar"  # torch 0.3's format, whose reading torch does not bound
    with tarfile.open(old, "w") as archive:
        archive.add(good, arcname="storages")
    with pytest.raises(WeightsFileError, match="a tar archive"):
        read_state_dict(old)
    nothing = _state()  # a tensor with no data at all
    nothing["classifier.3.bias"] = torch.empty(1000, device="meta")
    path = _save(nothing, tmp_path / "meta.pth")
    with pytest.raises(WeightsFileError, match="cannot be loaded into mobilenet_v3_small"):
        fit_state_dict(ENTRY, build_for_weights(ENTRY), read_state_dict(path), str(path))
    pipe = tmp_path / "pipe.pth"  # reading it would wait for a writer for ever
    os.mkfifo(pipe)
    with pytest.raises(WeightsFileError, match="not a regular file"):
        read_state_dict(pipe)
