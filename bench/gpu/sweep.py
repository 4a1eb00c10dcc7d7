"""Sections `sweep`, `e2e` and `compile`: model-only throughput by dtype, layout and batch, and the
service's `Upscaler` call path (uint8 host windows in and out), optionally torch.compile'd (then with
the acceptance rule of `quality`)."""

from __future__ import annotations

import argparse
import copy
import functools
import time
from typing import Any

import numpy as np
import torch

from bench.gpu.quality import judged, psnr_of
from bench.gpu.timing import PEAK_FOR, Budget, random_windows, time_call
from model.generator import Generator
from model.inference import DTYPES, Upscaler


def model_sweep(
    model: Generator,
    args: argparse.Namespace,
    device: torch.device,
    flops_per_tile: float,
    peaks: dict[str, float],
    budget: Budget,
) -> list[dict[str, Any]]:
    rows = []
    window = args.tile + 2 * args.pad
    for dtype_name in args.dtypes.split(","):
        for layout in ("contiguous", "channels_last"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            net = model.to(device=device, dtype=DTYPES[dtype_name]).to(memory_format=fmt)  # type: ignore[call-overload]
            for batch in map(int, args.batches.split(",")):
                if budget.left() < args.reserve_s:
                    rows.append({"dtype": dtype_name, "layout": layout, "batch": batch, "skipped": "budget"})
                    continue
                rows.append(
                    _sweep_point(
                        net,
                        batch,
                        window,
                        dtype_name,
                        layout,
                        device,
                        flops_per_tile,
                        peaks,
                        args.seconds_per_point,
                    )
                )
    return rows


def _sweep_point(
    net: torch.nn.Module,
    batch: int,
    window: int,
    dtype_name: str,
    layout: str,
    device: torch.device,
    flops_per_tile: float,
    peaks: dict[str, float],
    seconds: float,
) -> dict[str, Any]:
    row: dict[str, Any] = {"dtype": dtype_name, "layout": layout, "batch": batch}
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        x = random_windows(batch, window, device, DTYPES[dtype_name], fmt)
        with torch.inference_mode():
            per_batch = time_call(lambda: net(x), device, seconds)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        row["skipped"] = "out of memory"
        return row
    tiles_per_s = batch / per_batch
    tflops = flops_per_tile * tiles_per_s / 1e12
    peak = peaks.get(PEAK_FOR[dtype_name]) or peaks.get(dtype_name)
    row.update(
        ms_per_batch=per_batch * 1000,
        tiles_per_s=tiles_per_s,
        output_mpix_per_s=tiles_per_s * (window * 4) ** 2 / 1e6,
        tflops=tflops,
        fraction_of_peak=tflops / peak if peak else None,
    )
    if device.type == "cuda":
        row["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    return row


def upscaler_sweep(
    model: Generator,
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
    batches: list[int],
    budget: Budget,
    compiled: bool,
    images: list[Any] | None = None,
) -> list[dict[str, Any]]:
    """The service's own call path: uint8 numpy windows in, uint8 numpy windows out; with `compiled`, each
    compiled model's PSNR on `images` against the eager model's at the same batch (the acceptance rule)."""
    rows = []
    window = args.tile + 2 * args.pad
    rng = np.random.default_rng(0)
    for batch in batches:
        row: dict[str, Any] = {
            "batch": batch,
            "dtype": str(dtype).removeprefix("torch."),
            "compiled": compiled,
        }
        if budget.left() < (args.compile_reserve_s if compiled else args.reserve_s):
            rows.append({**row, "skipped": "budget"})
            continue
        upscaler = Upscaler.from_module("srgan", copy.deepcopy(model), device, dtype)
        windows = rng.integers(0, 256, (batch, window, window, 3), dtype=np.uint8)
        if compiled:
            upscaler.compile(fixed_batch=batch)
            started = time.perf_counter()
            for _ in range(3):  # compile, CUDA-graph warm-up, graph recording
                upscaler(windows)
            row["compile_s"] = time.perf_counter() - started
        per_batch = time_call(functools.partial(upscaler, windows), device, args.seconds_per_point)
        row.update(ms_per_batch=per_batch * 1000, tiles_per_s=batch / per_batch)
        if compiled and images:
            eager = Upscaler.from_module("srgan", copy.deepcopy(model), device, dtype).model

            def measure(net: torch.nn.Module, batch: int = batch) -> float:
                return psnr_of(net, device, dtype, images, tile=args.tile, pad=args.pad, batch=batch)

            row.update(judged(upscaler.model, measure(eager), measure))
        rows.append(row)
        del upscaler
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows
