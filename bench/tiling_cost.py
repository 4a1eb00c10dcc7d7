"""What tiling costs: the FLOPs overhead of the tile and pad defaults, and the pad that seamless tiling needs.

1. Overhead (instant, no model): low-resolution window pixels the model computes per image pixel, for
   square images of `--sides`, with fitted tiles (a CPU: one tile per batch) and fixed tiles (a GPU:
   every window one shape) of `--tiles`, at pad `--pad`.
2. With `--quality` (the shipped weights on the CPU, about a minute per model): for each pad of
   `--pads`, tiled output against whole-image inference with the same pad (`upscale_whole`), on a
   128 x 128 crop of Set5's butterfly (when `--eval-dir` has it) and a natural-looking image made in
   code: PSNR on Y and the largest difference in 8-bit levels. Tiles of 40 put three seams across
   each image.

    python -m bench.tiling_cost
    python -m bench.tiling_cost --quality --eval-dir ../shared/datasets/eval/Set5
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.serving import emit, machine
from model.metrics import psnr_y
from model.registry import REGISTRY
from model.synthetic import natural_like_image
from model.tiling import TileGrid, upscale_tiled, upscale_whole


def overhead(side: int, tile: int, pad: int, fit: bool) -> float:
    return TileGrid(side, side, tile, pad, fit=fit).window_pixels / side**2


def seam_quality(pads: list[int], eval_dir: Path | None) -> list[dict[str, Any]]:
    images = {"natural_like 128x128": natural_like_image(128, 128, seed=3)}
    butterfly = eval_dir / "butterfly.png" if eval_dir is not None else None
    if butterfly is not None and butterfly.exists():
        images["Set5 butterfly crop"] = np.asarray(Image.open(butterfly).convert("RGB"))[64:192, 64:192]
    rows = []
    for spec in REGISTRY:
        upscaler = REGISTRY.load(spec.name, None, torch.device("cpu"), torch.float32)
        for image_name, image in images.items():
            for pad in pads:
                whole = upscale_whole(image, upscaler, scale=spec.scale, pad=pad)
                tiled = upscale_tiled(image, upscaler, scale=spec.scale, tile=40, pad=pad)
                rows.append({
                    "model": spec.name,
                    "image": image_name,
                    "pad": pad,
                    "psnr_db": psnr_y(tiled, whole, 0),
                    "max_levels": int(np.abs(tiled.astype(int) - whole.astype(int)).max()),
                })
                print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", default="64,96,128,200,256,512,1024,2048")
    parser.add_argument("--tiles", default="96,128,160")
    parser.add_argument("--pad", type=int, default=REGISTRY.default.context_pad)
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--pads", default="6,8,10,12")
    parser.add_argument("--eval-dir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    tiles = [int(t) for t in args.tiles.split(",")]
    lines = ["| image | " + " | ".join(f"fitted {t}" for t in tiles[:1]) + " | "
             + " | ".join(f"fixed {t}" for t in tiles) + " |", "|---|" + "---|" * (1 + len(tiles))]
    table = []
    for side in map(int, args.sides.split(",")):
        cells = [overhead(side, tiles[0], args.pad, True)]
        cells += [overhead(side, t, args.pad, False) for t in tiles]
        table.append({"side": side, "overheads": cells})
        lines.append(f"| {side}² | " + " | ".join(f"{c:.2f}x" for c in cells) + " |")
    print("\n".join(lines), flush=True)
    result: dict[str, Any] = {"machine": machine(), "pad": args.pad, "tiles": tiles, "overhead": table}
    if args.quality:
        result["seams"] = seam_quality([int(p) for p in args.pads.split(",")], args.eval_dir)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
