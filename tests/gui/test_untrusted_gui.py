"""The window against untrusted input: malformed and huge reports, damaged settings, names that look like HTML."""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtGui import Qt, QTextDocument
from PySide6.QtWidgets import QLabel

from cnnviewer.core.settings import Settings, default_model_name, remember_model
from tests.helpers import PHOTOS_13, replaced, run, save_screenshot, wait_for_outcome

# -- reports -------------------------------------------------------------------------------------


def report_data(photos_13_run) -> dict[str, Any]:
    """The real report of a small benchmark, as report.json holds it (a fresh copy each time)."""
    report, _ = photos_13_run
    return json.loads(json.dumps(report.to_json()))


def malformed(data: dict[str, Any]):
    """(report, the field its sentence must name): faults made for every result and some image rows."""
    for number, model in enumerate(data["models"]):
        where = ("models", number)
        yield replaced(data, (*where, "name"), number + 3), f"models[{number}].name"  # the SIGSEGV of the issue
        yield replaced(data, (*where, "top1"), "0.9"), f"models[{number}].top1"
        yield replaced(data, (*where, "top1_ci"), [0.5]), f"models[{number}].top1_ci"
        yield replaced(data, (*where, "top5_ci"), [0.1, 0.2, 0.3]), f"models[{number}].top5_ci"
        yield replaced(data, (*where, "latencies_ms"), [1.0, None]), f"models[{number}].latencies_ms[1]"
        yield replaced(data, (*where, "latency_ms"), {"p50": "fast"}), f"models[{number}].latency_ms.p50"
        yield replaced(data, (*where, "published"), []), f"models[{number}].published"
        yield replaced(data, ("images", number, "truth"), -1), f"images[{number}].truth"
        yield replaced(data, ("images", number, "top5", model["name"]), []), f"images[{number}].top5[{model['name']!r}]"
    yield replaced(data, ("comparisons", 0, "significant"), "yes"), "comparisons[0].significant"
    yield replaced(data, ("root",), ["/photos"]), "root"


def test_malformed_reports_are_one_sentence_and_the_window_lives(make_window, qtbot, tmp_path, photos_13_run):
    """Before, a name that is a number crashed the process in pyqtgraph's paint, and a text top-1 or a
    short interval raised on every repaint. Now each is one sentence naming the file and the field,
    and the dashboard keeps the report it showed."""
    data = report_data(photos_13_run)
    window = make_window()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(data), encoding="utf-8")
    bench = window.open_benchmark_report(str(good))
    dashboard = bench.dashboard
    qtbot.waitUntil(lambda: dashboard.report is not None and dashboard.images_model.rowCount() == 13, timeout=30_000)
    shown = dashboard.report
    cases = list(malformed(data))
    assert len(cases) >= 20
    for number, (bad, field) in enumerate(cases):
        path = tmp_path / f"bad-{number}.json"
        path.write_text(json.dumps(bad), encoding="utf-8")
        bench.open_report(str(path))
        qtbot.waitUntil(lambda p=path: bench.progress_text.text().startswith(f"{p}: "), timeout=30_000)
        text = bench.progress_text.text()
        assert f"not a cnnviewer report.json ({field}: " in text and "\n" not in text, text
        assert dashboard.report is shown
        bench.grab()  # a paint of everything shown, where the crashes were
    save_screenshot(bench, "untrusted-malformed-report")


def large_report(data: dict[str, Any], results: int, latencies: int, comparisons: int) -> dict[str, Any]:
    """A valid report far larger than any run writes: ``results`` results, the first three holding
    ``latencies`` latencies each, and ``comparisons`` comparisons."""
    rng = np.random.default_rng(0)
    base = data["models"][0]
    names = [f"model_{i:03d}" for i in range(results)]
    models = []
    for number, name in enumerate(names):
        model = dict(base, name=name, title=f"Model {number}", model=base["model"])
        if number < 3:
            model["latencies_ms"] = np.round(rng.gamma(9.0, 1.5, latencies), 2).tolist()
        models.append(model)
    pairs = itertools.islice(itertools.combinations(names, 2), comparisons)
    listed = [{"a": a, "b": b, "images": 13, "only_a_right": 2, "only_b_right": 1, "p_value": 1.0,
               "significant": False, "more_accurate": None, "speed_ratio": 1.25} for a, b in pairs]
    assert len(listed) == comparisons
    return dict(data, models=models, comparisons=listed, per_class={}, confusions={},
                images=[dict(row, top5={}, probabilities={}) for row in data["images"]])


