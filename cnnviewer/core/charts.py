"""The benchmark charts: one definition for the dashboard and the PNG/SVG files (drawn with matplotlib, no Qt)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnviewer.core.palette import lighter, model_colours

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from cnnviewer.core.benchmark import BenchmarkReport, ModelResult

MAX_CHARTED = 20  # results in a chart (more are unreadable there); the tables list them all
MAX_POINTS = 400  # latency dots per result: enough to show the distribution's shape
WIDTH_IN, HEIGHT_IN, DPI = 10.0, 5.0, 120  # a 1200 x 600 px PNG
HATCH = "///"  # a result cut short by Cancel


@dataclass(frozen=True)
class Chart:
    """One chart: its file name (without extension), title and value axis."""

    name: str
    title: str
    axis: str
    timed: bool  # draws only the results with speed figures (a partial result has none)


# Short titles: three charts share a row of the dashboard, and at 1280 px a long one pushed the third off it.
ACCURACY = Chart("accuracy", "Accuracy: top-1 / top-5, 95 % CI", "accuracy (%)", False)
THROUGHPUT = Chart("throughput", "Throughput (model forward)", "images/s", True)
MEMORY = Chart("memory", "Peak memory / parameters", "MB", False)
LATENCY = Chart("latency", "Latency at batch 1: p50 / p90 / p99", "ms", True)
SCATTER = Chart("accuracy_vs_latency", "Top-1 accuracy against latency p50", "top-1 accuracy (%)", True)
CHARTS = (ACCURACY, THROUGHPUT, MEMORY, LATENCY, SCATTER)
SCATTER_X_AXIS = "latency p50 at batch 1 (ms)"
NO_SPEED = "No result has speed figures: each model that ran was cut short by Cancel."
# A cluster run has no single figure per model: each worker process measured its own (core.report's Cluster section).
CLUSTER_SPEED = "Speed is per worker on a cluster: see the Cluster section of the report."
CLUSTER_MEMORY = "Memory is each worker's own: see the Cluster section of the report."


def on_cluster(report: BenchmarkReport) -> bool:
    """Whether ``report`` ran on a cluster (environment["cluster"]; core.report.ran_on_cluster)."""
    return isinstance(report.environment.get("cluster"), dict)


def memory_axis(caption: str) -> str:
    """The memory chart's value axis for a report's memory caption ("peak memory above start (MB)" ->
    "MB above start"): what the peak is measured from, which the short title leaves out."""
    return "MB " + caption.removesuffix(" (MB)").removeprefix("peak memory").strip(" ,")


def charted(report: BenchmarkReport) -> list[ModelResult]:
    """The results the charts draw: those with an accuracy (partial ones too), at most MAX_CHARTED."""
    return [m for m in report.models if m.error is None and m.images][:MAX_CHARTED]


def short_names(names: Sequence[str]) -> list[str]:
    """Tick labels without the part all names share ("efficientnet_lite0/1/2" -> "lite0/1/2"): long names
    overlap on a narrow chart."""
    if len(names) < 2:
        return list(names)
    prefix = os.path.commonprefix(list(names))
    cut = max(prefix.rfind("_"), prefix.rfind("-")) + 1
    if cut == 0 or any(len(name) == cut for name in names):
        return list(names)
    return [name[cut:] for name in names]


def latency_points(values: Sequence[float], limit: int = MAX_POINTS) -> np.ndarray:
    """At most ``limit`` values spread evenly over the sorted ones (order statistics): the same shape."""
    if len(values) <= limit:
        return np.asarray(values, dtype=float)
    # In pieces: converting a million Python floats in one call holds Python's lock (and the window) ~50 ms.
    data = np.concatenate([np.asarray(values[i:i + 65536], dtype=float) for i in range(0, len(values), 65536)])
    sorted_data: np.ndarray = np.sort(data)[np.linspace(0, len(data) - 1, limit).round().astype(int)]
    return sorted_data


def jitter(count: int, position: int, seed: int = 0) -> np.ndarray:
    """x positions of a strip plot's dots around ``position`` (the same every time: seeded)."""
    spread: np.ndarray = position + np.random.default_rng(seed + position).uniform(-0.15, 0.15, count)
    return spread


ACCURACY_HEADROOM = 0.07  # of the accuracy axis's span, above its top: a dot at 100 % shows whole


def accuracy_range(values: np.ndarray) -> tuple[float, float]:
    """The scatter's accuracy axis (%): the points with room for their labels, from a ten within 0-100, up to
    a ten and a little beyond it, so a point on the top line (100 % above all) is drawn whole, not halved."""
    low = max(0.0, float(np.floor((values.min() - 8) / 10) * 10))
    high = min(100.0, float(np.ceil((values.max() + 8) / 10) * 10))
    return low, high + (high - low) * ACCURACY_HEADROOM


