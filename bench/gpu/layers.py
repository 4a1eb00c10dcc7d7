"""Sections `layers` and `tail`: where a forward pass spends its time, and the padded-tail experiment
(with the acceptance rule of `quality`)."""

from __future__ import annotations

import argparse
import copy
import functools
import time
from typing import Any

import torch

from bench.gpu.quality import judged, psnr_of
from bench.gpu.timing import on_device, random_windows, sync, time_call
from model.generator import Generator
from model.inference import DTYPES

# The generator's stages in forward order, by module name; a stage missing from a model is left out.
LAYERS = (
    "conv_first",
    "act_first",
    "body",
    "conv_body",
    "upsample.0.0",
    "upsample.0.1",
    "upsample.0.2",
    "upsample.1.0",
    "upsample.1.1",
    "upsample.1.2",
    "conv_last",
)


def layer_times(
    model: Generator, device: torch.device, dtype: torch.dtype, batch: int, window: int, repeats: int
) -> list[dict[str, Any]]:
    """Milliseconds per forward pass spent in each of LAYERS, timed with hooks around each module.

    On CUDA the hooks record events on the stream (no synchronisation, so kernels still queue back to
    back); on the CPU every op is synchronous and a clock read is exact.
    """
    net = on_device(model, device, dtype)
    modules = dict(net.named_modules())
    names = [name for name in LAYERS if name in modules]
    marks: dict[str, list[list[Any]]] = {name: [] for name in names}

    def mark() -> Any:
        if device.type != "cuda":
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def elapsed_ms(start: Any, end: Any) -> float:
        return float(start.elapsed_time(end)) if device.type == "cuda" else (end - start) * 1000

    handles = []
    for name in names:
        module, runs = modules[name], marks[name]
        handles.append(module.register_forward_pre_hook(lambda m, a, runs=runs: runs.append([mark()])))
        handles.append(module.register_forward_hook(lambda m, a, o, runs=runs: runs[-1].append(mark())))
    x = random_windows(batch, window, device, dtype)
    with torch.inference_mode():
        for _ in range(3):
            net(x)
        sync(device)
        for runs in marks.values():
            runs.clear()
        total_start = mark()
        for _ in range(repeats):
            net(x)
        total_end = mark()
        sync(device)
    for handle in handles:
        handle.remove()
    total = elapsed_ms(total_start, total_end) / repeats
    rows = [{"layer": "whole forward", "ms": total, "share": 1.0}]
    for name in names:
        ms = sum(elapsed_ms(start, end) for start, end in marks[name]) / repeats
        rows.append({"layer": name, "ms": ms, "share": ms / total})
    return [{"dtype": str(dtype).removeprefix("torch."), "batch": batch, **row} for row in rows]


class PaddedTail(torch.nn.Module):
    """The generator's tail conv with zero filters added up to `channels` outputs, sliced back to the
    original ones: the same function, in a shape that may suit the tensor cores better."""

    def __init__(self, conv: torch.nn.Conv2d, channels: int) -> None:
        super().__init__()
        self.keep, self.padding = conv.out_channels, conv.padding
        weight = conv.weight.new_zeros((channels, *conv.weight.shape[1:]))
        weight[: self.keep] = conv.weight
        bias = conv.weight.new_zeros(channels)
        if conv.bias is not None:
            bias[: self.keep] = conv.bias
        self.weight = torch.nn.Parameter(weight.contiguous(memory_format=torch.channels_last), False)
        self.bias = torch.nn.Parameter(bias, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, self.weight, self.bias, padding=self.padding)[:, : self.keep]


def tail_experiment(
    model: Generator,
    args: argparse.Namespace,
    device: torch.device,
    dtype_names: list[str],
    batch: int,
    images: list[Any],
) -> list[dict[str, Any]]:
    """Tiles/s of the model as shipped and with its tail padded to 8 and 16 outputs, channels_last, and
    each variant's PSNR on `images` against the shipped shape's (the acceptance rule)."""
    window = args.tile + 2 * args.pad
    rows = []
    for dtype_name in dtype_names:
        dtype = DTYPES[dtype_name]
        base = on_device(model, device, dtype)
        x = random_windows(batch, window, device, dtype)

        def measure(net: torch.nn.Module, dtype: torch.dtype = dtype) -> float:
            return psnr_of(net, device, dtype, images, tile=args.tile, pad=args.pad, batch=batch)

        reference_db = measure(base)
        with torch.inference_mode():
            reference = base(x).float()
        for channels in (None, 8, 16):
            net = copy.deepcopy(base)
            if channels is not None:
                net.conv_last = PaddedTail(base.conv_last, channels)  # type: ignore[assignment]
            with torch.inference_mode():
                per_batch = time_call(functools.partial(net, x), device, args.seconds_per_point)
                difference = float((net(x).float() - reference).abs().max())
            rows.append(
                {
                    "dtype": dtype_name,
                    "batch": batch,
                    "tail_channels": channels or base.conv_last.out_channels,
                    "tiles_per_s": batch / per_batch,
                    "max_abs_difference": difference,
                    **judged(net, reference_db, measure),
                }
            )
    return rows
