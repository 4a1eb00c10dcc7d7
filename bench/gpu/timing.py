"""Shared by the sections: the run's time budget, timing a call on a device, the model and its inputs."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import torch

from model.generator import Generator
from model.registry import REGISTRY
from model.weights import load_generator

PEAK_FOR = {"float16": "float16", "bfloat16": "bfloat16", "float32": "tf32"}  # cudnn convs use TF32


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
