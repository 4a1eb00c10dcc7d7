"""Admission on a fake clock: exact refusals, exact Retry-After values, and the boundaries between them.

Work is counted in window pixels, the pixels the model computes (core plus context); the unit tests use
tiles of 8 with a pad of 1, so a full tile's window is 10 x 10 = 100 pixels. The engine's tests build
real fitted grids, whose windows differ in size, and check that it is their pixels that are planned.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np
import pytest

from app.engine import Engine, admission, pipeline
from app.engine import engine as engine_module
from app.engine.admission import Admission, Throughput
from app.errors import DeadlineExceeded, Overloaded, TooLarge
from tests.api_helpers import until
from tests.test_engine import EngineFactory, FakeModel, engine_factory, submit, tagged

__all__ = ["engine_factory"]  # the fixture, shared with the engine's own tests

NOW = 1000.0
FULL_TILE = 100  # window pixels of a full tile of 8 with a pad of 1


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admission's clock stands still at NOW, so budgets and Retry-After values are exact."""
    monkeypatch.setattr(admission, "time", SimpleNamespace(monotonic=lambda: NOW))


def measured(pixels_per_s: float, *, max_queue_tiles: int = 100) -> Admission:
    policy = Admission(max_queue_tiles=max_queue_tiles, tile=8, pad=1)
    policy.throughput.record(int(pixels_per_s * 10), 10.0)
    assert policy.throughput.pixels_per_s == pixels_per_s
    return policy


def check(policy: Admission, pixels: int, *, deadline: float = NOW + 3600, queued: int = 0,
          in_flight: int = 0, deadlines: tuple[float, ...] = ()) -> None:
    policy.check(pixels, deadline, queued=queued, in_flight=in_flight, deadlines=deadlines, request_id="r1")


def test_throughput_is_unknown_until_a_batch_is_measured_then_a_moving_average() -> None:
    throughput = Throughput()
    assert throughput.pixels_per_s is None and throughput.seconds_for(10) is None
    throughput.record(10, 1.0)
    assert throughput.pixels_per_s == 10.0  # the first batch is the estimate
    throughput.record(20, 1.0)
    assert throughput.pixels_per_s == pytest.approx(0.2 * 20 + 0.8 * 10)  # the newest batch weighs a fifth
    assert throughput.seconds_for(24) == pytest.approx(2.0)


def test_a_batch_timed_at_zero_counts_as_a_microsecond() -> None:
    throughput = Throughput()
    throughput.record(3, 0.0)
    assert throughput.pixels_per_s == pytest.approx(3e6)


@pytest.mark.parametrize(("pixels", "retry_after_s"), [(7, 3.5), (1, 0.5), (0, 0.1), (121, 60.0)])
def test_retry_after_is_the_time_to_serve_the_excess_within_a_tenth_and_a_minute(
    pixels: int, retry_after_s: float
) -> None:
    throughput = Throughput()
    assert throughput.retry_after_s(pixels) == 1.0  # nothing measured yet: come back soon
    throughput.record(20, 10.0)  # 2 pixels/s
    assert throughput.retry_after_s(pixels) == pytest.approx(retry_after_s)


def test_a_passed_deadline_is_refused_before_anything_else(clock: None) -> None:
    policy = measured(1000.0)
    passed = r"^the request's deadline had passed before it was queued$"
    for deadline in (NOW, NOW - 1):
        with pytest.raises(DeadlineExceeded, match=passed):
            check(policy, 100_000, deadline=deadline, queued=100_000)
    check(policy, FULL_TILE, deadline=NOW + 1)


def test_an_image_larger_than_the_queue_is_too_large_even_into_an_empty_queue(clock: None) -> None:
    policy = Admission(max_queue_tiles=8, tile=8, pad=1)  # the work of 8 full tiles: 800 window pixels
    too_large = (r"^the image needs the work of {} tiles of 8 pixels; this service queues at most 8: "
                 r"send a smaller image$")
    with pytest.raises(TooLarge, match=too_large.format("9")):
        check(policy, 900)
    with pytest.raises(TooLarge, match=too_large.format(r"8\.1")):  # a pixel over: rounded up, never to 8
        check(policy, 801)
    check(policy, 800)


