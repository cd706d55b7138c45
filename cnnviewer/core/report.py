"""Benchmark reports on disk: report.json, results.csv, report.md and PNG charts (written safely)."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageDraw, ImageFont

from cnnviewer.core.benchmark import (
    ERROR_KINDS,
    BenchmarkReport,
    ImageRow,
    ModelResult,
    against_fp32,
    environment_line,
    memory_caption,
)
from cnnviewer.core.errors import CnnviewerError, OutputError
from cnnviewer.core.files import atomic_write, output_target, reason_for_write_error
from cnnviewer.core.labels import imagenet_categories
from cnnviewer.core.text import csv_cell, json_text, markdown_code, markdown_text


class ReportError(CnnviewerError):
    """A report that cannot be read; the sentence names the file (writing raises OutputError)."""


log = logging.getLogger(__name__)


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


CHART_FILES = ("accuracy_top1.png", "accuracy_top5.png", "throughput.png", "memory.png", "accuracy_vs_latency.png")
RUN_FILES = ("report.json", "report.md", "results.csv", *CHART_FILES)


class ResultsCsv:
    """results.csv, one row per image and model, appended and flushed batch by batch.

    Always a new file: an earlier run's results.csv is never truncated (OutputError instead). File names
    keep their bytes, even those that are not UTF-8; text a spreadsheet would run as a formula is quoted.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
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
        self._writer = csv.writer(self._handle)
        self._write([CSV_HEADER])

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


