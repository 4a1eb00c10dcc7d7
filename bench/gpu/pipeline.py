"""Section `engine`: the engine alone (no HTTP, no decoding or encoding) at saturation, with one and with
two batches in flight, against the model's own rate: what the device-side pipeline and the overlap of
host work with the GPU deliver before any codec is involved."""

from __future__ import annotations

import argparse
import asyncio
import copy
import time
from typing import Any

import numpy as np
import torch

from app.engine import Engine
from bench.gpu.timing import Budget
from bench.serving import parse_sizes, tiles_of
from model.generator import Generator
from model.inference import Upscaler
from model.synthetic import natural_like_image


async def _closed_loop(engine: Engine, images: list[np.ndarray], tile: int, concurrency: int,
                       seconds: float) -> tuple[int, int, int]:
    """`concurrency` callers, each upscaling the next image as soon as its last one is back; returns the
    images, tiles and output pixels done in `seconds`."""
    done = [0, 0, 0]
    stop = time.monotonic() + seconds

    async def caller(offset: int) -> None:
        i = offset
        while time.monotonic() < stop:
            image = images[i % len(images)]
            await engine.upscale("srgan", image, deadline=time.monotonic() + 120)
            if time.monotonic() <= stop:
                done[0] += 1
                done[1] += tiles_of(image.shape[1], image.shape[0], tile)
                done[2] += image.shape[0] * image.shape[1] * 16
            i += 1

    await asyncio.gather(*(caller(k) for k in range(concurrency)))
    return done[0], done[1], done[2]


async def _run(upscaler: Upscaler, args: argparse.Namespace, images: list[np.ndarray],
               in_flight: int) -> dict[str, Any]:
    engine = Engine({"srgan": upscaler}, tile=args.tile, pad=args.pad, max_batch=args.service_batch,
                    max_wait_s=args.service_wait_ms / 1000, max_queue_tiles=100_000, max_in_flight=in_flight)
    await engine.start()
    try:
        await engine.warmup()
        await _closed_loop(engine, images, args.tile, args.concurrency, 2.0)
        count, tiles, pixels = await _closed_loop(engine, images, args.tile, args.concurrency,
                                                         args.engine_seconds)
    finally:
        await engine.stop(drain_timeout_s=10)
    return {
        "max_in_flight": in_flight,
        "images_per_s": count / args.engine_seconds,
        "tiles_per_s": tiles / args.engine_seconds,
        "output_mpix_per_s": pixels / args.engine_seconds / 1e6,
    }


def engine_in_flight(model: Generator, args: argparse.Namespace, device: torch.device, dtype: torch.dtype,
                     budget: Budget) -> list[dict[str, Any]]:
    upscaler = Upscaler.from_module("srgan", copy.deepcopy(model), device, dtype)
    images = [natural_like_image(height, width, seed=i)
              for i, (width, height) in enumerate(parse_sizes(args.service_sizes))]
    rows = []
    for in_flight in (1, 2):
        if budget.left() < args.reserve_s:
            rows.append({"max_in_flight": in_flight, "skipped": "budget"})
            continue
        rows.append(asyncio.run(_run(upscaler, args, images, in_flight)))
    return rows
