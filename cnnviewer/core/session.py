"""A benchmark session into a folder: results.csv as it goes, report.json after each model, every file at the end."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from pathlib import Path

from cnnviewer.core.benchmark import BenchmarkConfig, BenchmarkReport, BenchmarkRun, ImageRow, Pause, Progress
from cnnviewer.core.datasets import LabelledSet
from cnnviewer.core.errors import CnnviewerError, OutputError
from cnnviewer.core.report import ResultsCsv, save_json, write_all

log = logging.getLogger(__name__)

#: Told of a file that could not be written, and the run goes on: "csv" (results.csv: the rest of the run
#: is not added to it), "json" (report.json after a model: tried again at the end) or "report" (the
#: final files).
OnProblem = Callable[[str, OutputError], None]


class RunOutputs:
    """What a run writes as it goes, for a local run and a cluster run alike: results.csv batch by batch
    (after a failure to write it, the rest of the run is not added, and ``on_problem`` hears once), report.json
    at each update until the run finished (the finished one is written last, by write_final), and a deep copy
    of the report for ``on_snapshot``."""

    def __init__(self, out: Path, results: ResultsCsv, on_snapshot: Callable[[BenchmarkReport], None] | None,
                 on_problem: OnProblem | None) -> None:
        self.out, self.results = out, results
        self._on_snapshot, self._on_problem = on_snapshot, on_problem
        self.broken: set[str] = set()

    def problem(self, kind: str, exc: OutputError) -> None:
        if self._on_problem is not None:
            self._on_problem(kind, exc)
        else:
            log.warning("%s; the run goes on", exc)

    def on_rows(self, model: str, rows: list[ImageRow]) -> None:
        if "csv" in self.broken:
            return
        try:
            self.results.add(model, rows)
        except OutputError as exc:
            self.broken.add("csv")
            self.problem("csv", exc)

    def on_update(self, report: BenchmarkReport) -> None:
        try:
            if not report.complete:  # the finished report.json is written by write_final, after report.md
                save_json(report, self.out / "report.json")
        except OutputError as exc:
            self.problem("json", exc)
        if self._on_snapshot is not None:
            self._on_snapshot(copy.deepcopy(report))  # the run goes on changing its own

    def write_final(self, report: BenchmarkReport) -> None:
        """report.json, report.md, report.html and the charts at the end; a failure goes to ``on_problem``
        when there is one, else it is raised."""
        try:
            write_all(report, self.out)
        except OutputError as exc:
            self._save_json_anyway(report)
            if self._on_problem is None:
                raise
            self._on_problem("report", exc)

    def write_after_failure(self, report: BenchmarkReport) -> None:
        """The report of what had finished when the run failed; the failure being raised is the one to show,
        so this one's own failure is only logged."""
        try:
            write_all(report, self.out)
        except CnnviewerError as exc:
            log.info("the report of the failed run could not be written either: %s", exc)
            self._save_json_anyway(report)

    def _save_json_anyway(self, report: BenchmarkReport) -> None:
        """report.json when another file of the final report failed (write_all saves it last): what the run
        finished is all there, and a run that finished is not one to resume."""
        try:
            save_json(report, self.out / "report.json")
        except OutputError as exc:
            log.info("report.json could not be written either: %s", exc)


def run_to_folder(dataset: LabelledSet, config: BenchmarkConfig, out_dir: str | os.PathLike[str], *,
                  progress: Callable[[Progress], None] | None = None,
                  should_cancel: Callable[[], bool] | None = None,
                  on_snapshot: Callable[[BenchmarkReport], None] | None = None,
                  pause: Pause | None = None,
                  on_problem: OnProblem | None = None) -> BenchmarkReport:
    """Run ``config`` over ``dataset`` into ``out_dir`` (made ready by report.prepare_run_folder).

    results.csv is always a new file (OutputError before any model runs if it cannot be); it grows batch
    by batch. report.json is saved after each model and ``on_snapshot`` gets a deep copy of the report
    then; at the end (cancelled or not) report.json, report.md and the charts are written. A
    KeyboardInterrupt stops at once and still writes the report, with ``cancelled`` set. Without
    ``on_problem`` a file that cannot be written is logged, and the final files' failure is raised.
    """
    out = Path(os.fspath(out_dir))
    outputs = RunOutputs(out, ResultsCsv(out / "results.csv"), on_snapshot, on_problem)
    results = outputs.results
    on_rows, on_update = outputs.on_rows, outputs.on_update

    run = BenchmarkRun(dataset, config, progress=progress, should_cancel=should_cancel, pause=pause,
                       on_rows=on_rows)
    try:
        report = run.run_all(on_update)
    except KeyboardInterrupt:  # stopped at once: the report keeps what had been handed on
        report = run.cut_short(cancelled=True)
        if on_snapshot is not None:
            on_snapshot(copy.deepcopy(report))
    except Exception:  # an unexpected failure still leaves a report of what had finished
        outputs.write_after_failure(run.cut_short(cancelled=False))
        raise
    finally:
        results.close()
    outputs.write_final(report)
    return report
