"""The benchmark window's job: core's benchmark session run into a folder, with snapshots for the dashboard."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnviewer.workers.base import CancelToken, Reporter

if TYPE_CHECKING:  # torch stays unimported until the job runs: the window shows first
    from cnnviewer.core.benchmark import BenchmarkConfig, BenchmarkReport, Progress
    from cnnviewer.core.cluster import ClusterOptions
    from cnnviewer.core.datasets import LabelledSet


@dataclass(frozen=True)
class BenchmarkSnapshot:
    """A copy of the report as it stands after a model finished (or the run was cancelled)."""

    report: BenchmarkReport


def progress_text(p: Progress) -> str:
    """One line for a progress value: "efficientnet_lite0 (1/3): 48/100", or the phase it is in."""
    # A batch's text is the model's key; another names its phase (loading, measuring latency).
    phase = f"{p.done}/{p.total}" if p.text == p.model else p.text.removesuffix(f" {p.model}")
    return f"{p.model} ({p.model_number}/{p.models}): {phase}"


def benchmark_job(token: CancelToken, report: Reporter, dataset: LabelledSet, config: BenchmarkConfig,
                  out_dir: str, pause: Callable[[], float] | None = None,
                  cluster: ClusterOptions | None = None) -> BenchmarkReport:
    """Run ``config`` over ``dataset`` (read once, by the window) into ``out_dir``, a folder made for this run.

    The session writes results.csv batch by batch, report.json after each model and every file at the
    end, a cancelled run's too. ``pause`` is called between batches and blocks while interactive work
    waits for the CPU; the session leaves that wait out of the timings. Each Progress value is also
    emitted as it is (besides ``report``'s line of text), between the BenchmarkSnapshots.

    With ``cluster`` the same run goes to that Ray cluster (core.cluster.run_on_cluster: the same files,
    progress and snapshots); ``pause`` is not used then, as the models run on the cluster's workers.
    """

    def on_progress(p: Progress) -> None:
        report(int(p.fraction * 1000), 1000, progress_text(p))
        if not token.cancelled:  # as report() does: once Cancel is pressed, the window says so and no progress
            report.emit(p)  # the value itself, for the window's time left: no number read back out of the text

    def on_snapshot(current: BenchmarkReport) -> None:
        # The session goes on changing its report; the GUI thread gets a copy of this moment.
        report.emit(BenchmarkSnapshot(copy.deepcopy(current)))

    if cluster is not None:
        from cnnviewer.core.cluster import run_on_cluster

        return run_on_cluster(dataset, config, out_dir, cluster, progress=on_progress, should_cancel=token,
                              on_snapshot=on_snapshot)
    from cnnviewer.core.session import run_to_folder

    return run_to_folder(dataset, config, out_dir, progress=on_progress, should_cancel=token,
                         on_snapshot=on_snapshot, pause=pause)
