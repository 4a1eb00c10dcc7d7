"""A network resident on a device, turning batches of integer windows into upscaled windows.

The one tensor conversion behind `model.tiling`'s core, so behind the CLI, the evaluation and the
service's engine. Host arrays stay integer (uint8 or uint16); only the batch being processed is converted
to floating point, on the device. Also the one rule for `--device`/`SRGAN_DEVICE` and the dtype.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model.generator import count_parameters
from model.weights import WeightsInfo, load_generator

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without one is an error, not a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: float16 on CUDA (tensor cores; outputs are quantised to 8 bits anyway), float32 on the CPU."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto, {', '.join(DTYPES)}, got {name!r}")
    if device.type == "cpu" and name == "float16":
        raise ValueError("float16 is not supported on the CPU; use float32 or bfloat16")
    return DTYPES[name]


@dataclass
class Upscaler:
    """A network in eval mode on `device` in `dtype`, channels_last on CUDA; `from_module` folds its BN.

    Built directly, it wraps the module as it is: the evaluation measures a training generator this
    way without changing it.
    """

    name: str
    model: nn.Module
    info: WeightsInfo | None
    device: torch.device
    dtype: torch.dtype
    # When set, every batch is padded to this many windows, so a compiled/CUDA-graph model sees one shape.
    fixed_batch: int | None = None

    @classmethod
    def from_module(
        cls,
        name: str,
        model: nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        info: WeightsInfo | None = None,
    ) -> Upscaler:
        model = model.eval()
        if callable(fold := getattr(model, "fold_batchnorm", None)):
            fold()
        model = model.to(device=device, dtype=dtype)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return cls(name=name, model=model, info=info, device=device, dtype=dtype)

    @classmethod
    def from_file(cls, name: str, path: str | Path, device: torch.device, dtype: torch.dtype) -> Upscaler:
        model, info = load_generator(path)
        upscaler = cls.from_module(name, model, device, dtype, info)
        logger.info(
            "loaded %s from %s: %d parameters, x%d, %s %s",
            name,
            path,
            upscaler.parameters,
            upscaler.scale,
            device,
            str(dtype).removeprefix("torch."),
        )
        return upscaler

    @property
    def scale(self) -> int:
        upscale = self.model.upscale  # every architecture has it (model.architectures)
        if not isinstance(upscale, int):
            raise TypeError(f"{self.name}: the network's `upscale` is {upscale!r}, not an integer")
        return upscale

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)

    def compile(self, fixed_batch: int) -> None:
        """torch.compile with CUDA graphs ("reduce-overhead") for one fixed batch shape."""
        self.fixed_batch = fixed_batch
        self.model = torch.compile(self.model, mode="reduce-overhead", dynamic=False)  # type: ignore[assignment]

    @torch.inference_mode()
    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8/uint16 -> (N, H*scale, W*scale, 3) of the same dtype."""
        count = len(windows)
        if self.fixed_batch is not None and count < self.fixed_batch:
            filler = np.zeros((self.fixed_batch - count, *windows.shape[1:]), windows.dtype)
            return self(np.concatenate([windows, filler]))[:count]
        peak = 65535.0 if windows.dtype == np.uint16 else 255.0
        # torch has no uint16 arithmetic on every backend; int32 holds it exactly.
        host = torch.from_numpy(windows.astype(np.int32) if windows.dtype == np.uint16 else windows)
        if self.device.type == "cuda":
            host = host.pin_memory()
        x = host.to(self.device, non_blocking=True).permute(0, 3, 1, 2).to(self.dtype).div_(peak)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.model(x).float().clamp_(0, 1).mul_(peak).round_()
        if self.device.type == "cuda":
            # Quantise on the GPU: the copy back then carries a quarter of the bytes (uint8, not float32)
            # and the host skips a conversion pass over the batch, which dominated a batch's time on the
            # GPU (docs/BENCHMARKS.md, "Upscaler round trip"). On the CPU numpy's conversion below is the
            # faster one.
            y = y.to(torch.uint8 if windows.dtype == np.uint8 else torch.int32)
        return y.permute(0, 2, 3, 1).cpu().numpy().astype(windows.dtype, copy=False)
