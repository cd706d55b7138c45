"""Grad-CAM that reads well and can be kept: the caption's line, the crop's fade, any class by name, saving."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QPainter

from tests.helpers import ARTIFACTS, PHOTOS_13, save_screenshot, wait_for_outcome

BEAR = str(PHOTOS_13 / "black_bear.jpg")  # 800 x 656: the crop leaves a band left and right
CORAL = str(PHOTOS_13 / "coral.jpg")  # wide, and the reef's map reaches both sides of the crop
SIZES = ((1280, 800), (1920, 1080))


def explained(qtbot: Any, window: Any, photo: str = BEAR) -> Any:
    """Classify ``photo`` and show its top-1 map; the window."""
    window.open_path(photo)
    wait_for_outcome(qtbot, window, photo)
    window.explain_action.setChecked(True)
    qtbot.waitUntil(lambda: window._shown_explanation is not None, timeout=60_000)
    return window


def sized(qtbot: Any, window: Any, width: int, height: int) -> None:
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)
    caption = window.preview.explain_caption
    qtbot.waitUntil(lambda: window.width() == width and caption.width() > 0 and window.preview.view.width() > 0,
                    timeout=10_000)


def in_window(widget: Any, window: Any) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def save_with_popup(window: Any, popup: Any, name: str) -> Path:
    """The window with the completer's popup (a window of its own, which grab() leaves out) drawn where it is."""
    shot = window.grab()
    painter = QPainter(shot)
    painter.drawPixmap(popup.mapToGlobal(QPoint(0, 0)) - window.mapToGlobal(QPoint(0, 0)), popup.grab())
    painter.end()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert shot.save(str(path)), path
    return path


def test_the_caption_has_a_line_of_its_own_cut_with_an_ellipsis(make_window, qtbot):
    window = explained(qtbot, make_window())
    caption, zoom = window.preview.explain_caption, window.preview.zoom_label
    full = caption.text()
    assert full.startswith("Grad-CAM: American black bear (class 295, ")
    for width, height in SIZES:
        sized(qtbot, window, width, height)
        assert not in_window(caption, window).intersects(in_window(zoom, window)), (width, height)
        assert in_window(caption, window).right() <= in_window(window.preview, window).right()
        assert caption.displayed_text() == full  # it fits: nothing is cut
        assert zoom.width() >= zoom.fontMetrics().horizontalAdvance("3200 %")  # the zoom is never cut either
        assert in_window(zoom, window).right() <= in_window(window.preview, window).right()
        save_screenshot(window, f"gradcam-caption-{width}x{height}")
    # A caption longer than its room ends in "…" inside the label; the tooltip keeps every word.
    sized(qtbot, window, 1280, 800)
    long = full + " · map computed in fp32; classified as onnxruntime" * 3
    caption.set_full_text(long)
    shown = caption.displayed_text()
    assert shown.endswith("…") and shown[:-1] in long
    assert caption.fontMetrics().horizontalAdvance(shown) <= caption.contentsRect().width()
    assert "classified as onnxruntime" in caption.toolTip()


def test_the_map_fades_out_past_the_crop_which_is_outlined(make_window, qtbot):
    window = explained(qtbot, make_window(), CORAL)
    window.preview.opacity.setValue(100)
    heat = window.preview.view.heat_image()
    assert heat is not None  # at the size the photo was decoded for the model: a JPEG may be decoded smaller
    width, height = heat.width(), heat.height()
    alpha = np.array([[heat.pixelColor(x, y).alpha() for x in range(width)] for y in range(0, height, 2)])
    side = height * 224 / 256  # efficientnet_lite0: resize 256, centre crop 224
    left = round((width - side) / 2)
    right = left + round(side) - 1
    band = 0.04 * side
    # Along each edge of the crop, where the map is strongest: one pixel out it is nearly as strong (a hard
    # edge drops to 0 there), it thins out smoothly, and it is gone past the band.
    for edge, step in ((left, -1), (right, 1)):
        row = int(alpha[:, edge].argmax())
        strongest = int(alpha[row, edge])
        assert strongest >= 100, (edge, strongest)
        outward = [int(alpha[row, edge + step * d]) for d in range(int(band) + 3)]
        assert outward[1] >= 0.8 * strongest, outward
        assert all(b <= a for a, b in zip(outward, outward[1:], strict=False)), outward
        assert max(abs(a - b) for a, b in zip(outward, outward[1:], strict=False)) <= 0.25 * strongest, outward
        assert outward[-1] == 0, outward
    assert alpha[:, : left - int(band) - 2].max() == 0 and alpha[:, right + int(band) + 3:].max() == 0
    outline = window.preview.view.crop_outline()  # in the preview's pixels
    photo = window.preview.view._item.pixmap()
    assert outline is not None
    assert outline.left() / photo.width() == pytest.approx((width - side) / 2 / width, abs=0.005)
    assert outline.width() / photo.width() == pytest.approx(side / width, abs=0.005)
    assert outline.top() / photo.height() == pytest.approx((height - side) / 2 / height, abs=0.005)
    assert outline.height() / photo.height() == pytest.approx(side / height, abs=0.005)
    for width, height in SIZES:
        sized(qtbot, window, width, height)
        save_screenshot(window, f"gradcam-fade-outline-{width}x{height}")
    window.explain_action.setChecked(False)
    assert window.preview.view.crop_outline() is None


