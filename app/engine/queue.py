"""Fairness: requests' pending tiles, grouped by batch key, taken round-robin; batch keys take turns.

Only the event loop touches this module's objects, so nothing here locks. The worker thread reads a
request's `padded` image and writes its `output` image, never its bookkeeping.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch

from model.tiling import Tile, TileGrid

# A batch holds tiles of one model and one pixel dtype ("uint8" or "uint16"): one device call, one shape.
BatchKey = tuple[str, str]


@dataclass(eq=False)
class TileRequest:
    """One image in flight: where its tiles come from, where they go, and who waits for the result."""

    request_id: str
    key: BatchKey
    grid: TileGrid
    padded: torch.Tensor  # on the model's device, like the output
    output: torch.Tensor
    future: asyncio.Future[torch.Tensor]  # the output, once every tile is pasted
    enqueued_at: float
    deadline: float
    pending: deque[Tile]
    # Tiles not yet pasted: queued plus in flight. The request is done when this reaches zero.
    remaining: int

    @property
    def window_pixels(self) -> int:
        """Low-resolution pixels the model computes for each of its tiles: the core plus its context."""
        height, width = self.grid.window_shape
        return height * width

    @property
    def started(self) -> bool:
        """Whether any of its tiles has been taken into a batch: until then it queues as a newcomer."""
        return len(self.pending) < len(self.grid)


class TileQueue:
    """Pending tiles of all requests, one ring of requests per batch key.

    `depth` counts the queued tiles (reported to `on_depth`), `pixels` their windows' pixels: the work
    they hold, which admission plans with.

    `take` goes round the ring one tile per request, and the ring keeps its position between batches,
    so a request queued behind a large one waits for about one batch, not for the large one's tiles.
    A newcomer joins the ring ahead of the requests already started (behind earlier newcomers): its
    first tile goes into the next batch instead of after one more turn of every large request, which
    on a CPU, where a batch is one tile, halves a small image's wait behind a large one.
    """

    def __init__(self, on_depth: Callable[[int], object] = lambda depth: None) -> None:
        self._on_depth = on_depth  # told every new depth, so a gauge cannot drift from the queue
        self._rings: dict[BatchKey, deque[TileRequest]] = {}
        self._pending: dict[BatchKey, int] = {}
        self._served_at: dict[BatchKey, float] = {}
        self.depth = 0
        self.pixels = 0

    def put(self, request: TileRequest) -> None:
        ring = self._rings.setdefault(request.key, deque())
        first_started = next((i for i, queued in enumerate(ring) if queued.started), len(ring))
        ring.insert(first_started, request)
        queued = len(request.pending)
        self._pending[request.key] = self._pending.get(request.key, 0) + queued
        self._set_depth(self.depth + queued, self.pixels + queued * request.window_pixels)

    def drop(self, request: TileRequest) -> int:
        """Remove the request's queued tiles (not those already taken); returns how many."""
        dropped = len(request.pending)
        if dropped:
            request.pending.clear()
            self._rings[request.key].remove(request)
            self._pending[request.key] -= dropped
            self._set_depth(self.depth - dropped, self.pixels - dropped * request.window_pixels)
            self._forget_if_empty(request.key)
        return dropped

    def pending(self, key: BatchKey) -> int:
        return self._pending.get(key, 0)

    def oldest(self, key: BatchKey) -> float:
        """When the longest-queued request of `key` was queued."""
        return min(r.enqueued_at for r in self._rings[key])

    def served(self, key: BatchKey, at: float) -> None:
        """Record that a batch of `key` finished at `at` (monotonic seconds)."""
        self._served_at[key] = at

    def next_key(self) -> BatchKey | None:
        """The key that has waited longest, counting from its oldest tile or its last batch's end.

        Counting from the last batch makes the keys take turns: a model with hundreds of old tiles gets
        one batch, then a model whose tile arrived meanwhile gets the next.
        """
        return min(self._rings, key=lambda k: max(self.oldest(k), self._served_at.get(k, -math.inf)),
                   default=None)

    def take(self, key: BatchKey, max_tiles: int) -> list[tuple[TileRequest, Tile]]:
        """Up to `max_tiles` tiles of `key`, one per request in turn."""
        ring = self._rings.get(key)
        batch: list[tuple[TileRequest, Tile]] = []
        while ring and len(batch) < max_tiles:
            request = ring.popleft()
            batch.append((request, request.pending.popleft()))
            if request.pending:
                ring.append(request)
        self._pending[key] = self._pending.get(key, 0) - len(batch)
        self._set_depth(self.depth - len(batch), self.pixels - sum(r.window_pixels for r, _tile in batch))
        self._forget_if_empty(key)
        return batch

    def _set_depth(self, depth: int, pixels: int) -> None:
        self.depth, self.pixels = depth, pixels
        self._on_depth(depth)

    def _forget_if_empty(self, key: BatchKey) -> None:
        if not self._rings.get(key):
            self._rings.pop(key, None)
            self._pending.pop(key, None)
