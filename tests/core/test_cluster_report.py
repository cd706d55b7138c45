"""How a run on a cluster is reported: each worker's own speed in report.md and report.html, never one summed figure."""

from __future__ import annotations

import copy
import json
import re

import pytest

from cnnviewer.core.benchmark import BenchmarkReport, _finish_statistics, environment_line
from cnnviewer.core.report import (
    NOT_SUMMED,
    PER_WORKER,
    PROCESS_PEAK,
    cluster_lines,
    conclusions,
    html,
    html_escape,
    load_json,
    markdown,
    save_json,
    timing_notes,
)

LITE0, LITE1 = "efficientnet_lite0", "efficientnet_lite1"
# (host, node, pid, images, forward img/s, file-to-top-5 img/s) of the two worker processes, for each model
WORKERS = (("host-a", "a1b2c3d4", 1234, 8, 31.4, 24.5), ("host-b", "e5f6a7b8", 2345, 5, 28.7, 22.25))


def as_cluster_run(report: BenchmarkReport) -> BenchmarkReport:
    """``report`` (a real run on this machine) as core.cluster leaves a run on two workers: the same accuracy,
    no speed figure per model, no timing rounds, and environment["cluster"] as cluster-api fixes it."""
    cluster_run = copy.deepcopy(report)
    for m in cluster_run.models:
        m.throughput_ips = m.end_to_end_ips = m.latency_ms = m.throughput_ci = None
        m.throughput_rounds, m.latencies_ms = [], []
        m.peak_rss_mb = m.param_mb = m.load_s = m.decode_ms_mean = 0.0
        m.rss_before_mb = None  # the driver loads no model
    cluster_run.timing = {}
    cluster_run.environment.pop("load_while_timing", None)  # the driver times nothing
    shards, workers = [], []
    for m in cluster_run.models:
        for number, (host, node, pid, images, forward, whole) in enumerate(WORKERS, 1):
            shards.append({"model": m.name, "shard": number, "images": images, "failed": 0, "host": host,
                           "node": node, "pid": pid, "device": "cpu", "way": "fp32", "attempt": number,
                           "seconds": images / whole, "forward_ms": images / forward * 1000})
            workers.append({"model": m.name, "host": host, "node": node, "pid": pid, "device": "cpu", "gpu": None,
                            "cpu": "a CPU", "threads": 1, "way": "fp32", "images": images, "failed": 0, "shards": 1,
                            "forward_ips": forward, "end_to_end_ips": whole, "peak_rss_mb": 512.4, "load_s": 1.25})
    cluster_run.environment["cluster"] = {
        "engine": "ray", "address": "127.0.0.1:6390", "data": "bytes", "shard_images": 8,
        "split": "13 images per model in 2 shard(s) of up to 8, handed to 2 worker(s) (one per node) as each became free",
        "nodes": [{"node": "a1b2c3d4", "host": "host-a", "ip": "10.0.0.2", "cpus": 2, "gpus": 0},
                  {"node": "e5f6a7b8", "host": "host-b", "ip": "10.0.0.3", "cpus": 2, "gpus": 0}],
        "workers": workers, "shards": shards,
        # Lite0's shard 2 first went to a worker that was killed; host-b ran it next (attempt 2).
        "retries": [{"model": LITE0, "shard": 2, "host": "host-c", "pid": 3456, "attempt": 1,
                     "reason": "the worker process died (SIGKILL)"}],
        "resumed": [{"date": "2026-11-30T21:00:00+00:00", "rows": 6}]}
    cluster_run.config["cluster"] = {"engine": "ray", "address": None, "data": "bytes", "shard_images": 8,
                                     "max_attempts": 3}
    _finish_statistics(cluster_run)
    return cluster_run


@pytest.fixture
def cluster_run(photos_13_run) -> BenchmarkReport:
    return as_cluster_run(photos_13_run[0])


