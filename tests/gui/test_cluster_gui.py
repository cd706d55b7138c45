"""The benchmark window's Run on cluster: offered with Ray only, enabled by an address, remembered, int8 refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QCheckBox, QLabel

from tests.helpers import PHOTOS_13, save_screenshot

SIZES = ((1280, 800), (1920, 1080))


@pytest.fixture(autouse=True)
def no_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """A RAY_ADDRESS of the machine running the tests must not decide what the window offers."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def one_model(bench: Any, name: str = "efficientnet_lite0") -> None:
    for index in range(bench.models.count()):
        item = bench.models.item(index)
        item.setCheckState(Qt.CheckState.Checked if item.data(Qt.ItemDataRole.UserRole) == name
                           else Qt.CheckState.Unchecked)


def only_ways(bench: Any, *labels: str) -> None:
    for box in bench.ways.findChildren(QCheckBox):
        box.setChecked(box.text() in labels)


def click(qtbot: Any, box: QCheckBox) -> None:
    """A user's click on the box's indicator (a click beyond its text is no click on a check box)."""
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(box.iconSize().width() // 2 + 2, box.height() // 2))


def screenshots(qtbot: Any, bench: Any, name: str) -> None:
    for width, height in SIZES:
        bench.resize(width, height)
        bench.show()
        qtbot.waitExposed(bench)
        qtbot.waitUntil(lambda width=width: bench.width() == width, timeout=10_000)
        save_screenshot(bench, f"{name}-{width}x{height}")


def test_run_on_cluster_is_not_offered_without_ray(make_window, monkeypatch):
    # The environment of a machine (or the bundle) without Ray, even with an address and the box remembered on.
    monkeypatch.setattr("cnnviewer.gui.benchmark_window.cluster_available", lambda: False)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6390")
    window = make_window()
    window.settings.setValue("benchmark/runOnCluster", True)
    bench = window.open_benchmark(str(PHOTOS_13))
    assert bench.cluster_panel.isHidden() and not bench.cluster_box.isVisible()
    assert "Cluster" not in [label.text() for label in bench.findChildren(QLabel) if label.isVisible()]
    assert not bench.runs_on_cluster()


def test_run_on_cluster_is_disabled_without_an_address(make_window, qtbot):
    window = make_window()
    bench = window.open_benchmark(str(PHOTOS_13))
    assert bench.cluster_box.isVisible()
    assert not bench.cluster_box.isEnabled() and not bench.cluster_box.isChecked()
    assert "No cluster address" in bench.cluster_box.toolTip() and not bench.runs_on_cluster()
    assert bench.cluster_note.text() == "No address: enter the head's, or set RAY_ADDRESS"
    screenshots(qtbot, bench, "19-bench-cluster-no-address")


def test_ray_address_enables_run_on_cluster_and_is_shown(make_window, qtbot, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")
    window = make_window()
    bench = window.open_benchmark(str(PHOTOS_13))
    assert bench.cluster_box.isEnabled() and not bench.cluster_box.isChecked()
    assert bench.cluster_address_used() == "10.0.0.2:6379"
    assert "10.0.0.2:6379" in bench.cluster_box.toolTip()
    assert bench.cluster_note.text() == "At 10.0.0.2:6379 (RAY_ADDRESS)"
    click(qtbot, bench.cluster_box)
    assert bench.cluster_box.isChecked() and bench.runs_on_cluster()
    screenshots(qtbot, bench, "19-bench-cluster-ray-address")
    # An address typed in the window is the one used, before RAY_ADDRESS.
    bench.cluster_address.setText(" head.lab:6379 ")
    assert bench.cluster_address_used() == "head.lab:6379" and bench.cluster_note.text() == "At head.lab:6379"


def test_the_address_and_the_tick_are_remembered_across_windows(make_window, qtbot):
    window = make_window()
    bench = window.open_benchmark(str(PHOTOS_13))
    qtbot.keyClicks(bench.cluster_address, "head.lab:6379")
    assert bench.cluster_box.isEnabled()
    click(qtbot, bench.cluster_box)
    assert bench.runs_on_cluster()
    window.close()

    again = make_window().open_benchmark(str(PHOTOS_13))
    assert again.cluster_address.text() == "head.lab:6379"
    assert again.cluster_box.isEnabled() and again.cluster_box.isChecked() and again.runs_on_cluster()
    # With the address cleared the box is disabled and off; the tick comes back with an address.
    again.cluster_address.clear()
    assert not again.cluster_box.isEnabled() and not again.cluster_box.isChecked()
    qtbot.keyClicks(again.cluster_address, "head.lab:6379")
    assert again.cluster_box.isChecked()
    # Unticked by the user: remembered off.
    click(qtbot, again.cluster_box)
    again.main.close()
    third = make_window().open_benchmark(str(PHOTOS_13))
    assert third.cluster_box.isEnabled() and not third.cluster_box.isChecked()


def test_int8_on_the_cluster_is_refused_at_start(make_window, qtbot, monkeypatch, tmp_path):
    out_dir = tmp_path / "never-made"
    monkeypatch.setattr("cnnviewer.gui.benchmark_window.default_out_dir", lambda folder: str(out_dir))
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")
    window = make_window()
    qtbot.waitUntil(lambda: "int8" in [str(w) for w in window.ways_offered()], timeout=60_000)
    bench = window.open_benchmark(str(PHOTOS_13))
    one_model(bench)
    only_ways(bench, "fp32", "int8")
    click(qtbot, bench.cluster_box)
    assert bench.start() is None
    assert not bench.is_running() and bench.start_button.isEnabled() and not out_dir.exists()
    assert bench.error_note.isVisible()
    assert bench.error_note.text() == ("int8 does not run on the cluster at 10.0.0.2:6379 (its calibration and "
                                       "quantized model stay on this machine); untick int8 or Run on cluster.")
    screenshots(qtbot, bench, "19-bench-cluster-int8-refused")
    only_ways(bench, "fp32")  # the choice the sentence asked for: the refusal goes with it
    assert not bench.error_note.isVisible() and bench.start_button.isEnabled()


def test_a_cluster_that_cannot_be_reached_is_the_windows_error_line_naming_it(make_window, qtbot, monkeypatch,
                                                                             tmp_path):
    monkeypatch.setattr("cnnviewer.gui.benchmark_window.default_out_dir", lambda folder: str(tmp_path / "run"))
    window = make_window()
    bench = window.open_benchmark(str(PHOTOS_13))
    one_model(bench)
    only_ways(bench, "fp32")
    from tests.ray_cluster import free_port

    address = f"127.0.0.1:{free_port()}"  # nothing listens there: refused at once, no timeout to wait for
    bench.cluster_address.setText(address)
    click(qtbot, bench.cluster_box)
    with qtbot.waitSignal(bench.run_ended, timeout=60_000) as ended:
        assert bench.start() is not None
        assert bench.progress_text.text().startswith(f"Starting on the cluster at {address}; results go to ")
        assert not bench.cluster_box.isEnabled() and not bench.cluster_address.isEnabled()  # the run's own
    assert ended.args == ["errored"]
    text = bench.error_note.text()
    assert bench.error_note.isVisible() and text.startswith("The benchmark stopped: ")
    assert f"cannot connect to the Ray cluster at {address}" in text and text.count(address) == 1, text
    assert bench.cluster_box.isEnabled() and bench.start_button.isEnabled()
    screenshots(qtbot, bench, "19-bench-cluster-error")


def test_the_window_module_imports_neither_ray_nor_torch():
    import subprocess
    import sys

    code = ("import sys, cnnviewer.gui.benchmark_window; "
            "print('ray' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"}, cwd=Path(__file__).parents[2])
    assert out.stdout.split() == ["False", "False"], out.stderr


@pytest.mark.xdist_group("ray-cluster")  # one Ray cluster at a time: with the other cluster tests, in one process
def test_a_run_on_a_real_local_cluster_gives_the_local_top5(make_window, qtbot, monkeypatch, tmp_path, ray_cluster,
                                                            photos_13_run):
    from cnnviewer.core.report import load_json
    from tests.ray_cluster import NODE_ENV

    cluster = ray_cluster(workers=1, cpus=1)
    for name, value in {**NODE_ENV, "RAY_ADDRESS": cluster.address}.items():  # as a driver of that cluster
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("cnnviewer.gui.benchmark_window.default_out_dir", lambda folder: str(tmp_path / "run"))
    window = make_window()
    bench = window.open_benchmark(str(PHOTOS_13))
    one_model(bench)
    only_ways(bench, "fp32")
    bench.batch_size.setValue(4)  # as the local run it is compared with
    click(qtbot, bench.cluster_box)
    assert bench.runs_on_cluster()
    with qtbot.waitSignal(bench.run_ended, timeout=240_000) as ended:
        bench.start()
        assert bench.progress_text.text().startswith(f"Starting on the cluster at {cluster.address}; ")
        assert bench.cluster_note.text() == f"Running on the cluster at {cluster.address}"
        assert bench.cancel_button.isEnabled() and not bench.cluster_box.isEnabled()
    assert ended.args == ["returned"], bench.error_note.text()
    text = bench.progress_text.text()
    assert text.startswith(f"Done on the cluster at {cluster.address}: 1 worker in "), text
    report = load_json(tmp_path / "run" / "report.json")
    assert report.complete and report.environment["cluster"]["address"] == cluster.address
    assert report.config["timing_rounds"] == 0 and report.timing == {}
    assert bench.report is not None and bench.report.environment["cluster"]["workers"]
    local = {row.file: row.top5["efficientnet_lite0"] for row in photos_13_run[0].images}
    on_cluster = {row.file: row.top5["efficientnet_lite0"] for row in report.images}
    assert len(on_cluster) == 13 and on_cluster == local
    qtbot.waitUntil(lambda: bench.dashboard.summary_model.rowCount() == 1, timeout=10_000)
    screenshots(qtbot, bench, "19-bench-cluster-done")
