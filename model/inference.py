"""A network resident on a device, turning batches of integer windows into upscaled windows.

The one tensor conversion behind `model.tiling`'s core, so behind the CLI, the evaluation and the
service's engine. Pixels stay integer (uint8, or 16-bit held as int32) until the batch being processed is
converted to floating point on the device, and are quantised back there before any copy to the host.
Also the one rule for `--device`/`SRGAN_DEVICE` and the dtype, the host <-> device copies of pixels, and
the CUDA stream each engine worker thread computes on.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


def upload(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    """A uint8/uint16 host array as a tensor on `device` (16-bit as int32, which every backend computes
    with); on CUDA from pinned memory without blocking: the copy is ordered on the current stream.

    On the CPU a uint8 array is shared, not copied.
    """
    host = torch.from_numpy(np.ascontiguousarray(pixels))
    if device.type == "cuda":
        host = host.pin_memory()
    on_device = host.to(device, non_blocking=True)
    return on_device.to(torch.int32) if pixels.dtype == np.uint16 else on_device


def download(pixels: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """A tensor from `upload`'s representation back to a host array of `dtype` (uint8 or uint16)."""
    if pixels.device.type != "cpu":
        pixels = pixels.to("cpu")  # blocks until the device has computed it
    return pixels.numpy().astype(dtype, copy=False)


def synchronize(device: torch.device) -> None:
    """Wait for the work this thread queued on `device` (its current stream); nothing to wait for on a CPU."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


_worker = threading.local()


@contextmanager
def worker_stream(device: torch.device) -> Iterator[None]:
    """Run the block on this thread's own CUDA stream, and wait for it at the end; on a CPU, as it is.

    Two engine worker threads on two streams let one batch's kernels run while the other thread does its
    host work (cutting windows, launching kernels), so the GPU does not wait for the host. Tensors the
    block reads were made ready before it (`upload` callers synchronise), and what it writes is complete
    when it returns.
    """
    if device.type != "cuda":
        yield
        return
    streams: dict[torch.device, torch.cuda.Stream] = _worker.__dict__.setdefault("streams", {})
    stream = streams.get(device)
    if stream is None:
        stream = streams[device] = torch.cuda.Stream(device)
    try:
        with torch.cuda.stream(stream):
            yield
    finally:
        # Also after a failure: the caller may free tensors this stream's kernels still use.
        stream.synchronize()


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: float16 on CUDA (tensor cores); on a CPU, bfloat16 where it computes it natively (AVX512-BF16
    or AMX: twice float32's speed, within 0.01 dB of its PSNR: docs/BENCHMARKS.md, "The generator on the
    CPU"), else float32. 8-bit outputs lose nothing to either; 16-bit pixels are computed in float32
    (`Upscaler`)."""
    if name == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_computes_bfloat16() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto, {', '.join(DTYPES)}, got {name!r}")
    if device.type == "cpu" and name == "float16":
        raise ValueError("float16 is not supported on the CPU; use float32 or bfloat16")
    return DTYPES[name]


def cpu_computes_bfloat16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX512-BF16 or AMX), where oneDNN runs it at full speed;
    elsewhere bfloat16 is emulated, slower than float32."""
    names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private in torch: looked up defensively
    checks = [getattr(torch.cpu, name, None) for name in names]
    return any(bool(check()) for check in checks if callable(check))


@dataclass
class Upscaler:
    """A network in eval mode on `device` in `dtype`; `from_module` folds its BN and makes it channels_last.

    Built directly, it wraps the module as it is: the evaluation measures a training generator this
    way without changing it. `wide_model`, when set, is the network in float32 for 16-bit pixels: a
    16-bit float keeps 8 (bfloat16) or 11 (float16) significant bits, fewer than such an image has.
    """

    name: str
    model: nn.Module
    info: WeightsInfo | None
    device: torch.device
    dtype: torch.dtype
    # When set, every batch is padded to this many windows, so a compiled/CUDA-graph model sees one shape.
    fixed_batch: int | None = None
    wide_model: nn.Module | None = None

    @property
    def fixed_shape(self) -> bool:
        """Compiled for one batch shape (`compile`): windows must keep one shape, calls one thread."""
        return self.fixed_batch is not None

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
        # channels_last on every device: cuDNN's tensor-core kernels and oneDNN's CPU kernels are fastest
        # in it (docs/BENCHMARKS.md), and one layout makes results independent of how windows arrive.
        model = model.to(device=device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        wide = copy.deepcopy(model).float() if dtype != torch.float32 else None
        return cls(name=name, model=model.to(dtype), info=info, device=device, dtype=dtype, wide_model=wide)

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
    def upscale_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 or int32 (16-bit) tensors on the device -> (N, H*scale, W*scale, 3) tensors of
        the same dtype there (a strided view; paste and copy it, do not rely on its layout)."""
        count = len(windows)
        if self.fixed_batch is not None and count < self.fixed_batch:
            filler = windows.new_zeros((self.fixed_batch - count, *windows.shape[1:]))
            return self.upscale_windows(torch.cat([windows, filler]))[:count]
        peak = 255.0 if windows.dtype == torch.uint8 else 65535.0
        model, dtype = self.model, self.dtype
        if windows.dtype != torch.uint8 and self.wide_model is not None and self.fixed_batch is None:
            model, dtype = self.wide_model, torch.float32
        x = windows.permute(0, 3, 1, 2).to(dtype).div_(peak)
        x = x.contiguous(memory_format=torch.channels_last)
        # Out of place first: a CUDA-graph model's output is overwritten by its next replay.
        y = torch.clamp(model(x).float(), 0, 1).mul_(peak).round_()
        # Quantised on the device: a copy to the host then carries uint8, a quarter of float32's bytes
        # (docs/BENCHMARKS.md, "Upscaler round trip").
        return y.to(windows.dtype).permute(0, 2, 3, 1)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8/uint16 host windows -> (N, H*scale, W*scale, 3) of the same dtype."""
        return download(self.upscale_windows(upload(windows, self.device)), windows.dtype)
