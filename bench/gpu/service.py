"""Section `service`: `srgan serve` on the device under closed-loop load, batching on and off, for each
output format."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from bench.gpu.timing import Budget
from bench.loadgen import closed_loop, make_payloads, summarize
from bench.serving import (
    Server,
    base_env,
    cpu_seconds,
    mean_batch_fill,
    parse_sizes,
    scrape,
)


def service_gain(args: argparse.Namespace, weights: Path, budget: Budget) -> dict[str, Any]:
    """Closed loop at `--concurrency` against `srgan serve`, batching on vs SRGAN_MAX_BATCH=1, for each of
    `--service-formats`."""
    results: dict[str, Any] = {
        "sizes": args.service_sizes,
        "concurrency": args.concurrency,
        "duration_s": args.service_seconds,
    }
    base = {**base_env(args.device, weights, args.tile, args.pad, 120), "SRGAN_LOG_LEVEL": "WARNING"}
    configs = {
        f"batch_{args.service_batch}": {
            "SRGAN_MAX_BATCH": str(args.service_batch),
            "SRGAN_MAX_WAIT_MS": str(args.service_wait_ms),
        },
        "batch_1": {"SRGAN_MAX_BATCH": "1", "SRGAN_MAX_WAIT_MS": "0"},
    }
    for fmt in args.service_formats.split(","):
        payloads = make_payloads(parse_sizes(args.service_sizes), args.tile, (f"?format={fmt}",))
        runs: dict[str, Any] = {}
        for name, env in configs.items():
            if budget.left() < args.service_seconds + 60:
                runs[name] = {"skipped": "budget"}
                continue
            runs[name] = _closed_loop_run(args, {**base, **env}, payloads)
        batched, single = runs.get(f"batch_{args.service_batch}", {}), runs.get("batch_1", {})
        if batched.get("images_per_s") and single.get("images_per_s"):
            runs["batching_gain"] = batched["images_per_s"] / single["images_per_s"]
        results[fmt] = runs
    return results


def _closed_loop_run(args: argparse.Namespace, env: dict[str, str], payloads: list[Any]) -> dict[str, Any]:
    with Server(env) as server:
        asyncio.run(closed_loop(server.url, payloads, concurrency=args.concurrency, duration_s=3))
        before, cpu = scrape(server.url), cpu_seconds(server.pid)
        outcomes, start = asyncio.run(
            closed_loop(
                server.url,
                payloads,
                concurrency=args.concurrency,
                duration_s=args.service_seconds,
                timeout_s=120,
            )
        )
        after = scrape(server.url)
        summary = summarize(outcomes, start, args.service_seconds, warmup_s=0)
        fill, batches = mean_batch_fill(before, after)
        summary.update(
            mean_batch_fill=fill,
            batches=batches,
            server_cpu_cores=(cpu_seconds(server.pid) - cpu) / args.service_seconds,
            device_memory_bytes={
                k: v for k, v in after.items() if k.startswith("srgan_device_memory_bytes{")
            },
        )
        return summary
