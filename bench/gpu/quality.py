"""The acceptance rule for a faster variant of the model (padded tail, torch.compile, CUDA graphs): its
outputs must stay within `ACCEPT_DB` of the eager model's PSNR.

The check runs the service's own path (uint8 windows through `Upscaler`, tiled at the run's tile and
pad, batches of the variant's fixed size) on the evaluation protocol's images: HR, its MATLAB-bicubic
x4 reduction as input, PSNR on Y with a 4-pixel border crop. The images are Set5 when `--eval-dir` names
a folder of them (the GPU box has no datasets unless one is carried), else natural-looking images made
in code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.data import list_images
from model.evaluate import load_eval_image, make_lr
from model.inference import Upscaler
from model.metrics import psnr_y
from model.synthetic import natural_like_image
from model.tiling import upscale_tiled

ACCEPT_DB = 0.05
SCALE = 4


def eval_images(eval_dir: Path | None, count: int = 4, side: int = 256) -> list[np.ndarray]:
    """HR images (RGB uint8, sides multiples of the scale): Set5's if given, else made in code."""
    if eval_dir is not None and eval_dir.is_dir():
        images = [load_eval_image(path, SCALE) for path in list_images(eval_dir)]
        return [image for image in images if image.ndim == 3]
    return [natural_like_image(side, side, seed=seed) for seed in range(count)]


def psnr_of(
    net: torch.nn.Module,
    device: torch.device,
    dtype: torch.dtype,
    images: list[np.ndarray],
    *,
    tile: int,
    pad: int,
    batch: int,
) -> float:
    """Mean PSNR (dB, Y, 4-pixel crop) of `net` (float NCHW in and out, already on `device` in `dtype`)
    through the service's uint8 path, every call padded to `batch` windows."""
    upscaler = Upscaler(name="variant", model=net, info=None, device=device, dtype=dtype, fixed_batch=batch)
    scores = []
    for hr in images:
        sr = upscale_tiled(make_lr(hr, SCALE), upscaler, scale=SCALE, tile=tile, pad=pad, batch_size=batch)
        scores.append(psnr_y(sr, hr, SCALE))
    return float(np.mean(scores))


def acceptance(reference_db: float, variant_db: float) -> dict[str, Any]:
    """The rule's verdict, as table cells: within ACCEPT_DB of the eager model, in either direction."""
    delta = variant_db - reference_db
    return {"psnr_db": variant_db, "delta_db": delta, "accepted": abs(delta) <= ACCEPT_DB}


def judged(
    net: torch.nn.Module,
    reference_db: float,
    measure: Callable[[torch.nn.Module], float],
) -> dict[str, Any]:
    """`acceptance` of `net` against the eager model's `reference_db`, or the reason it could not run."""
    try:
        return acceptance(reference_db, measure(net))
    except Exception as exc:  # a variant that fails is reported, not adopted
        return {"accepted": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
