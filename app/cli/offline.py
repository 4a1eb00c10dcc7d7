"""The CLI's offline paths: `srgan upscale` and `srgan compare`, with the service's codec and tiler."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from app import comparison as methods
from app.errors import ServiceError
from app.imaging.decode import read_image_file
from app.imaging.encode import encode_image
from app.imaging.image import finish_upscale, guess_format_from_name
from app.weights_paths import shipped_weights
from model.data import IMAGE_SUFFIXES
from model.inference import Upscaler, resolve_device, resolve_dtype
from model.tiling import upscale_tiled

logger = logging.getLogger(__name__)

SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


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


def load_upscaler(name: str, device_name: str, dtype_name: str = "auto") -> Upscaler:
    device = resolve_device(device_name)
    return Upscaler.from_file(name, shipped_weights(name), device, resolve_dtype(dtype_name, device))


def upscale_files(args: argparse.Namespace) -> int:
    files = _expand(args.inputs)
    if not files:
        print("srgan upscale: no input images found", file=sys.stderr)
        return 2
    output = Path(args.output)
    single_file_target = len(files) == 1 and output.suffix.lower() in {*SUFFIXES.values(), ".jpeg"}
    if not single_file_target:
        output.mkdir(parents=True, exist_ok=True)
    upscaler = load_upscaler(args.model, args.device, args.dtype)
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
                decoded.rgb,
                upscaler,
                scale=upscaler.scale,
                tile=args.tile,
                pad=args.tile_pad,
                batch_size=args.batch,
            )
            data = encode_image(finish_upscale(decoded, sr, upscaler.scale), fmt, quality=args.quality)
            target = output if single_file_target else output / f"{path.stem}_x4{SUFFIXES[fmt]}"
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
    try:
        decoded = read_image_file(args.image, max_pixels=64 * 1024 * 1024)
        hr = methods.ground_truth(decoded)
    except (ServiceError, OSError) as exc:
        print(f"srgan compare: {args.image}: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    lr = methods.degrade(hr)
    outputs = methods.interpolate_all(lr)
    for name in methods.SR_METHODS:
        upscaler = load_upscaler(name, args.device)
        outputs[name] = upscale_tiled(lr, upscaler, scale=methods.SCALE, tile=96, pad=12)
    comparison = methods.assemble(hr, lr, outputs)
    _write_atomically(Path(args.output), methods.render_mosaic(comparison))
    if args.json:
        body = methods.to_json(comparison)
        body.pop("input"), body.pop("original")
        for method in body["methods"]:
            method.pop("image")
        print(json.dumps(body, indent=2))
    return 0
