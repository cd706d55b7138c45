"""The weights dialog: real download progress from a 127.0.0.1 server, Cancel, and a failed hash."""

from __future__ import annotations

import os

from cnnviewer.core.catalog import checkpoints_dir
from tests.helpers import PHOTOS_13, save_screenshot
from tests.weights_server import WeightsServer

NAME = "resnet18-f37072fd.pth"


def test_download_progress_and_cancel(make_window, qtbot, monkeypatch):
    with WeightsServer() as server:
        monkeypatch.setenv("CNNVIEWER_WEIGHTS_MIRROR", server.mirror)
        server.files[NAME] = os.urandom(4 << 20)
        server.mode[NAME] = "slow"
        window = make_window()
        window.select_model("resnet18")
        dialog = window.open_weights_dialog()
        assert dialog is not None and "resnet18" in dialog.windowTitle()
        dialog.download_button.click()
        qtbot.waitUntil(lambda: dialog.progress.value() > 50, timeout=20_000)
        assert "MB" in dialog.status.text() and "left" in dialog.status.text()
        save_screenshot(dialog, "07-download-progress")
        dialog.cancel_button.click()
        qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=20_000)
        assert "cancelled" in dialog.status.text()
        assert dialog.progress.value() < 1000
        assert not (checkpoints_dir() / NAME).exists()
        qtbot.waitUntil(lambda: window.running_workers() == 0, timeout=20_000)  # the job ends, not hangs


def test_a_download_that_fails_its_hash_says_so(make_window, qtbot, monkeypatch):
    with WeightsServer() as server:
        monkeypatch.setenv("CNNVIEWER_WEIGHTS_MIRROR", server.mirror)
        server.files[NAME] = os.urandom(1 << 20)
        window = make_window()
        window.select_model("resnet18")
        dialog = window.open_weights_dialog()
        dialog.download_button.click()
        qtbot.waitUntil(lambda: "does not match" in dialog.error.text(), timeout=20_000)
        assert not (checkpoints_dir() / NAME).exists()
        assert dialog.download_button.isEnabled()  # the user can try again
        dialog.close()


def test_import_makes_the_model_ready_and_classifies(make_window, qtbot, tmp_path):
    import torch
    import torchvision

    path = tmp_path / "my-resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    window = make_window()
    window.select_model("resnet18")
    window.open_path(str(PHOTOS_13 / "polar_bear.jpg"))
    qtbot.waitUntil(lambda: "get_weights" in window.predictions.action_buttons, timeout=30_000)
    window.predictions.action_buttons["get_weights"].click()
    dialog = window.weights_dialog
    dialog.choose_import(str(path))
    qtbot.waitUntil(lambda: any(r.name == "resnet18" and r.ready for r in window.catalog_rows()), timeout=30_000)
    # Not torchvision's file: kept out of torch's cache and shown as imported, with its content hash.
    assert not (checkpoints_dir() / NAME).exists()
    qtbot.waitUntil(lambda: window.last_outcome is not None and window.last_outcome.model == "resnet18",
                    timeout=30_000)
    assert "(imported: my-resnet18.pth (sha256 " in window.model_combo.currentText()
