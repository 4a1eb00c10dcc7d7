"""Liveness: whether the engine's batches make progress, for /healthz.

The engine counts as stalled when a batch has run, or queued tiles have waited for one, longer than the
stall limit: the wait to fill a batch, plus `stall_timeout_s` or `STALL_BATCHES` measured full-batch
times when that is longer. Waiting counts from the later of the last batch's start or end and the oldest
queued tile's arrival, so an engine that was idle is not stalled the moment work arrives.
"""

from __future__ import annotations

import math

# A batch may take this many times the measured batch time before the engine counts as stalled (batch
# times vary with image mix, out-of-memory splits and CPU contention from decoding and encoding).
STALL_BATCHES = 10


class Liveness:
    """The stall bookkeeping of one engine: when its batches last made progress, and the limit.

    Args:
        max_wait_s: how long a batch may wait to fill; that wait is never a stall.
        stall_timeout_s: how long work may wait with no batch finishing, at least.
    """

    def __init__(self, *, max_wait_s: float, stall_timeout_s: float) -> None:
        self.max_wait_s, self.stall_timeout_s = max_wait_s, stall_timeout_s
        self.progress_at = -math.inf  # when the last batch started or finished (monotonic)

    def stall_limit_s(self, full_batch_s: float | None) -> float:
        """The stall limit, given the measured time of a full batch (None: not measured yet)."""
        return self.max_wait_s + max(self.stall_timeout_s, STALL_BATCHES * (full_batch_s or 0.0))

    def stall(self, now: float, *, in_flight_tiles: int, queued_tiles: int, oldest_arrival: float | None,
              full_batch_s: float | None) -> str | None:
        """Why the batches make no progress at `now`, or None: tiles have run in batches, or waited for
        one since `oldest_arrival` (None: nothing waits), longer than the stall limit."""
        if in_flight_tiles:
            waited, what = now - self.progress_at, f"a batch of {in_flight_tiles} tiles has run for"
        elif oldest_arrival is None:
            return None
        else:
            waited = now - max(self.progress_at, oldest_arrival)
            what = f"{queued_tiles} tiles have waited for a batch"
        limit = self.stall_limit_s(full_batch_s)
        return f"{what} {waited:.1f} s (limit {limit:.1f} s)" if waited > limit else None
