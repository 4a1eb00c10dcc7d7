"""The tile queue's bookkeeping on its own: pending counts per batch key, the depth it reports and the
window pixels it holds."""

from __future__ import annotations

import asyncio
from collections import deque

import torch

from app.engine.queue import TileQueue, TileRequest
from model.tiling import TileGrid

KEY = ("srgan", "uint8")


def request(name: str, height: int, width: int, enqueued_at: float = 0.0, *,
            fit: bool = False) -> TileRequest:
    grid = TileGrid(height, width, tile=4, pad=1, fit=fit)
    nothing = torch.empty(0)
    return TileRequest(name, KEY, grid, nothing, nothing, asyncio.get_running_loop().create_future(),
                       enqueued_at, enqueued_at + 30, deque(grid.tiles()), len(grid))


async def test_dropping_a_request_leaves_the_others_pending() -> None:
    depths: list[int] = []
    queue = TileQueue(on_depth=depths.append)
    large, small = request("large", 8, 12), request("small", 4, 12)  # 6 and 3 tiles
    queue.put(large)
    queue.put(small)
    assert queue.drop(small) == 3
    assert queue.pending(KEY) == 6 and queue.depth == 6
    assert [r.request_id for r, _tile in queue.take(KEY, 4)] == ["large"] * 4
    assert queue.pending(KEY) == 2
    assert depths == [6, 9, 6, 2]
    assert queue.drop(small) == 0  # nothing left to drop: nothing changes
    assert queue.drop(large) == 2
    assert queue.pending(KEY) == 0 and queue.next_key() is None
    assert depths == [6, 9, 6, 2, 0]


async def test_taking_from_a_key_with_nothing_queued_takes_nothing() -> None:
    queue = TileQueue()
    assert queue.take(KEY, 4) == [] and queue.pending(KEY) == 0 and queue.depth == 0


async def test_the_queue_holds_the_window_pixels_of_its_tiles_whatever_their_size() -> None:
    queue = TileQueue()
    large = request("large", 8, 12)  # 6 windows of 6 x 6
    small = request("small", 3, 2, fit=True)  # one window of 5 x 4: the image plus the pad
    mid = request("mid", 5, 3, fit=True)  # 2 x 1 tiles of 3 x 3: windows of 5 x 5
    assert (large.window_pixels, small.window_pixels, mid.window_pixels) == (36, 20, 25)
    for queued in (large, small, mid):
        queue.put(queued)
    assert queue.depth == 9 and queue.pixels == 6 * 36 + 20 + 2 * 25
    taken = queue.take(KEY, 3)  # newcomers in arrival order: one tile of each
    assert [r.request_id for r, _tile in taken] == ["large", "small", "mid"]
    assert queue.depth == 6 and queue.pixels == 5 * 36 + 25
    assert queue.drop(large) == 5
    assert queue.depth == 1 and queue.pixels == 25
    queue.take(KEY, 3)
    assert queue.depth == 0 and queue.pixels == 0
