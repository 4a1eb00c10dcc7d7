"""Liveness sees a broken engine: /healthz and /readyz fail when the batch loop has died, or when work
waits and no batch finishes within the stall limit; they recover when batches finish again."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from app.errors import NotReady
from model.inference import Upscaler
from model.synthetic import natural_like_image
from tests.api_helpers import assert_error, png_bytes, running_client, upload
from tests.test_engine import EngineFactory, FakeModel, engine_factory, nearest, submit, tagged, until

__all__ = ["engine_factory"]  # the fixture, shared with the engine's own tests


class Fatal(BaseException):
    """Not an Exception: the batch loop, which survives any failing batch, does not catch it."""


class DyingModel(FakeModel):
    def __call__(self, windows: np.ndarray) -> np.ndarray:
        raise Fatal("the device is gone")


async def test_a_loop_killed_by_an_error_it_does_not_catch_fails_liveness_and_its_requests(
    engine_factory: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await engine_factory({"srgan": DyingModel()})
    assert engine.health_problem() is None
    with pytest.raises(NotReady, match=r"^the inference engine stopped$"):
        await submit(engine, tagged(1, 4, 4))
    assert engine.health_problem() == "the batch loop has stopped (Fatal)"
    assert engine.accepting is False
    assert "engine batch loop died" in caplog.text
    with pytest.raises(NotReady):
        await submit(engine, tagged(2, 4, 4))


async def test_a_cancelled_loop_fails_liveness(engine_factory: EngineFactory) -> None:
    engine = await engine_factory({"srgan": FakeModel()})
    assert engine._loop_task is not None
    engine._loop_task.cancel()
    await asyncio.gather(engine._loop_task, return_exceptions=True)
    assert engine.health_problem() == "the batch loop has stopped (cancelled)"


async def test_a_stopped_engine_is_not_a_dead_one(engine_factory: EngineFactory) -> None:
    engine = await engine_factory({"srgan": FakeModel()})
    await engine.stop(drain_timeout_s=0)
    assert engine.health_problem() is None


async def test_a_wedged_worker_fails_liveness_until_its_batch_finishes(engine_factory: EngineFactory) -> None:
    model = FakeModel()
    engine = await engine_factory({"srgan": model}, stall_timeout_s=0.2)
    model.gate.clear()
    image = tagged(1, 4, 4)
    task = submit(engine, image)
    await until(model.entered.is_set)
    await until(lambda: engine.health_problem() is not None)
    problem = engine.health_problem()
    assert problem is not None and problem.startswith("a batch of 1 tiles has run for ")
    model.gate.set()
    np.testing.assert_array_equal(await task, nearest(image))
    assert engine.health_problem() is None


async def test_the_stall_limit_is_the_floor_until_batches_are_measured(engine_factory: EngineFactory) -> None:
    model = FakeModel()
    engine = await engine_factory({"srgan": model}, stall_timeout_s=5, max_wait_s=0.002)
    model.gate.clear()
    submit(engine, tagged(1, 4, 4))
    await until(model.entered.is_set)
    started = model.started_at[0]
    assert engine.health_problem(now=started + 4) is None
    assert engine.health_problem(now=started + 6) is not None
    model.gate.set()


async def test_the_stall_limit_grows_to_ten_measured_batch_times(engine_factory: EngineFactory) -> None:
    # Batches of one tile that take 0.3 s: a batch running 1.5 s is slow, not stalled, although the
    # floor alone (0.1 s) would call it stalled.
    model = FakeModel(seconds_per_tile=0.3)
    engine = await engine_factory({"srgan": model}, stall_timeout_s=0.1, max_batch=1)
    await submit(engine, tagged(1, 4, 4))  # one tile: one measured batch
    model.gate.clear()
    model.entered.clear()
    submit(engine, tagged(2, 4, 4))
    await until(model.entered.is_set)
    started = model.started_at[-1]
    assert engine.health_problem(now=started + 1.5) is None
    assert engine.health_problem(now=started + 30) is not None
    model.gate.set()


async def test_tiles_waiting_to_fill_a_batch_count_from_their_arrival(engine_factory: EngineFactory) -> None:
    # A batch may wait up to max_wait_s to fill; that wait is no stall, anything beyond the floor is.
    engine = await engine_factory({"srgan": FakeModel()}, stall_timeout_s=1, max_wait_s=10, max_batch=64)
    submit(engine, tagged(1, 4, 4))
    await until(lambda: engine.queue_depth_tiles == 1)
    arrived = time.monotonic()
    assert engine.health_problem(now=arrived + 10.5) is None
    assert engine.health_problem(now=arrived + 12) == "1 tiles have waited for a batch 12.0 s (limit 11.0 s)"
    # An idle engine is never stalled, however long since its last batch.
    idle = await engine_factory({"srgan": FakeModel()}, stall_timeout_s=1)
    assert idle.health_problem(now=time.monotonic() + 1e6) is None


def block_the_models(monkeypatch: pytest.MonkeyPatch, gate: threading.Event) -> threading.Event:
    """Every Upscaler call waits for `gate` (a wedged device); returns an event set once one is waiting."""
    entered = threading.Event()
    original: Callable[[Upscaler, torch.Tensor], torch.Tensor] = Upscaler.upscale_windows

    def wedged(self: Upscaler, windows: torch.Tensor) -> torch.Tensor:
        entered.set()
        gate.wait(30)
        return original(self, windows)

    monkeypatch.setattr(Upscaler, "upscale_windows", wedged)
    return entered


async def test_healthz_and_readyz_fail_while_the_worker_is_wedged_and_recover(
    tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    image = png_bytes(natural_like_image(16, 16))
    async with running_client(tiny_weights_dir, stall_timeout_s=0.3) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        gate = threading.Event()
        entered = block_the_models(monkeypatch, gate)
        try:
            first = asyncio.ensure_future(client.post("/upscale", **upload(image)))
            deadline = time.monotonic() + 10
            while (health := await client.get("/healthz")).status_code == 200:
                assert time.monotonic() < deadline, "liveness never saw the wedged worker"
                await asyncio.sleep(0.05)
            assert entered.is_set()
            assert health.status_code == 503
            assert health.json()["status"] == "unhealthy"
            assert health.json()["reason"].startswith("a batch of 1 tiles has run for ")
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json() == {"status": "unhealthy"}
            assert "srgan_model_ready 0.0" in (await client.get("/metrics")).text
            # New work is refused at once rather than queued behind the stalled engine.
            assert_error(await client.post("/upscale", **upload(image)), 503, "not_ready")
        finally:
            gate.set()
        assert (await first).status_code == 200
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        assert "srgan_model_ready 1.0" in (await client.get("/metrics")).text
    assert "the engine cannot make progress: a batch of 1 tiles has run for" in caplog.text
    assert "the engine makes progress again" in caplog.text


async def test_healthz_and_readyz_fail_when_a_model_kills_the_batch_loop(
    tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = png_bytes(natural_like_image(16, 16))
    async with running_client(tiny_weights_dir) as client:
        def dying(self: Upscaler, windows: torch.Tensor) -> torch.Tensor:
            raise Fatal("the device is gone")

        monkeypatch.setattr(Upscaler, "upscale_windows", dying)
        assert_error(await client.post("/upscale", **upload(image)), 503, "not_ready")
        health = await client.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "unhealthy", "reason": "the batch loop has stopped (Fatal)"}
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"status": "unhealthy"}
        assert "srgan_model_ready 0.0" in (await client.get("/metrics")).text
        assert_error(await client.post("/upscale", **upload(image)), 503, "not_ready")
