"""`srgan upscale` and `srgan compare`: the service's codec, models and tiled-inference core, offline.

Their defaults (tile, pad, pixel limit, weights folder, device, dtype) come from the service's settings,
so `SRGAN_*` variables mean the same here as under `srgan serve`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from app.errors import ServiceError
from app.settings import Settings
from model.data import IMAGE_SUFFIXES
from model.inference import Upscaler, resolve_device, resolve_dtype
from model.registry import ModelRegistry
from model.tiling import upscale_tiled

logger = logging.getLogger(__name__)

Subparsers = Any  # argparse's _SubParsersAction is private
SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


def register_upscale(commands: Subparsers, registry: ModelRegistry, settings: Settings) -> None:
    p = commands.add_parser("upscale", help="upscale image files or folders")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument(
        "-o", "--output", required=True, help="output folder (or a file name when there is one input image)"
    )
    p.add_argument("--model", choices=registry.names(), default=registry.default.name)
    _add_inference_arguments(p, settings)
    p.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default=settings.dtype,
                   help="auto: float16 on CUDA, float32 on the CPU")
    p.add_argument("--batch", type=int, default=4, help="tiles per device call")
    p.add_argument("--format", choices=("png", "jpeg", "webp"), help="output format (default: the input's)")
    p.add_argument("--quality", type=int, default=90, help="jpeg/webp quality 1-100 (default 90)")
    p.set_defaults(handler=upscale_files)


def register_compare(commands: Subparsers, registry: ModelRegistry, settings: Settings) -> None:
    p = commands.add_parser("compare", help="the /compare slide, offline")
    p.add_argument("image", metavar="IMAGE", help="the ground-truth image")
    p.add_argument("-o", "--output", required=True, help="where to write the labelled mosaic PNG")
    p.add_argument("--json", action="store_true", help="also print the scores as JSON")
    _add_inference_arguments(p, settings)
    p.set_defaults(handler=compare_file)


def _add_inference_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=settings.device)
    p.add_argument("--tile", type=int, default=settings.tile, help="LR tile side")
    p.add_argument("--tile-pad", type=int, default=settings.tile_pad,
                   help="LR context per side (default: the model's recommended pad)")
    p.add_argument("--max-pixels", type=int, default=settings.max_input_pixels,
                   help="refuse inputs with more pixels than this")
    p.add_argument("--weights-dir", type=Path, default=settings.weights_dir,
                   help="folder of the registered models' weights (default: the shipped weights)")


def _load(args: argparse.Namespace, name: str, dtype_name: str = "auto") -> tuple[Upscaler, int]:
    """The model on the chosen device, and the pad to use with it."""
    registry: ModelRegistry = args.registry
    device = resolve_device(args.device)
    upscaler = registry.load(name, args.weights_dir, device, resolve_dtype(dtype_name, device))
    return upscaler, registry[name].context_pad if args.tile_pad is None else args.tile_pad


def _expand(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(item)
    return files


def _write_atomically(path: Path, data: bytes) -> None:
    """Write beside the target and rename, so an interrupted run never leaves a half-written image."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# The image codecs (libpng through imagecodecs among them) are imported by the commands that read images,
# not when the parser is built: `srgan train` then runs where only torch and the training extra are
# installed, as on the GPU box of scripts/gpu-train.


def upscale_files(args: argparse.Namespace) -> int:
    from app.imaging.decode import read_image_file
    from app.imaging.encode import encode_image
    from app.imaging.image import finish_upscale, guess_format_from_name

    files = _expand(args.inputs)
    if not files:
        print("srgan upscale: no input images found", file=sys.stderr)
        return 2
    output = Path(args.output)
    single_file_target = len(files) == 1 and output.suffix.lower() in {*SUFFIXES.values(), ".jpeg"}
    if not single_file_target:
        output.mkdir(parents=True, exist_ok=True)
    upscaler, pad = _load(args, args.model, args.dtype)
    scale = upscaler.scale
    failures = 0
    bar = tqdm(files, unit="img", disable=len(files) < 2, file=sys.stderr)
    for path in bar:
        bar.set_postfix_str(path.name)
        try:
            decoded = read_image_file(path, max_pixels=args.max_pixels)
            fmt = (
                args.format
                or (guess_format_from_name(output) if single_file_target else None)
                or decoded.source_format
            )
            sr = upscale_tiled(
                decoded.rgb, upscaler, scale=scale, tile=args.tile, pad=pad, batch_size=args.batch
            )
            data = encode_image(finish_upscale(decoded, sr, scale), fmt, quality=args.quality)
            target = output if single_file_target else output / f"{path.stem}_x{scale}{SUFFIXES[fmt]}"
            _write_atomically(target, data)
            logger.debug("%s -> %s", path, target)
        except (ServiceError, OSError) as exc:
            failures += 1
            message = exc.message if isinstance(exc, ServiceError) else str(exc)
            print(f"srgan upscale: {path}: {message}", file=sys.stderr)
    done = len(files) - failures
    print(f"upscaled {done} of {len(files)} image(s) into {output}", file=sys.stderr)
    return 1 if failures else 0


def compare_file(args: argparse.Namespace) -> int:
    from app import comparison as methods
    from app.imaging.decode import read_image_file

    plan = methods.Plan.for_registry(args.registry)
    try:
        decoded = read_image_file(args.image, max_pixels=args.max_pixels)
        hr = methods.ground_truth(decoded, plan)
    except (ServiceError, OSError) as exc:
        print(f"srgan compare: {args.image}: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    lr = methods.degrade(hr, plan)
    outputs = methods.interpolate_all(lr, plan)
    for name in plan.models:
        upscaler, pad = _load(args, name)
        outputs[name] = upscale_tiled(lr, upscaler, scale=plan.scale, tile=args.tile, pad=pad)
    comparison = methods.assemble(plan, hr, lr, outputs)
    _write_atomically(Path(args.output), methods.render_mosaic(comparison))
    if args.json:
        body = methods.to_json(comparison)
        body.pop("input"), body.pop("original")
        for method in body["methods"]:
            method.pop("image")
        print(json.dumps(body, indent=2))
    return 0
