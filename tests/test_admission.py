"""Admission on a fake clock: exact refusals, exact Retry-After values, and the boundaries between them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.engine import admission
from app.engine.admission import Admission, Throughput
from app.errors import DeadlineExceeded, Overloaded, TooLarge

NOW = 1000.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admission's clock stands still at NOW, so budgets and Retry-After values are exact."""
    monkeypatch.setattr(admission, "time", SimpleNamespace(monotonic=lambda: NOW))


def measured(tiles_per_s: float, *, max_queue_tiles: int = 100) -> Admission:
    policy = Admission(max_queue_tiles=max_queue_tiles, tile=16)
    policy.throughput.record(int(tiles_per_s * 10), 10.0)
    assert policy.throughput.tiles_per_s == tiles_per_s
    return policy


def check(policy: Admission, tiles: int, *, deadline: float = NOW + 3600, queued: int = 0,
          in_flight: int = 0, deadlines: tuple[float, ...] = ()) -> None:
    policy.check(tiles, deadline, queued=queued, in_flight=in_flight, deadlines=deadlines, request_id="r1")


def test_throughput_is_unknown_until_a_batch_is_measured_then_a_moving_average() -> None:
    throughput = Throughput()
    assert throughput.tiles_per_s is None and throughput.seconds_for(10) is None
    throughput.record(10, 1.0)
    assert throughput.tiles_per_s == 10.0  # the first batch is the estimate
    throughput.record(20, 1.0)
    assert throughput.tiles_per_s == pytest.approx(0.2 * 20 + 0.8 * 10)  # the newest batch weighs a fifth
    assert throughput.seconds_for(24) == pytest.approx(2.0)


def test_a_batch_timed_at_zero_counts_as_a_microsecond() -> None:
    throughput = Throughput()
    throughput.record(3, 0.0)
    assert throughput.tiles_per_s == pytest.approx(3e6)


@pytest.mark.parametrize(("tiles", "retry_after_s"), [(7, 3.5), (1, 0.5), (0, 0.1), (121, 60.0)])
def test_retry_after_is_the_time_to_serve_the_excess_within_a_tenth_and_a_minute(
    tiles: int, retry_after_s: float
) -> None:
    throughput = Throughput()
    assert throughput.retry_after_s(tiles) == 1.0  # nothing measured yet: come back soon
    throughput.record(20, 10.0)  # 2 tiles/s
    assert throughput.retry_after_s(tiles) == pytest.approx(retry_after_s)


def test_a_passed_deadline_is_refused_before_anything_else(clock: None) -> None:
    policy = measured(10.0)
    passed = r"^the request's deadline had passed before it was queued$"
    for deadline in (NOW, NOW - 1):
        with pytest.raises(DeadlineExceeded, match=passed):
            check(policy, 1000, deadline=deadline, queued=1000)
    check(policy, 1, deadline=NOW + 1)


def test_an_image_larger_than_the_queue_is_too_large_even_into_an_empty_queue(clock: None) -> None:
    policy = Admission(max_queue_tiles=8, tile=16)
    too_large = r"^the image needs 9 tiles of 16 pixels; this service queues at most 8: send a smaller image$"
    with pytest.raises(TooLarge, match=too_large):
        check(policy, 9)
    check(policy, 8)


@pytest.mark.parametrize(("tiles_per_s", "retry_after_s"), [(None, 1.0), (0.5, 10.0), (2.0, 2.5)])
def test_a_full_queue_refuses_with_the_time_to_make_room(
    clock: None, tiles_per_s: float | None, retry_after_s: float
) -> None:
    policy = Admission(max_queue_tiles=40, tile=16) if tiles_per_s is None else measured(
        tiles_per_s, max_queue_tiles=40)
    check(policy, 4, queued=36)  # exactly full is still admitted
    with pytest.raises(Overloaded, match=r"^the queue is full \(36 tiles waiting\)$") as refused:
        check(policy, 9, queued=36)  # 5 tiles over the bound
    assert refused.value.retry_after_s == pytest.approx(retry_after_s)


def test_work_that_cannot_finish_before_the_earliest_deadline_is_refused(clock: None) -> None:
    policy = measured(10.0)
    # 10 s to the deadline, 9 s of it planned: 90 tiles of work in the system are admitted, 91 are not.
    check(policy, 40, deadline=NOW + 10, queued=40, in_flight=10)
    with pytest.raises(Overloaded, match=r"^the service cannot finish this request in time \(~9.1s of work "
                                         r"queued\); retry later$") as refused:
        check(policy, 41, deadline=NOW + 10, queued=40, in_flight=10)
    assert refused.value.retry_after_s == pytest.approx(0.1)
    with pytest.raises(Overloaded) as refused:
        check(policy, 60, deadline=NOW + 10, queued=40, in_flight=10)  # 20 tiles over the plan
    assert refused.value.retry_after_s == pytest.approx(2.0)


def test_an_admitted_requests_earlier_deadline_limits_what_comes_after_it(clock: None) -> None:
    policy = measured(10.0)
    check(policy, 20, deadline=NOW + 100, queued=25, deadlines=(NOW + 5, NOW + 50))  # 45 tiles in 4.5 s
    with pytest.raises(Overloaded) as refused:
        check(policy, 21, deadline=NOW + 100, queued=25, deadlines=(NOW + 50, NOW + 5))
    assert refused.value.retry_after_s == pytest.approx(0.1)


def test_nothing_is_refused_for_time_before_the_first_batch_is_measured(clock: None) -> None:
    check(Admission(max_queue_tiles=100, tile=16), 100, deadline=NOW + 0.001)
