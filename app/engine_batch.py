"""One batch on the worker thread (cut windows, run the model, halve on OOM, paste), and its measured rate."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import numpy as np
import torch

from app.engine_queue import TileRequest
from app.errors import Overloaded
from model.tiling import Tile, TileGrid

logger = logging.getLogger(__name__)

ModelFn = Callable[[np.ndarray], np.ndarray]
Batch = list[tuple[TileRequest, Tile]]

# Before any batch is measured there is no honest estimate: ask clients to come back soon.
DEFAULT_RETRY_AFTER_S = 1.0
# Estimates beyond a minute are mostly noise, and a client should look again within that time anyway.
MAX_RETRY_AFTER_S = 60.0
# Weight of the newest batch in the average: one slow batch barely moves it, a change of load shows
# within about ten batches.
EWMA_ALPHA = 0.2


def prepare(grid: TileGrid, image: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray, deque[Tile]]:
    """Off the loop: the padded image the windows are cut from, the output the cores are pasted into,
    and the tiles in raster order."""
    output = np.empty((grid.height * scale, grid.width * scale, 3), image.dtype)
    return grid.pad_image(image), output, deque(grid.tiles())


def infer_batch(fn: ModelFn, model: str, batch: Batch, *, scale: int,
                oom_errors: tuple[type[BaseException], ...]) -> None:
    """Worker thread: run the batch's windows through `fn` and paste each core into its request's output.

    Only the windows and outputs are touched here; the requests' bookkeeping stays on the event loop.
    """
    windows = np.stack([request.grid.window_of(request.padded, tile) for request, tile in batch])
    upscaled = _call_splitting(fn, model, windows, batch, scale, oom_errors)
    for (request, tile), window in zip(batch, upscaled, strict=True):
        request.grid.paste(request.output, tile, window, scale)


def _call_splitting(fn: ModelFn, model: str, windows: np.ndarray, batch: Batch, scale: int,
                    oom_errors: tuple[type[BaseException], ...]) -> np.ndarray:
    """`fn(windows)`, retried as two halves (recursively) when the device runs out of memory."""
    try:
        upscaled = fn(windows)
    except oom_errors as exc:
        if len(windows) == 1:
            raise Overloaded("the device ran out of memory even for a single tile; retry later",
                             retry_after_s=5) from exc
        half = len(windows) // 2
        logger.warning("%s out of memory on %d tiles, retrying as %d + %d (requests %s)", model,
                       len(windows), half, len(windows) - half,
                       ", ".join(sorted({request.request_id for request, _tile in batch})))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # return the failed attempt's cached blocks before retrying
        return np.concatenate([
            _call_splitting(fn, model, windows[:half], batch[:half], scale, oom_errors),
            _call_splitting(fn, model, windows[half:], batch[half:], scale, oom_errors),
        ])
    side = windows.shape[1] * scale
    if upscaled.shape != (len(windows), side, side, 3) or upscaled.dtype != windows.dtype:
        # A wrong model must fail its batch here, not paste garbage or raise deep inside numpy.
        raise RuntimeError(f"model {model!r} returned {upscaled.shape} {upscaled.dtype} "
                           f"for {windows.shape} {windows.dtype}")
    return upscaled


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

