"""The model picker (counts that follow the filter, natural order, a click opens it) and Verify on embedded weights."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QStyle, QStyleOptionComboBox

from cnnviewer.gui.model_picker import GROUP_ROLE, LABEL_COLUMN, MISSING_GROUP, READY_GROUP
from tests.gui.test_model_picker import SIZES, Composite, focus, shown_window, visible_models
from tests.gui.test_weights_manager import open_manager, row
from tests.helpers import EMBEDDED, run_inprocess, save_screenshot

RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def headers(picker: Any) -> list[str]:
    """The group headers the open popup shows, as drawn."""
    found = []
    for number in range(picker.filter.rowCount()):
        if picker.filter.index(number, LABEL_COLUMN).data(GROUP_ROLE):
            found.append(picker.filter.index(number, 0).data())
    return found


def arrow_point(picker: Any) -> QPoint:
    option = QStyleOptionComboBox()
    picker.initStyleOption(option)
    return picker.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                         QStyle.SubControl.SC_ComboBoxArrow, picker).center()


def test_group_counts_follow_the_filter(make_window, qtbot):
    window = shown_window(make_window, qtbot, SIZES[0])
    picker = window.model_combo
    rows = window.catalog_rows()
    ready = sum(r.ready for r in rows)
    picker.showPopup()
    qtbot.waitUntil(picker.table.isVisible, timeout=5_000)
    assert headers(picker) == [f"{READY_GROUP} ({ready})", f"{MISSING_GROUP} ({len(rows) - ready})"]
    picker.hidePopup()
    focus(qtbot, window, picker)
    qtbot.keyClicks(picker.lineEdit(), "resnet")
    qtbot.waitUntil(picker.table.isVisible, timeout=5_000)
    shown = visible_models(picker)
    assert shown and all("resnet" in name for name in shown)
    assert headers(picker) == [f"{MISSING_GROUP} ({len(shown)})"]  # the resnets all need weights here
    qtbot.keyClick(picker.lineEdit(), Qt.Key.Key_Escape)
    picker.showPopup()  # the filter is gone, and so are the filtered counts
    qtbot.waitUntil(picker.table.isVisible, timeout=5_000)
    assert headers(picker)[-1] == f"{MISSING_GROUP} ({len(rows) - ready})"
    picker.hidePopup()


def test_models_are_in_natural_order(make_window, qtbot):
    window = shown_window(make_window, qtbot, SIZES[0])
    picker = window.model_combo
    names = visible_models(picker)
    assert [name for name in names if name in RESNETS] == RESNETS  # 18 < 34 < 50 < 101 < 152, not 101 < 152 < 18
    assert names[:len(EMBEDDED)] == list(EMBEDDED)  # the ready group first
    focus(qtbot, window, picker)
    qtbot.keyClicks(picker.lineEdit(), "resnet1")
    qtbot.waitUntil(picker.table.isVisible, timeout=5_000)
    assert visible_models(picker)[:3] == ["resnet18", "resnet101", "resnet152"]
    qtbot.keyClick(picker.lineEdit(), Qt.Key.Key_Escape)


@pytest.mark.parametrize("size", SIZES, ids=["1280x800", "1920x1080"])
@pytest.mark.parametrize("where", ["text", "arrow"])
def test_a_click_on_the_picker_opens_the_list_of_every_model(make_window, qtbot, size, where):
    window = shown_window(make_window, qtbot, size)
    picker = window.model_combo
    current = window.selected_model()
    target, point = ((picker.lineEdit(), picker.lineEdit().rect().center()) if where == "text"
                     else (picker, arrow_point(picker)))
    qtbot.mouseClick(target, Qt.MouseButton.LeftButton, pos=point)
    qtbot.waitUntil(picker.table.isVisible, timeout=5_000)
    assert len(visible_models(picker)) == len(window.catalog_rows())  # all of them, nothing typed yet
    assert picker.table.height() > 10 * picker.table.sizeHintForRow(1)
    assert window.selected_model() == current  # opening picks nothing
    if where == "text":
        # the name shown is selected, so typing at once searches instead of adding to it
        qtbot.waitUntil(lambda: picker.lineEdit().selectedText() == picker.lineEdit().text(), timeout=5_000)
        save_screenshot(Composite(window, picker.table), f"H1-model-picker-clicked-{size[0]}x{size[1]}")
        qtbot.keyClicks(picker.lineEdit(), "squeeze")
        qtbot.waitUntil(lambda: visible_models(picker) == ["squeezenet1_0", "squeezenet1_1"], timeout=5_000)
        # A click into the text while searching keeps the search: it never starts over from the full list.
        qtbot.mouseClick(target, Qt.MouseButton.LeftButton, pos=point)
        qtbot.wait(50)
        assert picker.table.isVisible() and visible_models(picker) == ["squeezenet1_0", "squeezenet1_1"]
        qtbot.keyClick(picker.lineEdit(), Qt.Key.Key_Escape)
    else:
        picker.hidePopup()
    assert window.selected_model() == current


@pytest.mark.parametrize("size", SIZES, ids=["1280x800", "1920x1080"])
def test_verify_checks_embedded_weights_and_a_greyed_button_says_why(make_window, qtbot, size):
    window = shown_window(make_window, qtbot, size)
    manager = open_manager(window, qtbot)
    manager.resize(min(980, size[0] - 40), min(560, size[1] - 80))
    assert manager.select("efficientnet_lite0")
    assert manager.verify_button.isEnabled()
    for button in (manager.download_button, manager.remove_button, manager.import_button):
        assert not button.isEnabled() and "come with cnnviewer" in button.toolTip(), button.text()
    manager.verify_button.click()
    qtbot.waitUntil(lambda: not manager.busy, timeout=30_000)
    text = manager.status.text()
    assert "efficientnet-lite0-57934424.pth: verified" in text and "OK" in text, text
    qtbot.waitUntil(lambda: row(manager, "efficientnet_lite0").check == "verified", timeout=30_000)
    assert manager.select("efficientnet_lite0")
    save_screenshot(Composite(window, manager), f"H2-weights-manager-embedded-verified-{size[0]}x{size[1]}")
    assert manager.select("resnet18")  # nothing on this machine: nothing to verify, remove, and the tooltip says so
    assert not manager.verify_button.isEnabled() and "no weights file to verify" in manager.verify_button.toolTip()
    assert manager.verify() is None and not manager.busy  # nor does a call from elsewhere start a hash
    assert not manager.remove_button.isEnabled() and "no downloaded" in manager.remove_button.toolTip()
    assert manager.download_button.isEnabled() and manager.download_button.toolTip().startswith("Download")
    manager.table.clearSelection()
    assert "Select a model" in manager.verify_button.toolTip()


def test_a_damaged_embedded_file_is_a_mismatch_in_core_and_cli(isolated_home, tmp_path, monkeypatch):
    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.weights import verify

    entry = get_entry("efficientnet_lite0")
    package = entry.weights_package
    assert package is not None
    (tmp_path / package / "models").mkdir(parents=True)
    (tmp_path / package / "__init__.py").write_text("")
    damaged = tmp_path / package / "models" / entry.weights_filename
    damaged.write_bytes(b"not the published weights")  # the hash in its name cannot match
    monkeypatch.delitem(sys.modules, package, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert entry.weights_path() == damaged
    [found] = verify("efficientnet_lite0")
    assert (found.path, found.state) == (damaged, "hash mismatch")
    code, out, err = run_inprocess("weights", "verify", "efficientnet-lite0")
    assert code == 1 and out == f"{damaged.name}: hash mismatch\n"
    assert f"{damaged}: the SHA-256 does not match the hash in its name; reinstall the Python package {package}" in err
    damaged.unlink()  # a package without its file: a sentence naming the file
    code, _, err = run_inprocess("weights", "verify", "efficientnet-lite0")
    assert code == 1 and f"{damaged.name}: the embedded weights of efficientnet_lite0 are not installed" in err