def test_any_class_by_typing_its_name(make_window, qtbot):
    window = explained(qtbot, make_window())
    picker = window.preview.class_picker
    assert picker.isEnabled() and picker.count() == 1000
    window.explain_class_action.trigger()  # Ctrl+Shift+E: into the picker
    qtbot.waitUntil(picker.lineEdit().hasFocus, timeout=5_000)
    picker.lineEdit().clear()
    qtbot.keyClicks(picker.lineEdit(), "granny")
    popup = picker.completer().popup()
    qtbot.waitUntil(popup.isVisible, timeout=5_000)
    offered = [popup.model().index(row, 0).data() for row in range(popup.model().rowCount())]
    assert offered == ["948 Granny Smith"]
    for width, height in SIZES:
        sized(qtbot, window, width, height)
        if not popup.isVisible():
            qtbot.keyClicks(picker.lineEdit(), " ")
            qtbot.keyClick(picker.lineEdit(), Qt.Key.Key_Backspace)
        qtbot.waitUntil(popup.isVisible, timeout=5_000)
        save_with_popup(window, popup, f"gradcam-class-picker-{width}x{height}")
    popup.setCurrentIndex(popup.model().index(0, 0))
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window._shown_explanation is not None and window._shown_explanation.class_index == 948,
                    timeout=60_000)
    caption = window.preview.explain_caption.text()
    probability = window._shown_explanation.probability
    assert caption.startswith(f"Grad-CAM: Granny Smith (class 948, {probability * 100:.2f} %, not in the top 5) · "), \
        caption
    assert picker.currentText() == "948 Granny Smith"
    # An index typed and Enter pressed explains that class too.
    picker.lineEdit().clear()
    qtbot.keyClicks(picker.lineEdit(), "296")
    picker.completer().popup().hide()
    qtbot.keyClick(picker.lineEdit(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window._shown_explanation is not None and window._shown_explanation.class_index == 296,
                    timeout=60_000)
    assert window.preview.explain_caption.text().startswith("Grad-CAM: ice bear (class 296, ")
    # A name is read as `cnnviewer explain --class` reads it, and one Enter asks once (not once per signal).
    chosen: list[int] = []
    window.preview.class_chosen.connect(chosen.append)
    picker.lineEdit().clear()
    qtbot.keyClicks(picker.lineEdit(), "tiger")  # the lemma of class 292, though "tiger shark" contains it
    qtbot.keyClick(picker.lineEdit(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window._shown_explanation is not None and window._shown_explanation.class_index == 292,
                    timeout=60_000)
    assert chosen == [292]
    picker.lineEdit().clear()
    qtbot.keyClicks(picker.lineEdit(), "bear")  # nine classes: said, and nothing is explained
    picker.completer().popup().hide()
    qtbot.keyClick(picker.lineEdit(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "'bear' names 9 classes" in window.statusBar().currentMessage(), timeout=5_000)
    assert chosen == [292] and window._shown_explanation.class_index == 292


def test_after_top_k_changes_the_caption_names_the_class_drawn(make_window, qtbot):
    window = explained(qtbot, make_window())
    fifth = window.predictions.model.predictions()[4]
    window.predictions.table.clicked.emit(window.predictions.model.index(4, 1))
    qtbot.waitUntil(lambda: window._shown_explanation is not None
                    and window._shown_explanation.class_index == fifth.index, timeout=60_000)
    assert "not in the top" not in window.preview.explain_caption.text()
    window.top_k_spin.setValue(3)
    qtbot.waitUntil(lambda: window.last_outcome is not None and len(window.last_outcome.classification.predictions)
                    == 3 and window._shown_explanation is not None, timeout=60_000)
    drawn = window._shown_explanation
    assert drawn.class_index == fifth.index
    assert window.preview.explain_caption.text().startswith(
        f"Grad-CAM: {fifth.name} (class {fifth.index}, {fifth.probability * 100:.2f} %, not in the top 3) · ")


def test_the_grad_cam_toggle_is_restored(make_window, qtbot):
    window = make_window()
    assert not window.explain_action.isChecked()
    window.explain_action.setChecked(True)
    window.close()
    again = make_window()
    assert again.explain_action.isChecked() and again.preview.explain_box.isChecked()
    again.preview.explain_box.setChecked(False)
    again.close()
    assert not make_window().explain_action.isChecked()


def test_save_keeps_the_overlay_and_the_map(make_window, qtbot, tmp_path):
    window = make_window()
    window.open_path(BEAR)
    wait_for_outcome(qtbot, window, BEAR)
    assert not window.save_explain_action.isEnabled()  # nothing on show
    explained(qtbot, window)
    # Not into the photos' own folder (a dataset) by default: Pictures, else home.
    first = window.save_suggestion(window._shown_explanation)
    assert os.path.dirname(first) != os.path.dirname(BEAR) and first.endswith("black_bear-gradcam-"
                                                                              f"{window._shown_explanation.model}-295.png")
    assert window.save_explain_action.isEnabled()
    for name in ("bear.png", "bear.jpg"):
        target = tmp_path / name
        window.save_explanation_to(str(target))
        qtbot.waitUntil(lambda t=target: "saved" in window.statusBar().currentMessage() and t.exists(),
                        timeout=60_000)
        with Image.open(target) as picture:
            assert picture.format == ("PNG" if name.endswith(".png") else "JPEG")
            assert picture.size == (800, 656)
            picture.load()
    assert os.path.dirname(window.save_suggestion(window._shown_explanation)) == str(tmp_path)  # the last folder
    heat = np.load(tmp_path / "bear.npy")
    assert heat.shape == (656, 800) and heat.dtype == np.float32
    assert 0 <= heat.min() and heat.max() == pytest.approx(1.0, abs=0.02)
    assert heat[:, :50].max() == 0  # the data stays zero outside the crop; only the picture fades
    window.explain_action.setChecked(False)
    assert not window.save_explain_action.isEnabled()


def test_an_unwritable_folder_is_one_sentence_naming_the_file(make_window, qtbot, tmp_path):
    window = explained(qtbot, make_window())
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    targets = [blocker / "bear.png"]
    if os.geteuid() != 0:  # root writes into any folder whatever its mode
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        targets.append(locked / "bear.png")
    for target in targets:
        window.statusBar().clearMessage()
        window.save_explanation_to(str(target))
        qtbot.waitUntil(lambda: "cannot be written" in window.statusBar().currentMessage(), timeout=60_000)
        message = window.statusBar().currentMessage()
        assert message.startswith(f"{target}: cannot be written (") and message.count(". ") == 0
        assert not target.exists() and not target.with_suffix(".npy").exists()


def test_a_picture_named_like_its_map_is_refused_and_nothing_is_written(tmp_path):
    from cnnviewer.core.errors import OutputError
    from cnnviewer.core.explain import Explanation, save_explanation

    heat = np.zeros((40, 60), np.float32)
    heat[4:36, 14:46] = 1.0
    explanation = Explanation("efficientnet_lite0", 948, "Granny Smith", 0.5, heat, Image.new("RGB", (60, 40)),
                              crop_box=(14.0, 4.0, 32.0))
    with pytest.raises(OutputError) as raised:
        save_explanation(explanation, tmp_path / "apple.npy")
    assert str(raised.value).startswith(f"{tmp_path / 'apple.npy'}: is where the map would be saved too")
    assert list(tmp_path.iterdir()) == []
    picture, heatmap = save_explanation(explanation, tmp_path / "apple.jpg", opacity=1.0)
    assert np.array_equal(np.load(heatmap), heat)  # the data: zero outside the crop
    with Image.open(picture) as saved:
        assert saved.format == "JPEG" and saved.size == (60, 40)


def test_save_refuses_a_photo_changed_since_its_map_was_shown(make_window, qtbot, tmp_path):
    """The saved files are made again from the file: had it been rewritten, they would not be the map on show."""
    import shutil

    photo = tmp_path / "bear.jpg"
    shutil.copyfile(BEAR, photo)
    window = explained(qtbot, make_window(), str(photo))
    shutil.copyfile(PHOTOS_13 / "coral.jpg", photo)  # another picture under the same name
    os.utime(photo, ns=(os.stat(photo).st_atime_ns, os.stat(photo).st_mtime_ns + 10**9))
    target = tmp_path / "out.png"
    window.save_explanation_to(str(target))
    qtbot.waitUntil(lambda: "changed on disk" in window.statusBar().currentMessage(), timeout=60_000)
    assert window.statusBar().currentMessage().startswith(f"{photo}: changed on disk since its Grad-CAM was shown")
    assert not target.exists() and not target.with_suffix(".npy").exists()


def test_a_map_of_the_same_name_is_not_replaced_without_asking(make_window, qtbot, tmp_path):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    window = make_window()
    (tmp_path / "bear.npy").write_bytes(b"the user's own array")
    answers = []

    def answer(button):
        box = window.replace_question
        if box is None:  # not asked yet: look again
            QTimer.singleShot(20, lambda: answer(button))
            return
        answers.append(box.text())
        box.button(button).click()

    QTimer.singleShot(20, lambda: answer(QMessageBox.StandardButton.Cancel))
    assert not window.may_replace_map(str(tmp_path / "bear.png"))
    assert answers and "bear.npy already exists" in answers[0]
    QTimer.singleShot(20, lambda: answer(QMessageBox.StandardButton.Yes))
    assert window.may_replace_map(str(tmp_path / "bear.png"))
    assert window.may_replace_map(str(tmp_path / "other.png")) and len(answers) == 2  # nothing there: no question
    assert (tmp_path / "bear.npy").read_bytes() == b"the user's own array"
