"""The parts of a cluster run that need no cluster: what is sent, how images are split, what a resume reads back."""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path

import pytest

from cnnviewer.core import cluster
from cnnviewer.core.benchmark import ImageRow
from cnnviewer.core.cluster import (
    ClusterError,
    ClusterOptions,
    configured_address,
    finished_rows,
    per_worker,
    plan_shards,
    read_for_sending,
    unrecorded_rows,
)
from cnnviewer.core.datasets import LabelledImage
from cnnviewer.core.errors import OutputError
from cnnviewer.core.report import CSV_HEADER, ResultsCsv
from tests.helpers import PHOTOS_13


def images(folder: Path, count: int) -> list[LabelledImage]:
    return [LabelledImage(str(folder / f"{n:03d}.jpg"), "tabby", 281) for n in range(count)]


def test_shards_are_whole_batches_so_a_worker_batches_as_a_local_run_does(tmp_path):
    items = images(tmp_path, 100)
    shards = plan_shards(items, 20, 16)  # 20 is rounded up to 32: two batches of 16
    assert [len(s) for s in shards] == [32, 32, 32, 4]
    assert [item for shard in shards for item in shard] == items
    assert [len(s) for s in plan_shards(items, 1, 8)] == [8] * 12 + [4]
    assert plan_shards([], 64, 16) == []