def latency_range(values: np.ndarray) -> tuple[float, float]:
    """The scatter's latency axis (ms): from 0, with room on the right for the slowest point's label."""
    return 0.0, float(values.max()) * 1.3 + 1e-6


Box = tuple[float, float, float, float]  # left, bottom, right, top


def _overlap(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _outside(box: Box, bounds: Box) -> float:
    inside = _overlap(box, bounds)
    return (box[2] - box[0]) * (box[3] - box[1]) - inside


def place_labels(points: Sequence[tuple[float, float]], sizes: Sequence[tuple[float, float]], radius: float,
                 bounds: Box, gap: float = 4.0) -> list[tuple[float, float]]:
    """Where each point's label goes (its lower-left corner, in pixels, y up): the first spot around the point,
    nearest first, that covers no point, no label placed before it and nothing outside ``bounds``; when none
    is free, the one that covers least. A fixed offset put a label on its neighbour when two were close."""
    dots = [(x - radius, y - radius, x + radius, y + radius) for x, y in points]
    placed: list[Box] = []
    corners = []
    for (x, y), (width, height) in zip(points, sizes, strict=True):
        best: tuple[float, Box] | None = None
        for step in range(5):
            r = radius + gap + step * height
            d = r * 0.75
            for dx, dy in ((r, -height / 2), (-r - width, -height / 2), (d, d), (d, -d - height),
                           (-d - width, d), (-d - width, -d - height), (-width / 2, r), (-width / 2, -r - height)):
                box = (x + dx, y + dy, x + dx + width, y + dy + height)
                cost = sum(_overlap(box, other) for other in [*dots, *placed]) + 10 * _outside(box, bounds)
                if best is None or cost < best[0]:
                    best = (cost, box)
            if best is not None and best[0] == 0:
                break
        assert best is not None
        placed.append(best[1])
        corners.append((best[1][0], best[1][1]))
    return corners


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 1 else f"{value:.2f}"


# -- drawing (matplotlib, imported when a chart is drawn: never at the window's start) ----------------------


def _new_figure() -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure of its own with an Agg canvas, not pyplot: no global state, so a worker thread may draw.
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _round_ticks(axis: Any) -> None:
    """Ticks at round numbers (0, 250, 500...; never 2.54 or 1.14e+03), written out in full."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    axis.set_major_formatter(formatter)


def _style(ax: Axes, title: str, axis: str, results: Sequence[ModelResult] | None) -> None:
    ax.set_title(title, loc="left", fontsize=13, fontweight="bold")
    ax.set_ylabel(axis)
    _round_ticks(ax.yaxis)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    if results is not None:
        names = short_names([m.name for m in results])
        crowded = len(names) > 8 or sum(len(name) for name in names) > 90
        ax.set_xticks(np.arange(len(names)), labels=names, rotation=30 if crowded else 0,
                      ha="right" if crowded else "center")
        ax.set_xlim(-0.6, len(names) - 0.4)


def _legend(figure: Figure, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(label=label, **style) for label, style in items]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)


def _pairs(figure: Figure, ax: Axes, results: Sequence[ModelResult], colours: dict[str, str],
           values: Sequence[tuple[float, float]], labels: tuple[str, str],
           intervals: Sequence[tuple[tuple[float, float], tuple[float, float]]] | None = None) -> None:
    """Two bars per result in its colour, the first solid and the second lighter; hatched when partial.
    With ``intervals``, error bars, and the values at the foot of the bars, clear of the caps."""
    width = 0.38
    for i, m in enumerate(results):
        colour = colours[m.name]
        for offset, value, fill, j in ((-width / 2, values[i][0], colour, 0),
                                       (width / 2, values[i][1], lighter(colour), 1)):
            x = i + offset
            ax.bar(x, value, width, color="white" if m.partial else fill, edgecolor=colour, linewidth=1,
                   hatch=HATCH if m.partial else None)
            if intervals is not None:
                low, high = intervals[i][j]
                # max(): 100 * (top-5 = 1.0) may round past 100 * its interval's top
                ax.errorbar(x, value, yerr=[[max(0.0, value - low)], [max(0.0, high - value)]], fmt="none",
                            ecolor="black", elinewidth=1.2, capsize=4)
                if len(results) <= 12:
                    ax.text(x, 1.5, _number(value), ha="center", va="bottom", fontsize=8,
                            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                                  "alpha": 0.85})
            elif len(results) <= 12:
                ax.annotate(_number(value), (x, value), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=8)
    grey = "#555555"
    items = [(labels[0], {"facecolor": grey, "edgecolor": grey}),
             (labels[1], {"facecolor": lighter(grey), "edgecolor": grey})]
    if any(m.partial for m in results):
        items.append(("partial: cut short by Cancel", {"facecolor": "white", "edgecolor": grey, "hatch": HATCH}))
    _legend(figure, items)


def _note(ax: Axes, text: str, title: str | None = None) -> None:
    """``text`` where the chart would be (no empty axes); with ``title``, under the chart's title."""
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title, loc="left", fontsize=13, fontweight="bold")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, transform=ax.transAxes)


