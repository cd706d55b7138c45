"""The command line on hostile files, a killed run, and exports that cannot be written.

What a command prints runs in this process (run_inprocess); a kill, closed streams, file size limits and
another user need a process of their own."""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cnnviewer import cli
from tests.badfiles import EITHER, make_bad_files
from tests.helpers import PHOTOS_13, ROOT, VAL_100, run_inprocess


def test_classify_every_kind_of_bad_file(tmp_path):
    files = make_bad_files(tmp_path / "bad")
    paths = [str(path) for path, _ in files.values()]
    code, out, err = run_inprocess("classify", *paths, "--format", "json")
    assert code == 1
    assert "Traceback" not in err
    rows = json.loads(out)
    assert len(rows) == len(paths)
    expected_bad = [str(p) for p, reason in files.values() if reason not in (None, EITHER)]
    errors = {row["file"]: row["error"] for row in rows if row["error"]}
    for path in expected_bad:
        assert path in errors, path
    lines = [line for line in err.splitlines() if line.startswith("cnnviewer: /")]
    assert len(lines) == len(errors)  # one line per bad file, naming it
    assert f"{len(errors)} of {len(paths)} image(s) could not be classified" in err
    good = [row for row in rows if not row["error"]]
    assert all(len(row["predictions"]) == 5 for row in good)


