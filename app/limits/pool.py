"""The host pool: one bounded thread pool for every request's CPU work off the event loop (reading
headers, decoding, finishing and encoding, and the stages of /compare).

Its threads are as many as the cores the process may use. Work is let in at a request's admission only
while at most `max_backlog` jobs wait for a thread (`admit`, HostBusy otherwise), so a burst is refused
in milliseconds instead of queueing minutes of CPU; an admitted request's later stages always queue.
A job keeps the caller's context (the request id in its log lines) and pins the request's memory
reservation until it has finished, even when its caller was cancelled while it ran.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from app.errors import HostBusy
from app.limits.average import MovingAverage
from app.limits.budget import Reservation

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Jobs that may wait per thread before new requests are refused: with a job of up to a few seconds (an
# x4 output's encode), this keeps the wait of an admitted request's stage within its deadline.
BACKLOG_PER_WORKER = 4
MIN_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 60.0


class HostPool:
    """Args:
    workers: threads, normally the usable cores (`app.limits.container.usable_cpus`).
    max_backlog: waiting jobs beyond which `admit` refuses; BACKLOG_PER_WORKER x workers when None.
    """

    def __init__(self, workers: int, max_backlog: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.max_backlog = BACKLOG_PER_WORKER * workers if max_backlog is None else max_backlog
        if self.max_backlog < 0:
            raise ValueError(f"max_backlog must be non-negative, got {self.max_backlog}")
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="srgan-host")
        self._lock = threading.Lock()
        self._waiting = 0
        self._job_s = MovingAverage()  # seconds per job, behind Retry-After

    @property
    def backlog(self) -> int:
        """Jobs submitted and not yet started."""
        return self._waiting

    def admit(self, what: str) -> None:
        """Raise HostBusy (503) when more jobs wait than the pool may queue."""
        if self._waiting > self.max_backlog:
            retry_after = self._job_s.clamped(0, MAX_RETRY_AFTER_S) * self._waiting / self.workers
            logger.info("refused %s: %d jobs wait for %d host threads", what, self._waiting, self.workers)
            raise HostBusy(f"the server's CPUs are busy ({self._waiting} jobs waiting); retry later",
                           min(max(retry_after, MIN_RETRY_AFTER_S), MAX_RETRY_AFTER_S))

    async def run(self, fn: Callable[..., T], *args: Any, hold: Reservation | None = None) -> T:
        """`fn(*args)` on a pool thread. Cancelling the caller drops a job that has not started; one that
        has keeps `hold` pinned until it returns."""
        context = contextvars.copy_context()
        with self._lock:
            self._waiting += 1
        future = self._executor.submit(self._job, context, fn, args)
        future.add_done_callback(self._cancelled_before_start)
        if hold is not None:
            hold.pin()
            future.add_done_callback(lambda _: hold.unpin())
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Drop waiting jobs; running ones finish in their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _job(self, context: contextvars.Context, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._lock:
            self._waiting -= 1
        started = time.perf_counter()
        try:
            return context.run(fn, *args)
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._job_s.add(elapsed)

    def _cancelled_before_start(self, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled():
            with self._lock:
                self._waiting -= 1
