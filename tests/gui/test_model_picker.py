"""The model picker: typing filters, "Ready" / "Needs weights" groups, published figures and measured images/s."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QPainter, QPixmap

from cnnviewer.gui.model_picker import (
    GROUP_ROLE,
    LABEL_COLUMN,
    MISSING_GROUP,
    MODEL_ROLE,
    READY_GROUP,
    SPEED_COLUMN,
)
from tests.helpers import EMBEDDED, save_screenshot

SIZES = ((1280, 800), (1920, 1080))


class Composite:
    """The window with its open popups painted where they are on screen (a popup is a window of its own)."""

    def __init__(self, window: Any, *popups: Any) -> None:
        self.window, self.popups = window, popups

    def grab(self) -> QPixmap:
        picture = self.window.grab()
        painter = QPainter(picture)
        origin = self.window.mapToGlobal(QPoint(0, 0))
        for popup in self.popups:
            if popup.isVisible():
                painter.drawPixmap(popup.mapToGlobal(QPoint(0, 0)) - origin, popup.grab())
        painter.end()
        return picture


def shown_window(make_window: Any, qtbot: Any, size: tuple[int, int]) -> Any:
    window = make_window()
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    return window


def visible_models(picker: Any) -> list[str]:
    """The models the popup lists now, in its order."""
    names = []
    for number in range(picker.filter.rowCount()):
        name = picker.filter.index(number, LABEL_COLUMN).data(MODEL_ROLE)
        if name is not None:
            names.append(name)
    return names


def groups(picker: Any) -> dict[str, str]:
    """Model -> the group header it is listed under."""
    model, group, found = picker.model(), "", {}
    for number in range(model.rowCount()):
        index = model.index(number, LABEL_COLUMN)
        if index.data(GROUP_ROLE):
            group = index.data()
        else:
            found[index.data(MODEL_ROLE)] = group
    return found


def focus(qtbot: Any, window: Any, picker: Any) -> None:
    """Click into the picker as a person would: the name shown is selected, so typing replaces it."""
    window.activateWindow()
    picker.setFocus()
    qtbot.waitUntil(lambda: picker.lineEdit().selectedText() == picker.lineEdit().text(), timeout=5_000)


def row_of(picker: Any, name: str) -> int:
    row = picker.findData(name, MODEL_ROLE)
    assert row >= 0, name
    return row


@pytest.mark.parametrize("size", SIZES, ids=["1280x800", "1920x1080"])
def test_typing_filters_and_enter_picks_the_first_match(make_window, qtbot, size):
    window = shown_window(make_window, qtbot, size)
    picker = window.model_combo
    assert window.select_model("resnet50")
    focus(qtbot, window, picker)
    qtbot.keyClicks(picker.lineEdit(), "LITE")  # case does not matter
    qtbot.waitUntil(picker.table.isVisible, timeout=5_000)
    assert visible_models(picker) == list(EMBEDDED)
    # the group headers that still have a match stay; "Needs weights" has none of the lite models
    headers = [picker.filter.index(n, LABEL_COLUMN).data() for n in range(picker.filter.rowCount())
               if picker.filter.index(n, LABEL_COLUMN).data(GROUP_ROLE)]
    assert headers == [READY_GROUP]
    qtbot.wait(50)  # the first match is highlighted after the completer's own pass
    save_screenshot(Composite(window, picker.table), f"E1-model-picker-filtered-{size[0]}x{size[1]}")
    qtbot.keyClick(picker.lineEdit(), Qt.Key.Key_Return)
    assert window.selected_model() == "efficientnet_lite0"
    assert not picker.table.isVisible()
    assert picker.lineEdit().text() == picker.itemText(picker.currentIndex())


def test_a_title_matches_too_and_enter_in_the_table_picks(make_window, qtbot):
    window = shown_window(make_window, qtbot, SIZES[0])
    picker = window.model_combo
    focus(qtbot, window, picker)
    qtbot.keyClicks(picker.lineEdit(), "wide ")  # "Wide ResNet50 2": the title, not the name wide_resnet50_2
    qtbot.waitUntil(picker.table.isVisible, timeout=5_000)
    assert visible_models(picker) == ["wide_resnet50_2", "wide_resnet101_2"]  # natural order: 50 < 101
    qtbot.wait(50)
    qtbot.keyClick(picker.table, Qt.Key.Key_Down)  # the second match
    qtbot.keyClick(picker.table, Qt.Key.Key_Return)
    assert window.selected_model() == "wide_resnet101_2"


def test_escape_restores_the_current_model(make_window, qtbot):
    window = shown_window(make_window, qtbot, SIZES[0])
    picker = window.model_combo
    assert window.select_model("efficientnet_lite1")
    shown = picker.lineEdit().text()
    focus(qtbot, window, picker)
    qtbot.keyClicks(picker.lineEdit(), "vgg")
    qtbot.waitUntil(picker.table.isVisible, timeout=5_000)
    assert visible_models(picker)[0].startswith("vgg")
    qtbot.keyClick(picker.lineEdit(), Qt.Key.Key_Escape)
    assert window.selected_model() == "efficientnet_lite1"
    assert picker.lineEdit().text() == shown
    assert len(visible_models(picker)) == len(window.catalog_rows())  # the filter is gone too


def test_groups_and_headers_that_cannot_be_picked(make_window, qtbot):
    window = shown_window(make_window, qtbot, SIZES[0])
    picker = window.model_combo
    found = groups(picker)
    assert found["efficientnet_lite0"].startswith(READY_GROUP)
    assert found["resnet18"].startswith(MISSING_GROUP)  # no weights in this test's fresh torch cache
    assert set(found) == {row.name for row in window.catalog_rows()}
    model = picker.model()
    header = next(n for n in range(model.rowCount()) if model.index(n, LABEL_COLUMN).data(GROUP_ROLE))
    assert not model.index(header, 0).flags() & (Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)
    # A click on a header in the open table picks nothing and closes nothing.
    before = window.selected_model()
    picker.showPopup()
    qtbot.waitUntil(picker.table.isVisible, timeout=5_000)
    view_index = picker.table.model().index(header, 0)
    qtbot.mouseClick(picker.table.viewport(), Qt.MouseButton.LeftButton,
                     pos=picker.table.visualRect(view_index).center())
    assert window.selected_model() == before
    assert not picker.table.selectionModel().isSelected(view_index)
    # Nor can the keyboard land on one: Up from the first model stays on a model.
    picker.table.setCurrentIndex(picker.table.model().index(header + 1, 0))
    qtbot.keyClick(picker.table, Qt.Key.Key_Up)
    assert picker.table.currentIndex().row() != header
    picker.hidePopup()


def test_published_figures_and_measured_speed(make_window, qtbot):
    from cnnviewer.core.benchmark import BenchmarkReport, ModelResult
    from cnnviewer.core.measured import record

    window = shown_window(make_window, qtbot, SIZES[0])
    picker = window.model_combo
    model = picker.model()
    lite = row_of(picker, "efficientnet_lite0")
    assert model.index(lite, 1).data() == "75.1"  # published acc@1
    assert model.index(lite, 2).data() == "0.41"  # GMACs
    assert model.index(lite, 3).data() == f"{window._catalog['efficientnet_lite0'].file_size_mb:.0f}"
    assert model.index(lite, SPEED_COLUMN).data() == ""  # never measured here
    resnet = row_of(picker, "resnet50")
    assert model.index(resnet, 1).data() == "80.9" and model.index(resnet, 2).data() == "4.09"

    result = ModelResult(name="efficientnet_lite0", title="EfficientNet-Lite0", weights="w",
                         model="efficientnet_lite0", images=10, complete=True, latency_ms={"p50": 9.0},
                         throughput_ips=200.0, end_to_end_ips=123.4)
    assert record(BenchmarkReport(root="r", config={"device": "cpu"}, environment={"device": "cpu"},
                                  models=[result], complete=True)) == 1
    picker.showPopup()
    qtbot.waitUntil(picker.table.isVisible, timeout=5_000)
    assert model.index(lite, SPEED_COLUMN).data() == "123.4"
    assert model.index(resnet, SPEED_COLUMN).data() == ""
    picker.hidePopup()
