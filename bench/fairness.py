"""Fairness and liveness under a large request: does a small image wait behind a big one?

Against a real `srgan serve` on loopback:

1. idle: `--samples` small (`--small`, default 64x64) uploads one after another, and /healthz probes;
2. loaded: one `--big` (default 1024x1024) upload is sent and, once its tiles are queued, the same small
   uploads again while /healthz is probed at `--health-hz` the whole time;
3. the big request is then abandoned (client disconnect) and we time how long the server takes to drop
   its queued tiles (srgan_queue_depth_tiles back to 0).

Targets: small-image median latency while loaded <= 3 x idle (the engine takes tiles round-robin across
requests, so a small image should wait about one batch, not for the big image), and /healthz p99 < 50 ms
while the engine is saturated (inference never runs on the event loop).

    python -m bench.fairness                     # full model, CPU settings
    python -m bench.fairness --tiny --samples 3  # dry run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.serving import (
    REPO,
    bench_server,
    emit,
    machine,
    percentiles,
    png_bytes,
)
from model.synthetic import natural_like_image


async def _upscale_ms(client: httpx.AsyncClient, url: str, data: bytes) -> float:
    started = time.monotonic()
    response = await client.post(f"{url}/upscale", files={"image": ("i.png", data, "image/png")})
    if response.status_code != 200:
        raise RuntimeError(f"small request failed: {response.status_code} {response.text[:200]}")
    return (time.monotonic() - started) * 1000


async def _probe_health(
    client: httpx.AsyncClient, url: str, hz: float, stop: asyncio.Event, limit: int
) -> list[float]:
    """/healthz latencies (ms) at `hz` until `stop` is set or `limit` probes were sent."""
    latencies: list[float] = []
    while not stop.is_set() and len(latencies) < limit:
        started = time.monotonic()
        response = await client.get(f"{url}/healthz")
        latencies.append((time.monotonic() - started) * 1000 if response.status_code == 200 else float("inf"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, 1 / hz - (time.monotonic() - started)))
    return latencies


async def _queue_depth(client: httpx.AsyncClient, url: str) -> float:
    for line in (await client.get(f"{url}/metrics")).text.splitlines():
        if line.startswith("srgan_queue_depth_tiles "):
            return float(line.split()[1])
    return 0.0


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    small = png_bytes(natural_like_image(args.small, args.small, seed=1))
    big = png_bytes(natural_like_image(args.big, args.big, seed=2))
    limits = httpx.Limits(max_connections=8)
    async with (
        httpx.AsyncClient(timeout=args.deadline_s + 30, limits=limits) as client,
        httpx.AsyncClient(timeout=10.0) as probe,
    ):
        await _upscale_ms(client, url, small)  # first request of the process
        idle = [await _upscale_ms(client, url, small) for _ in range(args.samples)]
        stop = asyncio.Event()
        idle_health = await _probe_health(probe, url, args.health_hz, stop, limit=20)

        big_task = asyncio.create_task(
            client.post(f"{url}/upscale", files={"image": ("b.png", big, "image/png")})
        )
        wait_until = time.monotonic() + 120
        while await _queue_depth(probe, url) == 0 and time.monotonic() < wait_until and not big_task.done():
            await asyncio.sleep(0.1)
        health_task = asyncio.create_task(_probe_health(probe, url, args.health_hz, stop, limit=100_000))
        loaded = [await _upscale_ms(client, url, small) for _ in range(args.samples)]
        big_still_running = not big_task.done()
        stop.set()
        loaded_health = await health_task

        big_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await big_task
        cancelled_at = time.monotonic()
        while await _queue_depth(probe, url) > 0 and time.monotonic() - cancelled_at < 60:
            await asyncio.sleep(0.05)
        drop_s = time.monotonic() - cancelled_at
        after = await _upscale_ms(client, url, small)

    ratio = statistics.median(loaded) / statistics.median(idle)
    health = percentiles(loaded_health)
    return {
        "small_idle_ms": idle,
        "small_loaded_ms": loaded,
        "small_idle_median_ms": statistics.median(idle),
        "small_loaded_median_ms": statistics.median(loaded),
        "loaded_over_idle": ratio,
        "big_still_running_during_samples": big_still_running,
        "healthz_idle_ms": percentiles(idle_health),
        "healthz_loaded_ms": health,
        "healthz_loaded_max_ms": max(loaded_health, default=None),
        "healthz_probes": len(loaded_health),
        "big_dropped_after_disconnect_s": drop_s,
        "small_after_ms": after,
        "pass_fairness": ratio <= 3.0 and big_still_running,
        "pass_healthz": health["p99"] is not None and health["p99"] < 50.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "model" / "weights")
    parser.add_argument("--tiny", action="store_true", help="tiny random weights (dry run)")
    parser.add_argument("--small", type=int, default=64, help="small image side (default 64)")
    parser.add_argument("--big", type=int, default=1024, help="big image side (default 1024)")
    parser.add_argument("--samples", type=int, default=5, help="small requests per phase (default 5)")
    parser.add_argument("--health-hz", type=float, default=20.0, help="/healthz probe rate (default 20)")
    parser.add_argument("--tile", type=int, default=32)
    parser.add_argument("--pad", type=int, default=8)
    parser.add_argument("--batch", type=int, help="SRGAN_MAX_BATCH (default: the service's, 1 on a CPU)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument(
        "--max-queue-tiles",
        type=int,
        default=4096,
        help="SRGAN_MAX_QUEUE_TILES: above the big image's tiles, or the engine admits it "
        "only into an empty queue and then refuses everything else (default 4096)",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--deadline-s",
        type=float,
        default=900.0,
        help="SRGAN_REQUEST_TIMEOUT_S, long enough that the big request stays queued",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with bench_server(args, SRGAN_MAX_QUEUE_TILES=str(args.max_queue_tiles)) as server:
        result = asyncio.run(measure(server.url, args))
    result = {"machine": machine(), "settings": {k: str(v) for k, v in vars(args).items()}, **result}
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
