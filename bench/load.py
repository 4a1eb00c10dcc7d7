"""Load benchmark: how close does the service get to the bare model, and what does batching buy?

One run measures, side by side on the same machine:

1. the ceiling: the model alone (`Upscaler`) on batches of windows of the serving shape
   (tile + 2 * pad), at `--batch` and at 1, with the server's torch thread count, in this process
   while no server runs (measured before and after the service phases, to expose drift on a shared CPU);
2. the service (`srgan serve` on loopback, micro-batching on) under open-loop Poisson load at each
   `--loads` fraction of the ceiling: images/s, output megapixels/s, tiles/s, latency p50/p95/p99,
   mean batch fill (srgan_batch_size_tiles sum/count), and responses by status;
3. the naive baseline: the same app with batching off (SRGAN_MAX_BATCH=1, SRGAN_MAX_WAIT_MS=0) at the
   same offered rates.

Saturation throughput is the highest completed rate over the load levels; the target is
service >= 0.8 x ceiling. The client stays light (PNGs encoded up front, one asyncio thread), and its
CPU time and the server's are reported per phase, as both share the machine.

    python -m bench.load                        # CPU defaults: a few minutes
    python -m bench.load --tiny --duration-s 5 --raw-seconds 2   # dry run with tiny weights
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.loadgen import Payload, make_payloads, open_loop, summarize
from bench.serving import (
    REPO,
    Server,
    base_env,
    cpu_seconds,
    emit,
    machine,
    mean_batch_fill,
    metric_delta,
    parse_sizes,
    scrape,
    write_tiny_weights,
)
from model.registry import REGISTRY


def raw_tiles_per_s(
    weights: Path,
    model: str,
    window: int,
    batch: int,
    seconds: float,
    threads: int | None,
    device: str = "cpu",
    repeats: int = 3,
    in_worker: bool = True,
) -> float:
    """Median over `repeats` chunks of `seconds / repeats` of the model's windows/s at `batch`.

    By default the model runs in a fresh worker thread, as the engine runs every batch (one
    ThreadPoolExecutor thread): on a CPU, torch's threading behaves differently there than in the main
    thread (see docs/BENCHMARKS.md), and the ceiling must be measured the way the service runs.
    """
    import torch

    from model.inference import resolve_device, resolve_dtype

    dev = resolve_device(device)
    upscaler = REGISTRY.load(model, weights, dev, resolve_dtype("auto", dev))
    windows = np.random.default_rng(0).integers(0, 256, (batch, window, window, 3), dtype=np.uint8)

    def measure() -> float:
        if threads is not None:
            torch.set_num_threads(threads)
        upscaler(windows)  # allocator and kernel selection
        rates = []
        for _ in range(repeats):
            done, started = 0, time.perf_counter()
            while done < 2 * batch or time.perf_counter() - started < seconds / repeats:
                upscaler(windows)
                done += batch
            rates.append(done / (time.perf_counter() - started))
        return statistics.median(rates)

    if not in_worker:
        return measure()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(measure).result()


def _client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_phase(
    server: Server, payloads: list[Payload], rate: float, args: argparse.Namespace
) -> dict[str, Any]:
    """One open-loop level against a running server, with the metrics and CPU time it cost."""
    before, server_cpu, client_cpu = scrape(server.url), cpu_seconds(server.pid), _client_cpu_s()
    outcomes, start = asyncio.run(
        open_loop(
            server.url,
            payloads,
            rate=rate,
            duration_s=args.duration_s,
            arrival=args.arrival,
            timeout_s=args.deadline_s + 30,
            seed=args.seed,
        )
    )
    after = scrape(server.url)
    fill, batches = mean_batch_fill(before, after)
    summary = summarize(outcomes, start, args.duration_s, args.warmup_s)
    summary.update(
        offered_rate=rate,
        mean_batch_fill=fill,
        batches=batches,
        rejected=metric_delta(before, after, "srgan_rejected_total"),
        server_cpu_s=cpu_seconds(server.pid) - server_cpu,
        client_cpu_s=_client_cpu_s() - client_cpu,
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "model" / "weights", help="weights folder")
    parser.add_argument("--tiny", action="store_true", help="use tiny random weights (dry run)")
    parser.add_argument("--model", default=REGISTRY.default.name, choices=REGISTRY.names())
    parser.add_argument(
        "--sizes",
        default="32x32,48x48,64x32,64x64,96x64",
        help="image mix, WxH, drawn uniformly (default %(default)s)",
    )
    parser.add_argument("--tile", type=int, default=32, help="SRGAN_TILE (default %(default)s)")
    parser.add_argument("--pad", type=int, default=8, help="SRGAN_TILE_PAD (default %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="SRGAN_MAX_BATCH (default %(default)s)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="SRGAN_MAX_WAIT_MS (default 5)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for server and ceiling (default: torch's own choice)",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--loads",
        default="0.5,1.5",
        help="offered rates as fractions of the ceiling's images/s (default %(default)s)",
    )
    parser.add_argument("--duration-s", type=float, default=30.0, help="arrivals per level (default 30)")
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=5.0,
        help="completions before this are not counted in throughput (default 5)",
    )
    parser.add_argument("--deadline-s", type=float, default=20.0, help="SRGAN_REQUEST_TIMEOUT_S (default 20)")
    parser.add_argument("--raw-seconds", type=float, default=12.0, help="ceiling measurement per batch size")
    parser.add_argument("--arrival", default="poisson", choices=("poisson", "fixed"))
    parser.add_argument("--skip-naive", action="store_true", help="skip the batching-off baseline")
    parser.add_argument(
        "--ceiling-thread",
        default="worker",
        choices=("worker", "main"),
        help="run the ceiling in a worker thread like the engine (default) or in the main thread",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        weights = write_tiny_weights(Path(tmp)) if args.tiny else args.weights
        result = run(args, weights)
    emit(result, args.json)
    print(markdown(result), file=sys.stderr)
    return 0


def run(args: argparse.Namespace, weights: Path) -> dict[str, Any]:
    window = args.tile + 2 * args.pad
    payloads = make_payloads(parse_sizes(args.sizes), args.tile)
    mean_tiles = statistics.mean(p.tiles for p in payloads)

    def ceiling() -> dict[str, float]:
        return {
            f"batch_{b}": raw_tiles_per_s(
                weights,
                args.model,
                window,
                b,
                args.raw_seconds,
                args.threads,
                args.device,
                in_worker=args.ceiling_thread == "worker",
            )
            for b in sorted({args.batch, 1})
        }

    raw_before = ceiling()
    capacity_img_s = raw_before[f"batch_{args.batch}"] / mean_tiles
    common = base_env(args.device, weights, args.tile, args.pad, args.deadline_s)
    configs = {"batched": {"SRGAN_MAX_BATCH": str(args.batch), "SRGAN_MAX_WAIT_MS": str(args.max_wait_ms)}}
    if not args.skip_naive:
        configs["naive"] = {"SRGAN_MAX_BATCH": "1", "SRGAN_MAX_WAIT_MS": "0"}
    services: dict[str, list[dict[str, Any]]] = {}
    for name, env in configs.items():
        with Server({**common, **env}, threads=args.threads) as server:
            services[name] = [
                run_phase(server, payloads, float(f) * capacity_img_s, args) for f in args.loads.split(",")
            ]
    raw_after = ceiling()
    raw = {k: (raw_before[k] + raw_after[k]) / 2 for k in raw_before}
    saturation = {name: max(p["tiles_per_s"] for p in phases) for name, phases in services.items()}
    return {
        "machine": machine(),
        "settings": {
            "model": args.model,
            "tile": args.tile,
            "pad": args.pad,
            "window": window,
            "max_batch": args.batch,
            "max_wait_ms": args.max_wait_ms,
            "threads": args.threads,
            "sizes": args.sizes,
            "mean_tiles_per_image": mean_tiles,
            "duration_s": args.duration_s,
            "warmup_s": args.warmup_s,
            "deadline_s": args.deadline_s,
            "arrival": args.arrival,
            "weights": "tiny" if args.tiny else str(weights),
            "ceiling_thread": args.ceiling_thread,
        },
        "ceiling_tiles_per_s": {"before": raw_before, "after": raw_after, "mean": raw},
        "services": services,
        "saturation_tiles_per_s": saturation,
        "service_vs_ceiling": saturation["batched"] / raw[f"batch_{args.batch}"],
        "naive_vs_ceiling_batch_1": (saturation["naive"] / raw["batch_1"]) if "naive" in saturation else None,
        "batching_gain": (saturation["batched"] / saturation["naive"]) if saturation.get("naive") else None,
    }


def markdown(result: dict[str, Any]) -> str:
    """The table docs/BENCHMARKS.md shows."""
    s = result["settings"]
    rows = [
        "| server | offered img/s | done img/s | out MP/s | tiles/s | p50 / p95 / p99 ms | batch fill "
        "| statuses | server / client CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, phases in result["services"].items():
        for p in phases:
            lat = " / ".join("-" if v is None else f"{v:.0f}" for v in p["latency_ms"].values())
            fill = "-" if p["mean_batch_fill"] is None else f"{p['mean_batch_fill']:.2f}"
            rows.append(
                f"| {name} | {p['offered_rate']:.3f} | {p['images_per_s']:.3f} | "
                f"{p['output_mpix_per_s']:.3f} | {p['tiles_per_s']:.2f} | {lat} | {fill} | "
                f"{p['status_counts']} | {p['server_cpu_s']:.0f} / {p['client_cpu_s']:.1f} |"
            )
    ceiling = result["ceiling_tiles_per_s"]["mean"]
    rows.append("")
    rows.append(
        f"Ceiling (model alone, window {s['window']}): "
        + ", ".join(f"{k.replace('_', ' ')}: {v:.2f} tiles/s" for k, v in ceiling.items())
    )
    rows.append(f"Service / ceiling at saturation: {result['service_vs_ceiling']:.2f} (target >= 0.80)")
    if result["batching_gain"] is not None:
        rows.append(
            f"Batching gain (batched / naive at saturation): {result['batching_gain']:.2f}x; "
            f"naive / ceiling at batch 1: {result['naive_vs_ceiling_batch_1']:.2f}"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
