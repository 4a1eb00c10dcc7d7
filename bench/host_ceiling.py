"""The host's ceiling: the service over HTTP with a model that costs nothing, on the CPU.

A GPU takes the model's FLOPs off the host, but not the rest of a request: the upload, decoding, tiling,
the engine's bookkeeping, copying, quantising and, above all, encoding the x16 output. This serves a
zero-cost model (nearest-neighbour x4, no weights: `NearestX4`, registered through the model registry as
an embedder would) with `srgan serve`'s own server and settings, drives it with a closed loop per output
format, and reports the end-to-end output megapixels per second, and per core of the server's CPU time:
the most any GPU can get out of this host per core, whatever the model.

    python -m bench.host_ceiling                          # PNG, JPEG, WebP; about 2 minutes
    python -m bench.host_ceiling --json /tmp/ceiling.json --seconds 20

(`python -m bench.host_ceiling serve --host H --port P` is the server process it starts.)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.loadgen import closed_loop, make_payloads, summarize
from bench.serving import Server, base_env, cpu_seconds, emit, machine, parse_sizes
from model.architectures import ARCHITECTURES
from model.registry import ModelRegistry, ModelSpec
from model.weights import save_generator

FORMATS = ("png", "jpeg", "webp")
PAD = 12  # the shipped models' context pad: the tiling work of the real service


class NearestX4(nn.Module):
    """Nearest-neighbour upscaling without weights: a model that costs next to nothing.

    Args:
        upscale: the scale factor.
    """

    def __init__(self, upscale: int = 4) -> None:
        super().__init__()
        self.upscale = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=self.upscale, mode="nearest")


# An embedder's architecture: known to weights loading in this process and the server it starts.
ARCHITECTURES.setdefault("nearest-x4", NearestX4)
ZERO_COST = ModelSpec("nearest", "Nearest (zero cost)", "nearest-x4", 4, "nearest_x4.safetensors", PAD,
                      "Nearest-neighbour x4 without weights: the service's own cost.")


def serve(host: str, port: int) -> None:
    """`srgan serve` with a registry of the zero-cost model only (the command serves the default one)."""
    from app.http import server

    registry = ModelRegistry([ZERO_COST], default=ZERO_COST.name)
    server.create_app = functools.partial(server.create_app, registry=registry)
    server.serve(host, port)


def measure(args: argparse.Namespace, weights_dir: Path) -> list[dict[str, Any]]:
    save_generator(weights_dir / ZERO_COST.weights_file, NearestX4(), {"upscale": 4}, {"note": "no weights"})
    env = {**base_env("cpu", weights_dir, args.tile, PAD, 60.0), "SRGAN_LOG_LEVEL": "WARNING"}
    rows = []
    with Server(env, module="bench.host_ceiling") as server:
        for fmt in args.formats.split(","):
            payloads = make_payloads(parse_sizes(args.sizes), args.tile, (f"?format={fmt}",))
            asyncio.run(closed_loop(server.url, payloads, concurrency=args.concurrency, duration_s=2))
            cpu = cpu_seconds(server.pid)
            outcomes, start = asyncio.run(
                closed_loop(server.url, payloads, concurrency=args.concurrency, duration_s=args.seconds)
            )
            used = cpu_seconds(server.pid) - cpu
            summary = summarize(outcomes, start, args.seconds)
            megapixels = summary["output_mpix_per_s"] * args.seconds
            rows.append({  # per core: output megapixels per second of the server's CPU time
                "format": fmt,
                "output_mpix_per_s": summary["output_mpix_per_s"],
                "server_cpu_cores": used / args.seconds,
                "output_mpix_per_core_s": megapixels / used if used else None,
                "images_per_s": summary["images_per_s"],
                "latency_ms": summary["latency_ms"],
                "status_counts": summary["status_counts"],
            })
            print(f"{fmt}: {rows[-1]['output_mpix_per_s']:.1f} output MP/s, "
                  f"{rows[-1]['server_cpu_cores']:.2f} server cores", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser("serve", help="the server process (started by the benchmark)")
    serve_parser.add_argument("--host", required=True)
    serve_parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--sizes", default="128x128,256x256", help="input sizes (x16 pixels out)")
    parser.add_argument("--tile", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="per format")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.host, args.port)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args, Path(tmp))
    emit({"machine": machine(), "sizes": args.sizes, "concurrency": args.concurrency,
          "seconds": args.seconds, "rows": rows}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
