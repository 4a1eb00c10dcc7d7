"""Section `buckets`: which window shapes a GPU should batch, for a mix of image sizes.

A fixed window (tile + 2 x pad) lets every tile of every image share a batch, but computes a whole
window for an image smaller than a tile, and (tile + 2 pad)^2 / tile^2 for every tile of a large one. A
few shape buckets (cores of 32, 64 or 96, say) cut that waste for small images, at the price of batches
that only fill with tiles of one bucket. This section times a full batch of each window shape the
policies need (model only, device tensors) and combines the times with each policy's windows for the
mix, assuming full batches of every shape (the service at saturation):

- `fixed T`: every image cut into T-pixel tiles (the service today, SRGAN_TILE=T);
- `buckets S1/S2/...`: each image's fitted tile (its tiles split evenly, at most the largest bucket)
  rounded up to the smallest bucket that holds it;
- `fitted`: each image's own fitted shape (what a CPU does with one tile per batch), batched with
  images of the same size.

Reported per policy: the FLOPs overhead (window pixels computed per image pixel) and the useful output
megapixels per second (the images' own pixels, x16).
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

import torch

from bench.gpu.timing import Budget, on_device, time_call
from bench.serving import parse_sizes
from model.generator import Generator
from model.tiling import TileGrid

Shape = tuple[int, int]  # window (height, width)


def policy_windows(sizes: list[tuple[int, int]], pad: int, policy: str) -> dict[Shape, int]:
    """Window shape -> how many windows `policy` ("fixed 96", "buckets 32/64/96", "fitted 96") computes
    for one image of each (width, height)."""
    kind, _, value = policy.partition(" ")
    sides = sorted(int(side) for side in value.split("/"))
    windows: dict[Shape, int] = {}
    for width, height in sizes:
        grid = TileGrid(height, width, sides[-1], pad, fit=kind != "fixed")
        if kind == "buckets":
            need = max(grid.tile_height, grid.tile_width)
            grid = TileGrid(height, width, next(side for side in sides if side >= need), pad)
        windows[grid.window_shape] = windows.get(grid.window_shape, 0) + len(grid)
    return windows


def shape_buckets(
    model: Generator,
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
    budget: Budget,
) -> list[dict[str, Any]]:
    net = on_device(model, device, dtype)
    batch = args.layers_batch
    seconds_per_window: dict[Shape, float] = {}

    def per_window(shape: Shape) -> float:
        if shape not in seconds_per_window:
            x = torch.rand(batch, 3, *shape, device=device, dtype=dtype)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                seconds = time_call(functools.partial(net, x), device, args.seconds_per_point)
            seconds_per_window[shape] = seconds / batch
        return seconds_per_window[shape]

    rows = []
    for mix in args.bucket_mixes.split(";"):
        sizes = parse_sizes(mix)
        image_pixels = sum(w * h for w, h in sizes)
        for policy in args.bucket_policies.split(","):
            row: dict[str, Any] = {"mix": mix, "policy": policy, "batch": batch}
            if budget.left() < args.reserve_s:
                rows.append({**row, "skipped": "budget"})
                continue
            windows = policy_windows(sizes, args.pad, policy)
            computed = sum(h * w * n for (h, w), n in windows.items())
            try:
                seconds = sum(n * per_window(shape) for shape, n in windows.items())
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                rows.append({**row, "skipped": "out of memory"})
                continue
            rows.append({
                **row,
                "shapes": len(windows),
                "flops_overhead": computed / image_pixels,
                "useful_output_mpix_per_s": image_pixels * 16 / seconds / 1e6,
                "images_per_s": len(sizes) / seconds,
            })
    return rows
