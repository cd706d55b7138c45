"""The dialogs keep QWidget.window(): the main window they work for is not stored under that name."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from cnnviewer.gui.compare import CompareDialog


def test_compare_dialog_window_is_a_widget(make_window):
    window = make_window()
    dialog = CompareDialog(window, window.runner)
    top = dialog.window()  # a TypeError ("'MainWindow' object is not callable") when an attribute hid it
    assert isinstance(top, QWidget)
    assert top is dialog  # a dialog is its own top-level window
    assert dialog.main_window is window


def test_weights_dialog_window_is_a_widget(make_window):
    window = make_window()
    dialog = window.open_weights_dialog("resnet18")  # the fresh home of the tests holds no weights for it
    assert dialog is not None
    top = dialog.window()
    assert isinstance(top, QWidget)
    assert top is dialog
    assert dialog.main_window is window
