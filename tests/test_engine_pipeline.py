"""The engine's device-side pipeline on the CPU: fitted windows, device tensors from upload to the one
copy back, and up to `max_in_flight` batches running at once (two on CUDA), never more."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from app.engine.pipeline import default_in_flight
from model.inference import Upscaler
from model.tiling import upscale_tiled, upscale_whole
from tests.api_helpers import until
from tests.conftest import tiny_generator
from tests.test_engine import EngineFactory, FakeModel, engine_factory, far, nearest, submit, tagged

__all__ = ["engine_factory"]  # the fixture, shared with the engine's own tests


class Turnstile(FakeModel):
    """Nearest x4; every call waits for its own `admit()`, in arrival order. `arrived` counts the calls
    made, `running` those in progress and `most` the highest `running` seen."""

    def __init__(self, name: str = "srgan") -> None:
        super().__init__(name)
        self.permits = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.arrived = self.running = self.most = 0

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.arrived += 1
        try:
            assert self.permits.acquire(timeout=10), "never admitted"
            return super().__call__(windows)
        finally:
            with self.lock:
                self.running -= 1

    def admit(self, calls: int = 1) -> None:
        self.permits.release(calls)


async def test_with_one_tile_per_batch_an_image_is_computed_at_its_own_size(
        engine_factory: EngineFactory) -> None:
    shapes: list[tuple[int, ...]] = []

    class Recorder(FakeModel):
        def __call__(self, windows: np.ndarray) -> np.ndarray:
            shapes.append(windows.shape)
            return super().__call__(windows)

    engine = await engine_factory({"srgan": Recorder()}, tile=16, pad=3, max_batch=1)
    image = tagged(1, 5, 11)
    np.testing.assert_array_equal(await engine.upscale("srgan", image, deadline=far()), nearest(image))
    assert shapes == [(1, 5 + 6, 11 + 6, 3)]
    shapes.clear()
    image = tagged(2, 20, 9)  # two rows of 10, not 16 + 4
    np.testing.assert_array_equal(await engine.upscale("srgan", image, deadline=far()), nearest(image))
    assert shapes == [(1, 10 + 6, 9 + 6, 3)] * 2
    shapes.clear()
    batching = await engine_factory({"srgan": Recorder()}, tile=16, pad=3, max_batch=4)
    await batching.upscale("srgan", tagged(3, 5, 11), deadline=far())
    assert shapes == [(1, 16 + 6, 16 + 6, 3)], "windows that may share a batch keep the one shape"


async def test_the_device_path_reproduces_the_host_path_byte_for_byte(engine_factory: EngineFactory) -> None:
    """A real generator through upload, on-device padding, cutting, pasting and quantising, and the
    copy back, against the host path (`upscale_tiled`) and whole-image inference, 8 and 16 bits."""
    upscaler = Upscaler.from_module("srgan", tiny_generator(3), torch.device("cpu"), torch.float32)
    engine = await engine_factory({"srgan": upscaler}, tile=16, pad=4, max_batch=1)
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((1, 1), (13, 7), (40, 33))]
    images += [rng.integers(0, 65536, (h, w, 3), dtype=np.uint16) for h, w in ((9, 16), (17, 5))]
    results = await asyncio.gather(*(engine.upscale("srgan", image, deadline=far()) for image in images))
    for image, result in zip(images, results, strict=True):
        assert result.dtype == image.dtype and isinstance(result, np.ndarray)
        expected = upscale_tiled(image, upscaler, scale=4, tile=16, pad=4, batch_size=1, fit=True)
        np.testing.assert_array_equal(result, expected, err_msg=f"{image.shape} {image.dtype}")
        if max(image.shape[:2]) <= 16:
            np.testing.assert_array_equal(result, upscale_whole(image, upscaler, scale=4, pad=4))


@pytest.mark.parametrize("allowed", [1, 2])
async def test_batches_overlap_up_to_the_in_flight_limit_and_never_more(
        engine_factory: EngineFactory, allowed: int) -> None:
    model = Turnstile()
    engine = await engine_factory({"srgan": model}, max_batch=1, max_in_flight=allowed)
    tasks = [submit(engine, tagged(i, 4, 4)) for i in range(1, 6)]
    await until(lambda: model.running == allowed)
    await asyncio.sleep(0.05)  # many max_wait_s periods: no further batch may be formed meanwhile
    assert model.running == allowed and model.arrived == allowed
    assert engine.queue_depth_tiles == 5 - allowed, "a batch was formed while the device was full"
    model.admit()
    await until(lambda: model.arrived == allowed + 1)  # a finished batch frees exactly one slot
    assert engine.queue_depth_tiles == 4 - allowed
    model.admit(4)
    for i, task in enumerate(tasks, start=1):
        np.testing.assert_array_equal(await task, nearest(tagged(i, 4, 4)))
    assert model.most == allowed


async def test_with_two_in_flight_a_model_with_a_batch_running_lets_the_other_go_next(
        engine_factory: EngineFactory) -> None:
    srgan, srresnet = Turnstile("srgan"), Turnstile("srresnet")
    engine = await engine_factory({"srgan": srgan, "srresnet": srresnet}, max_batch=4, max_in_flight=2)
    wide = submit(engine, tagged(1, 8, 8, np.uint16))  # 4 tiles: one batch holding one slot
    await until(lambda: srgan.running == 1)
    large = submit(engine, tagged(2, 12, 16))  # 12 tiles: its first batch takes the second slot
    await until(lambda: srgan.running == 2)
    small = submit(engine, tagged(3, 4, 4), model="srresnet")  # queued after the large one
    await until(lambda: engine.queue_depth_tiles == 8 + 1)
    srgan.admit()  # the 16-bit batch ends: the large request's key has a batch running, srresnet goes
    await until(lambda: srresnet.running == 1)
    assert srgan.arrived == 2, "the freed slot went to the key that already had a batch running"
    srresnet.admit()
    srgan.admit(3)
    for i, (task, image) in enumerate(((wide, tagged(1, 8, 8, np.uint16)), (large, tagged(2, 12, 16)),
                                       (small, tagged(3, 4, 4))), start=1):
        np.testing.assert_array_equal(await task, nearest(image), err_msg=f"request {i}")


@dataclass
class OnDevice:
    """Only what `default_in_flight` reads of a model."""

    device: torch.device
    fixed_shape: bool = False


def test_two_batches_in_flight_on_cuda_one_on_a_cpu_or_with_cuda_graphs() -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert default_in_flight({"a": OnDevice(cuda), "b": OnDevice(cuda)}) == 2  # type: ignore[dict-item]
    assert default_in_flight({"a": OnDevice(cpu)}) == 1  # type: ignore[dict-item]
    assert default_in_flight({"a": OnDevice(cuda), "b": OnDevice(cuda, fixed_shape=True)}) == 1  # type: ignore[dict-item]


def test_an_in_flight_limit_below_one_is_refused_by_name() -> None:
    from app.engine import Engine

    with pytest.raises(ValueError, match="max_in_flight"):
        Engine({"srgan": FakeModel()}, tile=4, pad=1, max_batch=1, max_wait_s=0, max_queue_tiles=1,
               max_in_flight=0)
