"""Grad-CAM in the window: the preview overlay, class switching, compare and benchmark maps."""

from __future__ import annotations

from cnnviewer.core.report import write_all
from tests.helpers import PHOTOS_13, compare_after_classifying, save_screenshot, wait_for_outcome

BEAR = str(PHOTOS_13 / "black_bear.jpg")


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
    dashboard.images.clicked.emit(dashboard.images_filter.index(0, 0))
    qtbot.waitUntil(lambda: len(dashboard.detail.maps) == 2 and all(
        label.pixmap() is not None and not label.pixmap().isNull() for label in dashboard.detail.maps.values()),
        timeout=60_000)
    save_screenshot(bench, "12-benchmark-mistake-gradcam")
