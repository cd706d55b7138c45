"""Benchmark reports on disk: report.json, results.csv, report.md, report.html and the charts (written safely)."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import math
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, BinaryIO

from cnnviewer.core import charts
from cnnviewer.core.benchmark import (
    ERROR_KINDS,
    MIN_CLAIM_ROUNDS,
    BenchmarkReport,
    ImageRow,
    ModelResult,
    against_fp32,
    environment_line,
    load_warning,
    memory_caption,
    memory_measured,
)
from cnnviewer.core.charts import CHART_FILES
from cnnviewer.core.errors import CnnviewerError, OutputError
from cnnviewer.core.files import atomic_write, output_target, reason_for_write_error
from cnnviewer.core.labels import imagenet_categories
from cnnviewer.core.palette import model_colours
from cnnviewer.core.text import csv_cell, json_text, markdown_code, markdown_text, printable


class ReportError(CnnviewerError):
    """A report that cannot be read; the sentence names the file (writing raises OutputError)."""


log = logging.getLogger(__name__)


def html_escape(text: object) -> str:
    """Text for report.html: as report.md shows it (control characters and bytes that are not UTF-8 as
    backslash escapes: a file name may be any bytes, the page must still be UTF-8) and then HTML-escaped."""
    return escape(printable(text))


def save_json(report: BenchmarkReport, path: Path) -> None:
    atomic_write(path, _writer(json_text(report.to_json(), indent=1).encode("utf-8")))


def _writer(data: bytes) -> Callable[[BinaryIO], object]:
    """What atomic_write calls to write ``data``."""
    return lambda handle: handle.write(data)


def load_json(path: str | os.PathLike[str]) -> BenchmarkReport:
    """A report.json from anywhere: at most MAX_REPORT_BYTES, parsed in short steps (a thread reading a
    large one never holds the others up for long), every field checked before anything uses it."""
    from cnnviewer.core.report_check import ReportFormatError, parse_json, read_report_text

    path = Path(os.fspath(path))
    try:
        text = read_report_text(path)
    except OSError as exc:
        raise ReportError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except ReportFormatError as exc:
        raise ReportError(f"{path}: {exc}") from exc
    try:
        return BenchmarkReport.from_json(parse_json(text))
    except ReportFormatError as exc:
        raise ReportError(f"{path}: not a cnnviewer report.json ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not a cnnviewer report.json (not valid JSON: {exc})") from exc


CSV_HEADER = ["file", "label", "truth_index", "truth_name", "model", "correct_top1", "correct_top5"] + [
    f"{kind}{rank}" for rank in range(1, 6) for kind in ("index", "probability")]


# Charts that earlier versions wrote: a rerun into the folder replaces them too (or refuses to).
EARLIER_CHART_FILES = ("accuracy_top1.png", "accuracy_top5.png")
RUN_FILES = ("report.json", "report.md", "report.html", "results.csv", *CHART_FILES, *EARLIER_CHART_FILES,
             "cluster-shards.jsonl")  # a cluster run's shards (core.cluster.SHARDS_FILE), kept for a resume


class ResultsCsv:
    """results.csv, one row per image and model, appended and flushed batch by batch.

    Always a new file: an earlier run's results.csv is never truncated (OutputError instead). File names
    keep their bytes, even those that are not UTF-8; text a spreadsheet would run as a formula is quoted.
    """

    def __init__(self, path: Path, *, resume: bool = False):
        self.path = Path(path)
        if resume:
            self._continue()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target = output_target(self.path)
            # O_EXCL: created here or not at all; 0o666 so the user's umask decides, as for any new file
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError as exc:
            raise OutputError(f"{self.path}: already exists; a run never replaces an earlier run's "
                              "results, so give it a new folder") from exc
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot be written ({reason_for_write_error(exc)})") from exc
        self._handle = open(fd, "w", newline="", encoding="utf-8", errors="surrogateescape")
        self._lock()
        self._writer = csv.writer(self._handle)
        self._write([CSV_HEADER])

    def _lock(self) -> None:
        """Only this run writes the file while it is open: a second run resuming it (or a first one still
        alive) is refused, rather than both appending every image once each."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one run per folder is then the user's care
            return
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._handle.close()
            raise OutputError(f"{self.path}: another run is writing it (still running, or resumed twice); "
                              "wait for it, or stop it first") from exc

    def _continue(self) -> None:
        """An earlier session's file, continued (a cluster run's resume): taken first (see _lock), then a last
        line cut short by a killed run is removed, so every line is whole; nothing before it is touched."""
        try:
            self._handle = open(output_target(self.path), "a", newline="", encoding="utf-8",
                                errors="surrogateescape")
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot be continued ({reason_for_write_error(exc)})") from exc
        self._lock()
        try:
            with open(output_target(self.path), "rb+") as earlier:
                data = earlier.read()
                if not data.startswith(",".join(CSV_HEADER).encode()):
                    raise OutputError(f"{self.path}: is not a cnnviewer results.csv, so it is not continued")
                earlier.truncate(data.rfind(b"\n") + 1)
        except (OSError, OutputError) as exc:
            self._handle.close()
            if isinstance(exc, OutputError):
                raise
            raise OutputError(f"{self.path}: cannot be continued ({reason_for_write_error(exc)})") from exc
        self._writer = csv.writer(self._handle)

    def _write(self, rows: Sequence[Sequence[object]]) -> None:
        try:
            self._writer.writerows(rows)
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot be written ({reason_for_write_error(exc)})") from exc

    def add(self, model: str, rows: list[ImageRow]) -> None:
        names = imagenet_categories()
        lines: list[list[object]] = []
        for row in rows:
            top = row.top5.get(model, [])
            probabilities = row.probabilities.get(model, [])
            cells = [csv_cell(row.file), csv_cell(row.label), row.truth, names[row.truth], csv_cell(model),
                     int(bool(top) and top[0] == row.truth), int(row.truth in top)]
            for index, probability in zip(top, probabilities, strict=False):
                cells += [index, f"{probability:.6f}"]
            lines.append(cells)
        self._write(lines)

    def close(self) -> None:
        try:
            self._handle.close()
        except OSError as exc:  # what could not be flushed was reported by the add() that failed
            log.info("closing %s: %s", self.path, exc)


