"""Sections `peak` and `flops`: the chip's matmul peak, and the generator's FLOPs per pixel."""

from __future__ import annotations

import functools
import math

import torch

from bench.gpu.timing import time_call
from model.generator import Generator


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
