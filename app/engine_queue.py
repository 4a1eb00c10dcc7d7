"""The engine's waiting room: requests' pending tiles, grouped by batch key, taken round-robin.

Only the event loop touches this module's objects, so nothing here locks. The worker thread reads a
request's `padded` image and writes its `output` image, never its bookkeeping.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from model.tiling import Tile, TileGrid

# A batch holds tiles of one model and one pixel dtype ("uint8" or "uint16"): one device call, one shape.
BatchKey = tuple[str, str]


@dataclass(eq=False)
class TileRequest:
    """One image in flight: where its tiles come from, where they go, and who waits for the result."""

    request_id: str
    key: BatchKey
    grid: TileGrid
    padded: np.ndarray
    output: np.ndarray
    future: asyncio.Future[np.ndarray]
    enqueued_at: float
    pending: deque[Tile]
    # Tiles not yet pasted: queued plus in flight. The request is done when this reaches zero.
    remaining: int
    # When the request last had a tile taken (or was queued): the age used for fairness between models.
    waiting_since: float = field(init=False)

    def __post_init__(self) -> None:
        self.waiting_since = self.enqueued_at


class TileQueue:
    """Pending tiles of all requests, one ring of requests per batch key.

    `take` goes round the ring one tile per request, and the ring keeps its position between batches,
    so a request queued behind a large one waits for about one batch, not for the large one's tiles.
    """

    def __init__(self) -> None:
        self._rings: dict[BatchKey, deque[TileRequest]] = {}
        self._pending: dict[BatchKey, int] = {}
        self.depth = 0

    def put(self, request: TileRequest) -> None:
        self._rings.setdefault(request.key, deque()).append(request)
        self._pending[request.key] = self._pending.get(request.key, 0) + len(request.pending)
        self.depth += len(request.pending)

    def drop(self, request: TileRequest) -> int:
        """Remove the request's queued tiles (not those already taken); returns how many."""
        dropped = len(request.pending)
        if dropped:
            request.pending.clear()
            self._rings[request.key].remove(request)
            self._pending[request.key] -= dropped
            self.depth -= dropped
            self._forget_if_empty(request.key)
        return dropped

    def pending(self, key: BatchKey) -> int:
        return self._pending.get(key, 0)

    def waiting_since(self, key: BatchKey) -> float:
        """When the longest-waiting request of `key` was queued or last served."""
        return min(r.waiting_since for r in self._rings[key])

    def next_key(self) -> BatchKey | None:
        """The key that has waited longest since it was last served, so no model starves another."""
        return min(self._rings, key=self.waiting_since, default=None)

    def take(self, key: BatchKey, max_tiles: int, now: float) -> list[tuple[TileRequest, Tile]]:
        """Up to `max_tiles` tiles of `key`, one per request in turn."""
        ring = self._rings.get(key)
        batch: list[tuple[TileRequest, Tile]] = []
        while ring and len(batch) < max_tiles:
            request = ring.popleft()
            batch.append((request, request.pending.popleft()))
            request.waiting_since = now
            if request.pending:
                ring.append(request)
        self._pending[key] = self._pending.get(key, 0) - len(batch)
        self.depth -= len(batch)
        self._forget_if_empty(key)
        return batch

    def tiles_ahead(self, tiles: int) -> int:
        """Queued tiles that round-robin would run before the last of a new request's `tiles` tiles."""
        return sum(min(len(r.pending), tiles) for ring in self._rings.values() for r in ring)

    def requests(self) -> list[TileRequest]:
        return [r for ring in self._rings.values() for r in ring]

    def _forget_if_empty(self, key: BatchKey) -> None:
        if not self._rings.get(key):
            self._rings.pop(key, None)
            self._pending.pop(key, None)
