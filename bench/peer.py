"""Side by side with a peer: this service against a plain LitServe app serving the same generator
(`bench/peer_app.py`, whole images, one per model call, in its own environment), in one run on this CPU.

Both get the same requests from one client (multipart `image`, PNG out at the same zlib level):

1. throughput: a closed loop of `--concurrency` clients on `--throughput-size` images for `--seconds`;
2. idle latency: `--idle-requests` `--small` uploads one after another, the median;
3. small behind large: one `--large` upload, then, once it is being computed, one `--small` upload: its
   latency against the idle median; then the peak resident memory of the server's processes (VmHWM,
   summed over LitServe's processes), which the large image sets;
4. overload: open loop at 3x each server's own measured throughput for `--overload-seconds`, with a
   `--overload-deadline-s` request deadline on both (SRGAN_REQUEST_TIMEOUT_S, LitServe's timeout):
   what comes back, how fast, and with Retry-After or not.

Phases 1-3 run with a `--deadline-s` deadline on both, long enough for the large image, and phase 4
restarts both with the short one. Targets on the CPU: throughput >= 1.0x LitServe, idle latency <=
1.2x LitServe, and the service keeps its lead on the rest.

    python -m bench.peer --json /tmp/peer.json            # a few minutes
    python -m bench.peer --large 256x256 --seconds 5 --overload-seconds 5   # quick check of the script
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import Payload, closed_loop, make_payloads, open_loop, summarize
from bench.serving import LOOPBACK, REPO, Server, base_env, emit, free_port, machine, parse_sizes
from model.registry import REGISTRY

PEER_PYTHON = Path("/root/peer-venv/bin/python")


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (LitServe runs its HTTP server and inference worker as children)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                pids += tree(int(child))
    return pids


def peak_rss_bytes(pid: int) -> int:
    """VmHWM (peak resident memory) of `pid`'s process tree, summed."""
    total = 0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
    return total


