"""The Weights manager (list, Verify, Remove, Import, Download) and the weights dialog that grows with its text."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox

from cnnviewer.core.paths import imported_weights_dir
from cnnviewer.gui.weights_dialog import WeightsDialog
from cnnviewer.gui.weights_manager import WeightsManager, show_weights_manager
from tests.gui.test_model_picker import SIZES, Composite, shown_window
from tests.helpers import EMBEDDED, save_screenshot
from tests.weights_server import WeightsServer

SMALL = "squeezenet1_1"  # 1.2 M parameters: a real file of a few MB


def open_manager(window: Any, qtbot: Any) -> WeightsManager:
    action = next(a for menu in window.menuBar().actions() for a in menu.menu().actions()
                  if a.text().replace("&", "") == "Weights manager…")
    assert action.shortcut().toString() == "Ctrl+Shift+W"
    action.trigger()
    manager = window.findChild(WeightsManager)
    assert manager is not None and manager.isVisible()
    qtbot.waitUntil(lambda: len(manager.rows) == len(window.catalog_rows()), timeout=30_000)
    return manager


def row(manager: WeightsManager, model: str) -> Any:
    return next(r for r in manager.rows if r.model == model)


def saved_weights(tmp_path: Any) -> Any:
    import torch
    import torchvision

    path = tmp_path / "my-squeezenet.pth"
    torch.save(torchvision.models.get_model(SMALL).state_dict(), path)
    return path


def import_small(manager: WeightsManager, qtbot: Any, tmp_path: Any) -> Any:
    assert manager.select(SMALL)
    assert manager.import_button.isEnabled()
    manager.import_file(str(saved_weights(tmp_path)))
    qtbot.waitUntil(lambda: row(manager, SMALL).state == "imported", timeout=60_000)
    return row(manager, SMALL)


@pytest.mark.parametrize("size", SIZES, ids=["1280x800", "1920x1080"])
def test_lists_every_model_and_the_embedded_ones_as_ready(make_window, qtbot, size):
    window = shown_window(make_window, qtbot, size)
    manager = open_manager(window, qtbot)
    assert show_weights_manager(window) is manager  # one per window, brought to the front
    for name in EMBEDDED:
        found = row(manager, name)
        assert found.state == "embedded" and found.file.endswith(".pth") and found.size and not found.removable
    assert row(manager, "resnet18").state == "missing"
    assert manager.select("efficientnet_lite0")
    assert not manager.remove_button.isEnabled() and not manager.download_button.isEnabled()
    assert not manager.import_button.isEnabled()
    manager.search.setText("lite")
    shown = [r.model for n, r in enumerate(manager.rows) if not manager.table.isRowHidden(n)]
    assert shown == list(EMBEDDED)
    save_screenshot(Composite(window, manager), f"E2-weights-manager-{size[0]}x{size[1]}")


def test_verify_reports_ok_then_the_mismatch_of_a_damaged_file(make_window, qtbot, tmp_path):
    window = shown_window(make_window, qtbot, SIZES[0])
    manager = open_manager(window, qtbot)
    imported = import_small(manager, qtbot, tmp_path)
    assert imported.check == "verified"  # hashed as it was imported
    assert imported.file.startswith(str(imported_weights_dir()))
    qtbot.waitUntil(lambda: any(r.name == SMALL and r.ready for r in window.catalog_rows()), timeout=30_000)
    assert manager.select(SMALL) and manager.verify_button.isEnabled()
    manager.verify_button.click()
    qtbot.waitUntil(lambda: not manager.busy, timeout=30_000)
    assert "OK" in manager.status.text(), manager.status.text()
    with open(imported.file, "r+b") as handle:  # one byte flipped on the disk
        handle.seek(4096)
        byte = handle.read(1)
        handle.seek(4096)
        handle.write(bytes([byte[0] ^ 0xFF]))
    manager.refresh(SMALL)
    qtbot.waitUntil(lambda: row(manager, SMALL).check == "not checked", timeout=30_000)
    manager.verify_button.click()
    qtbot.waitUntil(lambda: "does not match" in manager.status.text(), timeout=30_000)
    assert imported.file in manager.status.text()
    qtbot.waitUntil(lambda: row(manager, SMALL).check == "hash mismatch", timeout=30_000)
    save_screenshot(Composite(window, manager), "E3-weights-manager-mismatch-1280x800")


def test_remove_asks_then_deletes_and_the_list_updates(make_window, qtbot, tmp_path):
    from pathlib import Path

    window = shown_window(make_window, qtbot, SIZES[0])
    manager = open_manager(window, qtbot)
    imported = import_small(manager, qtbot, tmp_path)
    assert manager.select(SMALL) and manager.remove_button.isEnabled()
    manager.remove_button.click()
    box = manager.confirm
    assert box is not None and box.isVisible() and SMALL in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()  # asked, and "no" keeps the file
    qtbot.wait(100)
    assert Path(imported.file).is_file() and not manager.busy
    manager.remove_button.click()
    manager.confirm.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: row(manager, SMALL).state == "missing", timeout=30_000)
    assert not Path(imported.file).exists()
    assert "removed" in manager.status.text()
    # the main window's picker hears of it too
    qtbot.waitUntil(lambda: any(r.name == SMALL and not r.ready for r in window.catalog_rows()), timeout=30_000)


def test_download_opens_the_weights_dialog(make_window, qtbot):
    window = shown_window(make_window, qtbot, SIZES[0])
    manager = open_manager(window, qtbot)
    assert manager.select("resnet18") and manager.download_button.isEnabled()
    manager.download_button.click()
    dialog = window.weights_dialog
    assert isinstance(dialog, WeightsDialog) and dialog.isVisible() and "resnet18" in dialog.windowTitle()
    manager.download_button.click()  # again: the same dialog comes to the front (a second would cancel the first)
    assert window.weights_dialog is dialog and len(window.findChildren(WeightsDialog)) == 1
    manager.close()  # closed while the download would still run...
    qtbot.waitUntil(lambda: window.findChild(WeightsManager) is None, timeout=10_000)
    with qtbot.captureExceptions() as raised:
        dialog.weights_ready.emit("resnet18")  # ...and then it ends: nothing calls into the deleted manager
        qtbot.wait(50)
    assert not raised, raised
    dialog.close()


def fully_shown(label: Any) -> bool:
    return label.isVisible() and label.height() >= label.heightForWidth(label.width())


@pytest.mark.parametrize("size", SIZES, ids=["1280x800", "1920x1080"])
def test_the_weights_dialog_keeps_every_line_after_a_failed_download(make_window, qtbot, monkeypatch, size):
    with WeightsServer() as server:  # serves nothing: every file is a 404
        monkeypatch.setenv("CNNVIEWER_WEIGHTS_MIRROR", server.mirror)
        window = shown_window(make_window, qtbot, size)
        window.select_model("resnet18")
        dialog = window.open_weights_dialog()
        qtbot.waitExposed(dialog)
        assert fully_shown(dialog.text)
        assert not dialog.progress.isVisible()  # nothing in progress yet
        dialog.download_button.click()
        qtbot.waitUntil(lambda: dialog.error.isVisible() and not dialog.is_busy(), timeout=20_000)
        qtbot.wait(50)
        assert "HTTP 404" in dialog.error.text() and "resnet18" in dialog.error.text()
        assert fully_shown(dialog.text) and fully_shown(dialog.error)
        assert dialog.text.text().endswith("shown as imported).")  # the explanation is still all there
        assert not dialog.progress.isVisible()
        assert dialog.height() >= dialog.layout().totalHeightForWidth(dialog.width())
        save_screenshot(Composite(window, dialog), f"E4-weights-dialog-failed-{size[0]}x{size[1]}")
        dialog.close()


def test_a_long_error_grows_the_dialog_instead_of_cutting_it(make_window, qtbot):
    window = shown_window(make_window, qtbot, SIZES[0])
    window.select_model("resnet18")
    dialog = window.open_weights_dialog()
    qtbot.waitExposed(dialog)
    before = dialog.height()
    from cnnviewer.core.weights import WeightsError

    dialog._on_error(WeightsError("/a/long/folder/name/that/goes/on/" * 6 + "my.pth: the file is made for another "
                                  "architecture (240 keys missing, 12 of another shape). Nothing was imported."))
    assert fully_shown(dialog.error) and fully_shown(dialog.text)
    assert dialog.height() > before
    assert dialog.error.text().endswith("Nothing was imported.")
    dialog.close()


def test_what_a_model_computed_is_forgotten_when_its_weights_go(make_window, qtbot, tmp_path):
    """Removed (or replaced) weights: no kept result, loaded model or map of the old ones is used again."""
    from tests.helpers import PHOTOS_13, wait_for_outcome

    window = shown_window(make_window, qtbot, SIZES[0])
    manager = open_manager(window, qtbot)
    import_small(manager, qtbot, tmp_path)
    qtbot.waitUntil(lambda: any(r.name == SMALL and r.ready for r in window.catalog_rows()), timeout=30_000)
    assert window.select_model(SMALL)
    photo = str(PHOTOS_13 / "coral.jpg")
    window.open_path(photo)
    window.classify(photo)
    wait_for_outcome(qtbot, window, photo, SMALL)
    assert window._kept_result(photo) is not None
    assert any(key[0] == SMALL for key in window.runner.model_cache._models)
    assert manager.select(SMALL)
    manager.remove_button.click()
    manager.confirm.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: row(manager, SMALL).state == "missing", timeout=30_000)
    assert not [key for key in window._results if key[3] == SMALL]
    assert not any(key[0] == SMALL for key in window.runner.model_cache._models)
