"""A QRunnable that runs one core call off the GUI thread and reports through its own signals."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from cnnviewer.core.errors import CnnviewerError

log = logging.getLogger("cnnviewer.workers")


class WorkerSignals(QObject):
    """Signals live on a QObject owned by the worker (a QRunnable cannot have signals)."""

    returned = Signal(int, object)  # request id, result
    yielded = Signal(int, object)  # request id, one item of a generator job
    progressed = Signal(int, int, int, str)  # request id, done, total, text
    errored = Signal(int, object)  # request id, exception
    # request id, and what the job returned on its way out (a cancelled benchmark's report of what it
    # finished), None when it never ran, raised or was a generator: stopped because it was cancelled
    cancelled = Signal(int, object)
    finished = Signal(int)  # request id: always last, after exactly one of returned, errored, cancelled


class CancelToken:
    """Cooperative cancellation: the job checks ``cancelled`` between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        """The token itself is a ``should_cancel`` callable for core's long calls."""
        return self.cancelled


class Reporter:
    """What a job gets to talk back with: ``report(done, total, text)`` and ``report.emit(item)``."""

    def __init__(self, worker: Worker):
        self._worker = worker

    def __call__(self, done: int, total: int, text: str = "") -> None:
        if not self._worker.token.cancelled:
            self._worker.signals.progressed.emit(self._worker.request_id, done, total, text)

    def emit(self, item: Any) -> None:
        """Send one partial result to the GUI thread as ``yielded``."""
        self._worker.signals.yielded.emit(self._worker.request_id, item)


class Worker(QRunnable):
    """Runs ``job(token, report, *args)``; a generator job emits ``yielded`` for each item.

    ``report(done, total, text)`` emits ``progressed`` and ``report.emit(item)`` emits ``yielded``.
    Workers never touch widgets: every result reaches the GUI thread as a queued signal carrying
    the request id it was started with. Every run ends in exactly one of ``returned``, ``errored``
    or ``cancelled`` (a job cancelled while still queued too), then ``finished`` (superqt's
    ``WorkerBase`` does the same): an owner that handles the three never waits for a run forever.
    """

    def __init__(self, request_id: int, job: Callable[..., Any], *args: Any, **kwargs: Any):
        super().__init__()
        # The owner keeps a reference while the job runs; Python, not the pool, frees the worker.
        self.setAutoDelete(False)
        self.request_id = request_id
        self.signals = WorkerSignals()
        self.token = CancelToken()
        self.ended = threading.Event()  # set once the run is over, before ``finished`` is emitted
        self.on_ended: Callable[[], None] | None = None  # called on the worker's thread when the run is over
        self._job, self._args, self._kwargs = job, args, kwargs

    def cancel(self) -> None:
        self.token.cancel()

    def run(self) -> None:
        rid = self.request_id
        try:
            outcome = self._run_job()
        finally:
            self.ended.set()
            if self.on_ended is not None:
                self.on_ended()
        try:
            outcome()
            self.signals.finished.emit(rid)
        except RuntimeError:
            pass  # the signals' owner is gone: the window was closed

    def end_unstarted(self) -> None:
        """End a run that never started (taken out of its pool's queue): ``cancelled``, then ``finished``."""
        self.token.cancel()
        self.ended.set()
        self.signals.cancelled.emit(self.request_id, None)
        self.signals.finished.emit(self.request_id)

    def _run_job(self) -> Callable[[], None]:
        """Run the job; return the emission of its one outcome (emitted after ``ended`` is set)."""
        rid, signals = self.request_id, self.signals
        if self.token.cancelled:  # superseded while it waited in the queue
            return lambda: signals.cancelled.emit(rid, None)
        name = getattr(self._job, "__name__", repr(self._job))
        try:
            result = self._job(self.token, Reporter(self), *self._args, **self._kwargs)
            if hasattr(result, "__next__"):
                for item in result:
                    if self.token.cancelled:
                        break
                    signals.yielded.emit(rid, item)
                result = None
        except Exception as exc:  # every failure reaches its owner's error handler
            if self.token.cancelled:  # a cancel is not an error, whatever the job raised on its way out
                log.info("worker job %s was cancelled (it ended with %s: %s)", name, type(exc).__name__, exc)
                return lambda: signals.cancelled.emit(rid, None)
            if isinstance(exc, CnnviewerError):  # expected: a sentence for the user, no traceback needed
                log.info("worker job %s: %s", name, exc)
            else:
                log.exception("worker job %s failed", name)
            return functools.partial(signals.errored.emit, rid, exc)
        if self.token.cancelled:
            return functools.partial(signals.cancelled.emit, rid, result)
        return functools.partial(signals.returned.emit, rid, result)


def new_pool(max_threads: int, name: str) -> QThreadPool:
    """A thread pool of its own (not the global one), so an owner can wait for just its jobs."""
    pool = QThreadPool()
    pool.setMaxThreadCount(max_threads)
    pool.setObjectName(name)
    return pool
