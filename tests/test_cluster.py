"""``cnnviewer bench --cluster ray`` on a real Ray cluster on 127.0.0.1 (a head and a worker node, one CPU each).

Every run is a real driver process (the CLI) against the cluster the module starts and stops; workers
are killed with SIGKILL and the driver too, as a crash would. The answers are compared with a local run
of the same images and options, image for image.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnviewer.core.datasets import load_labelled_folder
from tests.helpers import PHOTOS_13, VAL_100, cli

pytest.importorskip("ray")
from tests.ray_cluster import LocalRayCluster

# One cluster for the module; xdist keeps the module's tests in one process (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("ray-cluster")

MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
SHARD = "16"  # 100 images -> 7 shards per model: both workers get several, and a kill finds one in hand


@pytest.fixture(scope="module")
def cluster():
    with LocalRayCluster(workers=1, cpus=1) as started:
        yield started


@pytest.fixture(scope="module")
def local_top5(tmp_path_factory) -> dict[tuple[str, str], list[int]]:
    """(model, file) -> top-5 of a run on this machine with the CLI's options (batch 16, FP32, no rounds)."""
    from cnnviewer.core.benchmark import BenchmarkConfig
    from cnnviewer.core.session import run_to_folder

    config = BenchmarkConfig(models=MODELS, batch_size=16, timing_rounds=0)
    report = run_to_folder(load_labelled_folder(VAL_100), config, tmp_path_factory.mktemp("local") / "run")
    assert report.complete and all(len(row.top5) == 3 for row in report.images)
    return {(model, row.file): top for row in report.images for model, top in row.top5.items()}


