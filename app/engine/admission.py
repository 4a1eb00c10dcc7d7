"""Admission: refuse at once what cannot be served, and tell the client when to come back.

An image larger than the queue bound, a full queue, or work that would make this request, or any request
already admitted, miss its deadline is refused before any of its tiles is queued.

Work is counted in window pixels: the low-resolution pixels the model computes, a tile's core plus its
context on each side, at the window shape its grid actually runs (`TileGrid.window_shape`). A tile is no
fixed unit: where each image's tiles are fitted to it (one tile per batch, on a CPU), a 64 x 64 image is
one window of 88 x 88 at pad 12 while a 1024 x 1024 one is 121 windows of 118 x 118, so counting tiles
made a large image's tiles look as cheap as those of the small images measured before it. The time work
will take comes from `Throughput`, a moving average of the window pixels per second measured per batch.
The queue bound is still set in tiles (SRGAN_MAX_QUEUE_TILES) and means the work of that many full tiles,
windows of (tile + 2 * pad) pixels a side.
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
    """Window pixels per second, an exponentially weighted moving average over batches; None until
    measured."""

    def __init__(self) -> None:
        self.pixels_per_s: float | None = None

    def record(self, pixels: int, seconds: float) -> None:
        """One batch that computed `pixels` window pixels in `seconds`."""
        rate = pixels / max(seconds, 1e-6)
        previous = self.pixels_per_s
        self.pixels_per_s = rate if previous is None else EWMA_ALPHA * rate + (1 - EWMA_ALPHA) * previous

    def seconds_for(self, pixels: float) -> float | None:
        return None if self.pixels_per_s is None else pixels / self.pixels_per_s

    def retry_after_s(self, pixels: float) -> float:
        """How long a client should wait for `pixels` window pixels to be computed, within sane bounds."""
        seconds = self.seconds_for(pixels)
        return DEFAULT_RETRY_AFTER_S if seconds is None else min(max(seconds, 0.1), MAX_RETRY_AFTER_S)


class Admission:
    """The admission policy of one engine.

    Args:
        max_queue_tiles: the queue holds at most the work of this many full tiles; a request that would
            queue more is refused with `Overloaded`, an image that alone needs more with `TooLarge`.
        tile, pad: the low-resolution tile side and context: a full tile's window is tile + 2 * pad a side.
    """

    def __init__(self, *, max_queue_tiles: int, tile: int, pad: int) -> None:
        self.max_queue_tiles, self.tile = max_queue_tiles, tile
        self.tile_pixels = (tile + 2 * pad) ** 2
        self.max_queue_pixels = max_queue_tiles * self.tile_pixels
        self.throughput = Throughput()

    def check(self, pixels: int, deadline: float, *, queued: int, in_flight: int,
              deadlines: Iterable[float], request_id: str) -> None:
        """Raise DeadlineExceeded, TooLarge or Overloaded unless a request of `pixels` window pixels can be
        admitted.

        `queued` window pixels wait (or are being prepared), `in_flight` are on the device, and `deadlines`
        are those of the requests already admitted.
        """
        now = time.monotonic()
        if deadline <= now:
            raise DeadlineExceeded("the request's deadline had passed before it was queued")
        if pixels > self.max_queue_pixels:
            # Admitting it would lock every other request out until it finished.
            raise TooLarge(f"the image needs the work of {self._in_tiles(pixels)} tiles of {self.tile} "
                           f"pixels; this service queues at most {self.max_queue_tiles}: "
                           "send a smaller image")
        if queued + pixels > self.max_queue_pixels:
            logger.info("request %s refused: %d window pixels queued, %d more asked", request_id, queued,
                        pixels)
            raise Overloaded(f"the queue is full (the work of {self._in_tiles(queued)} tiles waiting)",
                             self.throughput.retry_after_s(queued + pixels - self.max_queue_pixels))
        # Round-robin shares the device among all queued requests, so a request finishes at the latest
        # when all work in the system is done, later arrivals' share included. Admitting only what lets
        # all that work finish before the earliest deadline in the system keeps every admitted request
        # on time (as far as the measured throughput holds).
        work = queued + in_flight + pixels
        estimate_s = self.throughput.seconds_for(work)
        earliest = min([deadline, *deadlines])
        budget_s = DEADLINE_PLANNING_SHARE * (earliest - now)
        if estimate_s is not None and estimate_s > budget_s:
            rate = self.throughput.pixels_per_s or 1.0
            logger.info("request %s refused: %d window pixels of work need ~%.1fs, earliest deadline in "
                        "%.1fs", request_id, work, estimate_s, earliest - now)
            raise Overloaded(f"the service cannot finish this request in time (~{estimate_s:.1f}s of work "
                             "queued); retry later", self.throughput.retry_after_s(work - budget_s * rate))

    def _in_tiles(self, pixels: int) -> str:
        """`pixels` as the work of full tiles, rounded up to a tenth (so a request over the bound never
        reads as at it), whole numbers without the tenth."""
        tenths = -(-pixels * 10 // self.tile_pixels)
        return str(tenths // 10) if tenths % 10 == 0 else f"{tenths / 10:.1f}"
