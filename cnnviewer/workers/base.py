"""A QRunnable that runs one core call off the GUI thread and reports through its own signals."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger("cnnviewer.workers")


class WorkerSignals(QObject):
    """Signals live on a QObject owned by the worker (a QRunnable cannot have signals)."""

    returned = Signal(int, object)  # request id, result
    yielded = Signal(int, object)  # request id, one item of a generator job
    progressed = Signal(int, int, int, str)  # request id, done, total, text
    errored = Signal(int, object)  # request id, exception
    finished = Signal(int)


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
    the request id it was started with. A run ends with ``finished``, after ``returned`` (not when
    cancelled) or ``errored``.
    """

    def __init__(self, request_id: int, job: Callable[..., Any], *args: Any, **kwargs: Any):
        super().__init__()
        # The window keeps a reference while the job runs; Python, not the pool, frees the worker.
        self.setAutoDelete(False)
        self.request_id = request_id
        self.signals = WorkerSignals()
        self.token = CancelToken()
        self._job, self._args, self._kwargs = job, args, kwargs

    def cancel(self) -> None:
        self.token.cancel()

    def run(self) -> None:
        rid = self.request_id
        if self.token.cancelled:  # superseded while it waited in the queue
            self.signals.finished.emit(rid)
            return
        try:
            result = self._job(self.token, Reporter(self), *self._args, **self._kwargs)
            if hasattr(result, "__next__"):
                for item in result:
                    if self.token.cancelled:
                        break
                    self.signals.yielded.emit(rid, item)
                result = None
            if not self.token.cancelled:
                self.signals.returned.emit(rid, result)
        except Exception as exc:  # every failure reaches the one error handler of the window
            log.exception("worker job %s failed", getattr(self._job, "__name__", self._job))
            try:
                self.signals.errored.emit(rid, exc)
            except RuntimeError:
                pass  # the receiver is gone: the window was closed
        finally:
            try:
                self.signals.finished.emit(rid)
            except RuntimeError:
                pass


def new_pool(max_threads: int, name: str) -> QThreadPool:
    """A thread pool of its own (not the global one), so an owner can wait for just its jobs."""
    pool = QThreadPool()
    pool.setMaxThreadCount(max_threads)
    pool.setObjectName(name)
    return pool
