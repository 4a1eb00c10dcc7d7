"""Quality on degraded inputs: Set5/Set14 reduced by the protocol's bicubic, then JPEG-compressed or made
noisy, by a fixed, seeded pipeline that is NOT the training one (model/degradations.py).

Conditions (applied to the bicubic LR, the image a user would have):
  clean       the protocol itself (for reference)
  jpeg50      JPEG quality 50 (Pillow's libjpeg, 4:2:0)
  jpeg75      JPEG quality 75
  noise-jpeg  Gaussian noise, sigma 8 of 255, on every channel, then JPEG quality 75

The noise is seeded from the image's own bytes, so each image gets the same noise in every run and in
every method. Scores: PSNR and SSIM on Y with a 4-pixel border crop (against the clean HR), the gradient
ratio, and NIQE of the output (model/niqe.py; lower is better).

    python -m bench.quality_real --data ../shared/datasets/eval/Set5 --data ../shared/datasets/eval/Set14 \\
        --method bicubic --method srgan --method srgan-real --json
"""

from __future__ import annotations

import argparse
import io
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from model.evaluate import INTERPOLATIONS, Method, evaluate_method, generator_method
from model.registry import REGISTRY
from model.weights import load_generator

SCALE = 4
NOISE_SIGMA = 8.0


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as JPEG at `quality` with Pillow's defaults (4:2:0 chroma)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def gaussian_noise(image: np.ndarray, sigma: float) -> np.ndarray:
    """Noise seeded by the image's bytes: fixed per image, independent of the order images are read."""
    rng = np.random.default_rng(zlib.crc32(image.tobytes()))
    return np.clip(np.round(image + rng.normal(0.0, sigma, image.shape)), 0, 255).astype(np.uint8)


CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda lr: lr,
    "jpeg50": lambda lr: jpeg(lr, 50),
    "jpeg75": lambda lr: jpeg(lr, 75),
    "noise-jpeg": lambda lr: jpeg(gaussian_noise(lr, NOISE_SIGMA), 75),
}


def degraded(method: Method, condition: Callable[[np.ndarray], np.ndarray]) -> Method:
    """`method` applied to the degraded LR."""

    def upscale(lr: np.ndarray, scale: int) -> np.ndarray:
        return method(condition(lr), scale)

    return upscale


def resolve_method(name: str) -> Method:
    """An interpolation, a registered model name, or a path to a weights file."""
    if name in INTERPOLATIONS:
        return INTERPOLATIONS[name]
    path = REGISTRY.weights_path(name) if name in REGISTRY else Path(name)
    model, _ = load_generator(path)
    return generator_method(model.eval(), name)


def run(folders: list[str], methods: list[str], conditions: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in methods:
        method = resolve_method(name)
        for folder in folders:
            for condition in conditions:
                result = evaluate_method(degraded(method, CONDITIONS[condition]), folder, SCALE, name)
                rows.append(
                    {
                        "dataset": result.dataset,
                        "condition": condition,
                        "method": name,
                        "n_images": result.n_images,
                        "psnr": round(result.psnr, 3),
                        "ssim": round(result.ssim, 4),
                        "gradient_ratio": round(result.gradient_ratio, 3),
                        "niqe": None if result.niqe is None else round(result.niqe, 3),
                    }
                )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | input | method | PSNR (dB) | SSIM | grad SR/HR | NIQE (lower is better) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["dataset"] != "Set5", list(CONDITIONS).index(r["condition"]))):
        lines.append(
            f"| {r['dataset']} | {r['condition']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} "
            f"| {r['gradient_ratio']:.3f} | {'—' if r['niqe'] is None else format(r['niqe'], '.2f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", action="append", required=True, help="folder of HR images (repeatable)")
    parser.add_argument("--method", action="append", help="interpolation, model name or weights path")
    parser.add_argument("--condition", action="append", choices=list(CONDITIONS), help="default: all")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    args = parser.parse_args(argv)
    rows = run(args.data, args.method or ["bicubic", *REGISTRY.names()], args.condition or list(CONDITIONS))
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
