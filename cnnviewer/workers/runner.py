"""The one task runner every window submits to: request ids, lanes of worker threads, and the model caches.

Lanes: "interactive" (1 thread: classify, Grad-CAM, compare, dashboard maps), "benchmark" (1 thread)
and "io" (2 threads: previews, thumbnails, the catalog, weights, reports). A benchmark never blocks
interactive work: it has its own lane.

Sharing the CPU (2 cores): the user's click wins. A benchmark calls ``pause_for_interactive`` between
batches (core's ``pause=`` hook); while an interactive request is queued or running it waits there, at
the batch boundary, and the seconds it waited are left out of its timings and recorded.

A request is named by its owner and kind, e.g. ("main", "classify") or ("weights:resnet18", "weights"):
a new exclusive request cancels the previous one of the same owner and kind only, and whatever a
superseded request still sends is dropped. Every request ends in exactly one of ``on_returned``,
``on_error`` or ``on_cancelled(kept)`` on the GUI thread (a superseded request's late result counts as
cancelled), unless its owner was forgotten or the runner shut down.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, QTimer, Slot

from cnnviewer.workers import jobs
from cnnviewer.workers.base import Worker, new_pool

log = logging.getLogger("cnnviewer.workers")

#: lane -> threads. One interactive thread keeps the user's results in the order asked.
LANES = {"interactive": 1, "benchmark": 1, "io": 2}


@dataclass
class _Request:
    owner: str
    kind: str
    lane: str
    worker: Worker
    exclusive: bool
    on_returned: Callable[[Any], Any] | None = None
    on_yielded: Callable[[Any], Any] | None = None
    on_progress: Callable[[int, int, str], Any] | None = None
    on_error: Callable[[Exception], Any] | None = None
    on_cancelled: Callable[[Any], Any] | None = None
    ended: bool = False  # its one outcome was delivered (or will never be: its owner was forgotten)


class TaskRunner(QObject):
    """Owns request ids, the lanes (thread pools), the model cache and the explanation cache."""

    def __init__(self, parent: QObject | None = None, model_cache: jobs.ModelCache | None = None,
                 explanations: jobs.ExplanationCache | None = None) -> None:
        super().__init__(parent)
        self.model_cache = model_cache or jobs.ModelCache()
        self.explanations = explanations or jobs.ExplanationCache()
        self._lanes: dict[str, QThreadPool] = {name: new_pool(threads, name) for name, threads in LANES.items()}
        self._ids = itertools.count(1)
        self._requests: dict[int, _Request] = {}
        self._current: dict[tuple[str, str], int] = {}
        self._closed = False
        # Interactive requests not yet over, counted across threads for pause_for_interactive.
        self._interactive = threading.Condition()
        self._interactive_open = 0

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, owner: str, kind: str, job: Callable[..., Any], *args: Any, lane: str = "interactive",
               on_returned: Callable[[Any], Any] | None = None, on_yielded: Callable[[Any], Any] | None = None,
               on_progress: Callable[[int, int, str], Any] | None = None,
               on_error: Callable[[Exception], Any] | None = None,
               on_cancelled: Callable[[Any], Any] | None = None, exclusive: bool = True) -> int:
        """Run ``job(token, report, *args)`` on ``lane``; returns the request id (-1 once shut down).

        ``exclusive=False`` is for jobs that add to one another (thumbnails asked for in pieces): they
        neither cancel nor outdate each other.
        """
        if lane not in self._lanes:
            raise ValueError(f"unknown lane {lane!r}; the lanes are {', '.join(self._lanes)}")
        if self._closed:
            return -1
        rid = next(self._ids)
        if exclusive:
            previous = self._current.get((owner, kind))
            if previous is not None:
                self.cancel_request(previous)
            self._current[(owner, kind)] = rid
        worker = Worker(rid, job, *args)
        request = _Request(owner, kind, lane, worker, exclusive, on_returned, on_yielded, on_progress, on_error,
                           on_cancelled)
        self._requests[rid] = request
        signals = worker.signals
        signals.returned.connect(self._on_returned)
        signals.yielded.connect(self._on_yielded)
        signals.progressed.connect(self._on_progressed)
        signals.errored.connect(self._on_errored)
        signals.cancelled.connect(self._on_cancelled)
        signals.finished.connect(self._on_finished)
        if lane == "interactive":
            with self._interactive:
                self._interactive_open += 1
            worker.on_ended = self._interactive_ended
        log.debug("request %d: %s/%s on %s", rid, owner, kind, lane)
        self._lanes[lane].start(worker)
        return rid

    # -- cancelling ---------------------------------------------------------------------------

    def cancel(self, owner: str, kind: str) -> bool:
        """Cancel every request of ``owner`` and ``kind``; False if none was queued or running."""
        found = [rid for rid, r in self._requests.items() if (r.owner, r.kind) == (owner, kind) and not r.ended]
        return any([self.cancel_request(rid) for rid in found])

    def cancel_request(self, request_id: int) -> bool:
        """Ask a queued or running request to stop; False if it already ended.

        A queued one is taken out of its lane and ends as cancelled without running; a running one
        stops at its next check of the token, and ends as cancelled.
        """
        request = self._requests.get(request_id)
        if request is None or request.ended or request.worker.ended.is_set():
            return False
        worker = request.worker
        worker.cancel()
        if self._lanes[request.lane].tryTake(worker):
            worker.ended.set()  # it will never run: not "running" from now on
            if request.lane == "interactive":
                self._interactive_ended()
            # Delivered from the event loop, as a worker's signals are: never inside the caller's call.
            QTimer.singleShot(0, self, worker.end_unstarted)
        return True

    def forget_owner(self, owner: str) -> None:
        """Cancel every request of ``owner`` and deliver nothing more to it (a window that is closing)."""
        for rid, request in list(self._requests.items()):
            if request.owner == owner and not request.ended:
                self.cancel_request(rid)
                request.ended = True

    # -- what runs ----------------------------------------------------------------------------

    def running(self, owner: str | None = None) -> list[tuple[str, str, int]]:
        """(owner, kind, request id) of every request queued or running, oldest first."""
        return [(r.owner, r.kind, rid) for rid, r in self._requests.items()
                if not r.worker.ended.is_set() and (owner is None or r.owner == owner)]

    def is_running(self, request_id: int | None) -> bool:
        request = self._requests.get(request_id) if request_id is not None else None
        return request is not None and not request.worker.ended.is_set()

    def active_threads(self) -> int:
        """Worker threads busy right now, over every lane."""
        return sum(pool.activeThreadCount() for pool in self._lanes.values())

    def pause_for_interactive(self) -> float:
        """Block while an interactive request is queued or running; return the seconds waited.

        Called by a benchmark between batches (never on the GUI thread): the user's click wins."""
        with self._interactive:
            if self._interactive_open == 0 or self._closed:
                return 0.0
            started = time.perf_counter()
            self._interactive.wait_for(lambda: self._interactive_open == 0 or self._closed)
        waited = time.perf_counter() - started
        log.debug("the benchmark waited %.3f s for interactive work", waited)
        return waited

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Cancel everything, deliver nothing more, and wait up to ``wait_ms`` for each lane's threads."""
        self._closed = True
        for rid in list(self._requests):
            self.cancel_request(rid)
        with self._interactive:
            self._interactive.notify_all()
        for pool in self._lanes.values():
            pool.clear()
        for pool in self._lanes.values():
            pool.waitForDone(wait_ms)

    # -- delivery (GUI thread) ----------------------------------------------------------------

    def _interactive_ended(self) -> None:
        with self._interactive:
            self._interactive_open -= 1
            if self._interactive_open <= 0:
                self._interactive_open = 0
                self._interactive.notify_all()

    def _live(self, rid: int) -> _Request | None:
        """The request if what it sends may reach its owner now: known, not over, not superseded."""
        request = self._requests.get(rid)
        if request is None or request.ended or self._closed:
            return None
        # Superseded (a newer request of its owner and kind is current) or cancelled: what it sends is stale.
        if request.worker.token.cancelled or (request.exclusive
                                              and self._current.get((request.owner, request.kind)) != rid):
            return None
        return request

    def _end(self, rid: int) -> _Request | None:
        """Mark the request's one outcome as delivered; None if it was delivered already (or must not be)."""
        request = self._requests.get(rid)
        if request is None or request.ended or self._closed:
            return None
        request.ended = True
        return request

    @Slot(int, object)
    def _on_returned(self, rid: int, result: object) -> None:
        if self._live(rid) is None:  # a stale result: dropped, and the request ends as cancelled
            self._on_cancelled(rid)
            return
        request = self._end(rid)
        if request is not None and request.on_returned is not None:
            request.on_returned(result)

    @Slot(int, object)
    def _on_yielded(self, rid: int, item: object) -> None:
        request = self._live(rid)
        if request is not None and request.on_yielded is not None:
            request.on_yielded(item)

    @Slot(int, int, int, str)
    def _on_progressed(self, rid: int, done: int, total: int, text: str) -> None:
        request = self._live(rid)
        if request is not None and request.on_progress is not None:
            request.on_progress(done, total, text)

    @Slot(int, object)
    def _on_errored(self, rid: int, exc: object) -> None:
        if self._live(rid) is None:
            self._on_cancelled(rid)
            return
        request = self._end(rid)
        if request is not None and request.on_error is not None:
            request.on_error(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))

    @Slot(int, object)
    def _on_cancelled(self, rid: int, kept: object = None) -> None:
        """``on_cancelled(kept)``: what the job returned on its way out (a cancelled benchmark's report),
        None when it never ran or a newer request of its owner and kind replaced it."""
        request = self._end(rid)
        if request is None or request.on_cancelled is None:
            return
        current = not request.exclusive or self._current.get((request.owner, request.kind)) == rid
        request.on_cancelled(kept if current else None)

    @Slot(int)
    def _on_finished(self, rid: int) -> None:
        request = self._requests.pop(rid, None)
        if request is None:
            return
        if self._current.get((request.owner, request.kind)) == rid:
            del self._current[(request.owner, request.kind)]
        if not request.ended and not self._closed:  # cannot happen with a Worker; never leave an owner waiting
            log.warning("request %d (%s/%s) finished without an outcome", rid, request.owner, request.kind)
            request.ended = True
            if request.on_cancelled is not None:
                request.on_cancelled(None)