def _latency(report: BenchmarkReport, m: ModelResult) -> str:
    if m.partial:
        return f"{report.partial_note(m)}, no speed figures"
    lat = m.latency_ms
    return "-" if lat is None else f"{lat['p50']:.0f} / {lat['p90']:.0f} / {lat['p99']:.0f}"


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
        lines.append(f"| {title} | {seconds} | {m.peak_rss_mb:.0f} | {_pct(m.top1)} | {_pct(m.top5)} |")
    samples = report.config.get("latency_samples", 20)
    lines += ["", "Time, s: each model's whole turn: loading it (and hashing its weights file the first time), a "
              f"warm-up, classifying every image (decoding included) and {samples} batch-1 latency runs; pauses for "
              "the window's interactive work are left out (`paused_s` in report.json).",
              "", "## Measured and published", "",
              "| Model | Top-1 % (95 % CI) | Top-5 % (95 % CI) | Published acc@1 / acc@5 | GMACs | Params (M) "
              "| Throughput img/s | Latency p50 / p90 / p99 ms | Decode ms | Params MB | Load s |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in ran:
        pub = m.published
        published = (f"{pub['acc1']:.1f} / " + (f"{pub['acc5']:.1f}" if pub.get("acc5") is not None else "-")
                     ) if pub.get("acc1") is not None else "-"
        lines.append(
            f"| {m.name} | {_pct(m.top1)} ({_ci(m.top1_ci)}) | {_pct(m.top5)} ({_ci(m.top5_ci)}) | {published} "
            f"| {pub.get('gmacs', 0):.2f} | {pub.get('params', 0) / 1e6:.1f} | {_speed(m.throughput_ips)} "
            f"| {_latency(report, m)} | {m.decode_ms_mean:.1f} | {m.param_mb:.0f} | {m.load_s:.2f} |")
    ways = against_fp32(report)
    if ways:
        lines += ["", "## Ways of running against FP32 (the same images)", "",
                  "| Result | Top-1 % | FP32 top-1 % | Change, points | Top-1 answers that differ | McNemar p "
                  "| Speed vs FP32 |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for w in ways:
            speed = f"{w['speed']:.2f}x" if w["speed"] else "-"
            lines.append(f"| {w['name']} | {_pct(w['top1'])} | {_pct(w['fp32_top1'])} | {w['change_points']:+.1f} "
                         f"| {w['differ']} of {w['images']} | {w['p_value']:.2f} | {speed} |")
    failed = [m for m in report.models if m.error]
    if failed:
        lines += ["", "Models that could not run:", ""] + [f"- {m.name}: {markdown_text(_not_run(m))}"
                                                           for m in failed]
    lines += ["", "## Conclusions", ""]
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
    sentences = [f"{m.title} is {report.partial_note(m)} (the run was cancelled during its turn): no speed "
                 "figures, and it is left out of the comparisons." for m in report.models if m.partial]
    for w in against_fp32(report):
        speed = f"{w['speed']:.1f}x the speed of FP32" if w["speed"] else "run"
        sentences.append(f"{titles.get(w['name'], w['name'])}: {speed}, top-1 {w['change_points']:+.1f} points "
                         f"against FP32 ({w['differ']} of {w['images']} top-1 answers differ).")
    for c in report.comparisons:
        a, b = titles.get(c["a"], c["a"]), titles.get(c["b"], c["b"])
        ratio = c.get("speed_ratio")
        if ratio:
            fast, slow, r = (a, b, ratio) if ratio >= 1 else (b, a, 1 / ratio)
            speed = f"{fast} is {r:.1f}x faster than {slow}"
        else:
            speed = f"{a} and {b}"
        if c["significant"]:
            better = titles.get(c["more_accurate"], c["more_accurate"])
            other = b if better == a else a
            sentences.append(f"{speed}; {better} is more accurate than {other} on top-1 "
                             f"(exact McNemar p = {c['p_value']:.3g}, {c['only_a_right']} vs {c['only_b_right']} "
                             "discordant images).")
        else:
            sentences.append(f"{speed}; their top-1 difference is not significant, p = {c['p_value']:.2f}.")
    return sentences


# -- charts (Pillow, no Qt: the CLI draws them anywhere) ---------------------------------------

COLOURS = [(70, 130, 200), (230, 130, 40), (80, 170, 90), (200, 70, 70), (140, 100, 190), (120, 120, 120)]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1 has one fixed size
        log.info("this Pillow's default font has no size; the charts use its fixed size")
        return ImageFont.load_default()


def _bar_chart(title: str, labels: list[str], values: list[float], unit: str,
               whiskers: list[tuple[float, float]] | None = None,
               ymax: float | None = None, partial: list[bool] | None = None) -> Image.Image:
    """Bars; a partial result's bar is hatched in its colour on white."""
    width, height, left, bottom, top = 900, 480, 80, 90, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 14), title, fill="black", font=_font(20))
    high = ymax or max([v for v in values] + [w[1] for w in (whiskers or [])] + [1e-9]) * 1.1
    plot_h = height - bottom - top
    draw.line([(left, top), (left, height - bottom), (width - 20, height - bottom)], fill="black")
    for i in range(5):
        y = height - bottom - plot_h * i / 4
        draw.text((8, y - 8), f"{high * i / 4:.3g}", fill="black", font=_font(13))
        draw.line([(left - 4, y), (left, y)], fill="black")
    slot = (width - left - 40) / max(1, len(values))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = left + 20 + i * slot
        x1 = x0 + slot * 0.6
        y = height - bottom - plot_h * value / high
        colour = COLOURS[i % len(COLOURS)]
        if partial and partial[i]:
            image.paste(_hatched(int(x1 - x0) + 1, int(height - bottom - y) + 1, colour), (int(x0), int(y)))
        else:
            draw.rectangle([x0, y, x1, height - bottom], fill=colour)
        note = " partial" if partial and partial[i] else ""  # the name below is cut to 18 characters
        draw.text((x0, y - 18), f"{value:.3g}{unit}{note}", fill="black", font=_font(13))
        if whiskers:
            lo, hi = whiskers[i]
            xm = (x0 + x1) / 2
            ylo, yhi = height - bottom - plot_h * lo / high, height - bottom - plot_h * hi / high
            draw.line([(xm, ylo), (xm, yhi)], fill="black", width=2)
            draw.line([(xm - 8, ylo), (xm + 8, ylo)], fill="black", width=2)
            draw.line([(xm - 8, yhi), (xm + 8, yhi)], fill="black", width=2)
        draw.text((x0, height - bottom + 8), label[:18], fill="black", font=_font(13))
    return image


