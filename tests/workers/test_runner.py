"""The task runner without widgets: lanes, ordering, one outcome per request, cancels, stale results, pauses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cnnviewer.core.errors import CnnviewerError
from cnnviewer.workers.base import CancelToken, Reporter
from cnnviewer.workers.runner import TaskRunner


@pytest.fixture
def runner(qapp: Any) -> Iterator[TaskRunner]:
    made = TaskRunner()
    yield made
    made.shutdown()
    assert made.active_threads() == 0


class Outcomes:
    """Every callback a request got, as (request name, what, value)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def callbacks(self, name: str) -> dict[str, Any]:
        return {
            "on_returned": lambda result: self.events.append((name, "returned", result)),
            "on_error": lambda exc: self.events.append((name, "errored", exc)),
            "on_cancelled": lambda kept: self.events.append((name, "cancelled", kept)),
            "on_yielded": lambda item: self.events.append((name, "yielded", item)),
            "on_progress": lambda done, total, text: self.events.append((name, "progress", done)),
        }

    def ends(self, name: str | None = None) -> list[tuple[str, str, Any]]:
        return [e for e in self.events if e[1] in ("returned", "errored", "cancelled") and name in (None, e[0])]


def wait_job(started: threading.Event, release: threading.Event, value: Any = None):
    """A job that says it started, then waits (checking its token) until released."""
    def job(token: CancelToken, report: Reporter) -> Any:
        started.set()
        while not release.wait(0.01):
            if token.cancelled:
                return None
        return value
    return job


def value_job(token: CancelToken, report: Reporter, value: Any) -> Any:
    report(1, 1, "done")
    return value


def test_one_lane_runs_requests_in_the_order_asked(runner, qtbot):
    ran: list[int] = []
    outcomes = Outcomes()

    def job(token: CancelToken, report: Reporter, number: int) -> int:
        ran.append(number)
        return number

    for number in range(5):
        runner.submit("t", f"kind{number}", job, number, **outcomes.callbacks(str(number)))
    qtbot.waitUntil(lambda: len(outcomes.ends()) == 5, timeout=10_000)
    assert ran == [0, 1, 2, 3, 4]
    assert [e[2] for e in outcomes.ends()] == [0, 1, 2, 3, 4]


def test_every_request_ends_in_exactly_one_outcome(runner, qtbot):
    outcomes = Outcomes()

    def fails(token: CancelToken, report: Reporter) -> None:
        raise CnnviewerError("photo.jpg: not an image.")

    def generator(token: CancelToken, report: Reporter) -> Iterator[int]:
        yield 1
        yield 2

    started, release = threading.Event(), threading.Event()
    runner.submit("t", "returns", value_job, 42, lane="io", **outcomes.callbacks("returns"))
    runner.submit("t", "fails", fails, lane="io", **outcomes.callbacks("fails"))
    runner.submit("t", "yields", generator, **outcomes.callbacks("yields"))
    runner.submit("t", "cancelled", wait_job(started, release), lane="benchmark", **outcomes.callbacks("cancelled"))
    assert started.wait(10)
    assert runner.cancel("t", "cancelled")
    qtbot.waitUntil(lambda: len(outcomes.ends()) == 4 and not runner.running(), timeout=10_000)
    qtbot.wait(50)  # anything still queued for the GUI thread would land now
    assert sorted((name, what) for name, what, _ in outcomes.ends()) == [
        ("cancelled", "cancelled"), ("fails", "errored"), ("returns", "returned"), ("yields", "returned")]
    assert [v for n, what, v in outcomes.events if n == "yields" and what == "yielded"] == [1, 2]
    assert str(next(v for n, _, v in outcomes.ends("fails"))) == "photo.jpg: not an image."
    assert not runner.cancel("t", "cancelled")  # nothing of that owner and kind runs any more


def test_a_request_cancelled_while_queued_never_runs_and_ends_cancelled(runner, qtbot):
    outcomes = Outcomes()
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []
    runner.submit("t", "blocker", wait_job(started, release, "blocker"), **outcomes.callbacks("blocker"))
    assert started.wait(10)
    queued = runner.submit("t", "queued", lambda token, report: ran.append("queued"), **outcomes.callbacks("queued"))
    assert ("t", "queued", queued) in runner.running()
    assert runner.cancel_request(queued)
    assert outcomes.events == []  # delivered from the event loop, never inside the caller's call
    qtbot.waitUntil(lambda: bool(outcomes.ends("queued")), timeout=10_000)
    assert outcomes.ends("queued") == [("queued", "cancelled", None)]
    release.set()
    qtbot.waitUntil(lambda: bool(outcomes.ends("blocker")), timeout=10_000)
    assert ran == [] and outcomes.ends("blocker") == [("blocker", "returned", "blocker")]
    assert not runner.cancel_request(queued)