def test_a_killed_benchmark_keeps_what_it_had(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    # report.json is saved after each model: killed in the second (or third), it holds the first.
    proc = subprocess.Popen([sys.executable, "-m", "cnnviewer", "bench", str(VAL_100), "--models",
                             "efficientnet_lite0,efficientnet_lite2,efficientnet_lite1", "--batch-size", "8",
                             "--limit", "24", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (out / "report.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a crash: nothing gets to clean up
    proc.wait(timeout=30)
    report = json.loads((out / "report.json").read_text())
    assert report["models"][0]["name"] == "efficientnet_lite0" and report["models"][0]["images"] == 24
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) >= 25 and rows[0].startswith("file,label")


def _as_nobody(imports: str, code: str) -> subprocess.CompletedProcess:
    # Import as root (the interpreter lives under /root), then drop to 'nobody' before writing.
    prelude = (f"import os\n{imports}\nfrom cnnviewer.core.errors import OutputError\n"
               "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n")
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=str(ROOT),
                          timeout=120)


@pytest.fixture
def reachable():
    """A folder 'nobody' can reach (pytest's own are private to root), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="cnnviewer-test-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_export_to_a_read_only_folder_is_a_clear_error(reachable):
    target = reachable / "readonly"
    target.mkdir()
    os.chmod(target, 0o755)  # owned by root: read-only for 'nobody'
    code = ("rep = BenchmarkReport(root='x', config={}, environment={})\n"
            f"try:\n    r.write_all(rep, {str(target)!r})\nexcept OutputError as e:\n    print('ERROR', e)\n")
    # The class names are read as root (they import torchvision, which 'nobody' cannot reach here).
    proc = _as_nobody("from cnnviewer.core import report as r\nfrom cnnviewer.core.benchmark import BenchmarkReport\n"
                      "from cnnviewer.core.labels import imagenet_categories\nimagenet_categories()", code)
    # report.md is the first file written (report.json comes last: a finished one says the rest was written).
    assert "ERROR" in proc.stdout and "report.md: cannot be written (permission denied)" in proc.stdout, \
        proc.stdout + proc.stderr
    assert list(target.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_read_only_file_is_never_replaced(reachable):
    os.chmod(reachable, 0o777)  # the folder is writable: only the file's own permission protects it
    kept = reachable / "report.md"
    kept.write_text("keep me")
    os.chown(kept, 65534, 65534)
    os.chmod(kept, 0o444)
    code = (f"try:\n    atomic_write({str(kept)!r}, lambda h: h.write(b'new'))\nexcept OutputError as e:\n"
            "    print('ERROR', e)\n")
    proc = _as_nobody("from cnnviewer.core.files import atomic_write", code)  # no torch: a quick start
    assert f"ERROR {kept}: is read-only" in proc.stdout, proc.stdout + proc.stderr
    assert kept.read_text() == "keep me" and sorted(p.name for p in reachable.iterdir()) == ["report.md"]


def test_a_full_disk_during_export_leaves_no_half_file(tmp_path):
    """RLIMIT_FSIZE makes writes past 4 KB fail with EFBIG, as a full disk fails with ENOSPC."""
    target = tmp_path / "full"
    target.mkdir()
    code = (
        "import resource, signal\n"
        "from cnnviewer.core.benchmark import BenchmarkReport, ImageRow\n"
        "from cnnviewer.core import report as r\n"
        "rep = BenchmarkReport(root='x', config={}, environment={})\n"
        "rep.images = [ImageRow(f'/photos/{i:05d}.jpg', 'banana', 954) for i in range(2000)]\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        f"try:\n    r.save_json(rep, __import__('pathlib').Path({str(target / 'report.json')!r}))\n"
        "except r.OutputError as e:\n    print('ERROR', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert "ERROR" in proc.stdout and "report.json: cannot be written" in proc.stdout, proc.stdout + proc.stderr
    assert list(target.iterdir()) == []  # no half-written report.json, and the temp file is gone


def _limit_file_size(limit: int):
    """In the child: writes past ``limit`` bytes fail with EFBIG, as a full disk fails with ENOSPC."""
    def limit_it() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_it


def test_a_full_disk_during_bench_is_a_sentence_naming_the_file(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-m", "cnnviewer", "bench", str(PHOTOS_13), "--models",
                           "efficientnet_lite0", "--batch-size", "4", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300, preexec_fn=_limit_file_size(1500))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert f"{out / 'results.csv'}: cannot be written (the file would be larger than this system allows)" \
        in proc.stderr
    assert f"{out / 'report.json'}: cannot be written" in proc.stderr  # it is tried, and said, at the end too
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_closed_stdout_is_a_sentence_and_a_closed_pipe_ends_quietly():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    command = [sys.executable, "-m", "cnnviewer", "models"]
    # The three start together: each spends its time importing, and they need nothing from each other.
    closed = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=lambda: os.close(1))
    reader = subprocess.Popen([*command, "--all", "--format", "json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    with open("/dev/full", "w") as full_disk:
        full = subprocess.Popen(command, stdout=full_disk, stderr=subprocess.PIPE, text=True, env=env)
    reader.stdout.close()  # like `| head -0`: nobody reads what it prints
    stderr = reader.stderr.read()
    assert reader.wait(timeout=120) == 128 + signal.SIGPIPE
    assert stderr == ""  # quiet: no traceback, no "Exception ignored", no "Broken pipe"
    stderr = closed.communicate(timeout=120)[1]
    assert closed.returncode == 1
    assert stderr.startswith("cnnviewer: error: standard output is closed") and "Traceback" not in stderr
    stderr = full.communicate(timeout=120)[1]
    assert full.returncode == 1 and "cnnviewer: error: standard output cannot be written (the disk is full)" \
        in stderr and "Traceback" not in stderr


def test_a_log_file_on_a_full_disk_is_never_a_traceback_on_the_terminal(monkeypatch, capfd, tmp_path):
    code, _, err = run_inprocess("classify", str(PHOTOS_13 / "banana_0.jpg"), "--device", "tpu",
                                 env_extra={"CNNVIEWER_LOG_FILE": "/dev/full"})
    assert code == 1 and "Unknown device 'tpu'" in err
    assert "Traceback" not in err and "Logging error" not in err

    # The last line of defence names the log only when the traceback is in it.
    root = logging.getLogger("cnnviewer")
    saved = root.handlers[:]
    try:
        for log_file, said in (("/dev/full", "No details were kept: the log file /dev/full could not be written"),
                               (str(tmp_path / "cnnviewer.log"), f"The details are in {tmp_path / 'cnnviewer.log'}")):
            root.handlers = []
            monkeypatch.setenv("CNNVIEWER_LOG_FILE", log_file)
            cli._setup_logging()
            try:
                raise RuntimeError("an unforeseen failure")
            except RuntimeError as exc:
                cli.log.exception("unexpected error")
                sentence = cli._internal_error(exc)
            assert said in sentence and sentence.startswith("internal error: RuntimeError: an unforeseen failure.")
            for handler in root.handlers:
                handler.close()
        assert "Traceback" not in capfd.readouterr().err
        assert "an unforeseen failure" in (tmp_path / "cnnviewer.log").read_text()
    finally:
        root.handlers = saved
