"""GPU benchmark, built to run as ONE device call (H100/H200): what the model and the service get out of
the chip, and where the time goes.

Sections (each bounded by what is left of `--budget-s`; results are written after every section, so a
cut-off run still returns what it measured):

- peak:    the chip's measured matmul peak (8192^3 fp16, bf16, tf32, fp32 products), the yardstick;
- flops:   the generator's FLOPs per output pixel, analytically and with torch's FlopCounterMode;
- sweep:   model-only throughput (device tensors in, no host copies) vs batch size 1..64 for fp32, fp16,
           bf16, contiguous and channels_last, as tiles/s, output MP/s, TFLOP/s and fraction of peak;
- e2e:     the service's `Upscaler` (uint8 host windows -> device -> uint8 host) at the service dtype;
- compile: the same with torch.compile(mode="reduce-overhead") (CUDA graphs) at fixed batch sizes,
           with the compile time;
- layers:  where a forward pass spends its time, per stage of the generator (head, residual body, each
           upsampler's conv / PixelShuffle / PReLU, 9x9 tail), at the e2e dtype, channels_last;
- tail:    an experiment on the 9x9 tail, which has 3 output channels and took 44 % of an H200 forward
           pass: the model with the tail's filters zero-padded to 8 and 16 output channels (the extra
           channels are dropped), against the model as shipped, with the largest output difference;
- service: `srgan serve` with SRGAN_DEVICE=cuda driven by the load generator at concurrency 32,
           micro-batching on vs SRGAN_MAX_BATCH=1, with batch fill and the server's CPU use.

    python -m bench.gpu_bench --out "$OUT"          # on the GPU box (see bench/run_gpu.sh)
    python -m bench.gpu_bench --dry-run --out /tmp/gpu-dry   # on a CPU, tiny sizes, a minute
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.loadgen import closed_loop, make_payloads, summarize
from bench.serving import (
    REPO,
    TINY_ARCH,
    Server,
    cpu_seconds,
    machine,
    mean_batch_fill,
    parse_sizes,
    scrape,
    write_tiny_weights,
)
from model.generator import Generator
from model.inference import DTYPES, Upscaler
from model.registry import REGISTRY
from model.weights import load_generator

PEAK_FOR = {"float16": "float16", "bfloat16": "bfloat16", "float32": "tf32"}  # cudnn convs use TF32


# --dry-run: a CPU, a tiny model and tiny sizes; torch.compile needs a C compiler on a CPU, so it is off
# unless --compile-batches is given.
DRY_RUN: dict[str, Any] = {
    "device": "cpu",
    "tile": 16,
    "pad": 4,
    "batches": "1,2",
    "dtypes": "float32,bfloat16",
    "e2e_dtype": "float32",
    "compile_batches": "",
    "seconds_per_point": 0.2,
    "matmul_n": 256,
    "concurrency": 4,
    "service_batch": 4,
    "layers_batch": 2,
    "service_seconds": 3.0,
    "service_sizes": "16x16,32x32",
    "budget_s": 300.0,
    "reserve_s": 0.0,
    "compile_reserve_s": 0.0,
}


class Budget:
    """Seconds left of the whole run; sections ask before each measurement."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, seconds: float) -> float:
    """Seconds per call: 3 warm-up calls, a calibration call, then enough calls to fill `seconds`."""
    for _ in range(3):
        fn()
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    once = max(time.perf_counter() - started, 1e-6)
    count = max(3, min(10_000, int(seconds / once)))
    started = time.perf_counter()
    for _ in range(count):
        fn()
    sync(device)
    return (time.perf_counter() - started) / count


def matmul_peaks(device: torch.device, n: int, seconds: float) -> dict[str, float]:
    """TFLOP/s of an n^3 matrix product per dtype ('tf32' is float32 with TF32 tensor cores allowed)."""
    kinds = {
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "tf32": torch.float32,
        "float32": torch.float32,
    }
    if device.type == "cpu":
        kinds = {"bfloat16": torch.bfloat16, "float32": torch.float32}
    peaks = {}
    previous = torch.backends.cuda.matmul.allow_tf32
    try:
        for name, dtype in kinds.items():
            torch.backends.cuda.matmul.allow_tf32 = name == "tf32"
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            per_call = time_call(functools.partial(torch.matmul, a, b), device, seconds)
            peaks[name] = 2 * n**3 / per_call / 1e12
            del a, b
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    if "tf32" not in peaks:
        peaks["tf32"] = peaks["float32"]
    return peaks


