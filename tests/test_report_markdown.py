"""report.md as a reader meets it: which classes are called weak, and what the time column holds."""

from __future__ import annotations

import copy
import re

from cnnviewer.core.benchmark import BenchmarkConfig, BenchmarkReport, ImageRow, ModelResult
from cnnviewer.core.report import write_all

TABLE_HEADER = "| Name | Time, s |"


def _report(per_class: dict[str, dict[str, list[int]]], latency_samples: int = 20) -> BenchmarkReport:
    """A finished two-model report, written the way a run leaves it, with the per-class counts given."""
    models = [ModelResult(name=name, title=name.upper(), weights="w", images=3, top1=2 / 3, top5=1.0,
                          throughput_ips=50.0, end_to_end_ips=40.0, latency_ms={"p50": 10, "p90": 12, "p99": 15},
                          latencies_ms=[10.0, 12.0, 15.0], peak_rss_mb=120.0, load_s=0.25, seconds=1.5,
                          published={"acc1": 75.1, "acc5": None, "gmacs": 0.41, "params": 4652008},
                          complete=True) for name in per_class]
    images = [ImageRow(f"/photos/{i}.jpg", "ice bear", 296, {name: [296, 294, 1, 2, 3] for name in per_class},
                       {name: [0.9, 0.05, 0.02, 0.01, 0.005] for name in per_class}) for i in range(3)]
    config = BenchmarkConfig(models=tuple(per_class), latency_samples=latency_samples).to_json()
    return BenchmarkReport(root="/photos", config=config, environment={"cpu": "a CPU", "gpu": None},
                           models=models, images=images, per_class=per_class,
                           confusions={name: [] for name in per_class}, complete=True)


def _section(text: str, heading: str) -> list[str]:
    """The non-empty lines under ``## heading``, up to the next heading."""
    after = text.split(f"## {heading}\n", 1)[1]
    return [line for line in after.split("\n## ", 1)[0].splitlines() if line]


def test_weakest_classes_leave_out_the_classes_that_were_all_right(tmp_path):
    report = _report({"a": {"296": [3, 3], "294": [1, 2], "1": [0, 1]}, "b": {"296": [3, 3], "294": [2, 2]}})
    text = write_all(report, tmp_path)["markdown"].read_text(encoding="utf-8")
    assert _section(text, "Per-class accuracy (top-1)") == [
        "- **a** weakest classes: goldfish 0 % (0/1), brown bear 50 % (1/2)",
        "- **b**: every class right (2 classes)",
    ]


def test_the_time_column_says_what_it_holds(tmp_path):
    text = write_all(_report({"a": {"296": [3, 3]}}, latency_samples=5), tmp_path)["markdown"].read_text("utf-8")
    table = _section(text, "The lab report's table")
    assert table[0].startswith(TABLE_HEADER) and table[2].startswith("| A | 1.50 |")
    # The line right under the table, not somewhere else in the report.
    assert table[3] == ("Time, s: each model's whole turn: loading it (and hashing its weights file the first "
                        "time), a warm-up, classifying every image (decoding included) and 5 batch-1 latency runs; "
                        "pauses for the window's interactive work are left out (`paused_s` in report.json).")


def test_a_real_run_on_photos_13_calls_no_class_at_100_percent_weak(tmp_path, photos_13_run):
    report, _ = photos_13_run
    text = write_all(copy.deepcopy(report), tmp_path)["markdown"].read_text(encoding="utf-8")
    lines = _section(text, "Per-class accuracy (top-1)")
    assert [re.match(r"- \*\*(\S+)\*\*", line).group(1) for line in lines] == list(report.per_class)
    # photos-13 has one or two photos per class, so most classes are all right for either model.
    assert any(c[0] == c[1] for classes in report.per_class.values() for c in classes.values())
    for line, (model, classes) in zip(lines, report.per_class.items(), strict=True):
        listed = re.findall(r" (\d+) % \((\d+)/(\d+)\)", line)
        wrong = [c for c in classes.values() if c[0] < c[1]]
        assert len(listed) == min(10, len(wrong)), line
        assert all(int(right) < int(total) and int(pct) < 100 for pct, right, total in listed), line
        assert (line == f"- **{model}**: every class right ({len(classes)} classes)") == (not wrong)
    assert "batch-1 latency runs" in _section(text, "The lab report's table")[-1]


def test_a_model_cut_short_before_it_loaded_shows_no_figure_as_0(photos_13_run):
    """A second Ctrl+C while a model was loading leaves its memory, parameters and load time unmeasured: "-"
    in report.md, report.html and the terminal's table, never 0 (which reads as a measurement)."""
    from cnnviewer.cli import _bench_table
    from cnnviewer.core.report import html, markdown

    report = copy.deepcopy(photos_13_run[0])
    cut = report.models[1]
    cut.partial, cut.images = True, 0
    cut.peak_rss_mb = cut.param_mb = cut.load_s = cut.decode_ms_mean = 0.0
    cut.rss_before_mb = None
    lab = [line for line in _section(markdown(report), "The lab report's table") if line.startswith(f"| {cut.title}")]
    assert lab and lab[0].split(" | ")[2] == "-"
    measured = [line for line in _section(markdown(report), "Measured and published")
                if line.startswith(f"| {cut.name} ")]
    assert measured and measured[0].rstrip(" |").split(" | ")[-3:] == ["-", "-", "-"]  # decode, parameters, load
    page = html(report)
    row = page[page.index(f"{cut.name}</td>"):]
    row = row[: row.index("</tr>")]
    assert row.endswith("<td>-</td><td>-</td><td>-</td>")  # peak, parameters, load
    line = next(line for line in _bench_table(report).splitlines() if line.lstrip().startswith(cut.name))
    assert line.split()[-2:] == ["-", "-"]  # peak MB, load s
    # The figures of the model that loaded are still shown.
    assert f"{report.models[0].load_s:.2f}" in markdown(report)