def _speed_figure(report: BenchmarkReport, chart: Chart) -> tuple[Figure, Axes, list[ModelResult]]:
    """A new chart of the results with speed figures; with none, the chart says why (the list is empty)."""
    figure, ax = _new_figure()
    timed = [m for m in charted(report) if m.timed]
    if not timed:
        if on_cluster(report):
            _note(ax, CLUSTER_SPEED, chart.title)
        else:
            _note(ax, NO_SPEED)
    return figure, ax, timed


def _accuracy(report: BenchmarkReport, colours: dict[str, str]) -> Figure:
    figure, ax = _new_figure()
    results = charted(report)
    _style(ax, ACCURACY.title, ACCURACY.axis, results)
    _pairs(figure, ax, results, colours, [(m.top1 * 100, m.top5 * 100) for m in results], ("top-1", "top-5"),
           [((m.top1_ci[0] * 100, m.top1_ci[1] * 100), (m.top5_ci[0] * 100, m.top5_ci[1] * 100)) for m in results])
    ax.set_ylim(0, 104)  # room above 100 %, or a whole bar and its error cap touch the frame
    return figure


def _memory(report: BenchmarkReport, colours: dict[str, str]) -> Figure:
    from cnnviewer.core.benchmark import memory_caption

    figure, ax = _new_figure()
    if on_cluster(report):  # the driver measured no model: a bar of 0.00 MB each would be false
        _note(ax, CLUSTER_MEMORY, MEMORY.title)
        return figure
    results = charted(report)
    caption = memory_caption(report.models)
    _style(ax, MEMORY.title, memory_axis(caption), results)
    _pairs(figure, ax, results, colours, [(m.peak_rss_mb, m.param_mb) for m in results],
           (caption.removesuffix(" (MB)"), "parameters"))
    ax.margins(y=0.12)  # room above the tallest bar for its value
    return figure


def _throughput(report: BenchmarkReport, colours: dict[str, str]) -> Figure:
    figure, ax, timed = _speed_figure(report, THROUGHPUT)
    if not timed:
        return figure
    _style(ax, THROUGHPUT.title, THROUGHPUT.axis, timed)
    values = [m.throughput_ips or 0.0 for m in timed]
    ax.bar(np.arange(len(timed)), values, 0.6, color=[colours[m.name] for m in timed], edgecolor="black",
           linewidth=0.5)
    low, high = throughput_errors(timed)
    if any(low) or any(high):  # the 95 % interval of the timing rounds (none in reports before them)
        ax.errorbar(np.arange(len(timed)), values, yerr=[low, high], fmt="none", ecolor="black", elinewidth=1.2,
                    capsize=4)
    if len(timed) <= 12:  # each value above its bar's error cap, clear of it
        for i, (value, top) in enumerate(zip(values, high, strict=True)):
            ax.annotate(_number(value), (i, value + top), xytext=(0, 3), textcoords="offset points", ha="center",
                        va="bottom", fontsize=8)
    ax.margins(y=0.12)
    return figure


def throughput_errors(timed: Sequence[ModelResult]) -> tuple[list[float], list[float]]:
    """How far each result's throughput interval reaches below and above its bar (0 where it has none)."""
    low, high = [], []
    for m in timed:
        value, ci = m.throughput_ips or 0.0, m.throughput_ci
        low.append(max(0.0, value - ci[0]) if ci else 0.0)
        high.append(max(0.0, ci[1] - value) if ci else 0.0)
    return low, high


