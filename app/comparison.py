"""The talk's comparison: an image taken as ground truth, degraded by the protocol's bicubic reduction,
then restored by each method and scored against the original. Shared by `POST /compare` and
`srgan compare`.

The methods are the interpolations and every registered model of the default model's scale, which is
the comparison's scale. Each is scored with PSNR and SSIM against the original (higher is better) and
with NIQE, which needs no reference (lower is better); the original's own NIQE is the reference value.
NIQE needs two 96x96 patches: a smaller image gets None and the reason, never an error.
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
from model.evaluate import INTERPOLATIONS, Score, make_lr, niqe_score, score
from model.registry import ModelRegistry

INTERPOLATION_LABELS = {"nearest": "Nearest", "bilinear": "Bilinear", "bicubic": "Bicubic"}
SSIM_WINDOW = 11
# Which way each score is better, as the JSON states it.
BETTER = {"psnr": "higher", "ssim": "higher", "niqe": "lower"}
MOSAIC_COLUMNS = 3
MOSAIC_GAP = 8


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
    scores: Mapping[str, Score]  # method -> its scores against the original, in the plan's order
    original_niqe: tuple[float | None, str | None]  # the original's NIQE, or None and why


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


def score_method(sr: np.ndarray, hr: np.ndarray, plan: Plan) -> Score:
    """One method's output scored against the HR by the protocol (NIQE with the same border crop)."""
    return score(sr, hr, plan.scale)


def original_niqe(hr: np.ndarray, plan: Plan) -> tuple[float | None, str | None]:
    """The original's NIQE with the protocol's border crop: what the methods' NIQE is read against."""
    return niqe_score(hr, plan.scale)


def assemble(plan: Plan, hr: np.ndarray, lr: np.ndarray, outputs: Mapping[str, np.ndarray],
             scores: Mapping[str, Score] | None = None,
             reference: tuple[float | None, str | None] | None = None) -> Comparison:
    """Every method's output and scores in the plan's order. `scores` and the original's NIQE
    (`reference`) are computed here unless given: the service computes each as its own host-pool job."""
    if scores is None:
        scores = {name: score_method(outputs[name], hr, plan) for name in plan.labels}
    return Comparison(
        plan=plan,
        hr=hr,
        lr=lr,
        outputs={name: outputs[name] for name in plan.labels},
        scores={name: scores[name] for name in plan.labels},
        original_niqe=original_niqe(hr, plan) if reference is None else reference,
    )


def _png_data_uri(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def to_json(comparison: Comparison) -> dict[str, Any]:
    """The /compare JSON body: sizes, which way each score is better, the original's NIQE, and per method
    its scores and image as a PNG data URI. A NIQE the image is too small or flat for is null, and its
    `..._unavailable` key says why (null otherwise)."""
    hr, lr, scale = comparison.hr, comparison.lr, comparison.plan.scale
    reference, reference_unavailable = comparison.original_niqe
    return {
        "scale": scale,
        "original_size": {"width": hr.shape[1], "height": hr.shape[0]},
        "input_size": {"width": lr.shape[1], "height": lr.shape[0]},
        "protocol": f"bicubic x{scale} degradation (MATLAB imresize); PSNR/SSIM on Y (BT.601), "
        f"{scale}-pixel border crop; NIQE (no reference, lower is better) with the same crop",
        "better": BETTER,
        "original_niqe": _rounded(reference),
        "original_niqe_unavailable": reference_unavailable,
        "input": _png_data_uri(lr),
        "original": _png_data_uri(hr),
        "methods": [
            {
                "name": name,
                "label": comparison.plan.labels[name],
                "psnr": round(s.psnr, 3),
                "ssim": round(s.ssim, 4),
                "niqe": _rounded(s.niqe),
                "niqe_unavailable": s.niqe_unavailable,
                "image": _png_data_uri(comparison.outputs[name]),
            }
            for name, s in comparison.scores.items()
        ],
    }


def json_bytes(comparison: Comparison) -> bytes:
    """`to_json` as UTF-8 JSON bytes (the service sends these; serialising tens of megabytes of data URIs
    is CPU work for a worker thread, not for the event loop)."""
    return json.dumps(to_json(comparison), separators=(",", ":")).encode()


def _niqe_caption(value: float | None) -> str:
    return "NIQE n/a: too small or flat" if value is None else f"NIQE {value:.2f} (lower is better)"


def captions(comparison: Comparison) -> list[tuple[str, str, str]]:
    """Each mosaic panel's title, PSNR/SSIM line and NIQE line: the methods, then the original."""
    labels = comparison.plan.labels
    lines = [
        (labels[name], f"{s.psnr:.2f} dB / SSIM {s.ssim:.4f}", _niqe_caption(s.niqe))
        for name, s in comparison.scores.items()
    ]
    lines.append(("Original", "reference for PSNR / SSIM", _niqe_caption(comparison.original_niqe[0])))
    return lines


def _mosaic_font_size(width: int) -> int:
    return max(12, min(28, width // 14))


def _caption_height(font_size: int) -> int:
    return int(font_size * 1.2) * 3 + font_size // 2  # title, PSNR/SSIM, NIQE


def mosaic_size(height: int, width: int, panels: int) -> tuple[int, int]:
    """The mosaic's (width, height) for `panels` panels of height x width: whole rows of cells, each a
    panel, its caption and a gap (what `app.limits.cost` reserves for its canvas)."""
    rows = -(-panels // MOSAIC_COLUMNS)
    caption = _caption_height(_mosaic_font_size(width))
    return (MOSAIC_COLUMNS * (width + MOSAIC_GAP) + MOSAIC_GAP,
            rows * (height + caption + MOSAIC_GAP) + MOSAIC_GAP)


def render_mosaic(comparison: Comparison) -> bytes:
    """One PNG: each method and the original side by side, each labelled with its PSNR/SSIM and NIQE.
    From 168 pixels wide up, every caption fits under its panel."""
    hr = comparison.hr
    height, width = hr.shape[:2]
    font_size = _mosaic_font_size(width)
    font = ImageFont.load_default(size=font_size)
    line_h = int(font_size * 1.2)
    original = np.repeat(hr[..., None], 3, axis=2) if hr.ndim == 2 else hr
    images = [*(comparison.outputs[name] for name in comparison.scores), original]
    panels = list(zip(images, captions(comparison), strict=True))
    canvas = Image.new("RGB", mosaic_size(height, width, len(panels)), "white")
    draw = ImageDraw.Draw(canvas)
    cell_h = height + _caption_height(font_size) + MOSAIC_GAP
    for i, (img, lines) in enumerate(panels):
        x = MOSAIC_GAP + (i % MOSAIC_COLUMNS) * (width + MOSAIC_GAP)
        y = MOSAIC_GAP + (i // MOSAIC_COLUMNS) * cell_h
        canvas.paste(Image.fromarray(img), (x, y))
        for n, text in enumerate(lines):
            draw.text((x + 4, y + height + 2 + n * line_h), text, fill="black" if n == 0 else (60, 60, 60),
                      font=font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