def test_a_huge_valid_report_never_holds_the_window(make_window, qtbot, tmp_path, photos_13_run):
    """100,000 comparisons and 3 million latencies: read in a worker (in steps, so the worker never
    holds Python's lock for long), drawn in capped pieces. A heartbeat timer on the window's thread
    measures the longest the event loop stood still, from opening the file until all is drawn.

    Each stall counts as the smaller of its wall-clock time and the CPU time this process used in it:
    on a machine shared with other work the wall clock also counts time the system gave to others, and
    the CPU time still counts a worker that kept the window waiting for Python's lock.
    """
    data = report_data(photos_13_run)
    big = large_report(data, results=450, latencies=1_000_000, comparisons=100_000)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(big), encoding="utf-8")
    del big
    small = tmp_path / "small.json"
    small.write_text(json.dumps(data), encoding="utf-8")
    window = make_window()
    bench = window.open_benchmark_report(str(small))  # the first opening imports pyqtgraph: not measured
    dashboard, charts = bench.dashboard, bench.dashboard.charts
    qtbot.waitUntil(lambda: dashboard.report is not None and bool(charts.scatter.listDataItems()), timeout=30_000)
    qtbot.wait(300)
    beats: list[tuple[float, float]] = []
    heart = QTimer()
    heart.setInterval(10)
    heart.timeout.connect(lambda: beats.append((time.perf_counter(), time.process_time())))
    heart.start()
    started = time.perf_counter()
    beats.append((started, time.process_time()))  # so a call that blocks right away counts too
    bench.open_report(str(path))

    def drawn() -> bool:
        return (dashboard.report is not None and len(dashboard.summary_model.results) == 450
                and dashboard.images_model.rowCount() == 13 and charts.latency.getAxis("bottom")._tickLevels
                and len(charts.latency.getAxis("bottom")._tickLevels[0]) == 20
                and len([i for i in charts.scatter.items if isinstance(i, pg.TextItem)]) == 20)

    qtbot.waitUntil(drawn, timeout=300_000)
    qtbot.wait(300)  # and painted
    heart.stop()
    took = time.perf_counter() - started
    wall = np.diff([beat[0] for beat in beats])
    cpu = np.diff([beat[1] for beat in beats])
    stalls = np.minimum(wall, cpu)
    print(f"\nhuge report ({path.stat().st_size / 2**20:.0f} MB) shown in {took:.1f} s; {len(beats)} beats; "
          f"longest stall {stalls.max() * 1000:.0f} ms (wall clock {wall.max() * 1000:.0f} ms, "
          f"CPU {cpu[wall.argmax()] * 1000:.0f} ms in that one); {int((stalls > 0.05).sum())} stalls over 50 ms")
    # The target is 100 ms (printed above; measured 67-104 ms on 2 shared cores). The test guards the
    # behaviour with room for a busy machine: parsing on the window's thread, plain json.loads or no
    # down-sampling of latencies stood still for 1,027 to 10,692 ms.
    assert stalls.max() < 0.250, f"the window stood still for {stalls.max() * 1000:.0f} ms"
    assert took > 1.0 and len(beats) > 50  # the heartbeat ran throughout a load that took a while
    latency_dots = sum(len(item.data) for item in charts.latency.listDataItems() if isinstance(item, pg.ScatterPlotItem))
    assert latency_dots == 3 * 400 + 17 * len(data["models"][0]["latencies_ms"])  # a million shown by 400 dots
    assert "The charts show the first 20 of 450 results" in dashboard.conclusions.text()
    assert "and 99980 more conclusions" in dashboard.conclusions.text()
    save_screenshot(bench, "untrusted-huge-report")


# -- window.ini ----------------------------------------------------------------------------------

# For each key the window stores: values a damaged or hand-edited window.ini may hold (QSettings reads
# "a, b" as a list of two texts and @ByteArray(...) as bytes).
BAD_VALUES = {
    "topK": ["abc", "1e99", "0", "21", "5.5", "a, b", "@ByteArray(5)"],
    "camOpacity": ["1e99", "101", "-1", "sixty", "@ByteArray(60)", "1, 2", "99999999999999999999"],
    "classifyOnSelection": ["maybe", "2", "a, b", "@ByteArray(true)", "yes", "-1", "truee"],
    "geometry": ["hello", "@ByteArray(garbage)", "3", "a, b", "@ByteArray()", "@ByteArray(\\xff\\xfe)", "x"],
    "windowState": ["hello", "@ByteArray(garbage)", "a, b", "7", "@ByteArray(\\0\\0\\0\\xff)", "@ByteArray(x)", "y"],
    "model": ["a, b", "@ByteArray(resnet50)", "x" * 300, "c, d", "e, f", "g, h", "i, j"],
    "device": ["a, b", "@ByteArray(cpu)", "x" * 300, "c, d", "e, f", "g, h", "i, j"],
    "runAs": ["a, b", "@ByteArray(fp32)", "x" * 300, "c, d", "e, f", "g, h", "i, j"],
    "lastFolder": ["a, b", "@ByteArray(/photos)", "x" * 5000, "c, d", "e, f", "g, h", "i, j"],
}