def analytic_flops_per_lr_pixel(arch: dict[str, int]) -> float:
    """Multiply-adds x 2 of every convolution, per low-resolution input pixel (PReLU, adds and biases
    are a rounding error): 9x9 head, 2 x num_block 3x3 body convs and the 3x3 body tail at LR, one 3x3
    conv to 4 x num_feat per x2 stage at that stage's resolution, and the 9x9 tail at HR."""
    feat, cin, cout = arch["num_feat"], arch["num_in_ch"], arch["num_out_ch"]
    macs = 81 * cin * feat + (2 * arch["num_block"] + 1) * 9 * feat * feat
    area = 1
    for _ in range(int(math.log2(arch["upscale"]))):
        macs += 9 * feat * 4 * feat * area
        area *= 4
    macs += 81 * feat * cout * area
    return 2.0 * macs


def counted_flops(model: Generator, window: int, device: torch.device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, window, window, device=device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.float().to(device)(x)
    return float(counter.get_total_flops())


def load_folded(weights: Path, name: str) -> tuple[Generator, dict[str, int]]:
    model, info = load_generator(weights / REGISTRY[name].weights_file)
    assert isinstance(model, Generator), "the GPU benchmark's layer sections know the SRGAN generator"
    return model.eval().fold_batchnorm(), info.arch


def on_device(model: Generator, device: torch.device, dtype: torch.dtype) -> Generator:
    """A copy of `model` on `device` in `dtype`, channels_last (the service's CUDA layout)."""
    return copy.deepcopy(model).to(device=device, dtype=dtype).to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def random_windows(
    batch: int,
    window: int,
    device: torch.device,
    dtype: torch.dtype,
    memory_format: torch.memory_format = torch.channels_last,
) -> torch.Tensor:
    """A batch of random RGB windows in [0, 1) (random, not zeros: zeros can time faster than images)."""
    x = torch.rand(batch, 3, window, window, device=device, dtype=dtype)
    return x.contiguous(memory_format=memory_format)


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
    model: Generator, args: argparse.Namespace, device: torch.device, dtype_names: list[str], batch: int
) -> list[dict[str, Any]]:
    """Tiles/s of the model as shipped and with its tail padded to 8 and 16 outputs, channels_last."""
    window = args.tile + 2 * args.pad
    rows = []
    for dtype_name in dtype_names:
        dtype = DTYPES[dtype_name]
        base = on_device(model, device, dtype)
        x = random_windows(batch, window, device, dtype)
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
                }
            )
    return rows