def _section(text: str, heading: str) -> list[str]:
    """The non-empty lines under ``## heading``, up to the next heading."""
    after = text.split(f"## {heading}\n", 1)[1]
    return [line for line in after.split("\n## ", 1)[0].splitlines() if line]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_md_of_a_cluster_run_lists_each_worker_and_sums_nothing(cluster_run):
    text = markdown(cluster_run)
    section = _section(text, "Cluster")
    # Two nodes may be one machine (one host name, one address): the node tells them apart.
    assert section[0] == ("- Engine: Ray at 127.0.0.1:6390; 2 node(s): host-a (node a1b2c3d4, 10.0.0.2, 2 CPU(s), "
                          "0 GPU(s)), host-b (node e5f6a7b8, 10.0.0.3, 2 CPU(s), 0 GPU(s))")
    assert section[1].startswith("- Sent to the workers: the image bytes")
    assert section[2] == (r"- Split: 13 images per model in 2 shard(s) of up to 8, handed to 2 worker(s) (one per "
                          r"node) as each became free. Shards of up to 8 images; shards per model: "
                          r"efficientnet\_lite0 2, efficientnet\_lite1 2.")
    assert section[3] == f"**{NOT_SUMMED}**"
    rows = [_cells(line) for line in section if line.startswith("| efficientnet")]
    assert rows == [[name.replace("_", r"\_"), host, node, str(pid), "cpu", "fp32", "1", str(images), "1",
                     f"{forward:.1f}", f"{whole:.1f}", "512", "1.25"]
                    for name in (LITE0, LITE1) for host, node, pid, images, forward, whole in WORKERS]
    # One model's rows in the model table: its speed cells point at the workers, no single figure.
    measured = [_cells(line) for line in _section(text, "Measured and published") if line.startswith("| efficientnet")]
    assert [row[0] for row in measured] == [LITE0, LITE1]
    for row in measured:
        assert (row[6], row[7], row[10]) == (PER_WORKER, PER_WORKER, PER_WORKER)
        assert (row[8], row[9]) == ("-", "-")  # decode and parameters: nothing measured on the driver
    summed = sum(w[4] for w in WORKERS)
    assert f"{summed:.1f}" not in text and f"{sum(w[5] for w in WORKERS):.1f}" not in text
    lab = [_cells(line) for line in _section(text, "The lab report's table") if line.startswith("| EfficientNet")]
    assert [row[2] for row in lab] == ["-", "-"]  # memory: not measured on the workers
    assert _section(text, "Environment")[0].startswith(
        "Models ran on 2 node(s) of a cluster; this line is the driver's machine: ")


def test_retries_and_resumed_sessions_say_what_happened(cluster_run):
    lines = cluster_lines(cluster_run)
    assert (r"- efficientnet\_lite0 shard 2: the worker process died (SIGKILL) on host-c (pid 3456, attempt 1); "
            "ran next on host-b (pid 2345, attempt 2)") in lines
    assert "- 2026-11-30T21:00:00+00:00: 6 row(s) read back from results.csv, not classified again" in lines
    # A shard that no attempt finished (the run was stopped) says so instead of naming a place.
    cluster_run.environment["cluster"]["retries"].append(
        {"model": LITE1, "shard": 7, "host": "host-a", "pid": 1234, "attempt": 3, "reason": "gave up"})
    assert (r"- efficientnet\_lite1 shard 7: gave up on host-a (pid 1234, attempt 3); not run again (the run ended "
            "first)") in cluster_lines(cluster_run)


def test_a_cancelled_cluster_model_shows_no_figure_the_driver_never_measured(cluster_run):
    """Cut short on a cluster: no load time, memory or parameters were measured by the driver, so none is
    shown as 0, and the memory heading is not the old reports' "whole process" one."""
    lite1 = cluster_run.models[1]
    lite1.partial, cluster_run.cancelled = True, True
    text, page = markdown(cluster_run), html(cluster_run)
    assert "whole process" not in text and "whole process" not in page
    measured = [_cells(line) for line in _section(text, "Measured and published") if line.startswith("| efficientnet")]
    assert measured[1][8:11] == ["-", "-", "-"]  # decode, parameters, load s
    assert "<td>0.00</td>" not in page and "<td>0</td>" not in page


