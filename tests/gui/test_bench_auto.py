"""The benchmark window offers auto (each model's own fastest way with fp32's top-5) and says what it chose."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox

from tests.conftest import PHOTOS_13
from tests.helpers import save_screenshot


def test_a_new_users_benchmark_runs_as_auto_and_the_dashboard_says_what_auto_chose(make_window, qtbot, tmp_path,
                                                                                   monkeypatch):
    from cnnviewer.core.auto import cached_record
    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.weights import file_sha256

    monkeypatch.setattr("cnnviewer.gui.benchmark_window.default_out_dir", lambda folder: str(tmp_path / "auto"))
    window = make_window(run_as=None)  # a new user: the Run-as box reads auto
    qtbot.waitUntil(lambda: len(window.ways_offered()) > 1, timeout=60_000)
    bench = window.open_benchmark(str(PHOTOS_13))
    boxes = {box.text(): box for box in bench.ways.findChildren(QCheckBox)}
    assert list(boxes)[0] == "auto" and boxes["auto"].isChecked()
    assert [box for box, b in boxes.items() if b.isChecked()] == ["auto"]
    for index in range(bench.models.count()):
        item = bench.models.item(index)
        wanted = item.data(Qt.ItemDataRole.UserRole) == "efficientnet_lite0"
        item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)
    bench.batch_size.setValue(4)
    bench.limit.setValue(6)
    bench.start()
    qtbot.waitUntil(lambda: bench.report is not None and bench.report.complete, timeout=180_000)
    result = bench.report.models[0]
    entry = get_entry("efficientnet_lite0")
    record = cached_record(entry.name, file_sha256(entry.weights_path()), "cpu")
    assert record is not None and result.auto and result.run_as == record.chosen
    qtbot.waitUntil(lambda: "auto ran efficientnet_lite0" in bench.dashboard.conclusions.text(), timeout=10_000)
    assert f"as {record.chosen}" in bench.dashboard.conclusions.text()
    qtbot.waitUntil(lambda: bench.start_button.isEnabled(), timeout=30_000)
    bench.resize(1280, 800)
    save_screenshot(bench, "bench-auto-1280x800")


def test_int8_on_a_folder_too_small_for_a_calibration_sample_is_refused_at_start(make_window, qtbot, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setattr("cnnviewer.gui.benchmark_window.default_out_dir", lambda folder: str(tmp_path / "int8"))
    window = make_window()
    qtbot.waitUntil(lambda: len(window.ways_offered()) > 1, timeout=60_000)
    assert window.calibration_folder == ""  # no folder of the user's: int8 would sample this one
    bench = window.open_benchmark(str(PHOTOS_13))
    boxes = {box.text(): box for box in bench.ways.findChildren(QCheckBox)}
    for name, box in boxes.items():
        box.setChecked(name == "int8")
    assert bench.start() is None and not bench.is_running()
    said = bench.progress_text.text()
    assert "int8 needs 16 calibration photos" in said and "13 images" in said and "calibration folder" in said
    assert not (tmp_path / "int8").exists()
    assert bench.error_note.isVisibleTo(bench) and bench.error_note.text() == said  # whole, wrapped
    bench.resize(1280, 800)
    save_screenshot(bench, "bench-int8-too-few-1280x800")
