"""A light HTTP load generator for POST /upscale: open loop (arrivals on a schedule) or closed loop.

Open loop: request i starts at its scheduled time whether or not earlier ones have finished, and its
latency is counted from that scheduled time, so a slow server (or a lagging client) cannot hide queueing
by slowing the arrivals down (no coordinated omission). Payloads are PNGs encoded before the clock starts,
so the client spends its CPU on HTTP only. Every loop is bounded by a request count and a duration.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench.serving import percentiles, png_bytes, tiles_of
from model.synthetic import natural_like_image


@dataclass(frozen=True)
class Payload:
    """One pre-encoded input image and what the service makes of it."""

    data: bytes
    width: int
    height: int
    tiles: int
    query: str = ""  # e.g. "?model=srresnet&format=jpeg"

    @property
    def output_pixels(self) -> int:
        return self.width * self.height * 16


@dataclass
class Outcome:
    """One request: when it was due, when it ended (client clock), and what came back."""

    payload: Payload
    due: float
    ended: float
    status: int  # 0: transport error or client-side timeout
    retry_after: str | None = None
    error: str | None = None

    @property
    def latency_s(self) -> float:
        return self.ended - self.due


def make_payloads(
    sizes: Sequence[tuple[int, int]], tile: int, queries: Sequence[str] = ("",), seed: int = 0
) -> list[Payload]:
    """One payload per (size, query) pair, with different image content for each."""
    payloads = []
    for i, (width, height) in enumerate(sizes):
        for j, query in enumerate(queries):
            data = png_bytes(natural_like_image(height, width, seed=seed + i * len(queries) + j))
            payloads.append(Payload(data, width, height, tiles_of(width, height, tile), query))
    return payloads


def _client(max_connections: int, timeout_s: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout_s, connect=10.0))


async def _send(client: httpx.AsyncClient, url: str, payload: Payload, due: float) -> Outcome:
    files = {"image": ("image.png", payload.data, "image/png")}
    try:
        response = await client.post(f"{url}/upscale{payload.query}", files=files)
        await response.aread()
        return Outcome(
            payload, due, time.monotonic(), response.status_code, response.headers.get("retry-after")
        )
    except httpx.HTTPError as exc:
        return Outcome(payload, due, time.monotonic(), 0, error=type(exc).__name__)


async def open_loop(
    url: str,
    payloads: Sequence[Payload],
    *,
    rate: float,
    duration_s: float,
    max_requests: int = 100_000,
    arrival: str = "poisson",
    timeout_s: float = 120.0,
    max_connections: int = 512,
    seed: int = 0,
) -> tuple[list[Outcome], float]:
    """Requests at `rate` per second for `duration_s` (Poisson or fixed spacing), payloads in random order.

    Returns the outcomes and the monotonic start time. After the last arrival it waits for the requests
    still running, each bounded by `timeout_s`.
    """
    if rate <= 0 or duration_s <= 0:
        raise ValueError(f"rate and duration_s must be positive, got {rate}, {duration_s}")
    rng = random.Random(seed)
    offsets: list[float] = []
    t = 0.0
    while len(offsets) < max_requests:
        t += rng.expovariate(rate) if arrival == "poisson" else 1.0 / rate
        if t >= duration_s:
            break
        offsets.append(t)
    async with _client(max_connections, timeout_s) as client:
        start = time.monotonic()
        tasks = []
        for offset in offsets:
            delay = start + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(client, url, rng.choice(payloads), start + offset)))
        return list(await asyncio.gather(*tasks)), start


async def closed_loop(
    url: str,
    payloads: Sequence[Payload],
    *,
    concurrency: int,
    duration_s: float,
    max_requests: int = 100_000,
    timeout_s: float = 120.0,
    seed: int = 0,
) -> tuple[list[Outcome], float]:
    """`concurrency` workers, each sending its next request when the last one ends, for `duration_s`."""
    rng = random.Random(seed)
    outcomes: list[Outcome] = []
    async with _client(concurrency, timeout_s) as client:
        start = time.monotonic()

        async def worker() -> None:
            while time.monotonic() - start < duration_s and len(outcomes) < max_requests:
                outcomes.append(await _send(client, url, rng.choice(payloads), time.monotonic()))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes, start


def summarize(
    outcomes: Sequence[Outcome], start: float, duration_s: float, warmup_s: float = 0.0
) -> dict[str, Any]:
    """Throughput of the successful requests that ended inside [start + warmup_s, start + duration_s],
    latency percentiles of all successes, and the count of every status (0: no response)."""
    window = max(duration_s - warmup_s, 1e-9)
    ok = [o for o in outcomes if o.status == 200]
    counted = [o for o in ok if start + warmup_s <= o.ended <= start + duration_s]
    latencies_ms = [o.latency_s * 1000 for o in ok]
    return {
        "offered": len(outcomes),
        "ok": len(ok),
        "status_counts": dict(sorted(Counter(str(o.status) for o in outcomes).items())),
        "images_per_s": len(counted) / window,
        "tiles_per_s": sum(o.payload.tiles for o in counted) / window,
        "output_mpix_per_s": sum(o.payload.output_pixels for o in counted) / window / 1e6,
        "latency_ms": percentiles(latencies_ms),
        "latency_ms_max": max(latencies_ms, default=None),
    }
