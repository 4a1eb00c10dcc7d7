"""The talk's comparison: an image taken as ground truth, degraded by the protocol's bicubic x4, then
restored by each method and scored against the original. Shared by `POST /compare` and `srgan compare`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.errors import TooSmall
from app.imaging.image import DecodedImage
from model.evaluate import INTERPOLATIONS, make_lr, score

SCALE = 4
SR_METHODS = ("srresnet", "srgan")
METHODS = (*INTERPOLATIONS, *SR_METHODS)
# SSIM's 11x11 window must fit after the 4-pixel border crop: 11 + 2 * 4 = 19, rounded up to x4.
MIN_SIDE = 20


@dataclass(frozen=True)
class Comparison:
    hr: np.ndarray  # H x W x 3 (or H x W for gray) uint8, cropped to a multiple of the scale
    lr: np.ndarray  # the degraded input, RGB uint8
    outputs: Mapping[str, np.ndarray]  # method -> RGB uint8 at HR size
    scores: Mapping[str, tuple[float, float]]  # method -> (PSNR dB, SSIM)


def ground_truth(decoded: DecodedImage) -> np.ndarray:
    """The 8-bit HR to compare against: gray stays 2-D (measured on raw values, as the literature does);
    a transparent image is taken as composited over black (its premultiplied colour)."""
    rgb = decoded.rgb if decoded.rgb.dtype == np.uint8 else (decoded.rgb >> 8).astype(np.uint8)
    hr = rgb[..., 0] if decoded.grayscale else rgb
    height, width = hr.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise TooSmall(
            f"/compare needs at least {MIN_SIDE}x{MIN_SIDE} pixels (the original is downscaled x4 "
            f"and scored with an 11x11 SSIM window); got {width}x{height}"
        )
    return np.ascontiguousarray(hr[: height - height % SCALE, : width - width % SCALE])


def degrade(hr: np.ndarray) -> np.ndarray:
    return make_lr(hr, SCALE)


def interpolate_all(lr: np.ndarray) -> dict[str, np.ndarray]:
    return {name: method(lr, SCALE) for name, method in INTERPOLATIONS.items()}


def assemble(hr: np.ndarray, lr: np.ndarray, outputs: Mapping[str, np.ndarray]) -> Comparison:
    """Score every method's output against the HR, in METHODS order."""
    ordered = {name: outputs[name] for name in METHODS}
    scores = {}
    for name, sr in ordered.items():
        s = score(sr, hr, SCALE)
        scores[name] = (s.psnr, s.ssim)
    return Comparison(hr=hr, lr=lr, outputs=ordered, scores=scores)


def _png_data_uri(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def to_json(comparison: Comparison) -> dict[str, Any]:
    """The /compare JSON body: sizes, and per method its scores and image as a PNG data URI."""
    hr, lr = comparison.hr, comparison.lr
    return {
        "scale": SCALE,
        "original_size": {"width": hr.shape[1], "height": hr.shape[0]},
        "input_size": {"width": lr.shape[1], "height": lr.shape[0]},
        "protocol": "bicubic x4 degradation (MATLAB imresize); PSNR/SSIM on Y (BT.601), 4-pixel border crop",
        "input": _png_data_uri(lr),
        "original": _png_data_uri(hr),
        "methods": [
            {
                "name": name,
                "psnr": round(psnr, 3),
                "ssim": round(ssim, 4),
                "image": _png_data_uri(comparison.outputs[name]),
            }
            for name, (psnr, ssim) in comparison.scores.items()
        ],
    }


LABELS = {
    "nearest": "Nearest",
    "bilinear": "Bilinear",
    "bicubic": "Bicubic",
    "srresnet": "SRResNet",
    "srgan": "SRGAN",
}


def render_mosaic(comparison: Comparison, columns: int = 3) -> bytes:
    """One PNG: each method and the original side by side, each labelled with its PSNR/SSIM."""
    hr = comparison.hr
    height, width = hr.shape[:2]
    font_size = max(12, min(28, width // 14))
    font = ImageFont.load_default(size=font_size)
    label_h = int(font_size * 2.6)
    panels: list[tuple[np.ndarray, str, str]] = [
        (img, LABELS[name], f"{comparison.scores[name][0]:.2f} dB / {comparison.scores[name][1]:.4f}")
        for name, img in comparison.outputs.items()
    ]
    panels.append((np.repeat(hr[..., None], 3, axis=2) if hr.ndim == 2 else hr, "Original", "PSNR / SSIM"))
    rows = -(-len(panels) // columns)
    gap = 8
    canvas = Image.new("RGB", (columns * (width + gap) + gap, rows * (height + label_h + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (img, title, numbers) in enumerate(panels):
        x = gap + (i % columns) * (width + gap)
        y = gap + (i // columns) * (height + label_h + gap)
        canvas.paste(Image.fromarray(img), (x, y))
        draw.text((x + 4, y + height + 2), title, fill="black", font=font)
        draw.text((x + 4, y + height + 2 + int(font_size * 1.2)), numbers, fill=(60, 60, 60), font=font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
