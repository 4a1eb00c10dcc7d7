"""The engine where mutation testing (scripts/mutation, docs/TESTING.md) found it unpinned: its exact
messages, the smallest parameters it takes, its defaults, the names of its tasks, what `stop` leaves behind,
and requests being padded adding up against the queue bound."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from app.engine import Engine, admission, pipeline
from app.engine import engine as engine_module
from app.errors import DeadlineExceeded, NotReady, Overloaded, TooLarge
from tests.test_engine import EngineFactory, FakeModel, engine_factory, far, nearest, submit, tagged, until

__all__ = ["engine_factory"]  # the fixture, shared with the engine's own tests


class ThreadRecordingModel(FakeModel):
    """A FakeModel that keeps the threads it ran on (names repeat across engines; threads do not)."""

    def __init__(self) -> None:
        super().__init__()
        self.thread_objects: list[threading.Thread] = []

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        self.thread_objects.append(threading.current_thread())
        return super().__call__(windows)


async def with_a_batch_held(engine_factory: EngineFactory, model: FakeModel,
                            **options: Any) -> tuple[Engine, asyncio.Task[np.ndarray]]:
    """A started engine whose first request's batch is on the model, held there by its gate."""
    engine = await engine_factory({"srgan": model}, **options)
    model.gate.clear()
    running = submit(engine, tagged(1, 4, 4))
    await until(model.entered.is_set)
    return engine, running


