"""Quality evaluation with the literature's protocol (the repository's README, "Evaluation"): bicubic-
downsampled LR, Y-channel PSNR/SSIM with a `scale`-pixel border crop, mean over the images of a folder.

Networks run through the tiled-inference core (`model.tiling.upscale_whole`, the whole image as one
window, as the literature measures) and `model.inference.Upscaler`'s tensor conversion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from model.data import list_images
from model.imresize import imresize
from model.inference import Upscaler
from model.metrics import gradient_ratio, psnr_y, ssim_y
from model.tiling import upscale_whole

# Maps an LR image (H x W x 3 uint8) to its x`scale` estimate, same dtype.
Method = Callable[[np.ndarray, int], np.ndarray]


def _pil_resize(resample: Image.Resampling) -> Method:
    def upscale(lr: np.ndarray, scale: int) -> np.ndarray:
        img = Image.fromarray(lr)
        return np.asarray(img.resize((img.width * scale, img.height * scale), resample))

    return upscale


INTERPOLATIONS: dict[str, Method] = {
    "nearest": _pil_resize(Image.Resampling.NEAREST),
    "bilinear": _pil_resize(Image.Resampling.BILINEAR),
    "bicubic": lambda lr, scale: imresize(lr, scale),  # MATLAB bicubic, the literature's baseline
}


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    method: str
    scale: int
    n_images: int
    psnr: float
    ssim: float
    gradient_ratio: float


def load_eval_image(path: Path, scale: int) -> np.ndarray:
    """HR as RGB uint8 (or H x W for a grayscale file: the literature measures those on raw gray values)."""
    with Image.open(path) as img:
        data = np.asarray(img.convert("L" if img.mode in ("L", "I;16", "1") else "RGB"))
    height, width = data.shape[:2]
    return data[: height - height % scale, : width - width % scale]


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB -> gray the way Pillow's convert('L') does (ITU-R 601-2 luma), rounded to uint8."""
    return np.asarray(Image.fromarray(rgb).convert("L"))


@dataclass(frozen=True)
class Score:
    psnr: float
    ssim: float
    gradient_ratio: float


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The protocol's LR: MATLAB bicubic downsampling of the RGB HR (a gray HR is replicated to RGB)."""
    hr_rgb = np.repeat(hr[..., None], 3, axis=2) if hr.ndim == 2 else hr
    return imresize(hr_rgb, 1 / scale)


def score(sr: np.ndarray, hr: np.ndarray, scale: int) -> Score:
    """PSNR/SSIM on Y with a `scale`-pixel border crop; a gray HR is compared with the gray of `sr`."""
    if hr.ndim == 2:
        sr = to_gray(sr)
    return Score(
        psnr=psnr_y(sr, hr, scale), ssim=ssim_y(sr, hr, scale), gradient_ratio=gradient_ratio(sr, hr, scale)
    )


def evaluate_method(method: Method, folder: str | Path, scale: int, name: str) -> EvalResult:
    """Mean PSNR/SSIM/gradient ratio of `method` over the images of `folder`."""
    scores = []
    for path in list_images(folder):
        hr = load_eval_image(path, scale)
        scores.append(score(method(make_lr(hr, scale), scale), hr, scale))
    return EvalResult(
        dataset=Path(folder).name,
        method=name,
        scale=scale,
        n_images=len(scores),
        psnr=float(np.mean([s.psnr for s in scores])),
        ssim=float(np.mean([s.ssim for s in scores])),
        gradient_ratio=float(np.mean([s.gradient_ratio for s in scores])),
    )


def generator_method(model: nn.Module, name: str = "generator") -> Method:
    """Whole-image inference with a network as it is (not folded), on its current device, in float32."""
    upscaler = Upscaler(name=name, model=model, info=None, device=next(model.parameters()).device,
                        dtype=torch.float32)

    def upscale(lr: np.ndarray, scale: int) -> np.ndarray:
        if scale != upscaler.scale:
            raise ValueError(f"{name} upscales x{upscaler.scale}, not x{scale}")
        return upscale_whole(lr, upscaler, scale=scale)

    return upscale


def evaluate_generator(
    model: nn.Module, folder: str | Path, scale: int, name: str = "generator"
) -> EvalResult:
    """Evaluate a network as it is (the caller puts it in eval mode)."""
    return evaluate_method(generator_method(model, name), folder, scale, name)
