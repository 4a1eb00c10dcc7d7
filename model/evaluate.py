"""Quality evaluation with the literature's protocol (the repository's README, "Evaluation"): bicubic-
downsampled LR, Y-channel PSNR/SSIM with a `scale`-pixel border crop, mean over the images of a folder.

Beside them, two texture measures: the gradient-energy ratio SR / HR (closer to 1.0 is better: below is
blur, above is noise or ringing) and NIQE of the output (`model.niqe`, no reference; LOWER is better),
both with the same border crop. PSNR and SSIM: higher is better.

Networks run through the tiled-inference core (`model.tiling.upscale_whole`, the whole image as one
window, as the literature measures) and `model.inference.Upscaler`'s tensor conversion."""

from __future__ import annotations

import logging
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
from model.niqe import PATCH, niqe
from model.tiling import upscale_whole

logger = logging.getLogger(__name__)

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
    niqe: float | None  # mean NIQE of the outputs, lower is better; None when an image had none


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
    niqe: float | None  # lower is better; None when the image is too small or flat for it
    niqe_unavailable: str | None = None  # why `niqe` is None


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The protocol's LR: MATLAB bicubic downsampling of the RGB HR (a gray HR is replicated to RGB)."""
    hr_rgb = np.repeat(hr[..., None], 3, axis=2) if hr.ndim == 2 else hr
    return imresize(hr_rgb, 1 / scale)


def niqe_patches(height: int, width: int, scale: int) -> tuple[int, int]:
    """Rows and columns of NIQE's whole 96x96 patches inside a `scale`-pixel border crop; it needs two."""
    return max((height - 2 * scale) // PATCH, 0), max((width - 2 * scale) // PATCH, 0)


def niqe_score(image: np.ndarray, scale: int) -> tuple[float | None, str | None]:
    """NIQE of an image as `score` measures it (`scale` pixels cropped from every border), or None and
    the reason when it has none: smaller than two 96x96 patches, or without texture in them."""
    height, width = image.shape[:2]
    rows, cols = niqe_patches(height, width, scale)
    if rows * cols < 2:
        short, long = PATCH + 2 * scale, 2 * PATCH + 2 * scale
        return None, (
            f"NIQE needs two {PATCH}x{PATCH} patches inside the {scale}-pixel border crop, so at least "
            f"{long}x{short} or {short}x{long} pixels; got {width}x{height}"
        )
    try:
        return niqe(image, crop_border=scale), None
    except ValueError as exc:  # flat patches: no statistics to fit
        return None, str(exc)


def score(sr: np.ndarray, hr: np.ndarray, scale: int) -> Score:
    """PSNR/SSIM on Y, the gradient ratio and NIQE of `sr`, each with a `scale`-pixel border crop; a gray
    HR is compared with (and NIQE measures) the gray of `sr`."""
    if hr.ndim == 2:
        sr = to_gray(sr)
    value, unavailable = niqe_score(sr, scale)
    return Score(
        psnr=psnr_y(sr, hr, scale),
        ssim=ssim_y(sr, hr, scale),
        gradient_ratio=gradient_ratio(sr, hr, scale),
        niqe=value,
        niqe_unavailable=unavailable,
    )


def evaluate_method(method: Method, folder: str | Path, scale: int, name: str) -> EvalResult:
    """Mean PSNR/SSIM/gradient ratio/NIQE of `method` over the images of `folder`. NIQE is None when an
    image has none (logged): a mean over fewer images would not compare with other folders' or runs'."""
    scores = []
    for path in list_images(folder):
        hr = load_eval_image(path, scale)
        scores.append(score(method(make_lr(hr, scale), scale), hr, scale))
        if scores[-1].niqe is None:
            logger.warning("%s on %s: no NIQE: %s", name, path.name, scores[-1].niqe_unavailable)
    niqes = [s.niqe for s in scores if s.niqe is not None]
    return EvalResult(
        dataset=Path(folder).name,
        method=name,
        scale=scale,
        n_images=len(scores),
        psnr=float(np.mean([s.psnr for s in scores])),
        ssim=float(np.mean([s.ssim for s in scores])),
        gradient_ratio=float(np.mean([s.gradient_ratio for s in scores])),
        niqe=float(np.mean(niqes)) if niqes and len(niqes) == len(scores) else None,
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