@pytest.mark.parametrize(("pixels_per_s", "retry_after_s"), [(None, 1.0), (50.0, 10.0), (200.0, 2.5)])
def test_a_full_queue_refuses_with_the_time_to_make_room(
    clock: None, pixels_per_s: float | None, retry_after_s: float
) -> None:
    policy = Admission(max_queue_tiles=40, tile=8, pad=1) if pixels_per_s is None else measured(
        pixels_per_s, max_queue_tiles=40)
    check(policy, 400, queued=3600)  # exactly full is still admitted
    with pytest.raises(Overloaded, match=r"^the queue is full \(the work of 36 tiles waiting\)$") as refused:
        check(policy, 900, queued=3600)  # 500 window pixels over the bound
    assert refused.value.retry_after_s == pytest.approx(retry_after_s)
    with pytest.raises(Overloaded, match=r"^the queue is full \(the work of 36.5 tiles waiting\)$"):
        check(policy, 900, queued=3650)


def test_work_that_cannot_finish_before_the_earliest_deadline_is_refused(clock: None) -> None:
    policy = measured(1000.0)
    # 10 s to the deadline, 9 s of it planned: 9000 window pixels in the system are admitted, more are not.
    check(policy, 4000, deadline=NOW + 10, queued=4000, in_flight=1000)
    with pytest.raises(Overloaded, match=r"^the service cannot finish this request in time \(~9.1s of work "
                                         r"queued\); retry later$") as refused:
        check(policy, 4100, deadline=NOW + 10, queued=4000, in_flight=1000)
    assert refused.value.retry_after_s == pytest.approx(0.1)
    with pytest.raises(Overloaded) as refused:
        check(policy, 6000, deadline=NOW + 10, queued=4000, in_flight=1000)  # 2000 pixels over the plan
    assert refused.value.retry_after_s == pytest.approx(2.0)
    with pytest.raises(Overloaded) as refused:
        check(policy, 4001, deadline=NOW + 10, queued=4000, in_flight=1000)  # one pixel over the plan
    assert refused.value.retry_after_s == pytest.approx(0.1)  # the floor


def test_an_admitted_requests_earlier_deadline_limits_what_comes_after_it(clock: None) -> None:
    policy = measured(1000.0)
    check(policy, 2000, deadline=NOW + 100, queued=2500, deadlines=(NOW + 5, NOW + 50))  # 4500 px in 4.5 s
    with pytest.raises(Overloaded) as refused:
        check(policy, 2100, deadline=NOW + 100, queued=2500, deadlines=(NOW + 50, NOW + 5))
    assert refused.value.retry_after_s == pytest.approx(0.1)


def test_nothing_is_refused_for_time_before_the_first_batch_is_measured(clock: None) -> None:
    check(Admission(max_queue_tiles=100, tile=8, pad=1), 10_000, deadline=NOW + 0.001)


# The engine's tests: tiles of 16 with a pad of 4 and one tile per batch, so each image's tiles are fitted
# to it. A full tile's window is 24 x 24 = 576 pixels; an 8 x 8 image is one window of 16 x 16 = 256; a
# 40 x 40 image is 3 x 3 tiles of 14, windows of 22 x 22: 9 x 484 = 4356 pixels, 7.6 full tiles' work.


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> float:
    """Admission's clock stands still at the real monotonic time of the test's start; returns it."""
    now = time.monotonic()
    monkeypatch.setattr(admission, "time", SimpleNamespace(monotonic=lambda: now))
    return now


Held = tuple[Engine, FakeModel, list[asyncio.Task[np.ndarray]]]


