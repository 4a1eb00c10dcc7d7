"""Soak: steady load for `--minutes` (default 10) while the server's resident memory is sampled.

A leak in a long-running service shows as RSS that keeps rising under a constant load. Against a real
`srgan serve` on loopback, requests arrive open-loop (Poisson) at `--rate` images/s (default: 0.7 x a
measured capacity), rotating through image sizes, both models and the three output formats so that every
code path runs many times. VmRSS (/proc/PID/status) is sampled every `--sample-s`. Growth is the median of
the last three samples over the median of the first three after `--warmup-s` (allocator pools and
first-use caches fill during the warm-up). Target: growth < 10 %.

    python -m bench.soak --minutes 10
    python -m bench.soak --tiny --minutes 0.5 --warmup-s 5   # dry run
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

from bench.loadgen import closed_loop, make_payloads, open_loop, summarize
from bench.serving import (
    REPO,
    Server,
    bench_server,
    emit,
    machine,
    parse_sizes,
    probe_concurrency,
    rss_bytes,
    scrape,
)

QUERIES = ("", "?model=srresnet", "?format=jpeg&quality=80", "?model=srresnet&format=webp")


async def _sample_rss(
    pid: int, every_s: float, stop: asyncio.Event, samples: list[tuple[float, int]], started: float
) -> None:
    while not stop.is_set():
        samples.append((time.monotonic() - started, rss_bytes(pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def soak(server: Server, args: argparse.Namespace, rate: float) -> dict[str, Any]:
    payloads = make_payloads(parse_sizes(args.sizes), args.tile, QUERIES)
    samples: list[tuple[float, int]] = []
    stop = asyncio.Event()
    started = time.monotonic()
    sampler = asyncio.create_task(_sample_rss(server.pid, args.sample_s, stop, samples, started))
    duration = args.minutes * 60
    outcomes, start = await open_loop(
        server.url, payloads, rate=rate, duration_s=duration, timeout_s=args.deadline_s + 30, seed=args.seed
    )
    await asyncio.sleep(args.sample_s)  # one more sample after the last response
    stop.set()
    await sampler
    steady = [rss for t, rss in samples if t >= args.warmup_s] or [rss for _t, rss in samples]
    first, last = statistics.median(steady[:3]), statistics.median(steady[-3:])
    return {
        "offered_rate": rate,
        "load": summarize(outcomes, start, duration, warmup_s=min(args.warmup_s, duration / 4)),
        "rss_sample_every_s": args.sample_s,
        "rss_mib_samples": [round(rss / 2**20, 1) for _t, rss in samples],
        "rss_mib_start": first / 2**20,
        "rss_mib_end": last / 2**20,
        "rss_mib_max": max(rss for _t, rss in samples) / 2**20,
        "rss_growth": (last - first) / first,
        "pass_growth_under_10pct": (last - first) / first < 0.10,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "model" / "weights")
    parser.add_argument("--tiny", action="store_true", help="tiny random weights (dry run)")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak duration (default 10)")
    parser.add_argument("--rate", type=float, help="images/s (default: 0.7 x capacity measured first)")
    parser.add_argument("--sizes", default="32x32,48x48,64x32,64x64,96x64")
    parser.add_argument("--tile", type=int, default=32)
    parser.add_argument("--pad", type=int, default=8)
    parser.add_argument("--batch", type=int, help="SRGAN_MAX_BATCH (default: the service's, 1 on a CPU)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--deadline-s", type=float, default=30.0, help="SRGAN_REQUEST_TIMEOUT_S")
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period (default 5)")
    parser.add_argument(
        "--warmup-s", type=float, default=30.0, help="samples before this are not the baseline"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with bench_server(args) as server:
        rate = args.rate
        probe = None
        if rate is None:
            payloads = make_payloads(parse_sizes(args.sizes), args.tile, QUERIES)
            outcomes, start = asyncio.run(
                closed_loop(
                    server.url,
                    payloads,
                    concurrency=probe_concurrency(args.batch),
                    duration_s=20,
                    timeout_s=args.deadline_s + 30,
                )
            )
            probe = summarize(outcomes, start, 20, warmup_s=5)
            rate = 0.7 * probe["images_per_s"]
        result = asyncio.run(soak(server, args, rate))
        metrics = scrape(server.url)
    requests = {k: v for k, v in metrics.items() if k.startswith("srgan_requests_total{")}
    result = {
        "machine": machine(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "capacity_probe": probe,
        **result,
        "server_requests_total": requests,
    }
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
