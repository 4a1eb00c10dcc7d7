"""One batch on the worker thread: cut the windows, run the model, paste each core into its request's output.

Only the windows and outputs are touched here; the requests' bookkeeping stays on the event loop. The
model call goes through `model.tiling.run_windows`, the tiled-inference core the CLI and the evaluation
use too, which halves a batch that runs out of device memory.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from app.engine.queue import TileRequest
from app.errors import Overloaded
from model.tiling import Tile, TileGrid, WindowFn, run_windows

Batch = list[tuple[TileRequest, Tile]]


def prepare(grid: TileGrid, image: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray, deque[Tile]]:
    """Off the loop: the padded image the windows are cut from, the output the cores are pasted into,
    and the tiles in raster order."""
    output = np.empty((grid.height * scale, grid.width * scale, 3), image.dtype)
    return grid.pad_image(image), output, deque(grid.tiles())


def infer_batch(fn: WindowFn, model: str, batch: Batch, *, scale: int,
                oom_errors: tuple[type[BaseException], ...]) -> None:
    """Run the batch's windows through `fn` and paste each upscaled core into its request's output.

    Raises Overloaded when even a single window does not fit in device memory: the client may retry.
    """
    windows = np.stack([request.grid.window_of(request.padded, tile) for request, tile in batch])
    context = f"model {model!r}, requests {', '.join(sorted({r.request_id for r, _tile in batch}))}"
    try:
        upscaled = run_windows(fn, windows, scale=scale, oom_errors=oom_errors, context=context)
    except oom_errors as exc:
        raise Overloaded("the device ran out of memory even for a single tile; retry later",
                         retry_after_s=5) from exc
    for (request, tile), window in zip(batch, upscaled, strict=True):
        request.grid.paste(request.output, tile, window, scale)