@dataclass(frozen=True)
class RunFolder:
    """The folder a run writes into, and the folders made for it (removed again if nothing was written)."""

    path: Path
    made: tuple[Path, ...] = ()

    def remove_if_empty(self) -> None:
        for folder in reversed(self.made):
            try:
                folder.rmdir()
            except OSError as exc:  # not empty: the run wrote something, so the folder stays
                log.info("keeping %s: %s", folder, exc.strerror or exc)
                return


class EarlierRunError(OutputError):
    """The folder holds the files of an earlier run, which a new run would replace."""

    def __init__(self, folder: Path, files: list[str]):
        self.folder, self.files = folder, files
        super().__init__(f"{folder}: already holds an earlier run ({self.listed}); give a new folder")

    @property
    def listed(self) -> str:
        more = f" and {len(self.files) - 3} more" if len(self.files) > 3 else ""
        return ", ".join(self.files[:3]) + more


def prepare_run_folder(folder: str | os.PathLike[str], overwrite: bool = False) -> RunFolder:
    """The folder for a new run's files, made if absent (through symbolic links).

    A run never destroys another's results: a folder that holds any of RUN_FILES raises EarlierRunError,
    unless ``overwrite``, which deletes those files alone (a link among them, not what it points to)
    before anything else is written. A file, device or unwritable place in the way raises OutputError.
    """
    shown = Path(os.fspath(folder))
    target = Path(os.path.realpath(shown))
    made = []
    for parent in [target, *target.parents]:
        if os.path.lexists(parent):
            break
        made.append(parent)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        kind = "a file" if target.is_file() else "not a folder"
        raise OutputError(f"{shown}: is {kind}; the results need a folder") from exc
    except OSError as exc:
        raise OutputError(f"{shown}: cannot be made ({reason_for_write_error(exc)})") from exc
    earlier = [name for name in RUN_FILES if os.path.lexists(target / name)]
    if earlier and not overwrite:
        raise EarlierRunError(shown, earlier)
    for name in earlier:
        path = target / name
        if stat.S_ISDIR(os.lstat(path).st_mode):
            raise OutputError(f"{shown / name}: is a folder, not an earlier run's file; it is left alone")
        try:
            path.unlink()
        except OSError as exc:
            raise OutputError(f"{shown / name}: cannot be replaced ({reason_for_write_error(exc)})") from exc
    return RunFolder(target, tuple(reversed(made)))


def _pct(value: float) -> str:
    return f"{value * 100:.1f}"


def _ci(ci: tuple[float, float]) -> str:
    return f"{ci[0] * 100:.1f}–{ci[1] * 100:.1f}"