def upscaler_sweep(
    model: Generator,
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
    batches: list[int],
    budget: Budget,
    compiled: bool,
) -> list[dict[str, Any]]:
    """The service's own call path: uint8 numpy windows in, uint8 numpy windows out."""
    rows = []
    window = args.tile + 2 * args.pad
    rng = np.random.default_rng(0)
    for batch in batches:
        row: dict[str, Any] = {
            "batch": batch,
            "dtype": str(dtype).removeprefix("torch."),
            "compiled": compiled,
        }
        if budget.left() < args.reserve_s + (args.compile_reserve_s if compiled else 0):
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
        rows.append(row)
        del upscaler
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def service_gain(args: argparse.Namespace, weights: Path, budget: Budget) -> dict[str, Any]:
    """Closed loop at `--concurrency` against `srgan serve`, batching on vs SRGAN_MAX_BATCH=1."""
    payloads = make_payloads(parse_sizes(args.service_sizes), args.tile, (f"?format={args.service_format}",))
    results: dict[str, Any] = {
        "sizes": args.service_sizes,
        "format": args.service_format,
        "concurrency": args.concurrency,
        "duration_s": args.service_seconds,
    }
    base = {
        "SRGAN_DEVICE": args.device,
        "SRGAN_WEIGHTS_DIR": str(weights),
        "SRGAN_TILE": str(args.tile),
        "SRGAN_TILE_PAD": str(args.pad),
        "SRGAN_REQUEST_TIMEOUT_S": "120",
        "SRGAN_LOG_LEVEL": "WARNING",
    }
    configs = {
        f"batch_{args.service_batch}": {
            "SRGAN_MAX_BATCH": str(args.service_batch),
            "SRGAN_MAX_WAIT_MS": str(args.service_wait_ms),
        },
        "batch_1": {"SRGAN_MAX_BATCH": "1", "SRGAN_MAX_WAIT_MS": "0"},
    }
    for name, env in configs.items():
        if budget.left() < args.service_seconds + 60:
            results[name] = {"skipped": "budget"}
            continue
        with Server({**base, **env}) as server:
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
            results[name] = summary
    batched, single = results.get(f"batch_{args.service_batch}", {}), results.get("batch_1", {})
    if batched.get("images_per_s") and single.get("images_per_s"):
        results["batching_gain"] = batched["images_per_s"] / single["images_per_s"]
    return results


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"GPU benchmark on {result['device']} ({result['machine']['date']}), window "
        f"{result['settings']['window']} (tile {result['settings']['tile']} + 2 x pad "
        f"{result['settings']['pad']}), weights {result['settings']['weights']}",
        "",
    ]
    peaks = result.get("peak") or {}
    if peaks and "error" not in peaks:
        lines.append("Matmul peak (TFLOP/s): " + ", ".join(f"{k} {v:.3g}" for k, v in peaks.items()))
    flops = result.get("flops") or {}
    if flops and "error" not in flops:
        lines.append(
            f"Generator: {flops['per_output_pixel_counted'] / 1e3:.0f} kFLOP per output pixel "
            f"(analytic {flops['per_output_pixel_analytic'] / 1e3:.0f}k), "
            f"{flops['per_tile'] / 1e9:.1f} GFLOP per tile"
        )
    sweep = [r for r in result.get("sweep") or [] if "tiles_per_s" in r]
    if sweep:
        batches = sorted({r["batch"] for r in sweep})
        lines += [
            "",
            "Model only, tiles/s (fraction of peak):",
            "",
            "| dtype | layout | " + " | ".join(f"B={b}" for b in batches) + " |",
            "|---|---|" + "---|" * len(batches),
        ]
        for key in dict.fromkeys((r["dtype"], r["layout"]) for r in sweep):
            cells = []
            for b in batches:
                row = next((r for r in sweep if (r["dtype"], r["layout"], r["batch"]) == (*key, b)), None)
                cells.append(
                    "-" if row is None else f"{row['tiles_per_s']:.0f} ({row['fraction_of_peak'] or 0:.0%})"
                )
            lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    for title, section in (
        ("Upscaler (uint8 host round trip)", "e2e"),
        ("Upscaler, torch.compile reduce-overhead", "compile"),
    ):
        rows = [r for r in result.get(section) or [] if isinstance(r, dict) and "tiles_per_s" in r]
        if rows:
            lines += [
                "",
                f"{title}: "
                + ", ".join(
                    f"B={r['batch']} {r['tiles_per_s']:.0f} tiles/s"
                    + (f" (compile {r['compile_s']:.0f} s)" if "compile_s" in r else "")
                    for r in rows
                ),
            ]
    layers = [r for r in result.get("layers") or [] if isinstance(r, dict) and "ms" in r]
    if layers:
        lines += _table(
            f"Time per forward pass by stage ({layers[0]['dtype']}, channels_last, B={layers[0]['batch']}):",
            ["stage", "ms", "share"],
            [[r["layer"], f"{r['ms']:.3f}", f"{r['share']:.0%}"] for r in layers],
        )
    tail = [r for r in result.get("tail") or [] if isinstance(r, dict) and "tiles_per_s" in r]
    if tail:
        lines += _table(
            f"Tail padded to more output channels (channels_last, B={tail[0]['batch']}), tiles/s:",
            ["dtype", "tail channels", "tiles/s", "max abs difference"],
            [
                [
                    r["dtype"],
                    str(r["tail_channels"]),
                    f"{r['tiles_per_s']:.0f}",
                    f"{r['max_abs_difference']:.2g}",
                ]
                for r in tail
            ],
        )
    service = result.get("service") or {}
    if service and "error" not in service:
        lines += [
            "",
            f"Service, closed loop at concurrency {service['concurrency']} ({service['sizes']}, "
            f"{service['format']} out):",
            "",
            "| config | images/s | tiles/s | p50 / p99 ms | batch fill | server CPU cores | statuses |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, s in service.items():
            if isinstance(s, dict) and "images_per_s" in s:
                lat = " / ".join(
                    f"{s['latency_ms'][p]:.0f}" if s["latency_ms"][p] is not None else "-"
                    for p in ("p50", "p99")
                )
                fill = "-" if s["mean_batch_fill"] is None else f"{s['mean_batch_fill']:.1f}"
                lines.append(
                    f"| {name} | {s['images_per_s']:.1f} | {s['tiles_per_s']:.0f} | {lat} | {fill} | "
                    f"{s['server_cpu_cores']:.1f} | {s['status_counts']} |"
                )
        if "batching_gain" in service:
            lines.append(f"\nBatching gain: {service['batching_gain']:.2f}x")
    return "\n".join(lines) + "\n"


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """A titled markdown table, as lines, preceded by a blank line."""
    return [
        "",
        title,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def write(out: Path, result: dict[str, Any]) -> None:
    (out / "gpu_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "gpu_bench.md").write_text(markdown(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-bench-out")))
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model and sizes: checks the script")
    parser.add_argument("--weights", type=Path, default=REPO / "model" / "weights")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--tile", type=int, default=96, help="service default 96")
    parser.add_argument("--pad", type=int, default=12, help="service default 12")
    parser.add_argument("--batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--dtypes", default="float32,float16,bfloat16")
    parser.add_argument("--e2e-dtype", default="float16", help="the service's CUDA default")
    parser.add_argument("--compile-batches", default="8,32", help="'' to skip torch.compile")
    parser.add_argument("--seconds-per-point", type=float, default=1.0)
    parser.add_argument("--matmul-n", type=int, default=8192)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--service-batch", type=int, default=16, help="SRGAN_MAX_BATCH when batching")
    parser.add_argument("--service-wait-ms", type=float, default=5.0)
    parser.add_argument("--service-seconds", type=float, default=20.0)
    parser.add_argument("--service-sizes", default="64x64,128x128,96x128,192x192,256x256")
    parser.add_argument("--service-format", default="png", choices=("png", "jpeg", "webp"))
    parser.add_argument("--sections", default="peak,flops,sweep,e2e,compile,layers,tail,service")
    parser.add_argument("--layers-batch", type=int, default=32, help="batch for the layers section")
    parser.add_argument("--budget-s", type=float, default=500.0, help="whole run, device call limit is 600")
    parser.add_argument(
        "--reserve-s",
        type=float,
        default=100.0,
        help="stop the sweeps with this much budget left (for the service section)",
    )
    parser.add_argument("--compile-reserve-s", type=float, default=90.0)
    args = parser.parse_args(argv)
    if args.dry_run:  # tiny settings, except where the command line chose otherwise
        for name, value in DRY_RUN.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device; use --dry-run on a CPU")
    args.out.mkdir(parents=True, exist_ok=True)
    budget = Budget(args.budget_s)
    device = torch.device(args.device)
    sections = set(args.sections.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        weights = write_tiny_weights(Path(tmp)) if args.dry_run else args.weights
        model, arch = load_folded(weights, "srgan")
        window = args.tile + 2 * args.pad
        result: dict[str, Any] = {
            "machine": machine(),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "settings": {
                **{k: str(v) for k, v in vars(args).items()},
                "window": window,
                "weights": "tiny" if args.dry_run else str(weights),
                "arch": arch or TINY_ARCH,
                "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            },
        }
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        peaks: dict[str, float] = {}

        def section(name: str, run: Callable[[], Any]) -> Any:
            """Run one section; a failure is recorded and the next section still runs."""
            if name not in sections:
                return None
            started = time.monotonic()
            try:
                value = run()
            except Exception as exc:  # a benchmark run must return what the other sections measured
                value = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            result.setdefault("section_seconds", {})[name] = round(time.monotonic() - started, 1)
            result[name] = value
            write(args.out, result)
            return value

        peaks = section("peak", lambda: matmul_peaks(device, args.matmul_n, args.seconds_per_point)) or {}
        analytic = analytic_flops_per_lr_pixel(arch) * window * window
        out_pixels = (window * arch["upscale"]) ** 2

        def flops() -> dict[str, float]:
            counted = counted_flops(copy.deepcopy(model), window, device)
            return {
                "per_tile": counted,
                "per_tile_analytic": analytic,
                "per_output_pixel_counted": counted / out_pixels,
                "per_output_pixel_analytic": analytic / out_pixels,
            }

        counted = (section("flops", flops) or {}).get("per_tile", analytic)
        section("sweep", lambda: model_sweep(copy.deepcopy(model), args, device, counted, peaks, budget))
        batches = [int(b) for b in args.batches.split(",")]
        dtype = DTYPES[args.e2e_dtype]
        section("e2e", lambda: upscaler_sweep(model, args, device, dtype, batches, budget, False))
        if args.compile_batches:
            compile_batches = [int(b) for b in args.compile_batches.split(",")]
            section(
                "compile", lambda: upscaler_sweep(model, args, device, dtype, compile_batches, budget, True)
            )
        section("layers", lambda: layer_times(model, device, dtype, args.layers_batch, window, repeats=20))
        tail_dtypes = [name for name in ("float16", "bfloat16") if name in args.dtypes.split(",")] or [
            args.e2e_dtype
        ]
        section("tail", lambda: tail_experiment(model, args, device, tail_dtypes, args.layers_batch))
        section("service", lambda: service_gain(args, weights, budget))
    errors = {k: v["error"] for k, v in result.items() if isinstance(v, dict) and "error" in v}
    print(markdown(result) + "".join(f"\n{k} failed: {v}" for k, v in errors.items()))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
