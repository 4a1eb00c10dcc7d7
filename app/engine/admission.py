"""Admission: refuse at once what cannot be served, and tell the client when to come back.

An image larger than the queue bound, a full queue, or work that would make this request, or any request
already admitted, miss its deadline is refused before any of its tiles is queued. The time work will take
comes from `Throughput`, a moving average of the measured batch rate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from app.errors import DeadlineExceeded, Overloaded, TooLarge

logger = logging.getLogger(__name__)

# Admission plans all queued work into this share of the time left before the earliest deadline: batch
# times vary (on a CPU, decoding and encoding share the cores), and a plan with no slack turns every slow
# batch into a missed deadline (docs/BENCHMARKS.md, "Overload").
DEADLINE_PLANNING_SHARE = 0.9
# Before any batch is measured there is no honest estimate: ask clients to come back soon.
DEFAULT_RETRY_AFTER_S = 1.0
# Estimates beyond a minute are mostly noise, and a client should look again within that time anyway.
MAX_RETRY_AFTER_S = 60.0
# Weight of the newest batch in the average: one slow batch barely moves it, a change of load shows
# within about ten batches.
EWMA_ALPHA = 0.2


class Throughput:
    """Tiles per second, an exponentially weighted moving average over batches; None until measured."""

    def __init__(self) -> None:
        self.tiles_per_s: float | None = None

    def record(self, tiles: int, seconds: float) -> None:
        rate = tiles / max(seconds, 1e-6)
        previous = self.tiles_per_s
        self.tiles_per_s = rate if previous is None else EWMA_ALPHA * rate + (1 - EWMA_ALPHA) * previous

    def seconds_for(self, tiles: int) -> float | None:
        return None if self.tiles_per_s is None else tiles / self.tiles_per_s

    def retry_after_s(self, tiles: int) -> float:
        """How long a client should wait for `tiles` tiles to leave the queue, within sane bounds."""
        seconds = self.seconds_for(tiles)
        return DEFAULT_RETRY_AFTER_S if seconds is None else min(max(seconds, 0.1), MAX_RETRY_AFTER_S)


class Admission:
    """The admission policy of one engine.

    Args:
        max_queue_tiles: queued tiles beyond which requests are refused with `Overloaded`; an image with
            more tiles than this is refused with `TooLarge`.
        tile: the low-resolution tile side, named in the message of that refusal.
    """

    def __init__(self, *, max_queue_tiles: int, tile: int) -> None:
        self.max_queue_tiles, self.tile = max_queue_tiles, tile
        self.throughput = Throughput()

    def check(self, tiles: int, deadline: float, *, queued: int, in_flight: int,
              deadlines: Iterable[float], request_id: str) -> None:
        """Raise DeadlineExceeded, TooLarge or Overloaded unless a request of `tiles` tiles can be admitted.

        `queued` tiles wait (or are being prepared), `in_flight` are on the device, and `deadlines` are
        those of the requests already admitted.
        """
        now = time.monotonic()
        if deadline <= now:
            raise DeadlineExceeded("the request's deadline had passed before it was queued")
        if tiles > self.max_queue_tiles:
            # Admitting it would lock every other request out until it finished.
            raise TooLarge(f"the image needs {tiles} tiles of {self.tile} pixels; this service queues at "
                           f"most {self.max_queue_tiles}: send a smaller image")
        if queued + tiles > self.max_queue_tiles:
            logger.info("request %s refused: %d tiles queued, %d more asked", request_id, queued, tiles)
            raise Overloaded(f"the queue is full ({queued} tiles waiting)",
                             self.throughput.retry_after_s(queued + tiles - self.max_queue_tiles))
        # Round-robin shares the device among all queued requests, so a request finishes at the latest
        # when all work in the system is done, later arrivals' share included. Admitting only what lets
        # all that work finish before the earliest deadline in the system keeps every admitted request
        # on time (as far as the measured throughput holds).
        work = queued + in_flight + tiles
        estimate_s = self.throughput.seconds_for(work)
        earliest = min([deadline, *deadlines])
        budget_s = DEADLINE_PLANNING_SHARE * (earliest - now)
        if estimate_s is not None and estimate_s > budget_s:
            rate = self.throughput.tiles_per_s or 1.0
            excess = work - int(budget_s * rate)
            logger.info("request %s refused: %d tiles of work need ~%.1fs, earliest deadline in %.1fs",
                        request_id, work, estimate_s, earliest - now)
            raise Overloaded(f"the service cannot finish this request in time (~{estimate_s:.1f}s of work "
                             "queued); retry later", self.throughput.retry_after_s(excess))
