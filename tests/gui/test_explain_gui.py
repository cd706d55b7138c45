"""Grad-CAM in the window: the preview overlay, class switching, compare and benchmark maps."""

from __future__ import annotations

import pytest

from cnnviewer.core.report import write_all
from cnnviewer.core.ways import parse_way
from tests.helpers import PHOTOS_13, ROOT, compare_after_classifying, save_screenshot, second_way, wait_for_outcome

BEAR = str(PHOTOS_13 / "black_bear.jpg")
GRACE = str(ROOT / "resources" / "samples" / "grace_hopper.jpg")
POLAR = str(PHOTOS_13 / "polar_bear.jpg")


def table_top1(window) -> str:
    """The table's first row as it prints it: "name (class N, P %)"."""
    model = window.predictions.model
    return f"{model.index(0, 2).data()} (class {model.index(0, 1).data()}, {model.index(0, 3).data()})"


@pytest.mark.parametrize("photo", [GRACE, POLAR], ids=["grace_hopper", "polar_bear"])
def test_the_map_explains_the_top1_the_table_shows(make_window, qtbot, photo):
    """Grad-CAM's class and probability are the classification's, exactly as printed (2 decimals)."""
    window = make_window()
    assert window.selected_model() == "efficientnet_lite0"
    window.open_path(photo)
    wait_for_outcome(qtbot, window, photo)
    window.explain_action.setChecked(True)
    qtbot.waitUntil(window.preview.view.heat_visible, timeout=60_000)
    caption = window.preview.explain_caption.text()
    assert caption.startswith(f"Grad-CAM: {table_top1(window)} · efficientnet_lite0 · fp32"), (caption,
                                                                                               table_top1(window))
    assert "map computed" not in caption
    assert window.predictions.title.text().endswith("efficientnet_lite0 · fp32 · cpu")
    if photo == GRACE:
        save_screenshot(window, "14-gradcam-grace-hopper")


def test_a_way_without_gradients_says_the_map_is_fp32(make_window, qtbot):
    way = parse_way(second_way())
    window = make_window()
    window.open_path(GRACE)
    wait_for_outcome(qtbot, window, GRACE)
    window.run_as_combo.setCurrentText(way.label)
    qtbot.waitUntil(lambda: window.last_outcome is not None and window.last_outcome.way == way, timeout=60_000)
    window.explain_action.setChecked(True)
    qtbot.waitUntil(window.preview.view.heat_visible, timeout=60_000)
    caption = window.preview.explain_caption.text()
    assert caption.startswith(f"Grad-CAM: {table_top1(window)} · efficientnet_lite0 · {way.label}"), caption
    assert caption.endswith(f"map computed in fp32; classified as {way.label}")


def test_overlay_toggles_and_follows_the_clicked_class(make_window, qtbot):
    window = make_window()
    window.open_path(BEAR)
    wait_for_outcome(qtbot, window, BEAR)
    assert not window.preview.view.heat_visible()
    window.explain_action.setChecked(True)
    qtbot.waitUntil(window.preview.view.heat_visible, timeout=30_000)
    assert "class 295" in window.preview.explain_caption.text()
    window.preview.opacity.setValue(80)
    assert abs(window.preview.view._heat.opacity() - 0.8) < 1e-6
    save_screenshot(window, "10-gradcam")
    third = window.predictions.model.index(2, 1)
    clicked = window.predictions.model.predictions()[2]
    window.predictions.table.clicked.emit(third)
    qtbot.waitUntil(lambda: f"class {clicked.index}" in window.preview.explain_caption.text(), timeout=30_000)
    window.explain_action.setChecked(False)
    assert not window.preview.view.heat_visible()


def test_compare_shows_one_map_per_model(make_window, qtbot):
    window = make_window()
    dialog = compare_after_classifying(qtbot, window, BEAR)
    dialog.maps_box.setChecked(True)
    qtbot.waitUntil(lambda: len(dialog.explained) == 3, timeout=60_000)
    assert all(not dialog.maps[name].pixmap().isNull() for name in dialog.maps)
    save_screenshot(dialog, "11-compare-gradcam")
    dialog.close()


def test_benchmark_mistake_shows_each_models_map(make_window, qtbot, tmp_path, photos_13_run):
    report, _ = photos_13_run
    path = write_all(report, tmp_path)["json"]
    window = make_window()
    bench = window.open_benchmark_report(str(path))
    dashboard = bench.dashboard
    qtbot.waitUntil(lambda: dashboard.images_model.rowCount() == 13, timeout=10_000)
    dashboard.setCurrentIndex(1)
    dashboard.filter_combo.setCurrentText("Mistakes")
    assert dashboard.images_filter.rowCount() >= 1
    dashboard.images.setCurrentIndex(dashboard.images_filter.index(0, 0))
    qtbot.waitUntil(lambda: len(dashboard.detail.maps) == 2 and all(
        label.pixmap() is not None and not label.pixmap().isNull() for label in dashboard.detail.maps.values()),
        timeout=60_000)
    save_screenshot(bench, "12-benchmark-mistake-gradcam")
