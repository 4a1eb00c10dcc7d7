"""Quality benchmark: the paper's Table 2 protocol for the interpolations and every registered model, plus
a texture measure and a crop.

Runs `srgan eval` logic (MATLAB bicubic degradation, Y-channel PSNR/SSIM, `scale`-pixel border crop) on
Set5 and Set14, prints a markdown table beside Ledig et al. 2017's Table 2, and writes a side-by-side
crop of one image (bicubic / each model / original, from the clean reduction and from its JPEG) so the
texture difference can be seen. PSNR and SSIM: higher is better; the gradient-energy ratio SR / HR:
closer to 1.0 is better; NIQE of the output (no reference, `model/niqe.py`): lower is better.

    python -m bench.quality --eval-root ../shared/datasets/eval --crop-out docs/img/crops.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from bench.quality_real import jpeg
from model.evaluate import (
    INTERPOLATIONS,
    evaluate_generator,
    evaluate_method,
    generator_method,
    load_eval_image,
    make_lr,
)
from model.registry import REGISTRY
from model.weights import load_generator

# Ledig et al. 2017, Table 2: x4 PSNR (dB), measured with the same protocol as ours.
PAPER_PSNR = {
    ("Set5", "bicubic"): 28.43,
    ("Set5", "srresnet"): 32.05,
    ("Set5", "srgan"): 29.40,
    ("Set14", "bicubic"): 25.99,
    ("Set14", "srresnet"): 28.49,
    ("Set14", "srgan"): 26.02,
}
SCALE = REGISTRY.default.scale  # the interpolations' and the crop's; every model runs at its own


def _model(name: str) -> torch.nn.Module:
    return load_generator(REGISTRY.weights_path(name))[0].eval()


def evaluate_all(eval_root: Path) -> list[dict[str, Any]]:
    generators = {spec.name: _model(spec.name) for spec in REGISTRY}
    rows = []
    for dataset in ("Set5", "Set14"):
        for method in (*INTERPOLATIONS, *generators):
            folder = eval_root / dataset
            if method in INTERPOLATIONS:
                result = evaluate_method(INTERPOLATIONS[method], folder, SCALE, method)
            else:
                result = evaluate_generator(generators[method], folder, REGISTRY[method].scale, method)
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "psnr": result.psnr,
                    "ssim": result.ssim,
                    "gradient_ratio": result.gradient_ratio,
                    "niqe": result.niqe,
                    "paper_psnr": PAPER_PSNR.get((dataset, method)),
                }
            )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | method | PSNR (dB, higher is better) | SSIM (higher is better) "
        "| grad SR/HR (closer to 1.0 is better) | NIQE (lower is better) | paper PSNR (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper = f"{r['paper_psnr']:.2f}" if r["paper_psnr"] else "—"
        niqe = f"{r['niqe']:.2f}" if r["niqe"] is not None else "—"
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
            f"{r['gradient_ratio']:.3f} | {niqe} | {paper} |"
        )
    return "\n".join(lines)


# The figure's second row: the same crop from a JPEG of the reduced image, what most users have. Quality
# 60 is the case of a small web JPEG; bench.quality_real's JPEG sets score 50 and 75.
FIGURE_JPEG_QUALITY = 60


def crop_figure(image_path: Path, box: tuple[int, int, int, int], out: Path, zoom: int = 2) -> None:
    """Bicubic / each model of the default scale / original on one crop, nearest-enlarged so texture is
    visible: one row from the clean reduction, one from its JPEG."""
    hr = load_eval_image(image_path, SCALE)
    clean = make_lr(hr, SCALE)
    inputs = {"clean input": clean, f"JPEG {FIGURE_JPEG_QUALITY} input": jpeg(clean, FIGURE_JPEG_QUALITY)}
    models = {spec.label: generator_method(_model(spec.name), spec.name) for spec in REGISTRY
              if spec.scale == SCALE}
    x, y, w, h = box
    font = ImageFont.load_default(size=18)
    panel_w, row_h = w * zoom + 6, h * zoom + 58  # a title line above each row, captions below
    columns = 2 + len(models)  # bicubic, the models, the original
    canvas = Image.new("RGB", (columns * panel_w + 6, len(inputs) * row_h + 6), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (input_label, lr) in enumerate(inputs.items()):
        outputs = {"Bicubic": INTERPOLATIONS["bicubic"](lr, SCALE)}
        outputs |= {label: method(lr, SCALE) for label, method in models.items()}
        outputs["Original"] = hr
        draw.text((8, 6 + row * row_h), f"From the {input_label}:", fill="black", font=font)
        top = 30 + row * row_h
        for i, (label, img) in enumerate(outputs.items()):
            panel = Image.fromarray(np.ascontiguousarray(img[y : y + h, x : x + w]))
            left = 6 + i * panel_w
            canvas.paste(panel.resize((w * zoom, h * zoom), Image.Resampling.NEAREST), (left, top))
            draw.text((left + 2, top + h * zoom + 4), label, fill="black", font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--eval-root", type=Path, default=Path("../shared/datasets/eval"))
    parser.add_argument("--crop-out", type=Path, default=Path("docs/img/crops.png"))
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = evaluate_all(args.eval_root)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    crop_figure(args.eval_root / "Set14" / "baboon.png", (300, 40, 120, 120), args.crop_out)


if __name__ == "__main__":
    main()