@contextlib.contextmanager
def peer_server(python: Path, weights: Path, timeout_s: float) -> Iterator[tuple[str, int]]:
    """The LitServe app on a free loopback port, ready; yields (url, pid) and stops its process group."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.NamedTemporaryFile(prefix="peer-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            [str(python), "-m", "bench.peer_app", "--port", str(port), "--weights", str(weights),
             "--timeout", str(timeout_s)],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the peer exited with {process.returncode}: see {log.name}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the peer was not ready in 180 s: see {log.name}")
            time.sleep(0.5)
        yield url, process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def both(args: argparse.Namespace, deadline_s: float) -> Iterator[dict[str, tuple[str, int]]]:
    """Both servers, ready: {"litserve": (url, pid), "service": (url, pid)}."""
    env = {**base_env("cpu", args.weights.parent, args.tile, REGISTRY.default.context_pad, deadline_s),
           "SRGAN_LOG_LEVEL": "WARNING", "SRGAN_MAX_INPUT_PIXELS": str(2048 * 2048)}
    with peer_server(args.peer_python, args.weights, deadline_s) as peer, Server(env) as service:
        yield {"litserve": peer, "service": (service.url, service.pid)}


async def _post(client: httpx.AsyncClient, url: str, payload: Payload) -> tuple[int, float]:
    started = time.monotonic()
    files = {"image": ("image.png", payload.data, "image/png")}
    response = await client.post(f"{url}/upscale{payload.query}", files=files)
    return response.status_code, time.monotonic() - started


async def idle_latency(url: str, small: Payload, requests: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=120) as client:
        await _post(client, url, small)  # warm
        latencies = []
        for _ in range(requests):
            status, seconds = await _post(client, url, small)
            if status != 200:
                raise RuntimeError(f"idle request failed with {status}")
            latencies.append(seconds)
    return {"median_s": statistics.median(latencies), "min_s": min(latencies), "max_s": max(latencies)}


async def small_behind_large(url: str, small: Payload, large: Payload, timeout_s: float) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        big = asyncio.create_task(_post(client, url, large))
        await asyncio.sleep(1.0)  # the large image is being computed
        try:
            status, seconds = await _post(client, url, small)
        except httpx.TimeoutException:
            status, seconds = 0, timeout_s
        try:
            large_status, large_seconds = await big
        except httpx.TimeoutException:
            large_status, large_seconds = 0, timeout_s
    return {"small_status": status, "small_s": seconds,
            "large_status": large_status, "large_s": large_seconds}


def run(args: argparse.Namespace) -> dict[str, Any]:
    small = make_payloads(parse_sizes(args.small), args.tile, ("?format=png",), seed=1)[0]
    large = make_payloads(parse_sizes(args.large), args.tile, ("?format=png",), seed=2)[0]
    loaded = make_payloads(parse_sizes(args.throughput_size), args.tile, ("?format=png",), seed=3)
    result: dict[str, Any] = {name: {} for name in ("litserve", "service")}
    with both(args, args.deadline_s) as servers:
        for name, (url, _pid) in servers.items():
            asyncio.run(closed_loop(url, loaded, concurrency=args.concurrency, duration_s=3))
            outcomes, start = asyncio.run(closed_loop(url, loaded, concurrency=args.concurrency,
                                                      duration_s=args.seconds, timeout_s=args.deadline_s + 5))
            result[name]["throughput"] = summarize(outcomes, start, args.seconds)
        for name, (url, _pid) in servers.items():
            result[name]["idle"] = asyncio.run(idle_latency(url, small, args.idle_requests))
        for name, (url, pid) in servers.items():
            behind = asyncio.run(small_behind_large(url, small, large, args.deadline_s + 5))
            behind["small_over_idle"] = behind["small_s"] / result[name]["idle"]["median_s"]
            result[name]["small_behind_large"] = behind
            result[name]["peak_rss_bytes"] = peak_rss_bytes(pid)
    with both(args, args.overload_deadline_s) as servers:
        for name, (url, _pid) in servers.items():
            rate = 3 * max(result[name]["throughput"]["images_per_s"], 0.1)
            outcomes, start = asyncio.run(open_loop(url, loaded, rate=rate, duration_s=args.overload_seconds,
                                                    timeout_s=args.overload_deadline_s + 5))
            refused = [o for o in outcomes if o.status == 503]
            result[name]["overload"] = {
                "rate": rate,
                **summarize(outcomes, start, args.overload_seconds),
                "refused_with_retry_after": sum(o.retry_after is not None for o in refused),
                "refusal_median_s": statistics.median(o.latency_s for o in refused) if refused else None,
            }
    peer, ours = result["litserve"], result["service"]
    result["ratios"] = {
        "throughput": ours["throughput"]["images_per_s"] / max(peer["throughput"]["images_per_s"], 1e-9),
        "idle_latency": ours["idle"]["median_s"] / peer["idle"]["median_s"],
        "peak_rss": ours["peak_rss_bytes"] / max(peer["peak_rss_bytes"], 1),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-python", type=Path, default=PEER_PYTHON, help="python of the LitServe venv")
    parser.add_argument("--weights", type=Path, default=REGISTRY.weights_path(REGISTRY.default.name))
    parser.add_argument("--tile", type=int, default=96, help="SRGAN_TILE (the service's default)")
    parser.add_argument("--throughput-size", default="96x96")
    parser.add_argument("--small", default="64x64")
    parser.add_argument("--large", default="1024x1024")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--idle-requests", type=int, default=10)
    parser.add_argument("--deadline-s", type=float, default=120.0)
    parser.add_argument("--overload-seconds", type=float, default=15.0)
    parser.add_argument("--overload-deadline-s", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    settings = {k: str(v) for k, v in vars(args).items()}
    emit({"machine": machine(), "settings": settings, **run(args)}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