def test_rows_without_a_shard_record_are_said_to_have_no_known_speed(cluster_run):
    cluster_run.environment["cluster"]["resumed"] = [
        {"date": "2026-11-30T21:00:00+00:00", "rows": 80, "models": {LITE0: 64, LITE1: 16},
         "unrecorded": {LITE1: 16, LITE0: "x"}}]
    line = (r"2026-11-30T21:00:00+00:00: 80 row(s) (efficientnet\_lite0 64, efficientnet\_lite1 16) read back from "
            "results.csv, not classified again; 16 of them "
            r"(efficientnet\_lite1 16) have no shard record (the driver stopped after writing their rows, before "
            "their record): counted, but which worker ran them and how fast is unknown")
    assert f"- {line}" in cluster_lines(cluster_run)
    assert "16 of them (efficientnet_lite1 16) have no shard record" in html(cluster_run)


def test_report_html_of_a_cluster_run_has_the_worker_table_escaped(cluster_run):
    cluster_run.environment["cluster"]["workers"][0]["host"] = "<script>alert(1)</script>"
    page = html(cluster_run)
    assert "<h2>Cluster</h2>" in page and f"<p><strong>{NOT_SUMMED}</strong></p>" in page
    assert "<tr><th>Model</th><th>Host</th><th>Node</th><th>PID</th><th>Device</th><th>Way</th><th>Threads</th>" in page
    assert ("<tr><td>efficientnet_lite0</td><td>&lt;script&gt;alert(1)&lt;/script&gt;</td><td>a1b2c3d4</td>"
            "<td>1234</td><td>cpu</td><td>fp32</td><td>1</td><td>8</td><td>1</td><td>31.4</td><td>24.5</td>"
            "<td>512</td><td>1.25</td></tr>") in page
    assert "<script>" not in page
    summary = page.split("<h2>Summary</h2>", 1)[1].split("</table>", 1)[0]
    for name in (LITE0, LITE1):
        row = re.search(rf"<tr><td><span[^>]*></span>{name}</td>.*?</tr>", summary).group(0)
        cells = re.findall(r"<td>(.*?)</td>", row)
        assert cells[5:] == [PER_WORKER, PER_WORKER, "-", "-", PER_WORKER], cells
    assert "<li>efficientnet_lite0 shard 2: the worker process died (SIGKILL) on host-c" in page


def test_conclusions_of_a_cluster_run_claim_no_speed_difference(cluster_run):
    # Speed figures stored with the comparison (an edited or merged report.json) must not become a claim either.
    for c in cluster_run.comparisons:
        c.update(speed_ratio=1.8, speed_interval=[1.6, 2.0], speed_rounds=5, faster=c["a"])
    said = conclusions(cluster_run)
    assert said and not any(re.search(r"faster|speed difference|x\d", s) for s in said), said
    notes = timing_notes(cluster_run)
    assert notes[0] == ("The models ran on 2 node(s) of a cluster (2 worker process(es), one per model on each), "
                        "so there is no single speed figure per model: each worker's own is listed (the Cluster "
                        "section; the Workers tab in the window), never summed into one figure.")
    assert not any("Throughput:" in note or "Other programs" in note for note in notes)
    # A second worker for a model on a node (one died, or a resumed session started its own) is not "one each".
    cluster_run.environment["cluster"]["workers"].append(
        {**cluster_run.environment["cluster"]["workers"][0], "pid": 4567})
    assert "(3 worker process(es), one per model on each, and another where a worker died or a resumed session " \
        "started its own)" in timing_notes(cluster_run)[0]
    md = markdown(cluster_run)
    assert "faster than" not in md and "speed claim" not in md


