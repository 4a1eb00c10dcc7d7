"""The batch pipeline: a batch is formed only when the device can take it, runs on a worker thread, and
the work in flight is accounted for.

The loop forms a batch while fewer than `max_in_flight` batches run (two on CUDA, so one computes while
the host prepares the next; one on a CPU). A batch returns at most `max_batch` tiles and waits for more
no longer than until its oldest tile has been queued for `max_wait_s`. Each batch runs on a thread of
the engine's executor (`worker`); when it ends its tiles are counted off their requests, the measured
rate is updated, and a request whose tiles are all pasted gets its output.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor

from app.engine.admission import Throughput
from app.engine.liveness import Liveness
from app.engine.queue import BatchKey, TileQueue, TileRequest
from app.engine.worker import Batch, infer_batch
from app.telemetry import Metrics
from model.tiling import DeviceWindowModel

logger = logging.getLogger(__name__)


def default_batch_size(device_type: str, configured: int | None = None) -> int:
    """Tiles per device call: `configured` when set, else 8 on a GPU and 1 on a CPU.

    A GPU runs a batch of 8 in about the time of one tile, but a CPU takes 8x as long (batching gains
    nothing there: docs/BENCHMARKS.md, "Throughput, latency and batching"), so on a CPU a bigger batch only
    makes a small image wait behind a large one's tiles.
    """
    if configured is not None:
        return configured
    return 8 if device_type == "cuda" else 1


def default_in_flight(models: Mapping[str, DeviceWindowModel]) -> int:
    """Batches on the device at once: 2 when every model is on CUDA, else 1.

    With two, one batch computes on the GPU while the host cuts, launches and pastes the other, so the
    GPU does not wait for host work; a CPU computes one batch with all its cores, and a second would
    only contend for them. A model compiled for CUDA graphs gets 1: torch.compile's CUDA graphs are not
    safe to replay from two threads (pytorch/pytorch#123177).
    """
    if all(m.device.type == "cuda" and not m.fixed_shape for m in models.values()):
        return 2
    return 1


class Pipeline:
    """The batches of one engine, from its queue through its models.

    Args:
        models, queue: the engine's models (by name) and its tile queue.
        max_batch, max_wait_s, max_in_flight: as `Engine`'s.
        metrics, oom_errors: as `Engine`'s.
        throughput: told every batch's window pixels and device time.
        liveness: told when a batch starts and ends.
        fail: fails a request whose batch failed.
    """

    def __init__(self, models: Mapping[str, DeviceWindowModel], queue: TileQueue, *, max_batch: int,
                 max_wait_s: float, max_in_flight: int, metrics: Metrics,
                 oom_errors: tuple[type[BaseException], ...], throughput: Throughput, liveness: Liveness,
                 fail: Callable[[TileRequest, BaseException], None]) -> None:
        self._models, self._queue = models, queue
        self._max_batch, self._max_wait_s, self._max_in_flight = max_batch, max_wait_s, max_in_flight
        self._metrics, self._oom_errors = metrics, oom_errors
        self._throughput, self._liveness, self._fail = throughput, liveness, fail
        self.tiles = 0  # tiles in the batches running
        self.pixels = 0  # their window pixels
        self.running: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._arrived = asyncio.Event()
        self._crashed: BaseException | None = None
        self._last_batch_end = -math.inf
        self._loop: asyncio.Task[None] | None = None
        self._executor: Executor | None = None

    def arrived(self) -> None:
        """Tiles were queued: a loop waiting for work (or for a batch to fill) looks again."""
        self._arrived.set()

    async def run(self, executor: Executor) -> None:
        """Form batches and run them on `executor`'s threads until cancelled. A batch's failure fails its
        requests only; an error that is not an Exception ends this loop, raised here."""
        self._executor, self._loop = executor, asyncio.current_task()
        try:
            await self._form_batches()
        except asyncio.CancelledError:
            if self._crashed is not None:
                raise self._crashed from None
            raise

    async def _form_batches(self) -> None:
        while True:
            if len(self.running) >= self._max_in_flight:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            key = self._queue.next_key()
            if key is None:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            until = self._queue.oldest(key) + self._max_wait_s
            while 0 < self._queue.pending(key) < self._max_batch and (left := until - time.monotonic()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
            batch = self._queue.take(key, self._max_batch)
            if batch:
                # Until it ends, this key's batch is the most recent: every other key with tiles goes first.
                self._queue.served(key, math.inf)
                task = asyncio.create_task(self._run_batch(key, batch), name="srgan-batch")
                self.running.add(task)
                task.add_done_callback(self._batch_ended)

    def _batch_ended(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and (error := task.exception()) is not None and self._loop is not None:
            self._crashed = error
            self._loop.cancel()

    async def _run_batch(self, key: BatchKey, batch: Batch) -> None:
        """Run one batch in the worker; a failure fails this batch's requests and nothing else."""
        assert self._executor is not None
        model, _ = key
        started = time.monotonic()
        for request, _tile in batch:
            self._metrics.queue_wait.observe(started - request.enqueued_at)
        self._metrics.batch_size.labels(model=model).observe(len(batch))
        pixels = sum(request.window_pixels for request, _tile in batch)
        self.tiles += len(batch)
        self.pixels += pixels
        self._liveness.progress_at = started
        try:
            run = functools.partial(infer_batch, self._models[model], model, batch,
                                    oom_errors=self._oom_errors)
            await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except Exception as error:
            failed = {request for request, _tile in batch}
            logger.error("batch of %d %s tiles failed (%s: %s); failing requests %s", len(batch), model,
                         type(error).__name__, error, ", ".join(sorted(r.request_id for r in failed)))
            for request in failed:
                self._fail(request, error)
            return
        finally:
            self.tiles -= len(batch)
            self.pixels -= pixels
            self._liveness.progress_at = time.monotonic()
            self._queue.served(key, time.monotonic())
        ended = time.monotonic()
        self._metrics.batch_duration.labels(model=model).observe(ended - started)
        # The device's time for this batch: with two in flight, it started on the device when the batch
        # before it ended, not when it was sent.
        self._throughput.record(pixels, ended - max(started, self._last_batch_end))
        self._last_batch_end = ended
        for request, _tile in batch:
            request.remaining -= 1
            if request.remaining == 0 and not request.future.done():
                request.future.set_result(request.output)