def idle_engine(**overrides: Any) -> Engine:
    options: dict[str, Any] = {"models": {"srgan": FakeModel()}, "tile": 4, "pad": 1, "max_batch": 4,
                               "max_wait_s": 0.0, "max_queue_tiles": 10} | overrides
    return Engine(**options)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"models": {}}, "models must name at least one model"),
    ({"tile": 0}, "tile must be at least 1, got 0"),
    ({"pad": -1}, "pad must be at least 0, got -1"),
    ({"max_batch": 0}, "max_batch must be at least 1, got 0"),
    ({"max_queue_tiles": 0}, "max_queue_tiles must be at least 1, got 0"),
    ({"max_in_flight": 0}, "max_in_flight must be at least 1, got 0"),
    ({"max_wait_s": -0.1}, "max_wait_s must be non-negative, got -0.1"),
    ({"stall_timeout_s": 0.0}, "stall_timeout_s must be positive, got 0.0"),
    ({"models": {"flat": FakeModel(scale=0)}}, "model 'flat' has scale 0; it must be a positive integer"),
])
def test_bad_parameters_are_refused_with_their_whole_message(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        idle_engine(**overrides)
    assert str(refused.value) == message


async def test_the_smallest_parameters_serve(engine_factory: EngineFactory) -> None:
    """Tiles of one pixel without context, a model of scale 1, one tile queued, one batch at a time."""
    engine = await engine_factory({"srgan": FakeModel(scale=1)}, tile=1, pad=0, max_batch=1, max_wait_s=0,
                                  max_queue_tiles=1, max_in_flight=1, stall_timeout_s=0.001)
    image = tagged(1, 1, 1)
    np.testing.assert_array_equal(await engine.upscale("srgan", image, deadline=far()), image)


def test_a_new_engine_refuses_work_and_its_stall_floor_is_thirty_seconds() -> None:
    engine = idle_engine(max_wait_s=0.5)
    assert engine.accepting is False
    assert engine.stall_limit_s == 30.5  # the fill wait plus the default floor, nothing measured yet
    with pytest.raises(NotReady) as refused:
        engine.check_admission(4, 4, deadline=far())
    assert str(refused.value) == "the engine is not accepting requests"


async def test_a_second_start_is_refused(engine_factory: EngineFactory) -> None:
    engine = await engine_factory({"srgan": FakeModel()})
    with pytest.raises(RuntimeError) as refused:
        await engine.start()
    assert str(refused.value) == "engine already started"


async def test_refusals_name_the_tile_size_and_the_known_models(engine_factory: EngineFactory) -> None:
    engine = await engine_factory({"srgan": FakeModel(), "srresnet": FakeModel()}, max_queue_tiles=1)
    with pytest.raises(TooLarge) as too_large:
        await engine.upscale("srgan", tagged(1, 4, 8), deadline=far())  # two tiles of 4
    assert str(too_large.value) == ("the image needs the work of 2 tiles of 4 pixels; this service queues at "
                                    "most 1: send a smaller image")
    with pytest.raises(ValueError) as unknown:
        await engine.upscale("esrgan", tagged(1, 4, 4), deadline=far())
    assert str(unknown.value) == "unknown model 'esrgan'; known: srgan, srresnet"


async def test_a_passed_deadline_says_the_request_did_not_finish(engine_factory: EngineFactory) -> None:
    model = FakeModel()
    engine = await engine_factory({"srgan": model})
    model.gate.clear()
    with pytest.raises(DeadlineExceeded) as late:
        await engine.upscale("srgan", tagged(1, 4, 4), deadline=time.monotonic() + 0.2)
    assert str(late.value) == "the request did not finish before its deadline"
    model.gate.set()


async def test_a_refusal_is_logged_with_its_request_id_or_a_dash(engine_factory: EngineFactory,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.engine.admission")
    model = FakeModel()
    engine, running = await with_a_batch_held(engine_factory, model, max_queue_tiles=1)
    queued = submit(engine, tagged(2, 4, 4))
    await until(lambda: engine.queue_depth_tiles == 1)  # the queue holds one tile's work: full
    for refuse in (lambda: engine.check_admission(4, 4, deadline=far(), request_id="r3"),
                   lambda: engine.check_admission(4, 4, deadline=far())):
        with pytest.raises(Overloaded):
            refuse()
    with pytest.raises(Overloaded):
        await engine.upscale("srgan", tagged(4, 4, 4), deadline=far(), request_id="r4")
    with pytest.raises(Overloaded):
        await engine.upscale("srgan", tagged(5, 4, 4), deadline=far())
    refused = [r.getMessage().partition(":")[0] for r in caplog.records if " refused: " in r.getMessage()]
    assert refused == ["request r3 refused", "request - refused", "request r4 refused", "request - refused"]
    model.gate.set()
    await asyncio.gather(running, queued)


async def test_requests_being_padded_add_up_against_the_queue_bound(
        engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    padding, entered = threading.Event(), []
    real_prepare = engine_module.prepare

    def held_prepare(*args: Any) -> Any:
        entered.append(args[1].shape)
        padding.wait(timeout=10)
        return real_prepare(*args)

    monkeypatch.setattr(engine_module, "prepare", held_prepare)
    engine = await engine_factory({"srgan": FakeModel()}, max_queue_tiles=10)
    padded = [submit(engine, tagged(i, 8, 8)) for i in (1, 2)]  # 4 tiles each, both admitted
    await until(lambda: len(entered) == 2)  # both are being padded
    with pytest.raises(Overloaded) as refused:
        engine.check_admission(8, 8, deadline=far())  # 4 more: 12 > 10
    assert str(refused.value) == "the queue is full (the work of 8 tiles waiting)"
    padding.set()
    for i, task in enumerate(padded, start=1):
        np.testing.assert_array_equal(await task, nearest(tagged(i, 8, 8)))


async def test_the_engines_tasks_are_named_and_end_with_stop(engine_factory: EngineFactory,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    model = FakeModel()
    engine, running = await with_a_batch_held(engine_factory, model)
    assert sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("srgan")) == [
        "srgan-batch", "srgan-engine"]
    assert model.threads == ["srgan-engine_0"]  # the engine's own pool, which bounds the batches in flight
    await engine.stop(drain_timeout_s=0)
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("srgan")] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.CRITICAL] == []  # not a death
    model.gate.set()
    with pytest.raises(NotReady):
        await running


async def test_stop_cancels_work_waiting_for_the_engines_only_thread(engine_factory: EngineFactory) -> None:
    """One batch in flight means one model call at a time, a warm-up's included; what still waits for the
    thread when the engine stops never runs, and the thread ends once its batch has."""
    model = ThreadRecordingModel()
    engine, running = await with_a_batch_held(engine_factory, model, max_in_flight=1)
    warming = asyncio.create_task(engine.warmup())
    await asyncio.sleep(0)  # one turn of the loop: the warm-up hands its batch to the engine's thread
    await engine.stop(drain_timeout_s=0)
    model.gate.set()
    model.thread_objects[0].join(timeout=10)
    assert not model.thread_objects[0].is_alive()
    assert model.inputs == [((1, 6, 6, 3), np.dtype(np.uint8))]  # the request's tile only
    with pytest.raises(asyncio.CancelledError):
        await warming
    with pytest.raises(NotReady):
        await running


async def test_a_drain_timeout_of_zero_does_not_wait(engine_factory: EngineFactory,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """On a clock that stands still, a drain of zero seconds cuts the request at once."""
    model = FakeModel()
    engine, running = await with_a_batch_held(engine_factory, model)
    monkeypatch.setattr(engine_module, "time", SimpleNamespace(monotonic=lambda: 1000.0))
    async with asyncio.timeout(10):  # a drain that waits for the clock would wait forever
        await engine.stop(drain_timeout_s=0)
    with pytest.raises(NotReady) as cut:
        await running
    assert str(cut.value) == "the service is shutting down; retry on another replica"
    model.gate.set()


async def test_window_pixels_in_flight_add_up_over_concurrent_batches(
        engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deadline planning counts the work of every batch on the device: at 36 window pixels a second
    (one 4 x 4 image's window of 6 x 6 a second), two batches in flight and a third image are 3 s of work."""
    now = [1000.0]
    for module in (engine_module, pipeline, admission):
        monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: now[0]))

    class OneSecond(FakeModel):
        def __call__(self, windows: np.ndarray) -> np.ndarray:
            upscaled = super().__call__(windows)
            now[0] += 1.0
            return upscaled

    model = OneSecond()
    engine = await engine_factory({"srgan": model}, max_batch=1, max_in_flight=2)
    await engine.upscale("srgan", tagged(1, 4, 4), deadline=now[0] + 1000)
    assert engine.throughput_pixels_per_s == 36.0
    model.gate.clear()
    running = [submit(engine, tagged(i, 4, 4), deadline=now[0] + 1000) for i in (2, 3)]
    await until(lambda: len(model.attempts) == 3)  # both on the device
    with pytest.raises(Overloaded) as refused:
        engine.check_admission(4, 4, deadline=now[0] + 2)  # 1.8 s planned: 3 s of work does not fit
    assert str(refused.value) == ("the service cannot finish this request in time (~3.0s of work queued); "
                                  "retry later")
    assert refused.value.retry_after_s == pytest.approx(1.2)
    model.gate.set()
    await asyncio.gather(*running)


async def test_a_tile_waiting_after_a_finished_batch_counts_from_its_arrival(
        engine_factory: EngineFactory) -> None:
    engine = await engine_factory({"srgan": FakeModel()}, stall_timeout_s=1, max_wait_s=10, max_batch=4)
    await engine.upscale("srgan", tagged(1, 8, 8), deadline=far())  # a full batch of 4 runs at once
    waiting = submit(engine, tagged(2, 4, 4))  # one tile: it waits up to 10 s for a batch to fill
    await until(lambda: engine.queue_depth_tiles == 1)
    arrived = time.monotonic()
    assert engine.health_problem(now=arrived + 10.5) is None
    assert engine.health_problem(now=arrived + 12) == "1 tiles have waited for a batch 12.0 s (limit 11.0 s)"
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