def test_the_driver_sends_bytes_only_of_regular_files_it_can_hold(tmp_path, monkeypatch):
    photo = PHOTOS_13 / "polar_bear.jpg"
    assert read_for_sending(str(photo)) == photo.read_bytes()
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    answer: list[object] = []
    reader = threading.Thread(target=lambda: answer.append(read_for_sending(str(fifo))), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a FIFO blocked the driver"
    assert answer == ["not a regular file (a pipe, device or socket), so it is not read"]
    assert "does not exist" in str(read_for_sending(str(tmp_path / "gone.jpg")))
    monkeypatch.setattr(cluster, "MAX_SEND_BYTES", 1000)  # a smaller limit, so the test writes no large file
    reason = read_for_sending(str(photo))
    assert isinstance(reason, str) and "more than the 0 MB a cluster run sends" in reason and "paths" in reason


def _rows_file(tmp_path: Path, items: list[LabelledImage], model: str) -> Path:
    path = tmp_path / "results.csv"
    results = ResultsCsv(path)
    rows = []
    for n, item in enumerate(items):
        row = ImageRow(item.path, item.label, item.index)
        row.top5[model] = [281, 282, 285, n % 1000, 7]
        row.probabilities[model] = [0.5, 0.2, 0.1, 0.05, 0.01]
        rows.append(row)
    results.add(model, rows)
    results.close()
    return path


def test_a_resume_reads_back_whole_rows_and_drops_the_line_a_killed_driver_cut_short(tmp_path):
    items = images(tmp_path, 5)
    path = _rows_file(tmp_path, items, "efficientnet_lite0")
    text = path.read_text()
    path.write_text(text[: len(text) - 9])  # the driver died in the middle of the last row
    done = finished_rows(path, items, ["efficientnet_lite0"])
    assert sorted(done) == [("efficientnet_lite0", item.path) for item in items[:4]]
    assert done[("efficientnet_lite0", items[2].path)] == ([281, 282, 285, 2, 7], [0.5, 0.2, 0.1, 0.05, 0.01])
    # Continued, the file loses the torn line and every line after it is whole.
    continued = ResultsCsv(path, resume=True)
    row = ImageRow(items[4].path, "tabby", 281, {"efficientnet_lite0": [281, 1, 2, 3, 4]},
                   {"efficientnet_lite0": [0.9, 0.01, 0.01, 0.01, 0.01]})
    continued.add("efficientnet_lite0", [row])
    continued.close()
    with open(path, newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == CSV_HEADER and all(len(line) == len(CSV_HEADER) for line in lines)
    assert [line[0] for line in lines[1:]] == [item.path for item in items]


def test_only_one_run_writes_a_results_file(tmp_path):
    items = images(tmp_path, 2)
    path = _rows_file(tmp_path, items, "efficientnet_lite0")
    first = ResultsCsv(path, resume=True)  # a driver still running, or a resume started twice
    try:
        with pytest.raises(OutputError, match="another run is writing it"):
            ResultsCsv(path, resume=True)
    finally:
        first.close()
    ResultsCsv(path, resume=True).close()  # once the first is gone, a resume takes it


def test_a_resume_refuses_rows_of_another_run(tmp_path):
    items = images(tmp_path, 3)
    path = _rows_file(tmp_path, items, "efficientnet_lite0")
    with pytest.raises(ClusterError, match="line 2: names a model that is not in this run"):
        finished_rows(path, items, ["efficientnet_lite1"])
    with pytest.raises(ClusterError, match="names an image that is not in this run"):
        finished_rows(path, items[1:], ["efficientnet_lite0"])
    other = tmp_path / "other.csv"
    other.write_text("name,score\na,1\n")
    with pytest.raises(ClusterError, match="is not a cnnviewer results.csv"):
        finished_rows(other, items, ["efficientnet_lite0"])
    with pytest.raises(OutputError, match="is not a cnnviewer results.csv, so it is not continued"):
        ResultsCsv(other, resume=True)
    assert other.read_text() == "name,score\na,1\n"


def test_each_worker_keeps_its_own_speed(tmp_path):
    shard = {"model": "m", "host": "a", "node": "n1", "pid": 1, "device": "cpu", "way": "fp32", "images": 10,
             "failed": 0, "forward_ms": 500.0, "seconds": 1.0, "peak_rss_mb": 300.0}
    shards = [shard, {**shard, "peak_rss_mb": 320.0}, {**shard, "node": "n2", "host": "b", "pid": 2, "forward_ms": 100.0}]
    workers = per_worker(shards)
    assert [(w["host"], w["images"], w["shards"], w["forward_ips"]) for w in workers] == [
        ("a", 20, 2, 20.0), ("b", 10, 1, 100.0)]
    assert workers[0]["peak_rss_mb"] == 320.0 and workers[0]["end_to_end_ips"] == 10.0
    # Files that failed are no answers: a worker whose every file failed has no speed at all.
    failing = per_worker([{**shard, "images": 0, "failed": 13, "forward_ms": 0.0, "seconds": 0.01}])
    assert failing[0]["end_to_end_ips"] is None and failing[0]["forward_ips"] is None


def test_options_and_addresses(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert configured_address() is None and configured_address(" ") is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")
    assert configured_address() == "10.0.0.2:6379"
    assert configured_address("head:6379") == "head:6379"  # the window's own setting comes first
    with pytest.raises(ClusterError, match="bytes .* or paths"):
        ClusterOptions(data="urls")
    with pytest.raises(ClusterError, match="uses Ray"):
        ClusterOptions(engine="dask")
    with pytest.raises(ClusterError, match="is not a cluster address"):
        cluster._check_reachable("head-without-port")


def test_a_port_where_no_ray_head_answers_is_an_error_within_the_deadline(tmp_path):
    """Something else listens (a web server, the dashboard's port): Ray would retry for minutes."""
    import socket
    import subprocess
    import sys
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    code = ("import ray; from cnnviewer.core import cluster\n"
            f"cluster._connect(ray, cluster.ClusterOptions(address='127.0.0.1:{port}'), timeout_s=5)")
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "RAY_ADDRESS": ""})
    finally:
        listener.close()
    assert time.monotonic() - started < 60
    assert proc.returncode == 1
    assert (f"ClusterError: cannot connect to the Ray cluster at 127.0.0.1:{port}: it did not answer as a Ray "
            "cluster within 5 s.") in proc.stderr


def test_rows_whose_shard_record_was_lost_are_counted_once_across_resumes(tmp_path):
    """A driver killed between a shard's rows and its record leaves rows no record accounts for: the resume
    counts them (they are not classified again) and a second resume does not count them again."""
    paths = [item.path for item in images(tmp_path, 100)]
    done = {**{("lite0", p): ([1], [0.5]) for p in paths[:64]}, **{("lite1", p): ([1], [0.5]) for p in paths[:48]}}
    shards = [{"model": "lite0", "images": 32}, {"model": "lite0", "images": 32}, {"model": "lite1", "images": 32}]
    assert unrecorded_rows(done, shards, []) == {"lite1": 16}
    first = [{"date": "d", "rows": 112, "unrecorded": {"lite1": 16}}]
    assert unrecorded_rows(done, shards, first) == {}
    done.update({("lite1", p): ([1], [0.5]) for p in paths[48:64]})  # the second session's shard, its record lost
    assert unrecorded_rows(done, shards, first) == {"lite1": 16}
    # An edited file's junk counts as nothing instead of stopping the resume.
    junk = [{"date": "d", "unrecorded": {"lite1": "16"}}, {"unrecorded": [3]}, {"rows": 1}]
    assert unrecorded_rows(done, [*shards, {"model": "lite1", "images": "x"}], junk) == {"lite1": 32}