def _hatched(width: int, height: int, colour: tuple[int, int, int]) -> Image.Image:
    """A bar drawn in outline with diagonal lines: a result the run cut short."""
    bar = Image.new("RGB", (max(1, width), max(1, height)), "white")
    draw = ImageDraw.Draw(bar)
    for x in range(0, width + height, 10):
        draw.line([(x - height, height), (x, 0)], fill=colour, width=2)
    draw.rectangle([0, 0, width - 1, height - 1], outline=colour, width=2)
    return bar


def _scatter(report: BenchmarkReport) -> Image.Image:
    ran = [m for m in report.models if m.timed and m.images]
    width, height, left, bottom, top = 900, 480, 80, 70, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 14), "Top-1 accuracy (%) against latency p50 (ms, batch 1)", fill="black", font=_font(20))
    p50 = [m.latency_ms["p50"] if m.latency_ms else 0.0 for m in ran]
    xmax = max([*p50, 1e-9]) * 1.2
    plot_w, plot_h = width - left - 40, height - bottom - top
    draw.line([(left, top), (left, height - bottom), (width - 40, height - bottom)], fill="black")
    for i in range(5):
        y = height - bottom - plot_h * i / 4
        draw.text((20, y - 8), f"{25 * i}", fill="black", font=_font(13))
        x = left + plot_w * i / 4
        draw.text((x - 10, height - bottom + 8), f"{xmax * i / 4:.0f}", fill="black", font=_font(13))
    for i, m in enumerate(ran):
        x = left + plot_w * p50[i] / xmax
        y = height - bottom - plot_h * m.top1
        draw.ellipse([x - 7, y - 7, x + 7, y + 7], fill=COLOURS[i % len(COLOURS)])
        draw.text((x + 10, y - 8), m.name, fill="black", font=_font(14))
    return image


def save_charts(report: BenchmarkReport, folder: Path) -> list[Path]:
    ran = [m for m in report.models if m.error is None and m.images]
    if not ran:
        return []
    folder = Path(folder)
    names = [m.name for m in ran]
    partial = [m.partial for m in ran]
    timed = [m for m in ran if m.throughput_ips is not None]  # a partial result has no speed to draw
    memory = memory_caption(report.models)
    images = {
        "accuracy_top1.png": _bar_chart("Top-1 accuracy (%) with 95 % Wilson intervals", names,
                                        [m.top1 * 100 for m in ran], "",
                                        [(m.top1_ci[0] * 100, m.top1_ci[1] * 100) for m in ran], 100.0, partial),
        "accuracy_top5.png": _bar_chart("Top-5 accuracy (%) with 95 % Wilson intervals", names,
                                        [m.top5 * 100 for m in ran], "",
                                        [(m.top5_ci[0] * 100, m.top5_ci[1] * 100) for m in ran], 100.0, partial),
        "throughput.png": _bar_chart("Throughput (images/s, model forward)", [m.name for m in timed],
                                     [m.throughput_ips or 0.0 for m in timed], ""),
        "memory.png": _bar_chart(memory[0].upper() + memory[1:], names, [m.peak_rss_mb for m in ran], "",
                                 partial=partial),
    }
    images["accuracy_vs_latency.png"] = _scatter(report)
    written = []
    for filename in CHART_FILES:
        buffer = io.BytesIO()
        images[filename].save(buffer, format="PNG")
        atomic_write(folder / filename, _writer(buffer.getvalue()))
        written.append(folder / filename)
    return written


def write_all(report: BenchmarkReport, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """report.json, report.md and the charts; results.csv is written as the run goes (ResultsCsv)."""
    folder = Path(os.fspath(folder))
    save_json(report, folder / "report.json")
    atomic_write(folder / "report.md", _writer(markdown(report).encode("utf-8")))
    charts = save_charts(report, folder)
    return {"json": folder / "report.json", "markdown": folder / "report.md",
            **{p.stem: p for p in charts}}
