"""The command line on hostile files, a killed run, and exports that cannot be written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.badfiles import EITHER, make_bad_files
from tests.conftest import ROOT, VAL_100
from tests.test_cli import run


def test_classify_every_kind_of_bad_file(tmp_path):
    files = make_bad_files(tmp_path / "bad")
    paths = [str(path) for path, _ in files.values()]
    proc = run("classify", *paths, "--format", "json")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == len(paths)
    expected_bad = [str(p) for p, reason in files.values() if reason not in (None, EITHER)]
    errors = {row["file"]: row["error"] for row in rows if row["error"]}
    for path in expected_bad:
        assert path in errors, path
    lines = [line for line in proc.stderr.splitlines() if line.startswith("cnnviewer: /")]
    assert len(lines) == len(errors)  # one line per bad file, naming it
    assert f"{len(errors)} of {len(paths)} image(s) could not be classified" in proc.stderr
    good = [row for row in rows if not row["error"]]
    assert all(len(row["predictions"]) == 5 for row in good)


def test_a_killed_benchmark_keeps_what_it_had(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen([sys.executable, "-m", "cnnviewer", "bench", str(VAL_100), "--models",
                             "efficientnet_lite0,efficientnet_lite2,efficientnet_lite1", "--batch-size", "8",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (out / "report.json").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # a crash: nothing gets to clean up
    proc.wait(timeout=30)
    report = json.loads((out / "report.json").read_text())
    assert report["models"][0]["name"] == "efficientnet_lite0" and report["models"][0]["images"] == 100
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) >= 101 and rows[0].startswith("file,label")


def _as_nobody(code: str) -> subprocess.CompletedProcess:
    # Import as root (the interpreter lives under /root), then drop to 'nobody' before writing.
    prelude = "import os\nfrom cnnviewer.core import report as r\nos.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=str(ROOT),
                          timeout=120)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_export_to_a_read_only_folder_is_a_clear_error(tmp_path):
    target = tmp_path / "readonly"
    target.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(target, 0o755)  # owned by root: read-only for 'nobody'
    code = ("from cnnviewer.core.benchmark import BenchmarkReport\n"
            f"rep = BenchmarkReport(root='x', config={{}}, environment={{}})\n"
            f"try:\n    r.write_all(rep, {str(target)!r})\nexcept r.ReportError as e:\n    print('ERROR', e)\n")
    proc = _as_nobody(code)
    assert "ERROR" in proc.stdout and "report.json: cannot be written (Permission denied)" in proc.stdout, \
        proc.stdout + proc.stderr
    assert list(target.iterdir()) == []


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
        "except r.ReportError as e:\n    print('ERROR', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert "ERROR" in proc.stdout and "report.json: cannot be written" in proc.stdout, proc.stdout + proc.stderr
    assert list(target.iterdir()) == []  # no half-written report.json, and the temp file is gone
