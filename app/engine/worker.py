"""One batch on a worker thread: cut the windows from the requests' images and paste the upscaled cores
into their outputs, all on the model's device, with the model call in between.

Each image was uploaded once (`prepare`) and stays on the device until its output is complete; only the
windows and outputs are touched here, the requests' bookkeeping stays on the event loop. The model call
goes through `model.tiling.run_windows`, the tiled-inference core the CLI and the evaluation use too,
which halves a batch that runs out of device memory. On CUDA each worker thread computes on its own
stream (`model.inference.worker_stream`), so the engine can keep two batches in flight.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from app.engine.queue import TileRequest
from app.errors import Overloaded
from model.inference import synchronize, upload, worker_stream
from model.tiling import DeviceWindowModel, Tile, TileGrid, run_windows

Batch = list[tuple[TileRequest, Tile]]


def prepare(grid: TileGrid, image: np.ndarray,
            model: DeviceWindowModel) -> tuple[torch.Tensor, torch.Tensor, deque[Tile]]:
    """Off the loop: the image uploaded once and mirror-padded on the model's device, the output the cores
    are pasted into there, and the tiles in raster order."""
    pixels = upload(image, model.device)
    padded = grid.pad_image(pixels)
    output = pixels.new_empty((grid.height * model.scale, grid.width * model.scale, 3))
    synchronize(model.device)  # the workers read it from their own streams
    return padded, output, deque(grid.tiles())


def infer_batch(model: DeviceWindowModel, name: str, batch: Batch, *,
                oom_errors: tuple[type[BaseException], ...]) -> None:
    """Run the batch's windows through `model` and paste each upscaled core into its request's output;
    the pastes are complete on the device when this returns.

    Raises Overloaded when even a single window does not fit in device memory: the client may retry.
    """
    context = f"model {name!r}, requests {', '.join(sorted({r.request_id for r, _tile in batch}))}"
    with worker_stream(model.device):
        windows = torch.stack([request.grid.window_of(request.padded, tile) for request, tile in batch])
        try:
            upscaled = run_windows(model.upscale_windows, windows, scale=model.scale, oom_errors=oom_errors,
                                   context=context)
        except oom_errors as exc:
            raise Overloaded("the device ran out of memory even for a single tile; retry later",
                             retry_after_s=5) from exc
        for (request, tile), window in zip(batch, upscaled, strict=True):
            request.grid.paste(request.output, tile, window, model.scale)