def _latency(report: BenchmarkReport, colours: dict[str, str]) -> Figure:
    figure, ax, timed = _speed_figure(report, LATENCY)
    if not timed:
        return figure
    _style(ax, LATENCY.title, LATENCY.axis, timed)
    for i, m in enumerate(timed):
        latency = m.latency_ms or {}
        values = latency_points(m.latencies_ms or [latency["p50"]])
        ax.scatter(jitter(len(values), i), values, s=14, color=colours[m.name], alpha=0.7, linewidths=0)
        for key, width in (("p50", 3.0), ("p90", 1.5), ("p99", 1.0)):
            ax.hlines(latency[key], i - 0.3, i + 0.3, colors="black", linewidth=width)
        if len(timed) <= 12:
            ax.annotate(f"p50 {_number(latency['p50'])}", (i + 0.3, latency["p50"]), xytext=(3, 0),
                        textcoords="offset points", ha="left", va="center", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.margins(y=0.08)
    return figure


def _scatter(report: BenchmarkReport, colours: dict[str, str]) -> Figure:
    figure, ax, timed = _speed_figure(report, SCATTER)
    if not timed:
        return figure
    _style(ax, SCATTER.title, SCATTER.axis, None)
    ax.set_xlabel(SCATTER_X_AXIS)
    _round_ticks(ax.xaxis)
    ax.grid(axis="x", alpha=0.3)
    x = np.array([(m.latency_ms or {})["p50"] for m in timed], dtype=float)
    y = np.array([m.top1 * 100 for m in timed], dtype=float)
    size = 90.0  # points squared
    ax.scatter(x, y, s=size, c=[colours[m.name] for m in timed], edgecolors="black", linewidths=0.8, zorder=3)
    ax.set_xlim(*latency_range(x))
    low, high = accuracy_range(y)
    ax.set_ylim(low, high)
    # No tick in the headroom above the top ten (no "105 %"): the ticks the locator picks up to that ten.
    ax.set_yticks([t for t in ax.yaxis.get_major_locator().tick_values(low, high) if low <= t <= min(100.0, high)])
    _label_points(figure, ax, x, y, short_names([m.name for m in timed]), radius=np.sqrt(size) / 2 * DPI / 72)
    return figure


def _label_points(figure: Figure, ax: Axes, x: np.ndarray, y: np.ndarray, names: list[str], radius: float) -> None:
    """Each point's name beside it where it covers no other point or label (measured by the renderer)."""
    figure.canvas.draw()  # lays the figure out: the axes' pixels are final from here
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's, made by draw()
    points = [tuple(p) for p in ax.transData.transform(np.column_stack([x, y]))]
    sizes = []
    for name in names:
        probe = ax.text(0, 0, name, fontsize=9)
        extent = probe.get_window_extent(renderer)
        sizes.append((extent.width, extent.height))
        probe.remove()
    frame = ax.get_window_extent(renderer)
    corners = place_labels(points, sizes, radius, (frame.x0, frame.y0, frame.x1, frame.y1))
    to_points = 72 / figure.dpi
    for i, (name, (px, py), (cx, cy)) in enumerate(zip(names, points, corners, strict=True)):
        label = ax.annotate(name, (x[i], y[i]), fontsize=9,
                            xytext=((cx - px) * to_points, (cy - py) * to_points), textcoords="offset points",
                            ha="left", va="bottom", annotation_clip=False)
        label.set_in_layout(False)  # placed in pixels: the layout must not move the axes under it


DRAW = {ACCURACY.name: _accuracy, THROUGHPUT.name: _throughput, MEMORY.name: _memory, LATENCY.name: _latency,
        SCATTER.name: _scatter}


def figure(chart: Chart, report: BenchmarkReport) -> Figure:
    """``chart`` of ``report`` as a matplotlib Figure (each result in its palette colour)."""
    return DRAW[chart.name](report, model_colours([m.name for m in report.models]))


def render(report: BenchmarkReport) -> dict[str, bytes]:
    """Every chart as PNG (1200 px wide) and SVG: file name -> bytes. Nothing when no result has an accuracy."""
    if not charted(report):
        return {}
    # savefig(format="svg") imports the SVG backend by name at run time: named here, a bundler sees it too.
    import matplotlib
    import matplotlib.backends.backend_svg

    files = {}
    # No date, and ids not salted with a random uuid: the same report draws the same SVG bytes.
    with matplotlib.rc_context({"svg.hashsalt": "cnnviewer"}):
        for chart in CHARTS:
            drawn = figure(chart, report)
            for kind in ("png", "svg"):
                buffer = io.BytesIO()
                drawn.savefig(buffer, format=kind, dpi=DPI, metadata={"Date": None} if kind == "svg" else None)
                files[f"{chart.name}.{kind}"] = buffer.getvalue()
    return files


CHART_FILES = tuple(f"{chart.name}.{kind}" for chart in CHARTS for kind in ("png", "svg"))