def test_a_local_report_renders_as_before(photos_13_run):
    report = copy.deepcopy(photos_13_run[0])
    text = markdown(report)
    assert cluster_lines(report) == [] and "## Cluster" not in text and PER_WORKER not in text
    assert "Models ran on a cluster" not in text
    assert _section(text, "Environment")[0] == environment_line(report.environment)
    assert environment_line(report.environment).startswith(f"{report.environment['cpu']} · ")
    measured = [_cells(line) for line in _section(text, "Measured and published") if line.startswith("| efficientnet")]
    for m, row in zip(report.models, measured, strict=True):
        assert row[6].startswith(f"{m.throughput_ips:.1f}")
        assert row[7] == f"{m.latency_ms['p50']:.0f} / {m.latency_ms['p90']:.0f} / {m.latency_ms['p99']:.0f}"
        assert row[8:] == [f"{m.decode_ms_mean:.1f}", f"{m.param_mb:.0f}", f"{m.load_s:.2f}"]
    assert _section(text, "The lab report's table")[-1].startswith("Time, s: each model's whole turn")
    page = html(report)
    assert "<h2>Cluster</h2>" not in page and PER_WORKER not in page


def test_report_json_of_a_cluster_run_round_trips(cluster_run, tmp_path):
    save_json(cluster_run, tmp_path / "report.json")
    loaded = load_json(tmp_path / "report.json")
    assert loaded.environment["cluster"] == cluster_run.environment["cluster"]
    assert loaded.config["cluster"] == cluster_run.config["cluster"]
    assert markdown(loaded) == markdown(cluster_run)


def test_wrong_types_in_a_cluster_section_show_as_dashes(cluster_run, tmp_path):
    """A report.json may come from anywhere: a number that is text, a list where a name belongs or an entry
    that is no object shows "-" or its text, and the report is still written."""
    data = cluster_run.to_json()
    data["environment"]["cluster"].update(
        nodes="two", shards=None, retries=[5, {"model": LITE0, "shard": [1], "attempt": "1"}],
        workers=["junk", {"model": ["x"], "host": 7, "pid": "12", "forward_ips": "fast", "end_to_end_ips": float("nan"),
                          "threads": True, "images": 3, "failed": 1}])
    (tmp_path / "report.json").write_text(json.dumps(data), encoding="utf-8")
    loaded = load_json(tmp_path / "report.json")
    rows = [_cells(line) for line in cluster_lines(loaded) if line.startswith("| ")][2:]
    assert rows == [[r"\['x'\]", "7", "-", "-", "-", "-", "-", "3 (1 failed)", "-", "-", "-", "-", "-"]]
    assert r"- efficientnet\_lite0 shard \[1\]: - on - (pid -, attempt -); not run again (the run ended first)" in \
        cluster_lines(loaded)
    assert "Models ran on 1 node(s) of a cluster" in markdown(loaded)
    assert "<td>3 (1 failed)</td>" in html(loaded)


def test_chart_files_of_a_cluster_run_point_to_the_cluster_section(cluster_run, photos_13_run):
    """The speed charts of a cluster run say where its speed is (not that Cancel cut every model short), and the
    memory chart draws no 0 MB bar per model: the driver measured none of it."""
    from cnnviewer.core import charts

    for chart in (charts.THROUGHPUT, charts.LATENCY, charts.SCATTER):
        [ax] = charts.figure(chart, cluster_run).axes
        assert [t.get_text() for t in ax.texts] == [charts.CLUSTER_SPEED], chart.name
        assert ax.get_title(loc="left") == chart.title and not ax.patches and not ax.collections
    [ax] = charts.figure(charts.MEMORY, cluster_run).axes
    assert [t.get_text() for t in ax.texts] == [charts.CLUSTER_MEMORY] and not ax.patches
    assert "Cluster section" in charts.CLUSTER_SPEED and "Cancel" not in charts.CLUSTER_SPEED
    assert sorted(charts.render(cluster_run)) == sorted(charts.CHART_FILES)
    # A local run draws its bars as before.
    local = photos_13_run[0]
    [ax] = charts.figure(charts.MEMORY, local).axes
    assert len(ax.patches) == 2 * len(local.models)
    [ax] = charts.figure(charts.THROUGHPUT, local).axes
    assert len(ax.patches) == len(local.models) and charts.CLUSTER_SPEED not in [t.get_text() for t in ax.texts]


