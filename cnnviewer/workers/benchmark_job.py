"""The benchmark window's job: core's benchmark session run into a folder, with snapshots for the dashboard."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnviewer.workers.base import CancelToken, Reporter

if TYPE_CHECKING:  # torch stays unimported until the job runs: the window shows first
    from cnnviewer.core.benchmark import BenchmarkConfig, BenchmarkReport, Progress
    from cnnviewer.core.datasets import LabelledSet


@dataclass(frozen=True)
class BenchmarkSnapshot:
    """A copy of the report as it stands after a model finished (or the run was cancelled)."""

    report: BenchmarkReport


def benchmark_job(token: CancelToken, report: Reporter, dataset: LabelledSet, config: BenchmarkConfig,
                  out_dir: str, pause: Callable[[], float] | None = None) -> BenchmarkReport:
    """Run ``config`` over ``dataset`` (read once, by the window) into ``out_dir``, a folder made for this run.

    The session writes results.csv batch by batch, report.json after each model and every file at the
    end, a cancelled run's too. ``pause`` is called between batches and blocks while interactive work
    waits for the CPU; the session leaves that wait out of the timings.
    """
    from cnnviewer.core.session import run_to_folder

    def on_progress(p: Progress) -> None:
        # A batch's text is the model's key; another names its phase (loading, measuring latency).
        phase = f"{p.done}/{p.total}" if p.text == p.model else p.text.removesuffix(f" {p.model}")
        report(int(p.fraction * 1000), 1000, f"{p.model} ({p.model_number}/{p.models}): {phase}")

    def on_snapshot(current: BenchmarkReport) -> None:
        # The session goes on changing its report; the GUI thread gets a copy of this moment.
        report.emit(BenchmarkSnapshot(copy.deepcopy(current)))

    return run_to_folder(dataset, config, out_dir, progress=on_progress, should_cancel=token,
                         on_snapshot=on_snapshot, pause=pause)
