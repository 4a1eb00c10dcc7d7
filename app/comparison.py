"""The talk's comparison: an image taken as ground truth, degraded by the protocol's bicubic reduction,
then restored by each method and scored against the original. Shared by `POST /compare` and
`srgan compare`.

The methods are the interpolations and every registered model of the default model's scale, which is
the comparison's scale.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.errors import TooSmall
from app.imaging.image import DecodedImage
from model.evaluate import INTERPOLATIONS, make_lr, score
from model.registry import ModelRegistry

INTERPOLATION_LABELS = {"nearest": "Nearest", "bilinear": "Bilinear", "bicubic": "Bicubic"}
SSIM_WINDOW = 11


@dataclass(frozen=True)
class Plan:
    """What a comparison runs: its scale, the models restoring the reduction, every method's label."""

    scale: int
    models: tuple[str, ...]
    labels: Mapping[str, str]  # method -> display name, interpolations first

    @classmethod
    def for_registry(cls, registry: ModelRegistry) -> Plan:
        scale = registry.default.scale
        specs = [spec for spec in registry if spec.scale == scale]
        labels = {**INTERPOLATION_LABELS, **{spec.name: spec.label for spec in specs}}
        return cls(scale=scale, models=tuple(spec.name for spec in specs), labels=labels)

    @property
    def min_side(self) -> int:
        """SSIM's window must fit after the border crop of `scale` pixels, in whole multiples of it."""
        return -(-(SSIM_WINDOW + 2 * self.scale) // self.scale) * self.scale


@dataclass(frozen=True)
class Comparison:
    plan: Plan
    hr: np.ndarray  # H x W x 3 (or H x W for gray) uint8, cropped to a multiple of the scale
    lr: np.ndarray  # the degraded input, RGB uint8
    outputs: Mapping[str, np.ndarray]  # method -> RGB uint8 at HR size
    scores: Mapping[str, tuple[float, float]]  # method -> (PSNR dB, SSIM)


def ground_truth(decoded: DecodedImage, plan: Plan) -> np.ndarray:
    """The 8-bit HR to compare against: gray stays 2-D (measured on raw values, as the literature does);
    a transparent image is taken as composited over black (its premultiplied colour)."""
    rgb = decoded.rgb if decoded.rgb.dtype == np.uint8 else (decoded.rgb >> 8).astype(np.uint8)
    hr = rgb[..., 0] if decoded.grayscale else rgb
    height, width = hr.shape[:2]
    side, scale = plan.min_side, plan.scale
    if min(height, width) < side:
        raise TooSmall(
            f"/compare needs at least {side}x{side} pixels (the original is downscaled x{scale} "
            f"and scored with an {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window); got {width}x{height}"
        )
    return np.ascontiguousarray(hr[: height - height % scale, : width - width % scale])


def degrade(hr: np.ndarray, plan: Plan) -> np.ndarray:
    return make_lr(hr, plan.scale)


def interpolate_all(lr: np.ndarray, plan: Plan) -> dict[str, np.ndarray]:
    return {name: method(lr, plan.scale) for name, method in INTERPOLATIONS.items()}


def assemble(plan: Plan, hr: np.ndarray, lr: np.ndarray, outputs: Mapping[str, np.ndarray]) -> Comparison:
    """Score every method's output against the HR, in the plan's order."""
    ordered = {name: outputs[name] for name in plan.labels}
    scores = {}
    for name, sr in ordered.items():
        s = score(sr, hr, plan.scale)
        scores[name] = (s.psnr, s.ssim)
    return Comparison(plan=plan, hr=hr, lr=lr, outputs=ordered, scores=scores)


def _png_data_uri(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def to_json(comparison: Comparison) -> dict[str, Any]:
    """The /compare JSON body: sizes, and per method its scores and image as a PNG data URI."""
    hr, lr, scale = comparison.hr, comparison.lr, comparison.plan.scale
    return {
        "scale": scale,
        "original_size": {"width": hr.shape[1], "height": hr.shape[0]},
        "input_size": {"width": lr.shape[1], "height": lr.shape[0]},
        "protocol": f"bicubic x{scale} degradation (MATLAB imresize); PSNR/SSIM on Y (BT.601), "
        f"{scale}-pixel border crop",
        "input": _png_data_uri(lr),
        "original": _png_data_uri(hr),
        "methods": [
            {
                "name": name,
                "label": comparison.plan.labels[name],
                "psnr": round(psnr, 3),
                "ssim": round(ssim, 4),
                "image": _png_data_uri(comparison.outputs[name]),
            }
            for name, (psnr, ssim) in comparison.scores.items()
        ],
    }


def json_bytes(comparison: Comparison) -> bytes:
    """`to_json` as UTF-8 JSON bytes (the service sends these; serialising tens of megabytes of data URIs
    is CPU work for a worker thread, not for the event loop)."""
    return json.dumps(to_json(comparison), separators=(",", ":")).encode()


def render_mosaic(comparison: Comparison, columns: int = 3) -> bytes:
    """One PNG: each method and the original side by side, each labelled with its PSNR/SSIM."""
    hr = comparison.hr
    height, width = hr.shape[:2]
    font_size = max(12, min(28, width // 14))
    font = ImageFont.load_default(size=font_size)
    label_h = int(font_size * 2.6)
    labels, scores = comparison.plan.labels, comparison.scores
    panels: list[tuple[np.ndarray, str, str]] = [
        (img, labels[name], f"{scores[name][0]:.2f} dB / {scores[name][1]:.4f}")
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