def test_ray_nodes_are_counted_as_nodes_even_on_one_machine(cluster_run):
    for node in cluster_run.environment["cluster"]["nodes"]:  # the test cluster: two nodes, one host
        node.update(host="host-a", ip="127.0.0.1")
    where = cluster_lines(cluster_run)[2]
    assert where.startswith("- Engine: Ray at 127.0.0.1:6390; 2 node(s): host-a (node a1b2c3d4, 127.0.0.1, ") and "machine(s)" \
        not in where
    assert timing_notes(cluster_run)[0].startswith("The models ran on 2 node(s) of a cluster (2 worker process(es)")
    assert environment_line(cluster_run.environment).startswith("Models ran on 2 node(s) of a cluster; ")
    assert "machine(s)" not in markdown(cluster_run)


def test_before_any_shard_came_back_the_note_is_in_the_present(cluster_run):
    cluster_run.environment["cluster"].update(workers=[], shards=[], retries=[], resumed=[])
    assert timing_notes(cluster_run)[0] == ("The models run on a cluster: each worker's own speed is listed as its "
                                            "shards come back.")
    assert environment_line(cluster_run.environment).startswith("Models ran on a cluster; this line is the driver's")
    assert "0 node(s)" not in markdown(cluster_run) and "0 machine(s)" not in markdown(cluster_run)


def test_the_worker_memory_column_is_the_process_peak(cluster_run):
    lines = cluster_lines(cluster_run)
    header = next(line for line in lines if line.startswith("| Model |"))
    assert _cells(header)[11] == "Process peak MB" and "above start" not in header
    assert PROCESS_PEAK in lines and "peak resident memory" in PROCESS_PEAK
    page = html(cluster_run)
    assert "<th>Process peak MB</th>" in page and f"<p>{html_escape(PROCESS_PEAK)}</p>" in page


def _pair_sentences(report: BenchmarkReport) -> list[str]:
    return [s for s in conclusions(report) if "top-1 difference" in s or "more accurate than" in s]


def test_a_pair_without_speed_figures_makes_a_whole_sentence(cluster_run, photos_13_run):
    [said] = _pair_sentences(cluster_run)
    p = cluster_run.comparisons[0]["p_value"]
    assert said == (f"EfficientNet-Lite0 against EfficientNet-Lite1: their top-1 difference is not significant, "
                    f"p = {p:.2f}.")
    assert f"- {said}" in markdown(cluster_run).splitlines()
    # A local run with no timing rounds (--rounds 0): one pass's ratio, no claim, and still a whole sentence.
    local = copy.deepcopy(photos_13_run[0])
    for m in local.models:
        m.throughput_rounds, m.throughput_ci = [], None
    local.timing = {}
    _finish_statistics(local)
    [said] = _pair_sentences(local)
    assert said.startswith("EfficientNet-Lite0 against EfficientNet-Lite1 (no speed claim: EfficientNet-Lite0 ran at x")
    assert "in one pass, fewer than the 3 an interval needs): their top-1 difference is not significant" in said
    # A speed claim stays a clause of its own before the accuracy's.
    for c in local.comparisons:
        c.update(speed_ratio=1.8, speed_interval=[1.6, 2.0], speed_rounds=5, faster=c["a"])
    [said] = _pair_sentences(local)
    assert said.startswith("EfficientNet-Lite0 is faster than EfficientNet-Lite1 (x1.80, 95 % interval 1.60–2.00); ")
