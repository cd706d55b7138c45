"""The benchmark's progress line (phases named, one elided line, time left) and quitting while one runs."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Qt

from cnnviewer.core.report import load_json
from cnnviewer.gui.benchmark_window import seconds_left
from tests.helpers import PHOTOS_13, save_screenshot


def _tick(bench, names: list[str]) -> None:
    for index in range(bench.models.count()):
        item = bench.models.item(index)
        wanted = item.data(Qt.ItemDataRole.UserRole) in names
        item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)


def _timeline(turns: list[tuple[float, float, float]], step: float = 1.0):
    """(time, number, models, model fraction, elapsed, turn elapsed, images' seconds at their rate) as the
    window sees a run whose turns take (load, images, latency) seconds: the fraction stands still while a
    model loads and while it is timed, and the rate is known once a quarter of the images are done."""
    models, start, t = len(turns), 0.0, 0.0
    for number, (load, images, latency) in enumerate(turns, 1):
        end = start + load + images + latency
        while t < end:
            into = t - start
            fraction = min(1.0, max(0.0, (into - load) / images))
            yield t, number, models, fraction, t, into, images if fraction >= 0.25 else None
            t += step
        start = end


def _biggest_rise(values: list[float]) -> float:
    lowest, rise = float("inf"), 0.0
    for value in values:
        rise = max(rise, value - lowest)
        lowest = min(lowest, value)
    return rise


def test_time_left_does_not_jump_up_each_time_a_model_loads():
    turns = [(5.0, 20.0, 5.0)] * 3  # 90 s in all
    ours, old, after_first = [], [], []
    for t, number, models, fraction, elapsed, into, images_s in _timeline(turns):
        left = seconds_left(models, number, fraction, elapsed, into, images_s)
        overall = ((number - 1) + fraction) / models
        if left is None or overall <= 0.02:
            continue
        ours.append(left)
        old.append(elapsed / overall * (1 - overall))  # the rule this replaces: elapsed over all images
        if number > 1:
            after_first.append(left)
            assert abs(left - (90 - t)) < 1e-6, (t, left)  # equal turns: exact from the second one on
    assert all(b <= a for a, b in zip(after_first, after_first[1:], strict=False)), after_first
    assert _biggest_rise(old) >= 20  # 41 s to 62 s: the old figure climbed at every load and latency phase
    assert _biggest_rise(ours) <= 10  # once: the first model's latency samples, not foreseen from its images


def test_time_left_follows_a_slower_model_once_a_quarter_of_its_images_show_it():
    turns = [(5.0, 20.0, 5.0), (5.0, 20.0, 5.0), (5.0, 40.0, 5.0)]
    shown = [(fraction, seconds_left(models, number, fraction, elapsed, into, images_s))
             for _, number, models, fraction, elapsed, into, images_s in _timeline(turns) if number == 3]
    before = [left for fraction, left in shown if fraction < 0.25]
    after = [left for fraction, left in shown if 0.25 <= fraction < 1]
    assert before[-1] is not None and after[0] is not None and after[0] > before[-1]  # it rose, honestly
    assert all(b <= a for a, b in zip(after, after[1:], strict=False))
    assert seconds_left(3, 1, 0.0, 3.0, 3.0) is None  # nothing has been timed yet


def test_the_progress_line_names_each_phase_in_a_block_of_fixed_height(make_window, qtbot):
    window = make_window()
    bench = window.open_benchmark(str(PHOTOS_13))
    bench.resize(1280, 800)
    _tick(bench, ["efficientnet_lite0", "efficientnet_lite1"])
    bench.batch_size.setValue(2)
    bench.limit.setValue(4)
    said: list[str] = []
    shots: list[Path] = []
    say = bench._say

    def recording(text: str, error: bool = False) -> None:
        say(text, error)
        said.append(text)
        if "measuring latency" in text and not shots:
            shots.append(save_screenshot(bench, "15-benchmark-latency-phase"))

    bench._say = recording
    with qtbot.waitSignal(bench.run_ended, timeout=180_000) as ended:
        assert bench.start() is not None
    assert ended.args == ["returned"], said[-1]
    for number, name in enumerate(["efficientnet_lite0", "efficientnet_lite1"], 1):
        phases = [text for text in said if text.startswith(f"{name} ({number}/2): ")]
        assert phases[0].startswith(f"{name} ({number}/2): loading"), phases
        assert any(text.startswith(f"{name} ({number}/2): 4/4") for text in phases), phases
        latency = [text for text in phases if "measuring latency" in text]
        assert latency and latency[0].startswith(f"{name} ({number}/2): measuring latency (20 runs at batch 1)")
        assert phases.index(latency[0]) > max(i for i, t in enumerate(phases) if ": 4/4" in t)  # after the images
    label = bench.progress_text
    height = label.height()  # STATUS_LINES lines whatever it says: a longer sentence moves nothing
    assert height < (bench.STATUS_LINES + 1) * label.fontMetrics().lineSpacing()
    long = "Cancelled; kept in " + "/very/long/folder" * 30
    bench._say(long)
    assert label.text() == long and "…" in label.shown_text() and len(label.shown_text()) < len(long)
    assert label.shown_text().endswith("/folder")  # cut in the middle: the folder's own name stays
    assert long in label.toolTip() and label.height() == height
    bench._say("Done in 3 s")
    assert label.shown_text() == "Done in 3 s" and label.toolTip() == ""


def test_quitting_during_a_run_asks_and_cancel_keeps_it_going(make_window, qtbot):
    window = make_window()
    window.resize(1280, 800)
    assert window.confirm_quit_during_benchmark() and window.quit_question is None  # nothing runs: no question
    bench = window.open_benchmark(str(PHOTOS_13))
    _tick(bench, ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    bench.batch_size.setValue(2)
    bench.limit.setValue(8)
    bench.start()
    qtbot.waitUntil(lambda: bench.running_model()[0] >= 1 and bench.progress.value() > 0, timeout=60_000)

    assert not window.close()  # Ctrl+Q and File > Quit call close() too
    box = window.quit_question
    assert box is not None and box.isVisible()
    assert re.fullmatch(r"A benchmark is running \(model [123] of 3\)\. Quit and keep the results so far\?",
                        box.text()), box.text()
    save_screenshot(box, "16-quit-during-benchmark")
    box.button(box.StandardButton.Cancel).click()
    assert window.isVisible() and bench.is_running() and window.quit_question is None

    assert not window.close()  # asked again
    box = window.quit_question
    assert box is not None
    next(button for button in box.buttons() if button.text() == "Quit").click()
    assert not window.isVisible()
    report = load_json(Path(bench.out_dir) / "report.json")
    assert report.cancelled and not report.complete
