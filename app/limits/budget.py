"""The memory budget: bytes that requests in flight may hold, reserved before they are spent.

A request reserves its worst case (`app.limits.cost`) before it decodes a pixel and returns it once its
response has been sent. Reserving past the budget is refused at once: 503 with Retry-After
(`MemoryBudgetExceeded`) while other requests hold the memory, 413 (`TooLarge`) when the request alone
needs more than the whole budget. Work that runs in a thread pins its reservation, so memory a thread
still uses is not handed to a new request when its client has gone.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from app.errors import MemoryBudgetExceeded, TooLarge
from app.limits import container
from app.limits.average import MovingAverage

logger = logging.getLogger(__name__)

MIB = 1 << 20
# How soon a refused client should look again: the typical time a reservation is held, within bounds.
MIN_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 30.0


class MemoryBudget:
    """`limit_bytes` shared by all requests in flight. Thread-safe (reservations are released from the
    event loop and unpinned from pool threads)."""

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < 1:
            raise ValueError(f"limit_bytes must be positive, got {limit_bytes}")
        self.limit_bytes = limit_bytes
        self._reserved = 0
        self._lock = threading.Lock()
        self._hold_s = MovingAverage()  # seconds a reservation is held, behind Retry-After

    @property
    def reserved_bytes(self) -> int:
        return self._reserved

    def reserve(self, nbytes: int, *, what: str) -> Reservation:
        """A reservation of `nbytes`; raises TooLarge or MemoryBudgetExceeded (see the module)."""
        reservation = Reservation(self)
        reservation.resize(nbytes, what=what)
        return reservation

    def _change(self, old: int, new: int, what: str) -> None:
        if new > self.limit_bytes:
            raise TooLarge(f"{what} needs about {math.ceil(new / MIB)} MiB of memory, more than this "
                           f"server's budget of {self.limit_bytes // MIB} MiB: send a smaller image")
        with self._lock:
            free = self.limit_bytes - self._reserved
            if new - old > free:
                logger.info("refused %s: needs %d MiB more, %d of %d MiB free", what,
                            math.ceil((new - old) / MIB), free // MIB, self.limit_bytes // MIB)
                raise MemoryBudgetExceeded(
                    f"the server's memory is taken by requests in flight ({what} needs about "
                    f"{math.ceil(new / MIB)} MiB); retry later", self.retry_after_s())
            self._reserved += new - old

    def _returned(self, nbytes: int, held_s: float) -> None:
        with self._lock:
            self._reserved -= nbytes
            self._hold_s.add(held_s)

    def retry_after_s(self) -> float:
        return self._hold_s.clamped(MIN_RETRY_AFTER_S, MAX_RETRY_AFTER_S)


class Reservation:
    """One request's share of a MemoryBudget: resized as its cost becomes known, pinned while a thread
    works for it, returned by `release` (at once, or when the last pin goes). Release is idempotent."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.nbytes = 0
        self._pins = 0
        self._released = False
        self._returned = False
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def resize(self, nbytes: int, *, what: str) -> None:
        """Grow (or shrink) to `nbytes`; on refusal the reservation keeps its old size."""
        if self._released:
            raise RuntimeError("the reservation was released")
        self._budget._change(self.nbytes, nbytes, what)
        self.nbytes = nbytes

    def pin(self) -> None:
        with self._lock:
            self._pins += 1

    def unpin(self) -> None:
        with self._lock:
            self._pins -= 1
        self._return_if_done()

    def release(self) -> None:
        self._released = True
        self._return_if_done()

    def _return_if_done(self) -> None:
        with self._lock:
            if not self._released or self._pins or self._returned:
                return
            self._returned = True
        self._budget._returned(self.nbytes, time.monotonic() - self._started)


# The share of the memory left after start-up that requests may reserve: the rest absorbs what the
# estimates do not see (allocator fragmentation, thread arenas, the inference batch's activations).
DEFAULT_SHARE = 0.7


def default_limit_bytes() -> int:
    """The budget when SRGAN_MEMORY_BUDGET_MB is unset: DEFAULT_SHARE of the container's memory limit less
    what this process holds now (weights loaded, warmed up), or without a limit, of the memory the machine
    has available now."""
    limit = container.memory_limit_bytes()
    room = container.available_bytes() if limit is None else limit - container.resident_bytes()
    return max(int(DEFAULT_SHARE * room), 64 * MIB)
