"""The engine's lifecycle and its requests: every request's tiles share one queue and one device.

An image becomes fixed-size low-resolution windows (`model.tiling`), so tiles of any image size, from
any number of requests, batch together at one shape and device memory per batch is bounded; where a
batch holds one tile (the CPU default), each image's tiles are instead fitted to it, so no pixels are
computed beyond the image and its context. A batch holds tiles of one model and one pixel dtype.

Each image is uploaded to the model's device once, its windows are cut and its output pasted there, and
one upscaled image is copied back (`worker`). A batch is formed only when the device can take it
(`pipeline`). Tiles are taken round-robin across the requests of one model and dtype, and models take
turns (`queue`); what is let in is `admission`'s decision, and whether batches make progress is
`liveness`'s. Inference, padding and stitching run off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from app.engine.admission import Admission
from app.engine.liveness import Liveness
from app.engine.pipeline import Pipeline, default_in_flight
from app.engine.queue import TileQueue, TileRequest
from app.engine.worker import prepare
from app.errors import DeadlineExceeded, NotReady
from app.telemetry import Metrics
from model.inference import download
from model.tiling import OOM_ERRORS, DeviceWindowModel, TileGrid, WindowModel, on_device

logger = logging.getLogger(__name__)


class Engine:
    """Queues tiles of all requests and runs them in batches on the models' device.

    Args:
        models: name -> model with its own `scale`: a `DeviceWindowModel` (device tensors in and out,
            as `model.inference.Upscaler`) or a callable mapping (N, H, W, 3) uint8/uint16 numpy windows
            to (N, H*scale, W*scale, 3), run on the CPU; models of different scales are served side by
            side.
        tile, pad: low-resolution tile side and context on each side (window side is tile + 2 * pad).
        max_batch: a batch returns at most this many tiles.
        max_wait_s: a batch that is not full waits for more tiles no longer than until its oldest tile
            has been queued this long (tiles that queued while the worker was busy do not wait again).
        max_queue_tiles: the queue holds at most the work of this many full tiles (window pixels, see
            `admission`): a request beyond it is refused with `Overloaded`, an image that alone needs more
            with `TooLarge`.
        metrics: where to report; a private instance if None.
        oom_errors: exceptions meaning "batch too large for device memory": the batch is split in halves.
        stall_timeout_s: liveness (`health_problem`): how long work may wait with no batch finishing, at
            least; `liveness.STALL_BATCHES` measured batch times when that is longer.
        max_in_flight: batches running at once; None: `default_in_flight`.
    """

    def __init__(self, models: Mapping[str, WindowModel | DeviceWindowModel], *, tile: int, pad: int,
                 max_batch: int, max_wait_s: float, max_queue_tiles: int, metrics: Metrics | None = None,
                 oom_errors: tuple[type[BaseException], ...] = OOM_ERRORS,
                 stall_timeout_s: float = 30.0, max_in_flight: int | None = None) -> None:
        if not models:
            raise ValueError("models must name at least one model")
        for name, value, low in (("tile", tile, 1), ("pad", pad, 0), ("max_batch", max_batch, 1),
                                 ("max_queue_tiles", max_queue_tiles, 1),
                                 ("max_in_flight", max_in_flight, 1)):
            if value is not None and value < low:
                raise ValueError(f"{name} must be at least {low}, got {value}")
        if not max_wait_s >= 0:
            raise ValueError(f"max_wait_s must be non-negative, got {max_wait_s}")
        if not stall_timeout_s > 0:
            raise ValueError(f"stall_timeout_s must be positive, got {stall_timeout_s}")
        for name, fn in models.items():
            if not (isinstance(fn.scale, int) and fn.scale >= 1):
                raise ValueError(f"model {name!r} has scale {fn.scale!r}; it must be a positive integer")
        self._models = {name: on_device(fn) for name, fn in models.items()}
        max_in_flight = max_in_flight or default_in_flight(self._models)
        # One tile per batch: windows never share a batch, so each image's may have its own shape.
        self._fit = max_batch == 1 and not any(m.fixed_shape for m in self._models.values())
        self._tile, self._pad = tile, pad
        self._max_batch, self._max_in_flight = max_batch, max_in_flight
        metrics = metrics if metrics is not None else Metrics()
        self._queue = TileQueue(on_depth=metrics.queue_depth.set)
        self._admission = Admission(max_queue_tiles=max_queue_tiles, tile=tile, pad=pad)
        self._liveness = Liveness(max_wait_s=max_wait_s, stall_timeout_s=stall_timeout_s)
        self._pipeline = Pipeline(self._models, self._queue, max_batch=max_batch, max_wait_s=max_wait_s,
                                  max_in_flight=max_in_flight, metrics=metrics, oom_errors=oom_errors,
                                  throughput=self._admission.throughput, liveness=self._liveness,
                                  fail=self._fail)
        self._reserved = 0  # window pixels of admitted requests still being padded, not yet queued
        self._preparing = 0  # requests those pixels belong to
        self._live: set[TileRequest] = set()
        self._accepting = False
        self._executor: ThreadPoolExecutor | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def queue_depth_tiles(self) -> int:
        return self._queue.depth

    @property
    def throughput_pixels_per_s(self) -> float | None:
        """Moving average of window pixels per second over recent batches; None before the first batch."""
        return self._admission.throughput.pixels_per_s

    def health_problem(self, now: float | None = None) -> str | None:
        """Why the engine cannot make progress, or None: its batch loop ended without `stop`, or a batch has
        run, or tiles have waited for one, longer than `stall_limit_s` (`now`: time.monotonic() by default;
        see `liveness`)."""
        task = self._loop_task
        if task is None or self._stopped:
            return None
        if task.done():
            error = None if task.cancelled() else task.exception()
            return f"the batch loop has stopped ({type(error).__name__ if error else 'cancelled'})"
        return self._liveness.stall(
            time.monotonic() if now is None else now, in_flight_tiles=self._pipeline.tiles,
            queued_tiles=self._queue.depth, full_batch_s=self._full_batch_s(),
            oldest_arrival=min((r.enqueued_at for r in self._live if r.pending), default=None))

    @property
    def stall_limit_s(self) -> float:
        """How long work may wait with no batch finishing before the engine counts as stalled."""
        return self._liveness.stall_limit_s(self._full_batch_s())

    def _full_batch_s(self) -> float | None:
        """The measured time of a batch of `max_batch` full tiles; None before the first batch."""
        return self._admission.throughput.seconds_for(self._max_batch * self._admission.tile_pixels)

    async def start(self) -> None:
        if self._loop_task is not None:
            raise RuntimeError("engine already started")
        # A thread per batch in flight: each waits for its own batch on the device.
        self._executor = ThreadPoolExecutor(self._max_in_flight, thread_name_prefix="srgan-engine")
        self._loop_task = asyncio.create_task(self._pipeline.run(self._executor), name="srgan-engine")
        self._loop_task.add_done_callback(self._loop_ended)
        self._accepting = True

    async def stop(self, drain_timeout_s: float) -> None:
        """Stop accepting, let queued requests finish for up to `drain_timeout_s`, then cut the rest."""
        self._accepting = False
        self._stopped = True
        waiting = len(self._live) + self._preparing
        # Requests admitted before the stop (some still being padded) are drained, not refused.
        drain_until = time.monotonic() + drain_timeout_s
        while (self._live or self._preparing) and time.monotonic() < drain_until:
            await asyncio.sleep(0.01)
        cut = [r for r in self._live if not r.future.done()]
        for request in cut:
            self._fail(request, NotReady("the service is shutting down; retry on another replica"))
        if cut:
            logger.warning("drain timed out after %.1fs: cut %d of %d requests (%s)", drain_timeout_s,
                           len(cut), waiting, ", ".join(r.request_id for r in cut))
        else:
            logger.info("drained %d requests", waiting)
        if self._loop_task is not None:
            tasks = [self._loop_task, *self._pipeline.running]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._executor is not None:
            # A batch still on the device is left to finish in its thread; nobody waits for its result.
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def warmup(self) -> None:
        """Run one full batch of blank windows through each model (allocator, kernel selection)."""
        if self._executor is None:
            raise NotReady("engine not started")
        side = self._tile + 2 * self._pad
        loop = asyncio.get_running_loop()
        for name, fn in self._models.items():
            windows = torch.zeros((self._max_batch, side, side, 3), dtype=torch.uint8, device=fn.device)
            started = time.monotonic()
            await loop.run_in_executor(self._executor, fn.upscale_windows, windows)
            logger.info("warmed up %s: %d tiles in %.3fs", name, self._max_batch, time.monotonic() - started)

    def check_admission(self, height: int, width: int, *, deadline: float, request_id: str = "-") -> TileGrid:
        """The tile grid of a `height` x `width` image, or what `upscale` would refuse it with now (NotReady,
        TooLarge, Overloaded, DeadlineExceeded): a caller can ask before it decodes the image."""
        if not self._accepting:
            raise NotReady("the engine is not accepting requests")
        grid = TileGrid(height, width, self._tile, self._pad, fit=self._fit)
        self._admission.check(grid.window_pixels, deadline, queued=self._queue.pixels + self._reserved,
                              in_flight=self._pipeline.pixels, deadlines=(r.deadline for r in self._live),
                              request_id=request_id)
        return grid

    async def upscale(self, model: str, image: np.ndarray, *, deadline: float,
                      request_id: str = "-") -> np.ndarray:
        """Upscale an H x W x 3 uint8/uint16 image by the model's scale; the result has the image's dtype.

        `deadline` is a `time.monotonic()` value. Raises NotReady when not accepting, Overloaded when the
        queue is full or the deadline cannot be met behind it, DeadlineExceeded when it passes.
        Cancelling the caller drops the request's queued tiles.
        """
        if model not in self._models:
            raise ValueError(f"unknown model {model!r}; known: {', '.join(self._models)}")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"image must be H x W x 3 uint8 or uint16, got {image.shape} {image.dtype}")
        grid = self.check_admission(image.shape[0], image.shape[1], deadline=deadline, request_id=request_id)
        self._reserved += grid.window_pixels
        self._preparing += 1
        try:
            padded, output, tiles = await asyncio.to_thread(prepare, grid, image, self._models[model])
        finally:
            self._reserved -= grid.window_pixels
            self._preparing -= 1
        if self._loop_task is None or self._loop_task.done():
            raise NotReady("the service is shutting down")
        request = TileRequest(request_id, (model, image.dtype.name), grid, padded, output,
                              asyncio.get_running_loop().create_future(), time.monotonic(), deadline, tiles,
                              len(grid))
        self._queue.put(request)
        self._live.add(request)
        self._pipeline.arrived()
        try:
            upscaled = await asyncio.wait_for(request.future, deadline - time.monotonic())
        except TimeoutError:
            logger.info("request %s: deadline passed with %d of %d tiles left", request_id,
                        request.remaining, len(grid))
            raise DeadlineExceeded("the request did not finish before its deadline") from None
        finally:
            self._release(request)
        return await asyncio.to_thread(download, upscaled, image.dtype)

    def _release(self, request: TileRequest) -> None:
        """The caller is gone (result, error, timeout or cancellation): drop whatever it still had queued."""
        if dropped := self._queue.drop(request):
            logger.debug("request %s: dropped %d queued tiles", request.request_id, dropped)
        if not request.future.done():
            request.future.cancel()
        elif not request.future.cancelled():
            request.future.exception()  # mark retrieved: a cancelled caller never will
        self._live.discard(request)

    def _fail(self, request: TileRequest, error: BaseException) -> None:
        # ray#41199: the caller may already have given up; a second resolution would raise in the loop.
        if not request.future.done():
            request.future.set_exception(error)
        self._queue.drop(request)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """Batch failures never end the loop; should a bug, callers must not hang until their deadline."""
        if task.cancelled() or task.exception() is None:
            return
        logger.critical("engine batch loop died; failing %d requests", len(self._live),
                        exc_info=task.exception())
        self._accepting = False
        for request in list(self._live):
            self._fail(request, NotReady("the inference engine stopped"))