def bench(cluster: LocalRayCluster, out: Path, *extra: str, models: tuple[str, ...] = MODELS,
          folder: str = str(VAL_100), cwd: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "RAY_ADDRESS": cluster.address, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.Popen([sys.executable, "-m", "cnnviewer", "bench", folder, "--models", ",".join(models),
                             "--run-as", "fp32", "--cluster", "ray", "--shard-size", SHARD, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str, str]:
    stdout, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stdout, stderr


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def top5_of(rows: list[dict[str, str]]) -> dict[tuple[str, str], list[int]]:
    """(model, file) -> top-5; a (model, file) written twice fails the test here."""
    answers: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        key = (row["model"], row["file"])
        assert key not in answers, f"{key} is in results.csv twice"
        answers[key] = [int(row[f"index{rank}"]) for rank in range(1, 6)]
    return answers


def wait_for(check, what: str, proc: subprocess.Popen[str], timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"waited {timeout} s for {what}")


def shard_records(out: Path) -> list[dict]:
    try:
        lines = (out / "cluster-shards.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.endswith("}")]


def test_a_cluster_run_gives_every_image_the_local_top5(cluster, local_top5, tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = finish(bench(cluster, out))
    assert code == 0, stderr
    answers = top5_of(csv_rows(out / "results.csv"))
    assert len(answers) == 300
    assert answers == local_top5  # FP32: the same five classes in the same order, image for image
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and not report["cancelled"]
    split = report["environment"]["cluster"]
    assert split["address"] == cluster.address and split["data"] == "bytes"
    assert len(split["nodes"]) == 2
    for model in MODELS:
        # Both nodes took shards of every model, and each worker has its own speed; none is summed.
        workers = [w for w in split["workers"] if w["model"] == model]
        assert len({w["node"] for w in workers}) == 2 and sum(w["images"] for w in workers) == 100
        assert all(w["forward_ips"] > 0 and w["way"] == "fp32" and w["device"] == "cpu" for w in workers)
        assert sorted(s["shard"] for s in split["shards"] if s["model"] == model) == list(range(1, 8))
        result = next(m for m in report["models"] if m["name"] == model)
        assert result["throughput_ips"] is None and result["latency_ms"] is None and result["complete"]
        expected = sum(local_top5[(model, row["file"])][0] == row["truth"] for row in report["images"]) / 100
        assert result["top1"] == pytest.approx(expected)
    assert "Speed per worker" in stdout and "per worker" in (out / "report.md").read_text()


def test_a_worker_killed_mid_run_has_its_shards_run_again_elsewhere(cluster, local_top5, tmp_path):
    out = tmp_path / "run"
    proc = bench(cluster, out, models=("efficientnet_lite0",))
    first = wait_for(lambda: shard_records(out), "the first shard came back", proc)[0]
    os.kill(first["pid"], signal.SIGKILL)  # that worker holds its next shard: it dies with it
    code, _, stderr = finish(proc)
    assert code == 0, stderr
    answers = top5_of(csv_rows(out / "results.csv"))  # no image lost, none counted twice
    assert answers == {key: top for key, top in local_top5.items() if key[0] == "efficientnet_lite0"}
    report = json.loads((out / "report.json").read_text())
    assert report["complete"]
    split = report["environment"]["cluster"]
    retried = [r for r in split["retries"] if r["pid"] == first["pid"]]
    assert retried and all("died" in r["reason"] for r in retried)
    again = {r["shard"] for r in retried}
    rerun = [s for s in split["shards"] if s["shard"] in again]
    assert len(rerun) == len(again) and all(s["attempt"] == 2 and s["pid"] != first["pid"] for s in rerun)
    assert sum(s["images"] for s in split["shards"]) == 100
    assert report["models"][0]["images"] == 100


def test_resume_after_the_driver_is_killed_runs_only_what_was_missing(cluster, local_top5, tmp_path):
    IMAGES = 96  # noqa: N806 - a constant of this test
    out = tmp_path / "run"
    models = ("efficientnet_lite0", "efficientnet_lite1")
    # 96 images: 6 shards of the second model, so two of them come back well before the last (two workers).
    proc = bench(cluster, out, "--limit", str(IMAGES), models=models)
    wait_for(lambda: len([s for s in shard_records(out) if s["model"] == "efficientnet_lite1"]) >= 2,
             "the first model and two shards of the second were written", proc)
    proc.kill()  # SIGKILL: no report is finished, no file closed
    proc.wait()
    # A shard's rows are written before its record: the driver may die between the two. Make that happen
    # every time by dropping the last record (its rows stay in results.csv).
    records = (out / "cluster-shards.jsonl").read_text().splitlines(keepends=True)
    (out / "cluster-shards.jsonl").write_text("".join(records[:-1]))
    before = (out / "results.csv").read_text()
    kept = before[: before.rfind("\n") + 1]
    lite0_seconds = {m["name"]: m["seconds"] for m in json.loads((out / "report.json").read_text())["models"]}[
        "efficientnet_lite0"]  # its turn, in the interrupted session
    finished_before = len(csv_rows(out / "results.csv"))
    assert IMAGES + 32 <= finished_before < 2 * IMAGES
    code, stdout, stderr = finish(bench(cluster, out, "--limit", str(IMAGES), "--resume", models=models))
    assert code == 0, stderr
    after = (out / "results.csv").read_text()
    assert after.startswith(kept)  # what was written stays as it was
    answers = top5_of(csv_rows(out / "results.csv"))  # and nothing finished before ran again
    files = {image.path for image in load_labelled_folder(VAL_100).images[:IMAGES]}
    assert answers == {key: top for key, top in local_top5.items() if key[0] in models and key[1] in files}
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and [m["images"] for m in report["models"]] == [IMAGES, IMAGES]
    resumed = report["environment"]["cluster"]["resumed"]
    assert [r["rows"] for r in resumed] == [len(csv_rows_text(kept))]
    assert resumed[0]["models"] == {"efficientnet_lite0": IMAGES,
                                    "efficientnet_lite1": len(csv_rows_text(kept)) - IMAGES}
    assert "Resumed" in stdout and f"Resuming the run in {out}" in stderr
    # The shards run after the resume cover exactly the images that had no row.
    shards = report["environment"]["cluster"]["shards"]
    # The first session's shards, the rows whose record was lost and the new shards: each image once.
    unrecorded = sum(resumed[0].get("unrecorded", {}).values())
    assert unrecorded >= json.loads(records[-1])["images"] > 0
    assert sum(s["images"] for s in shards) + unrecorded == 2 * IMAGES
    assert f"{unrecorded} of them" in stdout and "have no shard record" in (out / "report.md").read_text()
    # The model that had finished was not loaded again; shard numbers go on from the first session's.
    assert {s["model"] for s in shards if s["session"] == 1} == {"efficientnet_lite1"}
    numbers = [s["shard"] for s in shards if s["model"] == "efficientnet_lite1"]
    assert len(numbers) == len(set(numbers))
    # A model's time is its turns in both sessions: the finished one keeps its first session's time, the
    # other adds how far into its turn the first session had come.
    seconds = {m["name"]: m["seconds"] for m in report["models"]}
    assert seconds["efficientnet_lite0"] == lite0_seconds > 0
    reached = max(s["turn_s"] for s in shards if s["model"] == "efficientnet_lite1" and s["session"] == 0)
    now = max(s["turn_s"] for s in shards if s["model"] == "efficientnet_lite1" and s["session"] == 1)
    assert reached > 0 and seconds["efficientnet_lite1"] >= reached + now


def csv_rows_text(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))


def test_ctrl_c_stops_a_cluster_run_and_keeps_what_came_back(cluster, tmp_path):
    out = tmp_path / "run"
    proc = bench(cluster, out, "--limit", "64", models=("efficientnet_lite0",))
    wait_for(lambda: shard_records(out), "the first shard came back", proc)
    proc.send_signal(signal.SIGINT)
    code, _, stderr = finish(proc, timeout=120)
    assert code == 128 + signal.SIGINT, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["cancelled"] and not report["complete"]
    result = report["models"][0]
    rows = csv_rows(out / "results.csv")
    assert result["partial"] and 0 < result["images"] == len(rows) < 64
    assert (out / "report.md").is_file()


def test_a_resume_that_is_not_the_same_run_is_refused(cluster, tmp_path):
    out = tmp_path / "run"
    code, _, stderr = finish(bench(cluster, out, "--limit", "16", models=("efficientnet_lite0",)))
    assert code == 0, stderr
    proc = cli("bench", str(VAL_100), "--models", "efficientnet_lite0", "--limit", "16", "--cluster", "ray",
               "--run-as", "fp32", "--resume", "--out", str(out), env_extra={"RAY_ADDRESS": cluster.address})
    assert proc.returncode == 1 and "holds a run that finished; there is nothing to resume" in proc.stderr
    report = json.loads((out / "report.json").read_text())
    (out / "report.json").write_text(json.dumps({**report, "complete": False}))
    proc = cli("bench", str(VAL_100), "--models", "efficientnet_lite1", "--limit", "16", "--cluster", "ray",
               "--run-as", "fp32", "--resume", "--out", str(out), env_extra={"RAY_ADDRESS": cluster.address})
    assert proc.returncode == 1 and "was a run with models ['efficientnet_lite0']" in proc.stderr
    proc = cli("bench", str(PHOTOS_13), "--models", "efficientnet_lite0", "--limit", "16", "--cluster", "ray",
               "--run-as", "fp32", "--resume", "--out", str(out), env_extra={"RAY_ADDRESS": cluster.address})
    assert proc.returncode == 1 and "was a run of" in proc.stderr
    assert len(csv_rows(out / "results.csv")) == 16  # refused before anything was written
    # The same run, but its weights file changed since (here: what the report recorded differs): the rows
    # read back and new ones would mix two models, so the unfinished model is refused; its rows stay as they were.
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    (out / "results.csv").write_text("".join(lines[:9]))  # 8 of 16 rows finished
    report = json.loads((out / "report.json").read_text())
    report["models"][0]["weights_sha256"] = "0" * 64
    (out / "report.json").write_text(json.dumps(report))
    proc = cli("bench", str(VAL_100), "--models", "efficientnet_lite0", "--limit", "16", "--cluster", "ray",
               "--run-as", "fp32", "--shard-size", SHARD, "--resume", "--out", str(out),
               env_extra={"RAY_ADDRESS": cluster.address})
    assert proc.returncode == 1
    assert "efficientnet_lite0: its weights file changed since the interrupted run (SHA-256 000000000000 then" \
        in proc.stderr
    assert len(csv_rows(out / "results.csv")) == 8


def test_options_a_cluster_cannot_honour_are_refused_before_any_work(tmp_path):
    out = tmp_path / "run"
    proc = cli("bench", str(PHOTOS_13), "--resume", "--out", str(out))
    assert proc.returncode == 2 and "--resume is for a cluster run" in proc.stderr
    proc = cli("bench", str(PHOTOS_13), "--cluster", "ray", "--run-as", "int8", "--out", str(out))
    assert proc.returncode == 2 and "int8 does not run on a cluster" in proc.stderr
    proc = cli("bench", str(PHOTOS_13), "--cluster", "ray", "--resume", "--out", str(out))
    assert proc.returncode == 1 and "no results.csv" in proc.stderr
    assert not (out / "results.csv").exists()
    # An address where no cluster listens: one sentence naming it, nothing left behind.
    from tests.ray_cluster import free_port

    address = f"127.0.0.1:{free_port()}"
    proc = cli("bench", str(PHOTOS_13), "--models", "efficientnet_lite0", "--cluster", "ray", "--out", str(out),
               env_extra={"RAY_ADDRESS": address})
    assert proc.returncode == 1 and f"cannot connect to the Ray cluster at {address}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_paths_on_shared_storage_give_the_same_answers_as_bytes(cluster, local_top5, tmp_path):
    out = tmp_path / "run"
    # The folder as a user types it, relative to where they are: the workers get it whole.
    code, _, stderr = finish(bench(cluster, out, "--limit", "32", "--cluster-data", "paths",
                                   models=("efficientnet_lite0",), folder=VAL_100.name, cwd=VAL_100.parent))
    assert code == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["environment"]["cluster"]["data"] == "paths" and report["config"]["cluster"]["data"] == "paths"
    answers = {(model, os.path.join(VAL_100.parent, file)): top
               for (model, file), top in top5_of(csv_rows(out / "results.csv")).items()}
    assert len(answers) == 32 and all(local_top5[key] == top for key, top in answers.items())
    # Two shards, two workers: one each (a shard to every worker before a second to any).
    assert len({s["node"] for s in report["environment"]["cluster"]["shards"]}) == 2


def test_a_bad_file_is_named_with_its_reason_and_the_rest_go_on(cluster, tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    good = ["polar_bear.jpg", "banana_0.jpg", "jellyfish.jpg"]
    for name in good:
        (folder / name).write_bytes((PHOTOS_13 / name).read_bytes())
    (folder / "cut.jpg").write_bytes((PHOTOS_13 / "polar_bear.jpg").read_bytes()[:3000])
    (folder / "notes.jpg").write_text("not a picture at all\n" * 10)
    os.mkfifo(folder / "pipe.jpg")  # the driver must not block reading it, nor send it
    (folder / "labels.csv").write_text("file,label\npolar_bear.jpg,ice bear\nbanana_0.jpg,banana\n"
                                       "pipe.jpg,banana\njellyfish.jpg,jellyfish\ncut.jpg,ice bear\nnotes.jpg,banana\n")
    out = tmp_path / "run"
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    proc = subprocess.run([sys.executable, "-m", "cnnviewer", "bench", str(folder), "--models", "efficientnet_lite0",
                           "--run-as", "fp32", "--cluster", "ray", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 1, proc.stderr  # as for a local run: a file was skipped
    assert f"{folder / 'cut.jpg'}: the file is truncated" in proc.stderr
    assert f"{folder / 'notes.jpg'}: not an image, or an unsupported format" in proc.stderr
    assert f"{folder / 'pipe.jpg'}: not a regular file (a pipe, device or socket), so it is not read" in proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert {s["file"] for s in report["skipped"]} == {str(folder / name) for name in ("cut.jpg", "notes.jpg", "pipe.jpg")}
    assert report["models"][0]["images"] == 3 and report["models"][0]["failed"] == 3
    assert len(csv_rows(out / "results.csv")) == 3


def test_without_an_address_a_local_ray_instance_runs_the_benchmark(tmp_path):
    """No RAY_ADDRESS: Ray is started on this machine for the run (and stopped after it)."""
    out = tmp_path / "run"
    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "cnnviewer", "bench", str(PHOTOS_13), "--models", "efficientnet_lite0",
                           "--run-as", "fp32", "--cluster", "ray", "--limit", "8", "--batch-size", "4", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["environment"]["cluster"]["address"] == "local"
    assert report["models"][0]["images"] == 8 and len(csv_rows(out / "results.csv")) == 8
    assert "Cluster: Ray at local" in proc.stdout
