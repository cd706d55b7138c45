"""The worker base without widgets: how a run ends, cancellation, errors, and the threads it runs on."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from cnnviewer.core.errors import CnnviewerError
from cnnviewer.workers.base import CancelToken, Reporter, Worker, new_pool


def record(worker: Worker) -> list[tuple[Any, ...]]:
    """Every signal the worker emits, in order, as (name, *arguments)."""
    events: list[tuple[Any, ...]] = []
    signals = worker.signals
    signals.returned.connect(lambda rid, result: events.append(("returned", rid, result)))
    signals.yielded.connect(lambda rid, item: events.append(("yielded", rid, item)))
    signals.progressed.connect(lambda rid, done, total, text: events.append(("progressed", rid, done, total, text)))
    signals.errored.connect(lambda rid, exc: events.append(("errored", rid, exc)))
    signals.cancelled.connect(lambda rid, kept: events.append(("cancelled", rid)))
    signals.finished.connect(lambda rid: events.append(("finished", rid)))
    return events


def test_cancel_token_is_a_should_cancel_callable_seen_across_threads():
    token = CancelToken()
    assert not token.cancelled and token() is False
    thread = threading.Thread(target=token.cancel)
    thread.start()
    thread.join()
    assert token.cancelled and token() is True


def test_a_job_reports_returns_and_finishes_once(qapp):
    def job(token: CancelToken, report: Reporter, value: int) -> int:
        report(1, 2, "half way")
        return value * 2

    worker = Worker(7, job, 21)
    events = record(worker)
    worker.run()
    assert events == [("progressed", 7, 1, 2, "half way"), ("returned", 7, 42), ("finished", 7)]


def test_a_generator_job_yields_each_item_then_returns(qapp):
    def job(token: CancelToken, report: Reporter):
        report.emit("partial")
        yield "a"
        yield "b"

    worker = Worker(3, job)
    events = record(worker)
    worker.run()
    assert events == [("yielded", 3, "partial"), ("yielded", 3, "a"), ("yielded", 3, "b"), ("returned", 3, None),
                      ("finished", 3)]


def test_an_expected_error_is_errored_once_and_logged_without_a_traceback(qapp, caplog):
    def job(token: CancelToken, report: Reporter) -> None:
        raise CnnviewerError("photo.jpg: not an image.")

    worker = Worker(5, job)
    events = record(worker)
    with caplog.at_level(logging.INFO, logger="cnnviewer.workers"):
        worker.run()
    assert [e[0] for e in events] == ["errored", "finished"]
    assert str(events[0][2]) == "photo.jpg: not an image." and events[0][1] == 5
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "photo.jpg: not an image." in caplog.text and "Traceback" not in caplog.text


def test_an_unexpected_error_is_logged_with_its_traceback(qapp, caplog):
    def job(token: CancelToken, report: Reporter) -> None:
        raise ZeroDivisionError("division by zero")

    worker = Worker(6, job)
    events = record(worker)
    with caplog.at_level(logging.INFO, logger="cnnviewer.workers"):
        worker.run()
    assert [e[0] for e in events] == ["errored", "finished"]
    assert "worker job job failed" in caplog.text and "Traceback" in caplog.text


def test_an_error_after_a_cancel_is_a_cancel(qapp, caplog):
    worker: Worker

    def job(token: CancelToken, report: Reporter) -> None:
        worker.cancel()
        raise RuntimeError("the download was interrupted")

    worker = Worker(8, job)
    events = record(worker)
    with caplog.at_level(logging.INFO, logger="cnnviewer.workers"):
        worker.run()
    assert events == [("cancelled", 8), ("finished", 8)]
    assert "Traceback" not in caplog.text and all(r.levelname == "INFO" for r in caplog.records)


def test_a_job_cancelled_while_queued_never_runs(qapp):
    ran = []
    worker = Worker(9, lambda token, report: ran.append(True))
    events = record(worker)
    worker.cancel()
    worker.run()
    assert ran == [] and events == [("cancelled", 9), ("finished", 9)]
    assert worker.ended.is_set()


def test_a_job_taken_from_the_queue_ends_cancelled(qapp):
    worker = Worker(10, lambda token, report: None)
    events = record(worker)
    worker.end_unstarted()
    assert events == [("cancelled", 10), ("finished", 10)] and worker.token.cancelled


def test_cancelling_a_generator_stops_it_between_items_and_returns_nothing(qapp):
    def job(token: CancelToken, report: Reporter):
        for i in range(5):
            report(i, 5, "")
            yield i

    worker = Worker(4, job)
    events = record(worker)
    # The owner cancels as the second item arrives: nothing after it may reach the owner.
    worker.signals.yielded.connect(lambda rid, item: item == 1 and worker.cancel())
    worker.run()
    assert [e for e in events if e[0] != "progressed"] == [("yielded", 4, 0), ("yielded", 4, 1), ("cancelled", 4),
                                                          ("finished", 4)]
    assert [e[2] for e in events if e[0] == "progressed"] == [0, 1]  # report() is silent once cancelled


def test_a_job_that_returns_after_being_cancelled_returns_nothing(qapp: object) -> None:
    worker: Worker

    def job(token: CancelToken, report: Reporter) -> str:
        worker.cancel()  # the owner asked for something newer while this one was running
        report(1, 1, "done")
        return "stale"

    worker = Worker(2, job)
    events = record(worker)
    worker.run()
    assert events == [("cancelled", 2), ("finished", 2)]


def test_jobs_run_in_the_pool_not_on_the_calling_thread(qtbot):
    threads = []

    def job(token: CancelToken, report: Reporter) -> str:
        threads.append(threading.get_ident())
        return "done"

    pool = new_pool(1, "test")
    worker = Worker(11, job)
    events = record(worker)
    with qtbot.waitSignals([worker.signals.returned, worker.signals.finished], order="strict", timeout=10_000):
        pool.start(worker)
    assert events == [("returned", 11, "done"), ("finished", 11)]
    assert threads and threads[0] != threading.get_ident()
    assert pool.waitForDone(10_000) and pool.objectName() == "test" and pool.maxThreadCount() == 1


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyError("x")])
def test_unexpected_errors_reach_the_owner_too(qapp, exc):
    def job(token: CancelToken, report: Reporter) -> None:
        raise exc

    worker = Worker(1, job)
    events = record(worker)
    worker.run()
    assert events == [("errored", 1, exc), ("finished", 1)]