async def held_engine(engine_factory: EngineFactory, now: float, *, queued: list[tuple[int, int]],
                      max_queue_tiles: int = 1000) -> Held:
    """An engine whose model holds an 8 x 8 image's window in flight, with images of the `queued` sizes
    queued behind it in that order (all due at `now` + 30), and 1000 window pixels/s measured."""
    model = FakeModel()
    engine = await engine_factory({"srgan": model}, tile=16, pad=4, max_batch=1,
                                  max_queue_tiles=max_queue_tiles)
    model.gate.clear()
    tasks = [submit(engine, tagged(1, 8, 8), deadline=now + 30)]
    await until(model.entered.is_set)
    for i, (height, width) in enumerate(queued, start=2):
        tasks.append(submit(engine, tagged(i, height, width), deadline=now + 30))

        def arrived(count: int = i) -> bool:  # queued before the next is sent
            return len(engine._live) == count

        await until(arrived)
    engine._admission.throughput.record(10_000, 10.0)
    return engine, model, tasks


async def test_a_large_request_behind_small_ones_is_planned_by_its_window_pixels(
        engine_factory: EngineFactory, frozen: float) -> None:
    # 1000 pixels/s is 3.9 of the small images' tiles a second. Counted in tiles, the large image's 9
    # behind 4 small ones would be 14 tiles, 3.6 s of work, within 90 % of 5 s: admitted, and late. Its
    # windows are nearly twice theirs: the work is 256 in flight + 3 x 256 queued + 4356 = 5380 pixels.
    engine, model, tasks = await held_engine(engine_factory, frozen, queued=[(8, 8)] * 3)
    with pytest.raises(Overloaded, match=r"\(~5.4s of work queued\)") as refused:
        engine.check_admission(40, 40, deadline=frozen + 5)
    assert refused.value.retry_after_s == pytest.approx((5380 - 0.9 * 5 * 1000) / 1000)  # 0.88 s
    engine.check_admission(40, 40, deadline=frozen + 6)  # 5.38 s of work within 5.4 s: admitted
    model.gate.set()
    await asyncio.gather(*tasks)


async def test_a_full_queue_of_one_large_and_small_requests_refuses_by_window_pixels(
        engine_factory: EngineFactory, frozen: float) -> None:
    # The bound is the work of 10 full tiles, 5760 pixels. Queued: the large image's 4356 pixels and three
    # small ones' 768 (12 tiles, 5124 pixels); the window in flight is not queued.
    engine, model, tasks = await held_engine(engine_factory, frozen, queued=[(40, 40)] + [(8, 8)] * 3,
                                             max_queue_tiles=10)
    assert engine.queue_depth_tiles == 12
    # One window of 16 x 24: 5508 pixels fit (counting the 256 in flight as well, they would not).
    engine.check_admission(8, 16, deadline=frozen + 30)
    # 24 x 16 is two windows of 20 x 24, 960 pixels: 324 over the bound, a third of a second at 1000/s.
    with pytest.raises(Overloaded, match=r"^the queue is full \(the work of 8.9 tiles waiting\)$") as refused:
        engine.check_admission(24, 16, deadline=frozen + 30)
    assert refused.value.retry_after_s == pytest.approx(0.324)
    model.gate.set()
    await asyncio.gather(*tasks)


async def test_the_measured_rate_is_window_pixels_per_second_over_batches_of_mixed_windows(
        engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every batch takes half a second of the engine's clock, whatever its windows: the rate is each
    # batch's window pixels over that, averaged with the newest batch weighing a fifth.
    now = [time.monotonic()]
    for module in (engine_module, pipeline):
        monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: now[0]))

    class HalfSecond(FakeModel):
        def __call__(self, windows: np.ndarray) -> np.ndarray:
            now[0] += 0.5
            return super().__call__(windows)

    engine = await engine_factory({"srgan": HalfSecond()}, tile=16, pad=4, max_batch=1, stall_timeout_s=1.0)
    await engine.upscale("srgan", tagged(1, 8, 8), deadline=now[0] + 1000)  # one window of 256 pixels
    assert engine.throughput_pixels_per_s == pytest.approx(512.0)
    await engine.upscale("srgan", tagged(2, 24, 16), deadline=now[0] + 1000)  # two of 20 x 24 = 480
    assert engine.throughput_pixels_per_s == pytest.approx(0.2 * 960 + 0.8 * (0.2 * 960 + 0.8 * 512))
    rate = engine.throughput_pixels_per_s
    assert rate is not None
    assert engine.stall_limit_s == pytest.approx(0.002 + 10 * 576 / rate)  # ten full tiles' windows
