"""Overload: offered load at `--factor` (default 3) x capacity. Does the service shed load cleanly?

Against a real `srgan serve` on loopback: first the capacity is measured (closed loop, 2 x max_batch
but at least 4 concurrent requests, for `--probe-s`; or given with `--capacity`, and then each payload is
sent once, one after another, so that admission starts from a measured rate), then requests arrive
open-loop (Poisson) at factor x capacity for `--duration-s`. Targets:

- no 500s and no transport errors;
- the excess is refused with 503 + Retry-After, and refusals come back within 50 ms (p99);
- accepted requests finish within their deadline (SRGAN_REQUEST_TIMEOUT_S): no 504s, max latency below it;
- goodput under overload stays near capacity (no congestion collapse).

The outcomes are also counted per image size (`by_size`): with sizes of very different cost, which ones
admission lets in, and which of those are late. `--repo` serves another checkout (a `git worktree`, for
a before/after comparison) with this script's client.

    python -m bench.overload                     # full model, CPU settings
    python -m bench.overload --tiny --probe-s 5 --duration-s 8   # dry run
    python -m bench.overload --tile 96 --pad 12 --sizes 32x32,32x32,32x32,192x192 --deadline-s 20 \
        --repo /tmp/before                       # small and large images at the service's tiling
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import Outcome, Payload, closed_loop, make_payloads, open_loop, summarize
from bench.serving import (
    REPO,
    Server,
    emit,
    machine,
    mean_batch_fill,
    metric_delta,
    parse_sizes,
    percentiles,
    probe_concurrency,
    scrape,
    server_env,
    write_tiny_weights,
)


def by_size(outcomes: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
    """Per image size (WxH): the count of every status and the slowest success (ms)."""
    sizes: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        sizes.setdefault(f"{outcome.payload.width}x{outcome.payload.height}", []).append(outcome)
    return {
        size: {
            "status_counts": dict(sorted(Counter(str(o.status) for o in group).items())),
            "ok_latency_ms_max": max((o.latency_s * 1000 for o in group if o.status == 200), default=None),
        }
        for size, group in sorted(sizes.items())
    }


async def warm_up(url: str, payloads: Sequence[Payload], timeout_s: float) -> list[int]:
    """Each payload once, one after another; their statuses."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        statuses = []
        for payload in payloads:
            files = {"image": ("image.png", payload.data, "image/png")}
            statuses.append((await client.post(f"{url}/upscale{payload.query}", files=files)).status_code)
        return statuses


def measure(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    payloads = make_payloads(parse_sizes(args.sizes), args.tile)
    capacity = args.capacity
    probe = None
    warmup = None
    if capacity is not None:
        warmup = asyncio.run(warm_up(server.url, payloads, args.deadline_s + 30))
    else:
        outcomes, start = asyncio.run(
            closed_loop(
                server.url,
                payloads,
                concurrency=probe_concurrency(args.batch),
                duration_s=args.probe_s,
                timeout_s=args.deadline_s + 30,
            )
        )
        probe = summarize(outcomes, start, args.probe_s, warmup_s=min(5.0, args.probe_s / 4))
        capacity = probe["images_per_s"]
    rate = args.factor * capacity
    before = scrape(server.url)
    outcomes, start = asyncio.run(
        open_loop(
            server.url,
            payloads,
            rate=rate,
            duration_s=args.duration_s,
            timeout_s=args.deadline_s + 30,
            seed=args.seed,
        )
    )
    after = scrape(server.url)
    summary = summarize(outcomes, start, args.duration_s, warmup_s=min(5.0, args.duration_s / 4))
    refused = [o for o in outcomes if o.status == 503]
    refused_ms = [o.latency_s * 1000 for o in refused]
    ok_ms = [o.latency_s * 1000 for o in outcomes if o.status == 200]
    codes = summary["status_counts"]
    refusal_p99 = percentiles(refused_ms)["p99"]
    checks = {
        "no_500s_or_transport_errors": not any(
            c == "0" or (c.startswith("5") and c not in ("503", "504")) for c in codes
        ),
        "refusals_have_retry_after": all(o.retry_after for o in refused),
        "refusals_p99_under_50ms": refusal_p99 is not None and refusal_p99 < 50,
        "accepted_within_deadline": codes.get("504", 0) == 0
        and max(ok_ms, default=0) <= args.deadline_s * 1000,
        "goodput_at_least_80pct_of_capacity": summary["images_per_s"] >= 0.8 * capacity,
    }
    fill, batches = mean_batch_fill(before, after)
    return {
        "capacity_images_per_s": capacity,
        "capacity_probe": probe,
        "warmup_statuses": warmup,
        "offered_rate": rate,
        "overload": summary,
        "by_size": by_size(outcomes),
        "refusal_latency_ms": percentiles(refused_ms),
        "refusal_latency_ms_max": max(refused_ms, default=None),
        "refusals_within_50ms": sum(ms <= 50 for ms in refused_ms) / len(refused_ms) if refused_ms else None,
        "retry_after_values": sorted({o.retry_after or "" for o in refused}),
        "accepted_latency_ms_max": max(ok_ms, default=None),
        "mean_batch_fill": fill,
        "batches": batches,
        "rejected": metric_delta(before, after, "srgan_rejected_total"),
        "checks": checks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "model" / "weights")
    parser.add_argument("--tiny", action="store_true", help="tiny random weights (dry run)")
    parser.add_argument("--sizes", default="32x32,48x48,64x32,64x64,96x64")
    parser.add_argument("--tile", type=int, default=32)
    parser.add_argument("--pad", type=int, default=8)
    parser.add_argument("--batch", type=int, help="SRGAN_MAX_BATCH (default: the service's, 1 on a CPU)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--deadline-s", type=float, default=15.0, help="SRGAN_REQUEST_TIMEOUT_S (default 15)")
    parser.add_argument("--factor", type=float, default=3.0, help="offered load / capacity (default 3)")
    parser.add_argument("--capacity", type=float, help="images/s; skips the probe")
    parser.add_argument("--probe-s", type=float, default=20.0, help="capacity probe duration (default 20)")
    parser.add_argument("--duration-s", type=float, default=30.0, help="overload duration (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout to serve (default: this one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        weights = write_tiny_weights(Path(tmp)) if args.tiny else args.weights
        with Server(server_env(args, weights), repo=args.repo) as server:
            result = measure(server, args)
    result = {"machine": machine(), "settings": {k: str(v) for k, v in vars(args).items()}, **result}
    emit(result, args.json)
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
