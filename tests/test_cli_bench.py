"""``cnnviewer bench`` end to end in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import PHOTOS_13, VAL_100, cli, second_way


def test_bench_writes_every_report_and_prints_the_summary(tmp_path):
    out = tmp_path / "out"
    proc = cli("bench", str(PHOTOS_13), "--models", "efficientnet_lite0,efficientnet_lite1", "--batch-size", "4",
               "--limit", "6", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "efficientnet_lite0" in proc.stdout and "top-1 %" in proc.stdout
    # Three timing rounds of 6 images: a speed claim only where the ratio's interval excludes 1.
    assert "faster than" in proc.stdout or "No clear speed difference" in proc.stdout
    assert "interleaved rounds" in proc.stdout and "timing, round 3 of 3" in proc.stderr
    assert "model 1/2 efficientnet_lite0" in proc.stderr and "Traceback" not in proc.stderr
    # Not a terminal: one line as each model starts and one when its images are done, whatever phases follow.
    done_lines = [line for line in proc.stderr.splitlines() if line.startswith("model ") and ": 6/6 images" in line]
    assert [line.split(":")[0] for line in done_lines] == ["model 1/2 efficientnet_lite0", "model 2/2 efficientnet_lite1"]
    for name in ("report.json", "results.csv", "report.md", "report.html", "accuracy.png", "accuracy.svg",
                 "throughput.png", "latency.png", "accuracy_vs_latency.png", "memory.svg"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert [m["images"] for m in report["models"]] == [6, 6]
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 12


def test_bench_default_models_say_why_and_bad_folders_are_errors(tmp_path):
    proc = cli("bench", str(PHOTOS_13), "--limit", "2", "--batch-size", "2", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert "three embedded EfficientNet-Lite models" in proc.stderr
    proc = cli("bench", str(tmp_path / "nowhere"))
    assert proc.returncode == 1 and "not a folder" in proc.stderr
    assert cli("bench", str(PHOTOS_13), "--models", "resnet5000").returncode == 2


def test_bench_reports_unmatched_labels_before_running(tmp_path):
    (tmp_path / "labels.csv").write_text("file,label\npolar.jpg,polar bear\nx.jpg,spaceship\n")
    (tmp_path / "polar.jpg").write_bytes((PHOTOS_13 / "polar_bear.jpg").read_bytes())
    (tmp_path / "x.jpg").write_bytes((PHOTOS_13 / "banana_0.jpg").read_bytes())
    proc = cli("bench", str(tmp_path), "--models", "efficientnet_lite0", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0
    assert "label 'spaceship' matches no ImageNet-1k class (1 file(s): x.jpg)" in proc.stderr
    assert "spaceship" in (tmp_path / "o" / "report.md").read_text()


def test_bench_compares_ways_of_running(tmp_path):
    way = second_way()
    out = tmp_path / "ways"
    proc = cli("bench", str(PHOTOS_13), "--models", "efficientnet_lite0", "--run-as", f"fp32,{way}",
               "--batch-size", "4", "--limit", "6", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"efficientnet_lite0 ({way})" in proc.stdout and "points against FP32" in proc.stdout
    assert "## Ways of running against FP32" in (out / "report.md").read_text(encoding="utf-8")
    proc = cli("bench", str(PHOTOS_13), "--run-as", "fp32,int4", "--out", str(tmp_path / "no"))
    assert proc.returncode == 2 and "Unknown way of running 'int4'" in proc.stderr  # bad usage, as a bad model is
    assert not (tmp_path / "no").exists()


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-m", "cnnviewer", "bench", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300, errors="surrogateescape")


def test_bench_keeps_hostile_names_in_every_output_and_runs_a_model_named_twice_once(tmp_path):
    # Run from tmp_path on "=set": every path starts with "=", a formula to a spreadsheet.
    root = tmp_path / "=set"
    (root / "banana").mkdir(parents=True)
    (root / "ice_bear").mkdir()
    names = {"banana": [os.fsdecode(b"caf\xe9-\xff.jpg"), "a\ncnnviewer: forged line.jpg"],
             "ice_bear": ["<img src=x onerror=alert(1)> ``x`` *b*.jpg"]}
    for label, files in names.items():
        for name in files:
            shutil.copy(PHOTOS_13 / ("banana_0.jpg" if label == "banana" else "polar_bear.jpg"), root / label / name)
    bad = os.fsdecode(b"bad\x1b[2J\xfe.jpg")
    (root / "ice_bear" / bad).write_bytes(b"not a photo")
    proc = _bench("=set", "--models", "efficientnet_lite0,,efficientnet_lite0", "--out", "out", cwd=tmp_path)
    out = tmp_path / "out"
    assert proc.returncode == 1, proc.stderr  # 1: a file was skipped; everything else ran
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr

    report = json.loads((out / "report.json").read_bytes().decode("utf-8"))  # valid UTF-8 JSON
    files = {row["file"] for row in report["images"]}
    expected = {os.path.join("=set", label, name) for label, group in names.items() for name in group}
    assert files == expected | {os.path.join("=set", "ice_bear", bad)}  # every name exactly as on disk
    assert report["skipped"][0]["file"] == os.path.join("=set", "ice_bear", bad)
    assert [m["name"] for m in report["models"]] == ["efficientnet_lite0"] and report["comparisons"] == []

    data = (out / "results.csv").read_bytes()
    assert b"'=set/banana/caf\xe9-\xff.jpg" in data  # the name's own bytes, never a live formula
    rows = list(csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape"), newline="")))[1:]
    assert sorted(row[0] for row in rows) == sorted("'" + name for name in expected)

    text = (out / "report.md").read_bytes().decode("utf-8")
    assert "\ncnnviewer: forged line" not in text and "<img" not in text.replace("\\<img", "")
    assert "bad\\x1b[2J\\xfe.jpg" in text and "\x1b" not in text
    assert "efficientnet_lite0 is" not in text  # never compared with itself

    lines = proc.stderr.splitlines()
    assert not any(line.startswith("cnnviewer: forged") for line in lines) and "\x1b" not in proc.stderr
    assert "cnnviewer: =set/ice_bear/bad\\x1b[2J\\xfe.jpg: " in proc.stderr  # the skipped file, on one line


def test_bench_never_destroys_an_earlier_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    earlier = {"report.json": '{"earlier": true}', "results.csv": "file\nearlier.jpg\n", "memory.png": "png"}
    for name, text in earlier.items():
        (out / name).write_text(text)
    (out / "notes.txt").write_text("mine")
    proc = cli("bench", str(PHOTOS_13), "--models", "efficientnet_lite0", "--limit", "2", "--out", str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{out}: already holds an earlier run (report.json, results.csv, memory.png); give a new --out folder, " \
           "or add --overwrite" in proc.stderr
    assert {p.name: p.read_text() for p in out.iterdir()} == {**earlier, "notes.txt": "mine"}

    proc = cli("bench", str(PHOTOS_13), "--models", "efficientnet_lite0", "--limit", "2", "--batch-size", "2",
               "--out", str(out), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "report.json").read_text())["models"][0]["images"] == 2
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 2 and (out / "notes.txt").read_text() == "mine"


def test_bench_mistakes_are_sentences_that_leave_no_folder_behind(tmp_path):
    for args, code, sentence in [
        (["--models", ",,"], 2, "--models ',,' names no model"),
        (["--models", "efficientnet_lite0", "--device", "meta"], 1, "Device 'meta' cannot run a model here"),
    ]:
        proc = cli("bench", str(PHOTOS_13), *args, "--out", str(tmp_path / "o"))
        assert proc.returncode == code and sentence in proc.stderr, proc.stderr
        assert "internal error" not in proc.stderr and not (tmp_path / "o").exists()
    (tmp_path / "a-file").write_text("x")
    proc = cli("bench", str(PHOTOS_13), "--models", "efficientnet_lite0", "--out", str(tmp_path / "a-file"))
    assert proc.returncode == 1 and f"{tmp_path / 'a-file'}: is a file; the results need a folder" in proc.stderr
    assert (tmp_path / "a-file").read_text() == "x"


def test_ctrl_c_writes_a_cancelled_report_for_what_finished(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen([sys.executable, "-m", "cnnviewer", "bench", str(VAL_100), "--models",
                             "efficientnet_lite0,efficientnet_lite1", "--batch-size", "8", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    csv_file = out / "results.csv"
    while time.monotonic() < deadline and not (csv_file.exists() and len(csv_file.read_text().splitlines()) > 1):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # what Ctrl+C sends; 192 images and a model are still to come
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted; the report in" in stderr
    assert "stopping after this batch" in stderr  # the handler's word: not the KeyboardInterrupt fallback
    report = json.loads((out / "report.json").read_text())
    assert report["cancelled"] is True and report["complete"] is False
    done = [m for m in report["models"] if m["images"]]
    rows = (out / "results.csv").read_text().splitlines()[1:]
    assert sum(m["images"] for m in done) == len(rows) < 200  # the report and the CSV agree on what finished
    markdown = (out / "report.md").read_text()
    assert "The run was cancelled" in markdown and "efficientnet_lite0" in markdown
    assert "efficientnet_lite0" in stdout  # the summary of what finished


def test_time_left_of_a_resumed_run_comes_from_what_it_did_itself(capsys):
    """A resumed run starts with most rows read back: measured from the run's start as if it had done them,
    "0 s left" was printed at once. The estimate comes from the progress this run made."""
    from cnnviewer.cli import _BenchProgress
    from cnnviewer.core.benchmark import Progress

    clock = iter([100.0, 110.0])
    bar = _BenchProgress(clock=lambda: next(clock))
    bar.tty = True  # the line with time left, as a terminal shows it
    bar(Progress("efficientnet_lite1", 2, 2, 16, 64))  # 62.5 % done when the resumed run starts
    bar(Progress("efficientnet_lite1", 2, 2, 32, 64))  # 12.5 points in 10 s, 25 to go: 20 s
    assert capsys.readouterr().err.rstrip().endswith("32/64, 20 s left\x1b[K")
