"""Faults in the window: closing mid-benchmark, a folder of 10,000 images, a bad file among good ones."""

from __future__ import annotations

import csv

import psutil
from PIL import Image
from PySide6.QtCore import QTimer

from cnnviewer.gui.browser import MAX_THUMBNAILS
from tests.helpers import VAL_100

# How long these take is measured by benchmarks/gui.py; the tests check what happens, not how fast.


def test_closing_during_a_benchmark_stops_every_worker(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr("cnnviewer.gui.benchmark_window.default_out_dir", lambda folder: str(tmp_path / "run"))
    window = make_window()
    bench = window.open_benchmark(str(VAL_100))
    models = bench.checked_models()
    bench.start()
    qtbot.waitUntil(lambda: bench.progress.value() > 20, timeout=60_000)
    assert window.running_workers() > 0
    window.close()  # asks first: a benchmark is running
    assert window.isVisible() and window.quit_question is not None
    next(b for b in window.quit_question.buttons() if b.text() == "Quit").click()
    # close() waits a few seconds at most for the pools: a job that ignored its token would still run.
    assert window.running_workers() == 0
    with open(tmp_path / "run" / "results.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) < 100 * len(models), "the run was stopped, not finished"


def test_a_folder_of_10000_images_stays_responsive_and_bounded(make_window, qtbot, tmp_path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    tiny = Image.new("RGB", (24, 16), (120, 160, 200))
    for i in range(10_000):
        tiny.save(folder / f"img{i:05d}.png")
    window = make_window()
    process = psutil.Process()
    before = process.memory_info().rss
    shown_at_ticks: list[int] = []
    timer = QTimer()
    timer.timeout.connect(lambda: shown_at_ticks.append(window.browser.thumbnails_shown))
    timer.start(10)
    window.browser.go_to(str(folder))
    qtbot.waitUntil(lambda: window.browser.strip.count() == MAX_THUMBNAILS, timeout=30_000)
    qtbot.waitUntil(lambda: window.browser.thumbnails_shown == MAX_THUMBNAILS, timeout=120_000)
    timer.stop()
    grown_mb = (process.memory_info().rss - before) / 2**20
    assert window.browser.strip.count() == MAX_THUMBNAILS  # the strip is capped; the tree lists them all
    # The event loop kept running while thumbnails arrived: timer ticks came between them.
    assert any(0 < shown < MAX_THUMBNAILS for shown in shown_at_ticks), shown_at_ticks[-5:]
    assert grown_mb < 300
