"""``cnnviewer bench`` end to end in a subprocess."""

from __future__ import annotations

import json

from tests.conftest import PHOTOS_13, second_way
from tests.test_cli import run


def test_bench_writes_every_report_and_prints_the_summary(tmp_path):
    out = tmp_path / "out"
    proc = run("bench", str(PHOTOS_13), "--models", "efficientnet_lite0,efficientnet_lite1", "--batch-size", "4",
               "--limit", "6", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "efficientnet_lite0" in proc.stdout and "top-1 %" in proc.stdout and "faster than" in proc.stdout
    assert "model 1/2 efficientnet_lite0" in proc.stderr and "Traceback" not in proc.stderr
    for name in ("report.json", "results.csv", "report.md", "accuracy_top1.png", "throughput.png",
                 "accuracy_vs_latency.png", "memory.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert [m["images"] for m in report["models"]] == [6, 6]
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 12


def test_bench_default_models_say_why_and_bad_folders_are_errors(tmp_path):
    proc = run("bench", str(PHOTOS_13), "--limit", "2", "--batch-size", "2", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert "three embedded EfficientNet-Lite models" in proc.stderr
    proc = run("bench", str(tmp_path / "nowhere"))
    assert proc.returncode == 1 and "not a folder" in proc.stderr
    assert run("bench", str(PHOTOS_13), "--models", "resnet5000").returncode == 2


def test_bench_reports_unmatched_labels_before_running(tmp_path):
    (tmp_path / "labels.csv").write_text("file,label\npolar.jpg,polar bear\nx.jpg,spaceship\n")
    (tmp_path / "polar.jpg").write_bytes((PHOTOS_13 / "polar_bear.jpg").read_bytes())
    (tmp_path / "x.jpg").write_bytes((PHOTOS_13 / "banana_0.jpg").read_bytes())
    proc = run("bench", str(tmp_path), "--models", "efficientnet_lite0", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0
    assert "label 'spaceship' matches no ImageNet-1k class (1 file(s): x.jpg)" in proc.stderr
    assert "spaceship" in (tmp_path / "o" / "report.md").read_text()


def test_bench_compares_ways_of_running(tmp_path):
    way = second_way()
    out = tmp_path / "ways"
    proc = run("bench", str(PHOTOS_13), "--models", "efficientnet_lite0", "--run-as", f"fp32,{way}",
               "--batch-size", "4", "--limit", "6", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"efficientnet_lite0 ({way})" in proc.stdout and "points against FP32" in proc.stdout
    assert "## Ways of running against FP32" in (out / "report.md").read_text(encoding="utf-8")
    proc = run("bench", str(PHOTOS_13), "--run-as", "fp32,int4", "--out", str(tmp_path / "no"))
    assert proc.returncode == 1 and "Unknown way of running 'int4'" in proc.stderr
    assert not (tmp_path / "no").exists()
