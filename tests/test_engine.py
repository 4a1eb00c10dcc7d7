"""The micro-batching engine, driven by a fake model that records every batch, and by a tiny real generator.

Fake images carry their request's id in the blue channel (constant, so every window of the image
shows it) and noise in red and green (so stitching is checked pixel for pixel).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

from app.engine import Engine, default_batch_size
from app.engine import engine as engine_module
from app.errors import DeadlineExceeded, NotReady, Overloaded, TooLarge
from app.telemetry import Metrics
from model.inference import Upscaler
from model.tiling import WindowModel, upscale_tiled
from tests.api_helpers import until
from tests.conftest import tiny_generator

SCALE = 4


class FakeModel:
    """Nearest-neighbour x4. Hold it with `gate.clear()`; every call is recorded in `calls` (shareable)."""

    def __init__(self, name: str = "srgan", *, seconds_per_tile: float = 0.0, fail_on: int | None = None,
                 oom_above: int | None = None, oom_error: type[BaseException] = torch.cuda.OutOfMemoryError,
                 calls: list[tuple[str, list[int]]] | None = None, scale: int = SCALE) -> None:
        self.name, self.seconds_per_tile, self.fail_on = name, seconds_per_tile, fail_on
        self.scale = scale
        self.oom_above, self.oom_error = oom_above, oom_error
        self.calls = calls if calls is not None else []
        self.attempts: list[list[int]] = []  # every call, including those that raised
        self.batches: list[list[int]] = []  # the calls that succeeded
        self.started_at: list[float] = []
        self.inputs: list[tuple[tuple[int, ...], np.dtype]] = []  # every call's windows: shape and dtype
        self.threads: list[str] = []
        self.gate, self.entered = threading.Event(), threading.Event()
        self.gate.set()

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        ids = [int(w[0, 0, 2]) for w in windows]
        self.inputs.append((windows.shape, windows.dtype))
        self.threads.append(threading.current_thread().name)
        self.started_at.append(time.monotonic())
        self.attempts.append(ids)
        self.entered.set()
        self.gate.wait(timeout=10)
        time.sleep(self.seconds_per_tile * len(windows))
        if self.oom_above is not None and len(windows) > self.oom_above:
            raise self.oom_error("fake: out of memory")
        if self.fail_on in ids:
            raise ValueError(f"fake: cannot process tile of request {self.fail_on}")
        self.batches.append(ids)
        self.calls.append((self.name, ids))
        return windows.repeat(self.scale, axis=1).repeat(self.scale, axis=2)


def tagged(request: int, height: int, width: int, dtype: npt.DTypeLike = np.uint8) -> np.ndarray:
    image = np.random.default_rng(request).integers(0, 250, (height, width, 3)).astype(dtype)
    image[..., 2] = request
    return image


def nearest(image: np.ndarray, scale: int = SCALE) -> np.ndarray:
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def far() -> float:
    return time.monotonic() + 30


def submit(engine: Engine, image: np.ndarray, *, model: str = "srgan", deadline: float | None = None,
           request_id: str = "-") -> asyncio.Task[np.ndarray]:
    return asyncio.create_task(engine.upscale(model, image, deadline=deadline if deadline else far(),
                                              request_id=request_id))


EngineFactory = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def engine_factory() -> AsyncIterator[EngineFactory]:
    """Started engines with small test defaults (tile 4, pad 1, batch 4); all stopped afterwards."""
    started: list[tuple[Engine, Mapping[str, WindowModel]]] = []

    async def factory(models: Mapping[str, WindowModel], **overrides: Any) -> Engine:
        options: dict[str, Any] = {"tile": 4, "pad": 1, "max_batch": 4, "max_wait_s": 0.002,
                                   "max_queue_tiles": 1000, "metrics": Metrics()} | overrides
        engine = Engine(models, **options)
        await engine.start()
        started.append((engine, models))
        return engine

    yield factory
    for engine, models in started:
        for fn in models.values():
            if isinstance(fn, FakeModel):
                fn.gate.set()
        await engine.stop(drain_timeout_s=0)


@pytest.mark.parametrize(("option", "value"), [
    ("tile", 0), ("pad", -1), ("max_batch", 0), ("max_wait_s", -0.1), ("max_queue_tiles", 0)])
def test_bad_parameters_are_refused_by_name(option: str, value: float) -> None:
    options: dict[str, Any] = {"tile": 4, "pad": 1, "max_batch": 4, "max_wait_s": 0.0,
                               "max_queue_tiles": 10, option: value}
    with pytest.raises(ValueError, match=option):
        Engine({"srgan": FakeModel()}, **options)


def test_a_batch_is_one_tile_on_a_cpu_and_eight_on_a_gpu_unless_configured() -> None:
    # On a CPU a batch costs time in proportion to its tiles, so batching only adds queueing delay.
    assert default_batch_size("cpu") == 1 and default_batch_size("cuda") == 8
    assert default_batch_size("cpu", 3) == 3 and default_batch_size("cuda", 3) == 3


def test_a_model_without_a_positive_scale_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'flat' has scale 0"):
        Engine({"flat": FakeModel(scale=0)}, tile=4, pad=1, max_batch=1, max_wait_s=0, max_queue_tiles=1)


async def test_models_of_different_scales_are_served_side_by_side(engine_factory: EngineFactory) -> None:
    x2, x4 = FakeModel("x2", scale=2), FakeModel("x4", scale=4)
    engine = await engine_factory({"x2": x2, "x4": x4})
    images = [tagged(i, 7, 13) for i in (1, 2)]
    doubled, quadrupled = await asyncio.gather(engine.upscale("x2", images[0], deadline=far()),
                                               engine.upscale("x4", images[1], deadline=far()))
    np.testing.assert_array_equal(doubled, nearest(images[0], 2))
    np.testing.assert_array_equal(quadrupled, nearest(images[1], 4))


async def test_bad_calls_are_value_errors_and_none_run_before_start(engine_factory: EngineFactory) -> None:
    idle = Engine({"srgan": FakeModel()}, tile=4, pad=1, max_batch=1, max_wait_s=0,
                  max_queue_tiles=1)
    with pytest.raises(NotReady):
        await idle.upscale("srgan", tagged(1, 4, 4), deadline=far())
    engine = await engine_factory({"srgan": FakeModel()})
    with pytest.raises(ValueError, match="unknown model 'esrgan'"):
        await engine.upscale("esrgan", tagged(1, 4, 4), deadline=far())
    for bad in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)):
        with pytest.raises(ValueError, match="H x W x 3 uint8 or uint16"):
            await engine.upscale("srgan", bad, deadline=far())


async def test_any_mix_of_sizes_and_dtypes_is_stitched_exactly(engine_factory: EngineFactory) -> None:
    model = FakeModel()
    engine = await engine_factory({"srgan": model})
    images = [tagged(i, h, w, dtype) for i, (h, w, dtype) in enumerate([
        (1, 1, np.uint8), (7, 13, np.uint8), (40, 33, np.uint8), (5, 4, np.uint8),
        (1, 1, np.uint16), (7, 13, np.uint16), (9, 3, np.uint16)], start=1)]
    results = await asyncio.gather(*(engine.upscale("srgan", im, deadline=far()) for im in images))
    for image, result in zip(images, results, strict=True):
        assert result.dtype == image.dtype
        np.testing.assert_array_equal(result, nearest(image))
    wide = {i for i, im in enumerate(images, start=1) if im.dtype == np.uint16}
    assert all(len({i in wide for i in batch}) == 1 for batch in model.batches), "a batch mixed dtypes"
    assert {dtype for _shape, dtype in model.inputs} == {np.dtype(np.uint8), np.dtype(np.uint16)}
    assert max(len(batch) for batch in model.batches) <= 4


async def test_batch_is_formed_only_when_the_worker_is_free(engine_factory: EngineFactory) -> None:
    model = FakeModel()
    engine = await engine_factory({"srgan": model})
    model.gate.clear()
    first = submit(engine, tagged(1, 4, 4))
    await until(model.entered.is_set)
    waiting = [submit(engine, tagged(i, 4, 4)) for i in range(2, 7)]
    await asyncio.sleep(0.1)  # many max_wait_s periods pass while the worker is busy
    assert len(model.attempts) == 1
    assert engine.queue_depth_tiles == 5, "tiles were taken from the queue while the worker was busy"
    model.gate.set()
    await asyncio.gather(first, *waiting)
    assert [len(batch) for batch in model.batches] == [1, 4, 1]


async def test_a_lone_tile_waits_max_wait_and_a_full_batch_does_not(engine_factory: EngineFactory) -> None:
    model = FakeModel()
    engine = await engine_factory({"srgan": model}, max_wait_s=0.15)
    submitted = time.monotonic()
    await engine.upscale("srgan", tagged(1, 4, 4), deadline=far())
    assert 0.14 <= model.started_at[0] - submitted < 1.0
    await asyncio.gather(*(engine.upscale("srgan", tagged(i, 4, 4), deadline=far()) for i in (2, 3)))
    # Both arrive while the worker is free: one batch of two. Their order in it depends on which
    # request's padding thread finishes first, which is not this test's business.
    assert [sorted(batch) for batch in model.batches[1:]] == [[2, 3]]
    slow = await engine_factory({"srgan": FakeModel()}, max_wait_s=5.0)
    submitted = time.monotonic()
    await slow.upscale("srgan", tagged(4, 8, 8), deadline=far())  # 4 tiles: full at once
    assert time.monotonic() - submitted < 1.0


async def test_a_small_request_behind_a_large_one_waits_one_batch(engine_factory: EngineFactory) -> None:
    model = FakeModel(seconds_per_tile=0.001)
    engine = await engine_factory({"srgan": model})
    model.gate.clear()
    large = submit(engine, tagged(1, 40, 40))  # 100 tiles
    await until(model.entered.is_set)
    small = submit(engine, tagged(2, 4, 4))
    await until(lambda: engine.queue_depth_tiles == 97)
    model.gate.set()
    await small
    assert not large.done()
    assert 2 in model.batches[1], "the small request's tile was not in the first batch formed after it"
    np.testing.assert_array_equal(await large, nearest(tagged(1, 40, 40)))


async def test_newcomers_go_next_in_arrival_order_ahead_of_started_requests(
        engine_factory: EngineFactory) -> None:
    # One tile per batch (the CPU default): a newcomer must not also wait for another turn of the
    # large request, whose tile was requeued before the newcomer arrived.
    model = FakeModel()
    engine = await engine_factory({"srgan": model}, max_batch=1)
    model.gate.clear()
    large = submit(engine, tagged(1, 12, 12))  # 9 tiles
    await until(model.entered.is_set)
    first = submit(engine, tagged(2, 4, 4))  # 1 tile
    await until(lambda: engine.queue_depth_tiles == 9)  # queued before the next arrives
    second = submit(engine, tagged(3, 8, 4))  # 2 tiles
    await until(lambda: engine.queue_depth_tiles == 11)
    model.gate.set()
    await asyncio.gather(large, first, second)
    assert model.batches[:5] == [[1], [2], [3], [1], [3]]


async def test_models_take_turns(engine_factory: EngineFactory) -> None:
    calls: list[tuple[str, list[int]]] = []
    srgan, srresnet = FakeModel("srgan", calls=calls), FakeModel("srresnet", calls=calls)
    engine = await engine_factory({"srgan": srgan, "srresnet": srresnet})
    srgan.gate.clear()
    large = submit(engine, tagged(1, 40, 40))
    await until(srgan.entered.is_set)
    small = submit(engine, tagged(2, 4, 4), model="srresnet")
    await until(lambda: engine.queue_depth_tiles == 97)
    srgan.gate.set()
    await asyncio.gather(large, small)
    assert calls[1] == ("srresnet", [2])


async def test_a_full_queue_refuses_with_retry_after(engine_factory: EngineFactory) -> None:
    model = FakeModel()
    engine = await engine_factory({"srgan": model}, max_queue_tiles=10)
    model.gate.clear()
    running = [submit(engine, tagged(1, 4, 4))]
    await until(model.entered.is_set)
    running.append(submit(engine, tagged(2, 8, 16)))  # 8 tiles
    await until(lambda: engine.queue_depth_tiles == 8)
    with pytest.raises(Overloaded) as refused:
        await engine.upscale("srgan", tagged(3, 8, 8), deadline=far())  # 4 more: 12 > 10
    assert refused.value.retry_after_s == 1.0  # no batch has finished: nothing measured to plan with
    running.append(submit(engine, tagged(4, 4, 8)))  # 2 fit
    await until(lambda: engine.queue_depth_tiles == 10)
    model.gate.set()
    await asyncio.gather(*running)
    assert engine.throughput_pixels_per_s is not None
    # More tiles than the queue holds would lock everyone else out: refused even into an empty queue.
    with pytest.raises(TooLarge, match="12 tiles"):
        await engine.upscale("srgan", tagged(5, 12, 16), deadline=far())


async def test_a_passed_deadline_fails_the_request_and_drops_its_tiles(engine_factory: EngineFactory) -> None:
    model, metrics = FakeModel(), Metrics()
    engine = await engine_factory({"srgan": model}, metrics=metrics)
    with pytest.raises(DeadlineExceeded):
        await engine.upscale("srgan", tagged(9, 4, 4), deadline=time.monotonic() - 1)
    model.gate.clear()
    first = submit(engine, tagged(1, 4, 4))
    await until(model.entered.is_set)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await engine.upscale("srgan", tagged(2, 8, 16), deadline=time.monotonic() + 0.1)
    assert time.monotonic() - started < 1.0
    assert engine.queue_depth_tiles == 0
    assert metrics.registry.get_sample_value("srgan_queue_depth_tiles") == 0
    model.gate.set()
    await first
    assert all(2 not in batch for batch in model.attempts)


async def test_a_deadline_the_queue_rules_out_is_refused_at_once(engine_factory: EngineFactory) -> None:
    model = FakeModel(seconds_per_tile=0.01)
    engine = await engine_factory({"srgan": model})
    await engine.upscale("srgan", tagged(1, 8, 8), deadline=far())  # measures about 100 tiles/s
    rate = engine.throughput_pixels_per_s  # of windows of 6 x 6 (tile 4, pad 1): about 3600 pixels/s
    assert rate is not None
    # 100 tiles need about a second: refused on admission (queued, it would end in DeadlineExceeded).
    with pytest.raises(Overloaded) as refused:
        await engine.upscale("srgan", tagged(2, 40, 40), deadline=time.monotonic() + 0.3)
    # Come back when the work beyond what fits in 90 % of the 0.3 s has been done (to a tile's time).
    work = 100 * 36
    assert refused.value.retry_after_s == pytest.approx((work - 0.9 * 0.3 * rate) / rate, abs=2 * 36 / rate)
    assert all(2 not in batch for batch in model.attempts)
    await engine.upscale("srgan", tagged(3, 8, 8), deadline=time.monotonic() + 5)


async def test_admission_keeps_a_tenth_of_the_time_left_in_reserve(engine_factory: EngineFactory) -> None:
    model = FakeModel(seconds_per_tile=0.01)
    engine = await engine_factory({"srgan": model})
    await engine.upscale("srgan", tagged(1, 8, 8), deadline=far())
    assert engine.throughput_pixels_per_s is not None
    needed_s = 100 * 36 / engine.throughput_pixels_per_s  # a 40x40 image is 100 windows of 6 x 6
    with pytest.raises(Overloaded):  # fits in the time left, but not in 90 % of it
        await engine.upscale("srgan", tagged(2, 40, 40), deadline=time.monotonic() + needed_s / 0.95)
    assert all(2 not in batch for batch in model.attempts)
    roomy = time.monotonic() + needed_s / 0.8 + 0.5  # the half second absorbs the fake's sleep overshoot
    result = await engine.upscale("srgan", tagged(3, 40, 40), deadline=roomy)
    np.testing.assert_array_equal(result, nearest(tagged(3, 40, 40)))


async def test_a_cancelled_request_never_reaches_the_model(engine_factory: EngineFactory) -> None:
    model, metrics = FakeModel(), Metrics()
    engine = await engine_factory({"srgan": model}, metrics=metrics)
    model.gate.clear()
    first = submit(engine, tagged(1, 4, 4))
    await until(model.entered.is_set)
    doomed = submit(engine, tagged(2, 8, 20))  # 10 tiles
    await until(lambda: metrics.registry.get_sample_value("srgan_queue_depth_tiles") == 10)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert engine.queue_depth_tiles == 0
    assert metrics.registry.get_sample_value("srgan_queue_depth_tiles") == 0
    model.gate.set()
    await first
    await engine.upscale("srgan", tagged(3, 4, 4), deadline=far())
    assert all(2 not in batch for batch in model.attempts)


async def test_a_failing_batch_fails_only_its_requests(engine_factory: EngineFactory,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    model = FakeModel(fail_on=1)
    engine = await engine_factory({"srgan": model}, max_batch=1)
    tasks = [submit(engine, tagged(i, 8, 8), request_id=f"r{i}") for i in (1, 2)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], ValueError)
    np.testing.assert_array_equal(results[1], nearest(tagged(2, 8, 8)))
    assert sum(1 in batch for batch in model.attempts) == 1, "the failed request's other tiles still ran"
    await engine.upscale("srgan", tagged(3, 4, 4), deadline=far())
    assert "failing requests r1" in caplog.text


async def test_a_model_returning_the_wrong_shape_fails_its_batch(engine_factory: EngineFactory) -> None:
    class Identity:
        scale = SCALE

        def __call__(self, windows: np.ndarray) -> np.ndarray:
            return windows

    engine = await engine_factory({"srgan": Identity()}, max_batch=2, max_wait_s=5)  # both in one batch
    refused = await asyncio.gather(submit(engine, tagged(1, 4, 4), request_id="r2"),
                                   submit(engine, tagged(2, 4, 4), request_id="r1"), return_exceptions=True)
    for error in refused:
        assert isinstance(error, RuntimeError)
        assert str(error) == ("the model returned (2, 6, 6, 3) torch.uint8 for (2, 6, 6, 3) torch.uint8, "
                              "expected (2, 24, 24, 3) (model 'srgan', requests r1, r2)")


async def test_a_numpy_model_returning_another_dtype_fails_its_batch(engine_factory: EngineFactory) -> None:
    class Widening(FakeModel):
        def __call__(self, windows: np.ndarray) -> np.ndarray:
            return super().__call__(windows).astype(np.uint16)

    engine = await engine_factory({"srgan": Widening()})
    wrong = r"returned \(1, 24, 24, 3\) torch.uint16 for \(1, 6, 6, 3\) torch.uint8"
    with pytest.raises(RuntimeError, match=wrong):
        await engine.upscale("srgan", tagged(1, 4, 4), deadline=far())


@pytest.mark.parametrize("oom_error", [torch.cuda.OutOfMemoryError, MemoryError])
async def test_out_of_memory_halves_the_batch(engine_factory: EngineFactory, caplog: pytest.LogCaptureFixture,
                                              oom_error: type[BaseException]) -> None:
    model = FakeModel(oom_above=2, oom_error=oom_error)
    engine = await engine_factory({"srgan": model}, max_batch=8, oom_errors=(oom_error,))
    image = tagged(1, 8, 16)  # 8 tiles
    np.testing.assert_array_equal(await engine.upscale("srgan", image, deadline=far()), nearest(image))
    assert [len(a) for a in model.attempts] == [8, 4, 2, 2, 4, 2, 2]
    assert all(len(batch) <= 2 for batch in model.batches)
    assert "out of memory on 8 tiles, retrying as 4 + 4" in caplog.text
    model.oom_above = 0  # not even one tile fits: the client is told to retry, not given a 500
    single = r"^the device ran out of memory even for a single tile; retry later$"
    with pytest.raises(Overloaded, match=single) as refused:
        await engine.upscale("srgan", tagged(2, 4, 4), deadline=far())
    assert refused.value.retry_after_s == 5


async def test_an_abandoned_future_is_never_resolved_twice(engine_factory: EngineFactory,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    loop_errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context))
    model = FakeModel(fail_on=3)
    engine = await engine_factory({"srgan": model}, max_batch=8)
    # Request 2's deadline leaves time for its padding and admission on a loaded machine (at 50 ms,
    # a slow first batch made admission refuse it, or the deadline passed before its tile was taken).
    for request, deadline in ((1, far()), (2, time.monotonic() + 0.5), (3, far())):
        model.gate.clear()
        model.entered.clear()
        task = submit(engine, tagged(request, 4, 4), deadline=deadline)
        await until(model.entered.is_set)  # its only tile is on the worker: cancel or time out now
        if request == 2:
            with pytest.raises(DeadlineExceeded):
                await task
        else:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        model.gate.set()  # the batch then completes (or fails, for 3) for a caller who left
    np.testing.assert_array_equal(await engine.upscale("srgan", tagged(4, 4, 4), deadline=far()),
                                  nearest(tagged(4, 4, 4)))
    gc.collect()
    await asyncio.sleep(0)
    assert loop_errors == []
    assert "InvalidStateError" not in caplog.text


async def test_stop_drains_work_in_flight_then_refuses(engine_factory: EngineFactory,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.engine")
    engine = await engine_factory({"srgan": FakeModel(seconds_per_tile=0.005)})
    images = [tagged(i, 8, 8) for i in range(1, 4)]
    tasks = [submit(engine, im) for im in images]
    await until(lambda: engine.queue_depth_tiles > 0)
    await engine.stop(drain_timeout_s=5)
    for image, task in zip(images, tasks, strict=True):
        np.testing.assert_array_equal(task.result(), nearest(image))
    assert engine.accepting is False
    with pytest.raises(NotReady):
        await engine.upscale("srgan", images[0], deadline=far())
    assert "drained 3 requests" in caplog.text


async def test_stop_cuts_what_the_drain_timeout_leaves(engine_factory: EngineFactory,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    model = FakeModel()
    engine = await engine_factory({"srgan": model})
    model.gate.clear()
    tasks = [submit(engine, tagged(1, 4, 4), request_id="r1")]
    await until(model.entered.is_set)
    tasks.append(submit(engine, tagged(2, 4, 4), request_id="r2"))
    await until(lambda: engine.queue_depth_tiles == 1)
    started = time.monotonic()
    await engine.stop(drain_timeout_s=0.1)
    assert 0.1 <= time.monotonic() - started < 1.0
    for task in tasks:
        with pytest.raises(NotReady) as cut:
            await task
        assert str(cut.value) == "the service is shutting down; retry on another replica"
    assert "cut 2 of 2 requests" in caplog.text
    model.gate.set()


async def test_stop_ends_the_engines_tasks_without_an_error_on_the_loop(
        engine_factory: EngineFactory) -> None:
    loop_errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context))
    model = FakeModel()
    engine = await engine_factory({"srgan": model})
    await engine.upscale("srgan", tagged(1, 8, 8), deadline=far())
    model.gate.clear()
    running = submit(engine, tagged(2, 4, 4))
    await until(model.entered.is_set)  # a batch is on the worker when the engine stops
    await engine.stop(drain_timeout_s=0)
    with pytest.raises(NotReady):
        await running
    engine_tasks = [t for t in asyncio.all_tasks() if t.get_name() in ("srgan-engine", "srgan-batch")]
    assert engine_tasks == []
    model.gate.set()
    await asyncio.sleep(0)
    assert loop_errors == []


async def test_a_batch_runs_past_the_stall_limit_only_once_it_is_exceeded(
        engine_factory: EngineFactory) -> None:
    model = FakeModel()
    engine = await engine_factory({"srgan": model}, stall_timeout_s=2.0, max_wait_s=0.5)
    model.gate.clear()
    task = submit(engine, tagged(1, 4, 4))
    await until(model.entered.is_set)
    started = engine._liveness.progress_at  # when the batch went to the worker
    assert engine.stall_limit_s == 2.5  # nothing measured yet: the fill wait plus the floor
    assert engine.health_problem(now=started + 2.5) is None
    assert engine.health_problem(now=started + 2.75) == "a batch of 1 tiles has run for 2.8 s (limit 2.5 s)"
    model.gate.set()
    await task


async def test_warmup_runs_one_full_batch_per_model_on_the_engines_thread(
        engine_factory: EngineFactory) -> None:
    idle = Engine({"srgan": FakeModel()}, tile=4, pad=1, max_batch=1, max_wait_s=0, max_queue_tiles=1)
    with pytest.raises(NotReady) as refused:
        await idle.warmup()
    assert str(refused.value) == "engine not started"
    srgan, srresnet = FakeModel("srgan"), FakeModel("srresnet")
    engine = await engine_factory({"srgan": srgan, "srresnet": srresnet}, max_batch=3, tile=4, pad=2)
    await engine.warmup()
    assert srgan.inputs == srresnet.inputs == [((3, 8, 8, 3), np.dtype(np.uint8))]  # tile + 2 x pad
    assert [t.split("_")[0] for t in srgan.threads + srresnet.threads] == ["srgan-engine"] * 2


class MetaDeviceModel:
    """A device model on the `meta` device, which records the windows it is given."""

    scale = SCALE
    device = torch.device("meta")
    fixed_shape = False

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def upscale_windows(self, windows: torch.Tensor) -> torch.Tensor:
        self.seen.append(windows)
        return windows.repeat_interleave(self.scale, 1).repeat_interleave(self.scale, 2)


async def test_warmup_windows_are_made_on_the_models_device(engine_factory: EngineFactory) -> None:
    model = MetaDeviceModel()
    engine = await engine_factory({"srgan": model}, max_batch=2)
    await engine.warmup()
    assert [(w.shape, w.dtype, w.device.type) for w in model.seen] == [((2, 6, 6, 3), torch.uint8, "meta")]


async def test_metrics_count_batches_and_waits(engine_factory: EngineFactory) -> None:
    metrics = Metrics()
    engine = await engine_factory({"srgan": FakeModel()}, metrics=metrics)
    sent = time.monotonic()
    await engine.upscale("srgan", tagged(1, 8, 12), deadline=far())  # 6 tiles: batches of 4 and 2
    elapsed = time.monotonic() - sent
    sample = metrics.registry.get_sample_value
    assert sample("srgan_batch_size_tiles_count", {"model": "srgan"}) == 2
    assert sample("srgan_batch_size_tiles_sum", {"model": "srgan"}) == 6
    assert sample("srgan_batch_duration_seconds_count", {"model": "srgan"}) == 2
    assert sample("srgan_queue_wait_seconds_count") == 6
    # Durations, not timestamps: each within the request's own time.
    batch_seconds = sample("srgan_batch_duration_seconds_sum", {"model": "srgan"})
    waited_seconds = sample("srgan_queue_wait_seconds_sum")
    assert batch_seconds is not None and 0 < batch_seconds <= elapsed
    assert waited_seconds is not None and 0 <= waited_seconds <= 6 * elapsed


# Setting the oneDNN flags warns, on a CPU build, that TF32 needs an Intel GPU.
@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
async def test_real_generators_match_upscale_tiled_byte_for_byte(engine_factory: EngineFactory) -> None:
    """Concurrent requests of mixed sizes, dtypes and models through tiny real generators.

    CPU convolution results depend on the batch size with the default backends: oneDNN takes another
    path for a batch of one (float outputs differ by ~1e-7, which flips some uint16 and rare uint8
    values), and NNPACK is used from a batch of 16. With both off, torch's native convolution computes
    every sample on its own, so a window's output does not depend on its batch companions, and the
    engine's batching must reproduce `upscale_tiled` exactly.
    """
    upscalers = {name: Upscaler.from_module(name, tiny_generator(seed), torch.device("cpu"), torch.float32)
                 for seed, name in enumerate(("srresnet", "srgan"))}
    rng = np.random.default_rng(0)
    requests = [("srgan", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
                for h, w in ((1, 1), (7, 13), (40, 33), (100, 64))]
    requests += [("srresnet", rng.integers(0, 65536, (h, w, 3), dtype=np.uint16))
                 for h, w in ((1, 1), (7, 13))]
    requests += [("srresnet", rng.integers(0, 256, (40, 33, 3), dtype=np.uint8))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the 2 cores are shared; one thread is several times faster here
    try:
        with torch.backends.mkldnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False):
            windows = rng.integers(0, 65536, (3, 24, 24, 3), dtype=np.uint16)
            alone = np.concatenate([upscalers["srgan"](windows[i : i + 1]) for i in range(3)])
            assert np.array_equal(upscalers["srgan"](windows), alone), "backend is not batch-invariant"
            engine = await engine_factory(upscalers, tile=16, pad=4, max_batch=4)
            results = await asyncio.gather(*(engine.upscale(name, image, deadline=far())
                                             for name, image in requests))
            for (name, image), result in zip(requests, results, strict=True):
                expected = upscale_tiled(image, upscalers[name], scale=SCALE, tile=16, pad=4)
                assert result.dtype == image.dtype
                np.testing.assert_array_equal(result, expected, err_msg=f"{name} {image.shape} {image.dtype}")
    finally:
        torch.set_num_threads(threads)


async def test_under_sustained_overload_admitted_requests_meet_their_deadline(
        engine_factory: EngineFactory) -> None:
    """3x overload of multi-tile requests with a 1 s deadline: the excess is refused at once, and what is
    admitted finishes in time, although round-robin lets later arrivals share the device with it."""
    model = FakeModel(seconds_per_tile=0.01)  # 100 tiles/s
    engine = await engine_factory({"srgan": model}, max_batch=4)
    await engine.upscale("srgan", tagged(0, 8, 8), deadline=far())  # a measured throughput to plan with
    rng = np.random.default_rng(0)
    outcomes: list[str] = []

    async def one(i: int) -> None:
        try:
            await engine.upscale("srgan", tagged(i, 12, 12), deadline=time.monotonic() + 1.0)  # 9 tiles
            outcomes.append("ok")
        except Overloaded:
            outcomes.append("refused")
        except DeadlineExceeded:
            outcomes.append("late")

    tasks = []
    stop = time.monotonic() + 2.0
    i = 1
    while time.monotonic() < stop:  # ~33 requests/s of 9 tiles: 3x the 100 tiles/s the model does
        tasks.append(asyncio.create_task(one(i)))
        i += 1
        await asyncio.sleep(float(rng.exponential(0.03)))
    await asyncio.gather(*tasks)
    assert outcomes.count("late") == 0, outcomes
    assert outcomes.count("refused") > 0 and outcomes.count("ok") > 0


async def test_requests_being_padded_count_against_the_queue_bound(
        engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    padding = threading.Event()
    real_prepare = engine_module.prepare

    def slow_prepare(*args: Any) -> Any:
        padding.wait(timeout=10)
        return real_prepare(*args)

    monkeypatch.setattr(engine_module, "prepare", slow_prepare)
    engine = await engine_factory({"srgan": FakeModel()}, max_queue_tiles=10)
    first = submit(engine, tagged(1, 8, 16))  # 8 tiles, admitted, still being padded
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded, match=r"^the queue is full \(the work of 8 tiles waiting\)$"):
        await engine.upscale("srgan", tagged(2, 8, 8), deadline=far())  # 4 more
    padding.set()
    np.testing.assert_array_equal(await first, nearest(tagged(1, 8, 16)))


async def test_a_request_prepared_after_the_loop_died_is_refused(engine_factory: EngineFactory) -> None:
    engine = await engine_factory({"srgan": FakeModel()})
    assert engine._loop_task is not None
    engine._loop_task.cancel()  # cancelled, not crashed: the engine still says it accepts
    await asyncio.gather(engine._loop_task, return_exceptions=True)
    with pytest.raises(NotReady, match=r"^the service is shutting down$"):
        await engine.upscale("srgan", tagged(1, 4, 4), deadline=far())


async def test_a_stopped_engine_refuses_before_admission(engine_factory: EngineFactory) -> None:
    engine = await engine_factory({"srgan": FakeModel()}, max_queue_tiles=1)
    await engine.stop(drain_timeout_s=0)
    with pytest.raises(NotReady, match=r"^the engine is not accepting requests$"):
        engine.check_admission(100, 100, deadline=far())  # also too large: not accepting is said first


async def test_a_request_cancelled_while_its_batch_fills_does_not_hold_up_another_model(
        engine_factory: EngineFactory) -> None:
    srgan, srresnet = FakeModel("srgan"), FakeModel("srresnet")
    engine = await engine_factory({"srgan": srgan, "srresnet": srresnet}, max_wait_s=5.0)
    lone = submit(engine, tagged(1, 4, 4))  # one tile: its batch waits up to 5 s for company
    await until(lambda: engine.queue_depth_tiles == 1)
    lone.cancel()
    await asyncio.gather(lone, return_exceptions=True)
    image = tagged(2, 8, 8)  # a full batch of 4 for the other model: it has nothing to wait for
    result = await asyncio.wait_for(engine.upscale("srresnet", image, deadline=far()), timeout=2.5)
    np.testing.assert_array_equal(result, nearest(image))
    assert srgan.attempts == []


async def test_in_flight_tiles_add_up_over_concurrent_batches(engine_factory: EngineFactory) -> None:
    model = FakeModel()
    engine = await engine_factory({"srgan": model}, max_in_flight=2)
    model.gate.clear()
    task = submit(engine, tagged(1, 8, 16))  # 8 tiles: two batches of 4, both on the device
    await until(lambda: len(model.attempts) == 2)
    problem = engine.health_problem(now=time.monotonic() + 1000)
    assert problem is not None and problem.startswith("a batch of 8 tiles has run for")
    model.gate.set()
    await task
    assert engine.health_problem(now=time.monotonic() + 1000) is None  # nothing left in flight


async def test_a_model_whose_batch_ended_goes_before_one_whose_batch_still_runs(
        engine_factory: EngineFactory) -> None:
    hold, a, b = FakeModel("hold"), FakeModel("a"), FakeModel("b")
    engine = await engine_factory({"hold": hold, "a": a, "b": b}, max_batch=1, max_in_flight=2)
    for model in (hold, a, b):
        model.gate.clear()
    held = submit(engine, tagged(1, 4, 8), model="hold")  # two batches: both slots taken
    await until(lambda: len(hold.attempts) == 2)
    queued = [submit(engine, tagged(2, 4, 12), model="b")]  # 3 tiles each, b's queued first
    await until(lambda: engine.queue_depth_tiles == 3)
    queued.append(submit(engine, tagged(3, 4, 12), model="a"))
    await until(lambda: engine.queue_depth_tiles == 6)
    hold.gate.set()
    await until(lambda: bool(a.attempts and b.attempts))  # one batch of each on the device
    a.gate.set()  # a's batch ends while b's still runs: a's next tiles go first
    await until(lambda: len(a.batches) == 3, timeout_s=5)
    assert b.batches == []
    b.gate.set()
    await asyncio.gather(held, *queued)
