"""`python -m bench.gpu_bench`: the command line, the dry-run settings, and the sections in order."""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from app.settings import Settings
from bench.gpu.graphs import graphs_experiment
from bench.gpu.jpeg import jpeg_encoders
from bench.gpu.layers import layer_times, tail_experiment
from bench.gpu.peak import analytic_flops_per_lr_pixel, counted_flops, matmul_peaks
from bench.gpu.pipeline import engine_in_flight
from bench.gpu.quality import eval_images
from bench.gpu.report import markdown, write
from bench.gpu.service import service_gain
from bench.gpu.shapes import shape_buckets
from bench.gpu.sweep import model_sweep, upscaler_sweep
from bench.gpu.timing import Budget, load_folded
from bench.serving import (
    REPO,
    TINY_ARCH,
    machine,
    write_tiny_weights,
)
from model.inference import DTYPES
from model.registry import REGISTRY

# --dry-run: a CPU, a tiny model and tiny sizes; torch.compile needs a C compiler on a CPU, so it is off
# unless --compile-batches is given.
DRY_RUN: dict[str, Any] = {
    "device": "cpu",
    "tile": 16,
    "pad": 4,
    "batches": "1,2,4",
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
    "engine_seconds": 2.0,
    "bucket_mixes": "8x8,16x16,24x32;64x64",
    "bucket_policies": "fixed 16,fixed 24,buckets 8/16,fitted 16",
    "jpeg_sides": "256",
    "budget_s": 300.0,
    "reserve_s": 0.0,
    "compile_reserve_s": 0.0,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-bench-out")))
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model and sizes: checks the script")
    parser.add_argument("--weights", type=Path, default=REPO / "model" / "weights")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--tile", type=int, default=Settings.model_fields["tile"].default,
                        help="default: the service's")
    parser.add_argument("--pad", type=int, default=REGISTRY.default.context_pad,
                        help="default: the default model's context pad")
    parser.add_argument("--batches", default="1,8,16,32,64")
    parser.add_argument("--dtypes", default="float32,float16,bfloat16")
    parser.add_argument("--e2e-dtype", default="float16", help="the service's CUDA default")
    parser.add_argument("--compile-batches", default="32", help="'' to skip torch.compile")
    parser.add_argument("--seconds-per-point", type=float, default=1.0)
    parser.add_argument("--matmul-n", type=int, default=8192)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--service-batch", type=int, default=16, help="SRGAN_MAX_BATCH when batching")
    parser.add_argument("--service-wait-ms", type=float, default=5.0)
    parser.add_argument("--service-seconds", type=float, default=15.0)
    parser.add_argument("--service-sizes", default="64x64,128x128,96x128,192x192,256x256")
    parser.add_argument("--service-formats", default="jpeg,png", help="comma-separated: png, jpeg, webp")
    parser.add_argument("--engine-seconds", type=float, default=15.0, help="per in-flight setting")
    parser.add_argument("--bucket-mixes", default="64x64,128x128,96x128,192x192,256x256;1024x1024",
                        help="';'-separated image-size mixes for the buckets section")
    parser.add_argument("--bucket-policies", default="fixed 96,fixed 128,fixed 160,buckets 32/64/96,"
                        "buckets 32/64/128,fitted 96", help="see bench/gpu/shapes.py")
    parser.add_argument("--jpeg-sides", default="1024,2048", help="output sides for the jpeg section")
    parser.add_argument("--eval-dir", type=Path, default=None,
                        help="HR images for the acceptance rule (e.g. Set5); default: made in code")
    parser.add_argument("--sections", default="peak,flops,sweep,e2e,engine,service,tail,graphs,buckets,jpeg,"
                        "layers,compile", help="which to run (they run in this order)")
    parser.add_argument("--layers-batch", type=int, default=32, help="batch for the layers section")
    parser.add_argument("--budget-s", type=float, default=500.0, help="whole run, device call limit is 600")
    parser.add_argument("--reserve-s", type=float, default=170.0,
                        help="budget the sections before the service leave for it")
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
        model, arch = load_folded(weights, REGISTRY.default.name)
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
        section("engine", lambda: engine_in_flight(model, args, device, dtype, budget))
        section("service", lambda: service_gain(args, weights, budget))
        args.reserve_s = args.compile_reserve_s  # what is left after the service: the later sections, compile
        tail_dtypes = [name for name in ("float16", "bfloat16") if name in args.dtypes.split(",")] or [
            args.e2e_dtype
        ]
        images = eval_images(args.eval_dir)
        section("tail", lambda: tail_experiment(model, args, device, tail_dtypes, args.layers_batch, images))
        section("graphs", lambda: graphs_experiment(model, args, device, args.e2e_dtype, args.layers_batch,
                                                    images))
        section("buckets", lambda: shape_buckets(model, args, device, dtype, budget))
        section("jpeg", lambda: jpeg_encoders([int(side) for side in args.jpeg_sides.split(",")]))
        section("layers", lambda: layer_times(model, device, dtype, args.layers_batch, window, repeats=20))
        if args.compile_batches:  # last: a compile can take minutes, and the budget guard stops it
            compile_batches = [int(b) for b in args.compile_batches.split(",")]
            section(
                "compile",
                lambda: upscaler_sweep(model, args, device, dtype, compile_batches, budget, True, images),
            )
    errors = {k: v["error"] for k, v in result.items() if isinstance(v, dict) and "error" in v}
    print(markdown(result) + "".join(f"\n{k} failed: {v}" for k, v in errors.items()))
    return 1 if errors else 0
