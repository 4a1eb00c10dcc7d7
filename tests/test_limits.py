"""app.limits: the memory budget, the host pool, the container's limits, and the cost estimate measured."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import tracemalloc
from pathlib import Path

import pytest

from app.errors import HostBusy, MemoryBudgetExceeded, TooLarge
from app.limits import container, cost
from app.limits.budget import MIB, MemoryBudget
from app.limits.pool import HostPool
from bench import memory_cost
from model.niqe import niqe
from model.synthetic import natural_like_image

# --- memory budget -------------------------------------------------------------------------------------


def test_reservations_share_the_budget_and_come_back_on_release() -> None:
    budget = MemoryBudget(100 * MIB)
    first = budget.reserve(60 * MIB, what="first")
    with pytest.raises(MemoryBudgetExceeded) as refused:
        budget.reserve(50 * MIB, what="second")
    assert refused.value.retry_after_s >= 1
    assert budget.reserved_bytes == 60 * MIB
    first.release()
    first.release()  # idempotent
    assert budget.reserved_bytes == 0
    budget.reserve(50 * MIB, what="second").release()


def test_a_request_larger_than_the_whole_budget_is_too_large_not_overloaded() -> None:
    budget = MemoryBudget(100 * MIB)
    with pytest.raises(TooLarge, match="budget of 100 MiB"):
        budget.reserve(101 * MIB, what="a 9000x9000 image")


def test_a_refused_resize_keeps_the_reservation_as_it_was() -> None:
    budget = MemoryBudget(100 * MIB)
    held = budget.reserve(10 * MIB, what="upload")
    other = budget.reserve(80 * MIB, what="other")
    with pytest.raises(MemoryBudgetExceeded):
        held.resize(30 * MIB, what="decoding")
    assert (held.nbytes, budget.reserved_bytes) == (10 * MIB, 90 * MIB)
    other.release()
    held.resize(30 * MIB, what="decoding")
    assert budget.reserved_bytes == 30 * MIB


def test_memory_pinned_by_running_work_comes_back_when_the_work_ends() -> None:
    budget = MemoryBudget(100 * MIB)
    held = budget.reserve(40 * MIB, what="request")
    held.pin()
    held.release()  # the client left while a thread still works for it
    assert budget.reserved_bytes == 40 * MIB
    held.unpin()
    assert budget.reserved_bytes == 0


# --- host pool -----------------------------------------------------------------------------------------


async def test_the_pool_refuses_new_work_while_too_many_jobs_wait() -> None:
    pool = HostPool(workers=1, max_backlog=1)
    gate = threading.Event()
    try:
        running = asyncio.ensure_future(pool.run(gate.wait))
        waiting = [asyncio.ensure_future(pool.run(lambda: None)) for _ in range(2)]
        await asyncio.sleep(0)
        while pool.backlog < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(HostBusy) as refused:
            pool.admit("an upload")
        assert refused.value.retry_after_s >= 1
        gate.set()
        await asyncio.gather(running, *waiting)
        assert pool.backlog == 0
        pool.admit("an upload")
    finally:
        gate.set()
        pool.shutdown()


async def test_a_cancelled_job_that_has_not_started_never_runs() -> None:
    pool = HostPool(workers=1)
    gate, ran = threading.Event(), threading.Event()
    try:
        blocker = asyncio.ensure_future(pool.run(gate.wait))
        queued = asyncio.ensure_future(pool.run(ran.set))
        while pool.backlog < 1:
            await asyncio.sleep(0.01)
        queued.cancel()
        await asyncio.gather(queued, return_exceptions=True)
        assert pool.backlog == 0
        gate.set()
        await blocker
        await pool.run(lambda: None)  # runs after anything the cancelled job could have done
        assert not ran.is_set()
    finally:
        gate.set()
        pool.shutdown()


async def test_a_job_running_for_a_cancelled_caller_keeps_its_memory_reserved() -> None:
    pool, budget = HostPool(workers=1), MemoryBudget(100 * MIB)
    held = budget.reserve(50 * MIB, what="request")
    started, gate = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        gate.wait()

    try:
        job = asyncio.ensure_future(pool.run(work, hold=held))
        await asyncio.to_thread(started.wait)
        job.cancel()
        held.release()
        await asyncio.sleep(0.05)
        assert budget.reserved_bytes == 50 * MIB  # the thread still holds what it decoded
        gate.set()
        while budget.reserved_bytes:
            await asyncio.sleep(0.01)
    finally:
        gate.set()
        pool.shutdown()


async def test_jobs_see_the_callers_context() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
    pool = HostPool(workers=2)
    try:
        request_id.set("abc123")
        assert await pool.run(request_id.get) == "abc123"
    finally:
        pool.shutdown()


# --- container -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "memory", "cpus"),
    [
        ({"memory.max": "max\n", "cpu.max": "max 100000\n"}, None, None),
        ({"memory.max": "8589934592\n", "cpu.max": "150000 100000\n"}, 8 << 30, 2),
        ({"memory/memory.limit_in_bytes": "9223372036854771712\n", "cpu/cpu.cfs_quota_us": "-1\n",
          "cpu/cpu.cfs_period_us": "100000\n"}, None, None),
        ({"memory/memory.limit_in_bytes": "2147483648\n", "cpu/cpu.cfs_quota_us": "100000\n",
          "cpu/cpu.cfs_period_us": "100000\n"}, 2 << 30, 1),
        ({}, None, None),
    ],
    ids=["v2-unlimited", "v2-limits", "v1-unlimited", "v1-limits", "no-cgroup"],
)
def test_cgroup_limits_are_read_from_v1_and_v2(tmp_path: Path, files: dict[str, str], memory: int | None,
                                               cpus: int | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert container.memory_limit_bytes(tmp_path) == memory
    cores = container.usable_cpus(tmp_path)
    assert cores == (min(cpus, cores) if cpus is not None else len(os.sched_getaffinity(0)))


def test_resident_and_available_memory_are_read_from_proc() -> None:
    assert 0 < container.resident_bytes() < container.resident_bytes() + container.available_bytes()


# --- cost: the estimate bounds what a request really holds ---------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["png rgba16 -> png", "png rgba8 -> webp", "png rgb8 64-high strip /compare json",
     "png rgb8 104-high strip /compare json", "png rgba16 /compare image"],
)
def test_the_estimate_is_above_the_measured_peak(case: str) -> None:
    """Each case runs in its own process, its peak resident memory counted from before decoding."""
    result = memory_cost.measure(case, side=384)
    assert result["estimate"] >= result["peak"], result


@pytest.mark.parametrize(("height", "width"), [(256, 256), (104, 2000), (2000, 110)])
def test_niqe_bytes_bound_what_niqe_allocates(height: int, width: int) -> None:
    """Its half-size resize's matrices grow with the square of the long side: an elongated image's rule."""
    image = natural_like_image(height, width, seed=1)
    niqe(image[:200, :200], crop_border=4)  # the pristine model and the shape table, loaded once for good
    tracemalloc.start()
    try:
        niqe(image, crop_border=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= cost.niqe_bytes(height, width, 4) <= 1.5 * peak + MIB


def test_no_niqe_bytes_for_an_image_niqe_does_not_score() -> None:
    assert cost.niqe_bytes(103, 10_000, 4) == 0  # under one patch high
    assert cost.niqe_bytes(150, 150, 4) == 0  # one patch
    assert cost.niqe_bytes(104, 200, 4) > 0