def test_a_new_request_cancels_only_the_same_owner_and_kind(runner, qtbot):
    outcomes = Outcomes()
    started = {name: threading.Event() for name in ("a", "b", "c")}
    release = threading.Event()
    runner.submit("dialog", "weights", wait_job(started["a"], release, "a"), lane="io", **outcomes.callbacks("a"))
    runner.submit("main", "weights", wait_job(started["b"], release, "b"), lane="io", **outcomes.callbacks("b"))
    assert started["a"].wait(10) and started["b"].wait(10)
    runner.submit("main", "weights", wait_job(started["c"], release, "c"), lane="io", **outcomes.callbacks("c"))
    qtbot.waitUntil(lambda: bool(outcomes.ends("b")), timeout=10_000)  # superseded: ends cancelled at once
    assert outcomes.ends("b") == [("b", "cancelled", None)] and not outcomes.ends("a")
    release.set()
    qtbot.waitUntil(lambda: len(outcomes.ends()) == 3, timeout=10_000)
    assert outcomes.ends("a") == [("a", "returned", "a")] and outcomes.ends("c") == [("c", "returned", "c")]


def test_a_result_sent_before_a_newer_request_is_dropped(runner, qtbot):
    """The race a cancel cannot close: the old job had already emitted its result when the new one came."""
    outcomes = Outcomes()
    old = runner.submit("main", "classify", value_job, "old", **outcomes.callbacks("old"))
    deadline = time.monotonic() + 10
    while runner.active_threads() or runner.is_running(old):  # no event processing: the result stays queued
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert outcomes.events == []
    runner.submit("main", "classify", value_job, "new", **outcomes.callbacks("new"))
    qtbot.waitUntil(lambda: len(outcomes.ends()) == 2, timeout=10_000)
    assert outcomes.ends("old") == [("old", "cancelled", None)]  # its result and progress never arrived
    assert [e for e in outcomes.events if e[0] == "old"] == [("old", "cancelled", None)]
    assert outcomes.ends("new") == [("new", "returned", "new")]


def test_cancelling_a_running_request_ends_it_cancelled_with_nothing_after(runner, qtbot):
    outcomes = Outcomes()
    started = threading.Event()

    def counting(token: CancelToken, report: Reporter) -> Iterator[int]:
        number = 0
        while True:
            started.set()
            yield number
            number += 1
            time.sleep(0.001)

    rid = runner.submit("bench", "run", counting, lane="benchmark", **outcomes.callbacks("run"))
    assert started.wait(10)
    assert runner.cancel_request(rid)
    qtbot.waitUntil(lambda: bool(outcomes.ends("run")), timeout=10_000)
    seen = len(outcomes.events)
    qtbot.wait(50)
    assert len(outcomes.events) == seen and outcomes.ends() == [("run", "cancelled", None)]


def test_a_forgotten_owner_gets_nothing_more(runner, qtbot):
    outcomes = Outcomes()
    started, release = threading.Event(), threading.Event()
    runner.submit("dialog", "weights", wait_job(started, release, "late"), lane="io", **outcomes.callbacks("late"))
    assert started.wait(10)
    runner.forget_owner("dialog")
    release.set()
    qtbot.waitUntil(lambda: not runner.running(), timeout=10_000)
    qtbot.wait(50)
    assert outcomes.events == []


def test_pause_for_interactive_waits_while_interactive_work_runs(runner, qtbot):
    assert runner.pause_for_interactive() == 0.0  # nothing interactive: no wait at all
    started, release = threading.Event(), threading.Event()
    outcomes = Outcomes()
    runner.submit("main", "classify", wait_job(started, release, "top-5"), **outcomes.callbacks("classify"))
    assert started.wait(10)
    waited: list[float] = []
    benchmark = threading.Thread(target=lambda: waited.append(runner.pause_for_interactive()))
    benchmark.start()
    benchmark.join(0.3)
    assert benchmark.is_alive() and not waited, "the benchmark went on while the user's request ran"
    release.set()
    benchmark.join(10)
    assert waited and waited[0] >= 0.3
    qtbot.waitUntil(lambda: bool(outcomes.ends()), timeout=10_000)
    assert runner.pause_for_interactive() == 0.0


def test_io_work_does_not_pause_a_benchmark(runner, qtbot):
    started, release = threading.Event(), threading.Event()
    runner.submit("main", "thumbnails", wait_job(started, release), lane="io")
    assert started.wait(10)
    assert runner.pause_for_interactive() == 0.0
    release.set()


def test_pause_for_interactive_counts_a_cancelled_queued_request_as_gone(runner, qtbot):
    started, release = threading.Event(), threading.Event()
    runner.submit("main", "classify", wait_job(started, release))
    assert started.wait(10)
    queued = runner.submit("compare", "compare", value_job, 1)
    runner.cancel_request(queued)  # while the lane's one thread is still busy: it is taken off the queue
    release.set()
    benchmark = threading.Thread(target=runner.pause_for_interactive)
    benchmark.start()
    benchmark.join(10)
    assert not benchmark.is_alive()


def test_shutdown_wakes_a_paused_benchmark_and_refuses_new_work(runner, qtbot):
    started, release = threading.Event(), threading.Event()
    runner.submit("main", "classify", wait_job(started, release))
    assert started.wait(10)
    benchmark = threading.Thread(target=runner.pause_for_interactive)
    benchmark.start()
    runner.shutdown()  # cancels the interactive job; its token ends the wait
    benchmark.join(10)
    assert not benchmark.is_alive()
    assert runner.submit("main", "classify", value_job, 1) == -1


def test_an_unknown_lane_is_refused(runner):
    with pytest.raises(ValueError, match="unknown lane"):
        runner.submit("main", "classify", value_job, 1, lane="gpu")
