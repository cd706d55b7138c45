"""The task runner with the window: a click beats a benchmark, owners keep their requests, stale results drop."""

from __future__ import annotations

import os
import time

import torch
import torchvision

from cnnviewer.core.benchmark import BenchmarkConfig
from cnnviewer.core.catalog import checkpoints_dir
from cnnviewer.core.datasets import load_labelled_folder
from cnnviewer.core.report import prepare_run_folder
from cnnviewer.workers.benchmark_job import benchmark_job
from tests.helpers import PHOTOS_13, VAL_100, wait_for_outcome
from tests.weights_server import WeightsServer

POLAR = str(PHOTOS_13 / "polar_bear.jpg")
BANANA = str(PHOTOS_13 / "banana_0.jpg")
STRAWBERRY = str(PHOTOS_13 / "strawberry_0.jpg")


def test_a_classification_during_a_benchmark_returns_within_5_s(make_window, qtbot, tmp_path):
    """The benchmark runs on its own lane and yields between batches: the click does not wait for it."""
    window = make_window()
    window.open_path(BANANA)
    wait_for_outcome(qtbot, window, BANANA)  # the model is loaded: what follows measures waiting, not loading
    runner = window.runner
    dataset = load_labelled_folder(VAL_100)
    config = BenchmarkConfig(models=("efficientnet_lite0",), batch_size=4)
    progress: list[int] = []
    ended: list[str] = []
    bench = runner.submit("benchmark", "run", benchmark_job, dataset, config,
                          str(prepare_run_folder(tmp_path / "run").path), runner.pause_for_interactive,
                          lane="benchmark", on_progress=lambda done, total, text: progress.append(done),
                          on_returned=lambda report: ended.append("returned"),
                          on_error=lambda exc: ended.append(f"errored: {exc}"),
                          on_cancelled=lambda kept: ended.append("cancelled"))
    qtbot.waitUntil(lambda: len(progress) >= 3, timeout=120_000)  # its model loaded, batches under way
    assert runner.is_running(bench)
    asked = time.monotonic()
    window.classify(POLAR)
    outcome = wait_for_outcome(qtbot, window, POLAR, timeout=30_000)
    took = time.monotonic() - asked
    still_running = runner.is_running(bench)
    assert outcome.classification.predictions[0].index == 296
    assert still_running, "the classification came only when the benchmark had ended"
    assert took < 5.0, f"the top-5 took {took:.1f} s while a benchmark ran"
    runner.cancel_request(bench)
    qtbot.waitUntil(lambda: bool(ended), timeout=60_000)
    assert ended == ["cancelled"]


def test_import_weights_in_the_window_does_not_cancel_a_dialog_download(make_window, qtbot, monkeypatch, tmp_path):
    """Both are "weights" requests; each owner's are its own."""
    name = "resnet18-f37072fd.pth"
    mine = tmp_path / "my-squeezenet.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), mine)
    with WeightsServer() as server:
        monkeypatch.setenv("CNNVIEWER_WEIGHTS_MIRROR", server.mirror)
        server.files[name] = os.urandom(4 << 20)
        server.mode[name] = "hold"  # half, then the rest when released
        window = make_window()
        window.select_model("resnet18")
        dialog = window.open_weights_dialog()
        dialog.download_button.click()
        qtbot.waitUntil(lambda: dialog.progress.value() >= 400, timeout=20_000)
        window.import_weights(str(mine), "squeezenet1_1")  # File > Import weights, with the file chosen
        qtbot.waitUntil(lambda: window.catalog_rows() and next(
            r for r in window.catalog_rows() if r.name == "squeezenet1_1").ready, timeout=60_000)
        assert dialog.is_busy() and "cancel" not in dialog.status.text().lower()
        server.release.set()
        # The download ran to its end: the whole file came, and its hash was checked (random bytes fail it).
        qtbot.waitUntil(lambda: "does not match" in dialog.error.text(), timeout=30_000)
        assert server.sent[name] == 4 << 20
        assert not (checkpoints_dir() / name).exists()
        dialog.close()


def test_a_result_sent_before_a_newer_request_is_dropped(make_window, qtbot):
    """The race a cancel cannot close: the old job had already sent its top-5 when the user asked again."""
    window = make_window()
    window.open_path(BANANA)
    wait_for_outcome(qtbot, window, BANANA)
    shown: list[str] = []
    original = window.predictions.show_result
    window.predictions.show_result = lambda outcome: (shown.append(outcome.path), original(outcome))
    old = window.classify(POLAR)
    deadline = time.monotonic() + 60
    # No event processing here: the old job ends and its result waits in the queue for the GUI thread.
    while window.runner.is_running(old) or window.running_workers():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    window.classify(STRAWBERRY)  # not classified before: a new request, not a kept result
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=60_000)
    wait_for_outcome(qtbot, window, STRAWBERRY)
    assert shown == [STRAWBERRY], "an old request's result reached the window"
    assert window.predictions.model.predictions()[0].index == 949