def write_ini(folder: Path, values: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[General]"] + [f"{key}={value}" for key, value in values.items()]
    (folder / "window.ini").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_damaged_window_ini_opens_the_window_with_defaults(make_window, qtbot, tmp_path, monkeypatch, caplog):
    """Before, topK=abc, camOpacity=1e99 or geometry=hello stopped the window from ever opening."""
    caplog.set_level(logging.WARNING, logger="cnnviewer.gui.main_window")
    rounds = len(next(iter(BAD_VALUES.values())))
    for number in range(rounds):
        folder = tmp_path / f"config-{number}"
        monkeypatch.setenv("CNNVIEWER_CONFIG_DIR", str(folder))
        write_ini(folder, {key: values[number] for key, values in BAD_VALUES.items()})
        caplog.clear()
        window = make_window()
        assert window.isVisible()
        assert window.top_k_spin.value() == 5 and window.preview.opacity.value() == 60
        assert not window.auto_action.isChecked()
        assert window.selected_model() == "efficientnet_lite0"  # a bad old model key is not taken over
        assert (window.current_device(), window.current_choice().label) == ("cpu", "auto")  # a new user's default
        logged = [r.getMessage() for r in caplog.records if r.name == "cnnviewer.gui.main_window"]
        for key in BAD_VALUES:
            lines = [line for line in logged if f"window.ini: {key} is " in line]
            assert len(lines) == 1, (number, key, logged)
        window.close()
    # Good values are still restored, and what the window saves reads back.
    folder = tmp_path / "config-good"
    monkeypatch.setenv("CNNVIEWER_CONFIG_DIR", str(folder))
    write_ini(folder, {"topK": "7", "camOpacity": "30", "classifyOnSelection": "true", "lastFolder": str(tmp_path)})
    caplog.clear()
    window = make_window()
    assert (window.top_k_spin.value(), window.preview.opacity.value(), window.auto_action.isChecked()) == (7, 30, True)
    assert window.browser.folder == str(tmp_path)
    assert not [r for r in caplog.records if r.name == "cnnviewer.gui.main_window"]


# -- settings.json -------------------------------------------------------------------------------


def settings_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cnnviewer.core.settings"]


def test_a_damaged_settings_json_gives_defaults_and_a_log_line(isolated_home, caplog):
    """Before, a deeply nested settings.json broke every command with a RecursionError."""
    caplog.set_level(logging.WARNING, logger="cnnviewer.core.settings")
    path = Settings.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    damaged = {  # content: what the log line says
        "[" * 60_000: "nested too deeply", "{": "Expecting property name", "[]": "holds list", "3": "holds int",
        b'{"last_model": "caf\xe9"}': "can't decode byte 0xe9", " " * (70 * 1024) + "{}": "larger than 64 KB",
    }
    for content, reason in damaged.items():
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        caplog.clear()
        assert Settings.load() == Settings(), reason
        assert Settings.load() == Settings(), reason
        lines = [line for line in settings_warnings(caplog) if str(path) in line]
        assert len(lines) == 1 and reason in lines[0], (reason, lines)  # once, though read twice
    for value in (3, [], {}, "", "x" * 201, True, 1.5):
        path.write_text(json.dumps({"schema_version": 1, "last_model": value}), encoding="utf-8")
        caplog.clear()
        assert Settings.load().last_model is None
        assert [line for line in settings_warnings(caplog) if "last_model is" in line], value
    path.write_text("[" * 60_000, encoding="utf-8")
    assert default_model_name() == "efficientnet_lite0"
    remember_model("efficientnet_lite1")  # the damaged file is replaced, whole
    assert json.loads(path.read_text(encoding="utf-8")) == {"schema_version": 1, "last_model": "efficientnet_lite1"}
    assert default_model_name() == "efficientnet_lite1"


def test_a_fifo_as_settings_json_does_not_hang_a_command(isolated_home, caplog):
    path = Settings.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    loaded: list[Settings] = []
    reader = threading.Thread(target=lambda: loaded.append(Settings.load()), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert loaded == [Settings()]
    assert any("not a regular file" in line for line in settings_warnings(caplog))


def test_a_command_runs_with_a_damaged_settings_json(isolated_home):
    from cnnviewer.core.paths import sample_photos

    path = Settings.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[" * 60_000, encoding="utf-8")
    coffee = next(p for p in sample_photos() if p.name == "coffee.jpg")
    done = run("classify", str(coffee), "--top", "1")
    assert done.returncode == 0, done.stderr
    assert "espresso" in done.stdout and "Traceback" not in done.stderr
    assert Settings.load().last_model == "efficientnet_lite0"  # and the file is whole again


# -- names that look like HTML -------------------------------------------------------------------


def shown_text(text: str, text_format: Qt.TextFormat = Qt.TextFormat.AutoText) -> str:
    """What a person reads: plain text as it is, rich text (or what Qt takes for it) as rendered."""
    if text_format == Qt.TextFormat.PlainText or (text_format == Qt.TextFormat.AutoText
                                                   and not Qt.mightBeRichText(text)):
        return text
    document = QTextDocument()
    document.setHtml(text)
    return document.toPlainText()


def misrendered(widget, hostile: str, marker: str) -> list[str]:
    """Labels under ``widget`` whose text holds ``marker`` but which do not show ``hostile`` as it is."""
    labels = widget.findChildren(QLabel)
    return [f"{type(label.parent()).__name__}: {label.text()!r}" for label in labels
            if marker in label.text() and hostile not in shown_text(label.text(), label.textFormat())]


def test_file_names_and_report_fields_that_look_like_html_show_as_text(make_window, qtbot, tmp_path, photos_13_run):
    folder = tmp_path / "<i>album"
    folder.mkdir()
    Image.new("RGB", (8, 8), "red").save(folder / "local.png")  # what an <img> in a name would load
    fake = folder / "<h1>FAKE RESULT.jpg"
    shutil.copy(PHOTOS_13 / "polar_bear.jpg", fake)
    broken = folder / '<img src="local.png">FAKE BROKEN.jpg'
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    window = make_window()
    window.open_path(str(fake))
    wait_for_outcome(qtbot, window, fake)
    assert not misrendered(window, fake.name, "FAKE")
    assert fake.name in shown_text(window.predictions.title.text())
    items = [window.browser.strip.item(i) for i in range(window.browser.strip.count())]
    for item in items:
        assert item.data(Qt.ItemDataRole.UserRole) in shown_text(item.toolTip())
    save_screenshot(window, "untrusted-file-name")

    window.open_path(str(broken))
    wait_for_outcome(qtbot, window, broken)  # cannot be read: the error names the file
    assert not misrendered(window, broken.name, "FAKE BROKEN")
    assert str(broken) in shown_text(window.predictions.message.text(), window.predictions.message.textFormat())

    window.open_path(str(fake))
    wait_for_outcome(qtbot, window, fake)
    window.open_compare()
    dialog = window.compare_dialog
    qtbot.waitUntil(lambda: dialog.progress.text().startswith("3 of 3"), timeout=120_000)
    assert not misrendered(dialog, fake.name, "FAKE RESULT")
    assert str(fake) in shown_text(dialog.image_label.text())
    dialog.close()

    # A report: its root, titles, errors, label problems and file names are the report writer's text.
    data = report_data(photos_13_run)
    data["root"] = '<h1>FAKE ROOT</h1><img src="local.png">'
    data["models"][0]["title"] = "<h2>FAKE TITLE</h2>"
    data["models"].append(dict(data["models"][1], name="broken", title="broken", error="<h3>FAKE ERROR</h3> weights"))
    data["images"][0]["file"] = str(folder / "<h1>FAKE ROW.jpg")
    data["label_problems"] = ["<h1>FAKE LABEL</h1>"]
    path = folder / "report.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    bench = window.open_benchmark_report(str(path))
    dashboard = bench.dashboard
    qtbot.waitUntil(lambda: dashboard.report is not None and dashboard.images_model.rowCount() == 13, timeout=30_000)
    assert data["root"] in shown_text(bench.folder_label.text())
    assert "<h2>FAKE TITLE</h2>" in shown_text(dashboard.conclusions.text())
    assert not misrendered(bench, data["root"], "FAKE ROOT")
    broken_row = dashboard.summary_model.index(2, 0)
    assert "<h3>FAKE ERROR</h3> weights" == shown_text(broken_row.data(Qt.ItemDataRole.ToolTipRole))
    first = dashboard.images_model.index(0, 0)
    assert data["images"][0]["file"] == shown_text(first.data(Qt.ItemDataRole.ToolTipRole))
    dashboard.setCurrentIndex(1)
    dashboard.images.setCurrentIndex(dashboard.images_filter.index(0, 0))
    qtbot.waitUntil(lambda: "FAKE ROW" in dashboard.detail.caption.text(), timeout=30_000)
    assert "<h1>FAKE ROW.jpg" in shown_text(dashboard.detail.caption.text())
    save_screenshot(bench, "untrusted-report-fields")