def _speed(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _throughput(m: ModelResult) -> str:
    """Images/s, with the 95 % interval of the timing rounds when there is one: "52.1 (50.3–54.0)"."""
    if m.throughput_ips is None or m.throughput_ci is None:
        return _speed(m.throughput_ips)
    return f"{m.throughput_ips:.1f} ({m.throughput_ci[0]:.1f}–{m.throughput_ci[1]:.1f})"


def speed_sentence(a: str, b: str, figures: dict[str, object], a_name: str) -> str:
    """What may be said of the speed of ``a`` against ``b`` (titles) from speed_comparison's figures
    (``a_name``: the result key of ``a``, as "faster" names it). "A is faster than B (x1.8, 95 % interval
    1.6–2.0)" only when the interval of the paired per-round ratios excludes 1 over enough rounds."""
    ratio, interval, faster = figures.get("speed_ratio"), figures.get("speed_interval"), figures.get("faster")
    rounds = figures.get("speed_rounds") or 0
    if not isinstance(ratio, (int, float)) or ratio <= 0:
        return f"{a} against {b}"
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        low, high = float(interval[0]), float(interval[1])
        if faster is not None:
            if faster != a_name:
                a, b, ratio, low, high = b, a, 1 / ratio, 1 / high, 1 / low
            return f"{a} is faster than {b} (x{ratio:.2f}, 95 % interval {low:.2f}–{high:.2f})"
        if isinstance(rounds, int) and rounds >= MIN_CLAIM_ROUNDS:
            return (f"No clear speed difference between {a} and {b} (x{ratio:.2f}, 95 % interval "
                    f"{low:.2f}–{high:.2f})")
    return (f"{a} against {b} (no speed claim: {a} ran at x{ratio:.2f} the throughput of {b} in "
            f"{'one pass' if not rounds else f'{rounds} timing round(s)'}, fewer than the "
            f"{MIN_CLAIM_ROUNDS} an interval needs)")


def _run_as(m: ModelResult) -> str:
    return f"auto: {m.run_as}" if m.auto else m.run_as


def timing_notes(report: BenchmarkReport) -> list[str]:
    """Sentences about how the models ran (auto's choices, int8's calibration), the timing rounds and the load
    while timing (no timing sentences for reports before rounds)."""
    note = cluster_note(report)
    notes = [note] if note else []
    chosen = [f"{m.name} as {m.run_as}" for m in report.models if m.auto]
    if chosen:
        notes.append("auto ran " + ", ".join(chosen) + " (each model's fastest way here whose top-5 equals fp32's "
                     "on the probe images).")
    calibration = report.environment.get("int8_calibration")
    if isinstance(calibration, str) and calibration:
        notes.append(calibration[0].upper() + calibration[1:] + ".")
    warning = load_warning(report.environment)
    if warning:
        notes.append(warning)
    timing = report.timing
    if timing.get("cut_short"):
        notes.append(f"The timing was cut short after {timing.get('done', 0)} of {timing.get('rounds', 0)} "
                     f"round(s): no speed claim is made from fewer than {MIN_CLAIM_ROUNDS} rounds.")
    elif timing.get("done"):
        notes.append(f"Throughput: forward only over the same {timing.get('images', 0)} images per model in "
                     f"{timing['done']} interleaved rounds (every model in round 1, then every model in round 2, "
                     "...); the figure is the rounds' geometric mean with a 95 % t-interval on log throughput, "
                     "and a speed claim needs the interval of the paired per-round ratio to exclude 1. "
                     + ("The models were loaded once more for the rounds and stayed loaded"
                        if timing.get("held") else "Each model was loaded again for each round")
                     + f" ({float(timing.get('load_s', 0.0)):.1f} s of loading).")
    return notes


def _latency(report: BenchmarkReport, m: ModelResult) -> str:
    if m.partial:
        return f"{report.partial_note(m)}, no speed figures"
    if per_worker(report, m):
        return PER_WORKER
    lat = m.latency_ms
    return "-" if lat is None else f"{lat['p50']:.0f} / {lat['p90']:.0f} / {lat['p99']:.0f}"


def _driver_figure(report: BenchmarkReport, m: ModelResult, value: float, spec: str,
                   measured: bool | None = None) -> str:
    """A figure measured in the process that ran the model: "-" for a cluster result, whose driver ran none,
    and for one never measured (``measured``; by default a value above 0: a model cut short before it loaded
    has 0 there, which is no figure)."""
    if ran_on_cluster(report) and m.error is None:
        return "-"
    return format(value, spec) if (value > 0 if measured is None else measured) else "-"


def _not_run(m: ModelResult) -> str:
    """"weights missing: SENTENCE" for a result that did not run (the kind is left out of older reports)."""
    kind = ERROR_KINDS.get(m.error_kind or "")
    return f"{kind}: {m.error}" if kind else str(m.error)


def markdown(report: BenchmarkReport) -> str:
    names = imagenet_categories()
    ran = [m for m in report.models if m.error is None]
    n = max((m.images for m in ran), default=0)
    lines = [f"# Benchmark of {len(report.models)} model(s) on {markdown_code(report.root)}", ""]
    if report.cancelled:
        lines += ["**The run was cancelled; these are the results it had.**", ""]
    lines += [f"{n} labelled images classified; {len(report.skipped)} file(s) could not be read and are left out "
              "of the accuracy (listed at the end).", ""]
    memory = memory_caption(report.models)
    lines += ["## The lab report's table", "",
              f"| Name | Time, s | {memory[0].upper() + memory[1:]} | Top-1 acc, % | Top-5 acc, % |",
              "| --- | --- | --- | --- | --- |"]
    for m in ran:
        title = f"{m.title} ({report.partial_note(m)})" if m.partial else m.title
        seconds = "-" if m.partial else f"{m.seconds:.2f}"
        peak = _driver_figure(report, m, m.peak_rss_mb, '.0f', memory_measured(m))
        lines.append(f"| {title} | {seconds} | {peak} | {_pct(m.top1)} "
                     f"| {_pct(m.top5)} |")
    samples = report.config.get("latency_samples", 20)
    time_line = ("Time, s: each model's whole turn: loading it (and hashing its weights file the first time), a "
                 f"warm-up, classifying every image (decoding included) and {samples} batch-1 latency runs; pauses "
                 "for the window's interactive work are left out (`paused_s` in report.json).")
    if ran_on_cluster(report):
        time_line = ("Time, s: each model's turn on the cluster, from starting its workers to its last shard's "
                     "answers back; each worker's peak memory is in the Cluster section.")
    lines += ["", time_line,
              "", "## Measured and published", "",
              "| Model | Top-1 % (95 % CI) | Top-5 % (95 % CI) | Published acc@1 / acc@5 | GMACs | Params (M) "
              "| Throughput img/s (95 % interval) | Latency p50 / p90 / p99 ms | Decode ms | Params MB | Load s |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in ran:
        pub = m.published
        published = (f"{pub['acc1']:.1f} / " + (f"{pub['acc5']:.1f}" if pub.get("acc5") is not None else "-")
                     ) if pub.get("acc1") is not None else "-"
        lines.append(
            f"| {m.name} | {_pct(m.top1)} ({_ci(m.top1_ci)}) | {_pct(m.top5)} ({_ci(m.top5_ci)}) | {published} "
            f"| {pub.get('gmacs', 0):.2f} | {pub.get('params', 0) / 1e6:.1f} "
            f"| {PER_WORKER if per_worker(report, m) else _throughput(m)} | {_latency(report, m)} "
            f"| {_driver_figure(report, m, m.decode_ms_mean, '.1f')} | {_driver_figure(report, m, m.param_mb, '.0f')} "
            f"| {PER_WORKER if per_worker(report, m) else _driver_figure(report, m, m.load_s, '.2f')} |")
    ways = against_fp32(report)
    if ways:
        lines += ["", "## Ways of running against FP32 (the same images)", "",
                  "| Result | Top-1 % | FP32 top-1 % | Change, points | Top-1 answers that differ | McNemar p "
                  "| Speed vs FP32 (95 % interval) |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for w in ways:
            interval = w.get("speed_interval")
            speed = (f"{w['speed']:.2f}x" + (f" ({interval[0]:.2f}–{interval[1]:.2f})" if interval else "")
                     if w["speed"] else "-")
            lines.append(f"| {w['name']} | {_pct(w['top1'])} | {_pct(w['fp32_top1'])} | {w['change_points']:+.1f} "
                         f"| {w['differ']} of {w['images']} | {w['p_value']:.2f} | {speed} |")
    failed = [m for m in report.models if m.error]
    if failed:
        lines += ["", "Models that could not run:", ""] + [f"- {m.name}: {markdown_text(_not_run(m))}"
                                                           for m in failed]
    cluster = cluster_lines(report)
    if cluster:
        lines += ["", *cluster]
    lines += ["", "## Conclusions", ""]
    lines += [f"- **{sentence}**" if sentence.startswith("Other programs") else f"- {sentence}"
              for sentence in timing_notes(report)]
    if n and n < 200:
        width = max(((m.top1_ci[1] - m.top1_ci[0]) * 100 for m in ran), default=0)
        lines.append(f"- With {n} images the 95 % intervals are wide (up to {width:.0f} points for top-1): "
                     "small differences in accuracy here say little.")
    lines += [f"- {sentence}" for sentence in conclusions(report)]
    lines += ["", "## Per-class accuracy (top-1)", ""]
    for model, classes in report.per_class.items():
        # A class every image of which was right is not weak, however few classes fell short.
        weak = sorted(((c[0] / c[1], int(k)) for k, c in classes.items() if c[1] and c[0] < c[1]),
                      key=lambda x: x[0])[:10]
        if not weak:
            lines.append(f"- **{model}**: every class right ({len(classes)} classes)")
            continue
        lines.append(f"- **{model}** weakest classes: " + ", ".join(
            f"{names[k]} {acc * 100:.0f} % ({classes[str(k)][0]}/{classes[str(k)][1]})" for acc, k in weak))
    lines += ["", "## Most confused pairs (true → predicted, count)", ""]
    for model, pairs in report.confusions.items():
        text = ", ".join(f"{names[t]} → {names[p]} ({c})" for t, p, c in pairs[:8]) or "none"
        lines.append(f"- **{model}**: {text}")
    lines += ["", "## Environment", "", environment_line(report.environment), ""]
    if any(m.peak_gpu_mb for m in ran):
        lines += ["GPU memory peak (torch's allocations): "
                  + ", ".join(f"{m.name} {m.peak_gpu_mb:.0f} MB" for m in ran), ""]
    if any(m.folded_batchnorms for m in ran):
        lines += ["BatchNorm layers folded into the convolution before them (same classes, faster): "
                  + ", ".join(f"{m.name} {m.folded_batchnorms}" for m in ran), ""]
    if report.label_problems:
        lines += ["## Labels that were not used", ""] + [f"- {markdown_text(p)}" for p in report.label_problems] + [""]
    if report.skipped:
        lines += ["## Files that could not be read", ""] + [
            f"- {markdown_code(s['file'])}: {markdown_text(s['reason'])}" for s in report.skipped]
    return "\n".join(lines) + "\n"


def conclusions(report: BenchmarkReport) -> list[str]:
    """Sentences written from the statistics: speed ratios, and accuracy claims only when significant."""
    titles = {m.name: m.title for m in report.models}
    # A cluster run has no single speed per model (speed is per worker): nothing to compare, whatever is stored.
    speeds = not ran_on_cluster(report)
    sentences = [f"{m.title} is {report.partial_note(m)} (the run was cancelled during its turn): no speed "
                 "figures, and it is left out of the comparisons." for m in report.models if m.partial]
    for w in against_fp32(report):
        title, base = titles.get(w["name"], w["name"]), titles.get(w["model"], w["model"])
        speed = (speed_sentence(title, base, {**w, "speed_ratio": w["speed"]}, w["name"]) if w["speed"] and speeds
                 else title)
        sentences.append(f"{speed}: top-1 {w['change_points']:+.1f} points against FP32 ({w['differ']} of "
                         f"{w['images']} top-1 answers differ).")
    for c in report.comparisons:
        a, b = titles.get(c["a"], c["a"]), titles.get(c["b"], c["b"])
        speed = speed_sentence(a, b, c if speeds else {}, c["a"])
        # "A is faster than B; ..." is a clause; "A against B" (no speed claim) names the pair for what follows.
        speed += ": " if speed.startswith(f"{a} against {b}") else "; "
        if c["significant"]:
            better = titles.get(c["more_accurate"], c["more_accurate"])
            other = b if better == a else a
            sentences.append(f"{speed}{better} is more accurate than {other} on top-1 "
                             f"(exact McNemar p = {c['p_value']:.3g}, {c['only_a_right']} vs {c['only_b_right']} "
                             "discordant images).")
        else:
            sentences.append(f"{speed}their top-1 difference is not significant, p = {c['p_value']:.2f}.")
    return sentences


# -- a run on a cluster (core.cluster): speed per worker, never summed ---------------------------------

PER_WORKER = "per worker"  # a cluster result's speed cells: each worker process has its own figures
NOT_SUMMED = ("Speeds are per worker and are not summed: each worker process measured its own, on its own node "
              "(two nodes may share a machine), so a total would describe none of them.")
# A worker's memory is its whole process's (ru_maxrss), not the rise above its start as on one machine.
PROCESS_PEAK = "Process peak MB: each worker process's peak resident memory, torch included."
WORKER_HEADERS = ("Model", "Host", "Node", "PID", "Device", "Way", "Threads", "Images", "Shards", "Forward img/s",
                  "File-to-top-5 img/s", "Process peak MB", "Load s")
SENT = {"bytes": "the image bytes (the driver read each image and sent it: no shared storage needed)",
        "paths": "the image paths (each worker opened the files itself, on shared storage at the same path)"}


@dataclass(frozen=True)
class ClusterSummary:
    """What a report says about the cluster its models ran on, as plain sentences and cells (each face
    escapes them its own way). Read from environment["cluster"] field by field: a report.json may come from
    anywhere, so a wrong type shows "-" rather than stopping the report."""

    where: str  # the engine, its address and the Ray nodes
    sent: str  # what went over the network
    split: str  # how the images were split into shards, and how many shards each model had
    workers: tuple[tuple[str, ...], ...]  # WORKER_HEADERS cells, one row per (model, worker process)
    retries: tuple[str, ...]  # a shard whose worker died or failed: where, why, and where it ran next
    resumed: tuple[str, ...]  # each earlier session read back from results.csv
    processes: int  # worker processes that finished a shard
    nodes: int  # the Ray nodes they ran on (two nodes may be one machine)


def _entries(cluster: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = cluster.get(key)
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _word(value: object, longest: int = 80) -> str:
    """A name (a host name is at most 64 characters) or, with a larger ``longest``, a sentence from
    environment["cluster"], on one line and cut to ``longest`` characters; "-" for none."""
    if value is None or value == "":
        return "-"
    text = printable(value)
    return text if len(text) <= longest else text[:longest - 1] + "…"


def _figure(value: object, digits: int = 0) -> str:
    """A number from environment["cluster"]; "-" for none, or for anything that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def ran_on_cluster(report: BenchmarkReport) -> bool:
    return isinstance(report.environment.get("cluster"), dict)


def cluster_summary(report: BenchmarkReport) -> ClusterSummary | None:
    """The cluster a run used (environment["cluster"]); None for a run on one machine."""
    cluster = report.environment.get("cluster")
    if not isinstance(cluster, dict):
        return None
    engine = {"ray": "Ray"}.get(str(cluster.get("engine")), _word(cluster.get("engine")))
    address = cluster.get("address")
    where = (f"{engine}, a local instance started for this run" if address == "local"
             else f"{engine} at {_word(address)}")
    nodes = _entries(cluster, "nodes")
    if nodes:
        where += f"; {len(nodes)} node(s): " + ", ".join(
            f"{_word(n.get('host'))} (node {_word(n.get('node'))}, {_word(n.get('ip'))}, {_figure(n.get('cpus'))} CPU(s), "
            f"{_figure(n.get('gpus'))} GPU(s))" for n in nodes)
    data = cluster.get("data")
    sent = SENT.get(str(data), _word(data))
    shards = _entries(cluster, "shards")
    split = _word(cluster.get("split"), 400)
    split = ("-" if split == "-" else split[0].upper() + split[1:] + ".") + \
        f" Shards of up to {_figure(cluster.get('shard_images'))} images"
    counts = {m.name: len({str(s.get("shard")) for s in shards if s.get("model") == m.name})
              for m in report.models if m.error is None}
    if counts:
        split += "; shards per model: " + ", ".join(f"{_word(name)} {count}" for name, count in counts.items())
    workers = tuple(
        (_word(w.get("model")), _word(w.get("host")), _word(w.get("node")), _figure(w.get("pid")),
         _word(w.get("device")) + (f" ({_word(w.get('gpu'))})" if w.get("gpu") else ""), _word(w.get("way")),
         _figure(w.get("threads")),
         _figure(w.get("images")) + (f" ({_figure(w.get('failed'))} failed)" if w.get("failed") else ""),
         _figure(w.get("shards")), _figure(w.get("forward_ips"), 1), _figure(w.get("end_to_end_ips"), 1),
         _figure(w.get("peak_rss_mb")), _figure(w.get("load_s"), 2)) for w in _entries(cluster, "workers"))
    retries = tuple(_retry(r, cluster) for r in _entries(cluster, "retries"))
    resumed = tuple(resumed_sentence(r) for r in _entries(cluster, "resumed"))
    processes = len({(row[2], row[3]) for row in workers})
    return ClusterSummary(where, sent, split + ".", workers, retries, resumed, processes,
                          len({row[2] for row in workers}))


def resumed_sentence(resumed: dict[str, Any]) -> str:
    """"DATE: 80 row(s) read back from results.csv, not classified again; 16 of them (lite1 16) have no shard
    record ..." for one entry of environment["cluster"]["resumed"]."""
    models = resumed.get("models")
    each = ", ".join(f"{_word(key)} {_figure(rows)}" for key, rows in models.items()) if isinstance(models, dict) else ""
    text = f"{_word(resumed.get('date'))}: {_figure(resumed.get('rows'))} row(s) " \
           f"{f'({each}) ' if each else ''}read back from results.csv, not classified again"
    unrecorded = resumed.get("unrecorded")
    counts = {_word(key): rows for key, rows in (unrecorded.items() if isinstance(unrecorded, dict) else ())
              if isinstance(rows, int) and not isinstance(rows, bool) and rows > 0}
    if counts:
        text += (f"; {sum(counts.values())} of them ({', '.join(f'{key} {rows}' for key, rows in counts.items())}) "
                 "have no shard record (the driver stopped after writing their rows, before their record): counted, but which "
                 "worker ran them and how fast is unknown")
    return text


def _retry(retry: dict[str, Any], cluster: dict[str, Any]) -> str:
    """"lite0 shard 2: the worker process died (...) on host-b (pid 1235, attempt 1); ran next on host-a
    (pid 1234, attempt 2)": the next attempt is a later retry of the same shard, or where it finished."""
    model, shard, attempt = retry.get("model"), str(retry.get("shard")), retry.get("attempt")
    same = [entry for entry in _entries(cluster, "retries") + _entries(cluster, "shards")
            if entry.get("model") == model and str(entry.get("shard")) == shard]
    later = [entry for entry in same if isinstance(attempt, int) and isinstance(entry.get("attempt"), int)
             and entry["attempt"] > attempt]
    after = min(later, key=lambda entry: int(entry["attempt"]), default=None)
    next_place = (f"ran next on {_word(after.get('host'))} (pid {_figure(after.get('pid'))}, attempt "
                  f"{_figure(after.get('attempt'))})" if after else "not run again (the run ended first)")
    return (f"{_word(model)} shard {_word(retry.get('shard'))}: {_word(retry.get('reason'), 400)} on "
            f"{_word(retry.get('host'))} (pid {_figure(retry.get('pid'))}, attempt {_figure(attempt)}); {next_place}")


def per_worker(report: BenchmarkReport, m: ModelResult) -> bool:
    """Whether ``m``'s speed is per worker: it ran its whole turn on a cluster (no single figure)."""
    return ran_on_cluster(report) and m.error is None and not m.partial and m.throughput_ips is None


def cluster_note(report: BenchmarkReport) -> str | None:
    """The sentence under a cluster run's results: where its speed is, and why there is no single figure."""
    summary = cluster_summary(report)
    if summary is None:
        return None
    if not summary.processes:  # during a run, before any shard came back (the window shows it then)
        return "The models run on a cluster: each worker's own speed is listed as its shards come back."
    per_place: dict[tuple[str, str], int] = {}
    for row in summary.workers:
        per_place[(row[0], row[2])] = per_place.get((row[0], row[2]), 0) + 1
    how = ("one per model on each" if all(count == 1 for count in per_place.values()) else
           "one per model on each, and another where a worker died or a resumed session started its own")
    return (f"The models ran on {summary.nodes} node(s) of a cluster ({summary.processes} worker process(es), "
            f"{how}), so there is no single speed "
            "figure per model: each worker's own is listed (the Cluster section; the Workers tab in the window), "
            "never summed into one figure.")


_FIGURE = re.compile(r"-|\d+(\.\d+)?")


def cluster_lines(report: BenchmarkReport) -> list[str]:
    """report.md's Cluster section: where the models ran, what was sent, how the work was split, each worker's
    speed, the retries and the resumed sessions; [] for a run on one machine."""
    summary = cluster_summary(report)
    if summary is None:
        return []

    def cell(text: str) -> str:  # a figure stays as it is (markdown_text would write 32.5 as 32\.5)
        return text if _FIGURE.fullmatch(text) else markdown_text(text)

    lines = ["## Cluster", "", f"- Engine: {cell(summary.where)}", f"- Sent to the workers: {cell(summary.sent)}",
             f"- Split: {cell(summary.split)}", "", f"**{NOT_SUMMED}**", "",
             "| " + " | ".join(WORKER_HEADERS) + " |", "|" + " --- |" * len(WORKER_HEADERS)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in summary.workers]
    if not summary.workers:
        lines.append("| no worker finished a shard |" + " |" * (len(WORKER_HEADERS) - 1))
    lines += ["", PROCESS_PEAK]
    if summary.retries:
        lines += ["", "Shards run again (each image is counted once, from the attempt that finished):", ""]
        lines += [f"- {cell(retry)}" for retry in summary.retries]
    if summary.resumed:
        lines += ["", "Resumed sessions:", ""] + [f"- {cell(resumed)}" for resumed in summary.resumed]
    return lines


def _html_cluster(report: BenchmarkReport) -> list[str]:
    """report.html's Cluster section (cluster_lines as HTML)."""
    summary = cluster_summary(report)
    if summary is None:
        return []
    esc = html_escape
    out = ["<h2>Cluster</h2>", "<ul>", f"<li>Engine: {esc(summary.where)}</li>",
           f"<li>Sent to the workers: {esc(summary.sent)}</li>", f"<li>Split: {esc(summary.split)}</li>", "</ul>",
           f"<p><strong>{esc(NOT_SUMMED)}</strong></p>",
           "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in WORKER_HEADERS) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{esc(value)}</td>" for value in row) + "</tr>" for row in summary.workers]
    out += ["</table>", f"<p>{esc(PROCESS_PEAK)}</p>"]
    if summary.retries:
        out += ["<p>Shards run again (each image is counted once, from the attempt that finished):</p><ul>"]
        out += [f"<li>{esc(retry)}</li>" for retry in summary.retries] + ["</ul>"]
    if summary.resumed:
        out += ["<p>Resumed sessions:</p><ul>"] + [f"<li>{esc(r)}</li>" for r in summary.resumed] + ["</ul>"]
    return out


# -- charts and report.html ------------------------------------------------------------------------


def save_charts(report: BenchmarkReport, folder: Path, drawn: dict[str, bytes] | None = None) -> list[Path]:
    """The charts (core.charts) as PNG and SVG files in ``folder``; nothing when no result has an accuracy.
    ``drawn``: what charts.render(report) returned, when the caller has it already."""
    written = []
    for name, data in (charts.render(report) if drawn is None else drawn).items():
        atomic_write(Path(folder) / name, _writer(data))
        written.append(Path(folder) / name)
    return written


MAX_THUMBNAILS = 30  # mistakes shown in report.html: enough to see a pattern, small enough to mail
THUMBNAIL_PX = 96


def _thumbnail(path: str, root: str) -> str | None:
    """A data: URI of a small JPEG of the image at ``path``; None when the file no longer loads."""
    from cnnviewer.core.images import load_image

    full = path if os.path.isabs(path) else os.path.join(root, path)
    try:
        image = load_image(full, min_side=THUMBNAIL_PX)
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
    except (CnnviewerError, OSError, ValueError) as exc:  # moved, deleted or changed since the run
        log.info("no thumbnail of %s in report.html: %s", path, exc)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _svg_inline(data: bytes) -> str:
    """An SVG file's <svg> element, to sit inside HTML (without its XML declaration and DOCTYPE)."""
    text = data.decode("utf-8")
    return text[text.index("<svg"):]


HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1280px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.4em; vertical-align: -0.1em; }
figure { margin: 1em 0; } figure svg { width: 100%; height: auto; }
.thumbs { display: flex; flex-wrap: wrap; gap: 0.8em; }
.thumbs figure { width: 150px; margin: 0; font-size: 0.8em; overflow-wrap: anywhere; }
.warn { color: #8a4b00; background: #fff4e0; padding: 0.4em 0.6em; }
.wrong { color: #b00020; } .right { color: #1e823c; }
"""


def html(report: BenchmarkReport, svgs: dict[str, bytes] | None = None) -> str:
    """report.html: one self-contained file to mail (charts inline as SVG, thumbnails of mistakes as data:
    URIs, nothing loaded from elsewhere); every name from the report or the disk is escaped."""
    names = imagenet_categories()
    colours = model_colours([m.name for m in report.models])
    ran = [m for m in report.models if m.error is None]
    n = max((m.images for m in ran), default=0)
    esc = html_escape
    title = f"Benchmark of {len(report.models)} model(s) on {report.root}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{esc(title)}</title><style>{HTML_STYLE}</style></head><body>", f"<h1>{esc(title)}</h1>"]
    if report.cancelled:
        out.append("<p><strong>The run was cancelled; these are the results it had.</strong></p>")
    out.append(f"<p>{n} labelled images classified; {len(report.skipped)} file(s) could not be read and are left "
               "out of the accuracy.</p>")
    warning = load_warning(report.environment)
    if warning:
        out.append(f'<p class="warn"><strong>{esc(warning)}</strong></p>')
    memory = memory_caption(report.models)
    out += ["<h2>Summary</h2>", "<table><tr><th>Model</th><th>Run as</th><th>Images</th><th>Top-1 % (95 % CI)</th>"
            "<th>Top-5 % (95 % CI)</th><th>Throughput img/s (95 % interval)</th><th>Latency p50 / p90 / p99 ms</th>"
            f"<th>{esc(memory[0].upper() + memory[1:])}</th><th>Params MB</th><th>Load s</th></tr>"]
    for m in ran:
        swatch = f'<span class="swatch" style="background:{colours[m.name]}"></span>'
        out.append(f"<tr><td>{swatch}{esc(m.name)}</td><td>{esc(_run_as(m))}</td><td>{m.images}</td>"
                   f"<td>{_pct(m.top1)} ({_ci(m.top1_ci)})</td><td>{_pct(m.top5)} ({_ci(m.top5_ci)})</td>"
                   f"<td>{PER_WORKER if per_worker(report, m) else _throughput(m)}</td>"
                   f"<td>{esc(_latency(report, m))}</td>"
                   f"<td>{_driver_figure(report, m, m.peak_rss_mb, '.0f', memory_measured(m))}</td>"
                   f"<td>{_driver_figure(report, m, m.param_mb, '.0f')}</td>"
                   f"<td>{PER_WORKER if per_worker(report, m) else _driver_figure(report, m, m.load_s, '.2f')}</td></tr>")
    out.append("</table>")
    failed = [m for m in report.models if m.error]
    if failed:
        out += ["<p>Models that could not run:</p><ul>"] + [
            f"<li>{esc(m.name)}: {esc(_not_run(m))}</li>" for m in failed] + ["</ul>"]
    out += _html_cluster(report)
    sentences = [s for s in timing_notes(report) if s != warning] + conclusions(report)
    if sentences:
        out += ["<h2>Conclusions</h2><ul>"] + [f"<li>{esc(s)}</li>" for s in sentences] + ["</ul>"]
    if svgs:
        out.append("<h2>Charts</h2>")
        out += [f"<figure>{_svg_inline(data)}</figure>" for name, data in svgs.items() if name.endswith(".svg")]
    out += _html_mistakes(report)
    out += _html_per_class(report, names)
    if report.confusions:
        out += ["<h2>Most confused pairs</h2>",
                "<table><tr><th>Model</th><th>True class</th><th>Predicted</th><th>Images</th></tr>"]
        for model, pairs in report.confusions.items():
            out += [f"<tr><td>{esc(model)}</td><td>{esc(names[t])}</td><td>{esc(names[p])}</td><td>{c}</td></tr>"
                    for t, p, c in pairs[:8]]
        out.append("</table>")
    out += ["<h2>Environment</h2>", f"<p>{esc(environment_line(report.environment))}</p>"]
    if report.label_problems:
        out += ["<h2>Labels that were not used</h2><ul>"] + [
            f"<li>{esc(p)}</li>" for p in report.label_problems] + ["</ul>"]
    if report.skipped:
        out += ["<h2>Files that could not be read</h2><ul>"] + [
            f"<li><code>{esc(s['file'])}</code>: {esc(s['reason'])}</li>" for s in report.skipped] + ["</ul>"]
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_mistakes(report: BenchmarkReport) -> list[str]:
    """Up to MAX_THUMBNAILS images some model got wrong (top-1), each with every model's answer."""
    names = imagenet_categories()
    esc = html_escape
    wrong = [row for row in report.images if any(top and top[0] != row.truth for top in row.top5.values())]
    if not wrong:
        return []
    out = [f"<h2>Mistakes ({len(wrong)} image(s) some model got wrong on top-1"
           + (f"; the first {MAX_THUMBNAILS} shown" if len(wrong) > MAX_THUMBNAILS else "") + ")</h2>",
           '<div class="thumbs">']
    missing = 0
    for row in wrong[:MAX_THUMBNAILS]:
        uri = _thumbnail(row.file, report.root)
        if uri is None:
            missing += 1
            continue
        answers = "".join(
            f'<br><span class="{"right" if top[0] == row.truth else "wrong"}">{esc(model)}: '
            f"{esc(names[top[0]])}</span>" for model, top in row.top5.items() if top)
        out.append(f'<figure><img src="{uri}" alt="{esc(os.path.basename(row.file))}"><figcaption>'
                   f"<b>{esc(os.path.basename(row.file))}</b><br>true: {esc(names[row.truth])}{answers}"
                   "</figcaption></figure>")
    out.append("</div>")
    if missing:
        out.append(f"<p>{missing} image(s) could not be shown: the files no longer load (moved, deleted or "
                   "changed since the run).</p>")
    return out


def _html_per_class(report: BenchmarkReport, names: Sequence[str]) -> list[str]:
    """Top-1 accuracy of every class for every model, the weakest classes (by their mean) first."""
    if not report.per_class:
        return []
    models = list(report.per_class)
    classes = sorted({int(k) for counts in report.per_class.values() for k in counts})

    def mean(k: int) -> float:
        cells = [report.per_class[m][str(k)] for m in models if str(k) in report.per_class[m]]
        return sum(c[0] / c[1] for c in cells if c[1]) / max(1, len(cells))

    out = ["<h2>Per-class accuracy (top-1)</h2>", "<table><tr><th>Class</th>"
           + "".join(f"<th>{html_escape(m)}</th>" for m in models) + "</tr>"]
    for k in sorted(classes, key=lambda k: (mean(k), names[k])):
        cells = []
        for m in models:
            c = report.per_class[m].get(str(k))
            cells.append(f"<td>{c[0] / c[1] * 100:.0f} % ({c[0]}/{c[1]})</td>" if c and c[1] else "<td>-</td>")
        out.append(f"<tr><td>{html_escape(names[k])}</td>{''.join(cells)}</tr>")
    out.append("</table>")
    return out


def write_all(report: BenchmarkReport, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """report.md, report.html, the charts (PNG and SVG) and, last, report.json; results.csv is written as the
    run goes (ResultsCsv). report.json comes last: a finished one is the sign that the rest was written (a
    run killed while the charts were drawn can be resumed, not refused as finished without its report.md)."""
    folder = Path(os.fspath(folder))
    from cnnviewer.core.measured import record  # the model picker shows each model's images/s on this machine

    record(report)
    atomic_write(folder / "report.md", _writer(markdown(report).encode("utf-8")))
    files = charts.render(report)
    written = save_charts(report, folder, files)
    atomic_write(folder / "report.html", _writer(html(report, files).encode("utf-8")))
    save_json(report, folder / "report.json")
    return {"json": folder / "report.json", "markdown": folder / "report.md", "html": folder / "report.html",
            **{p.name: p for p in written}}
