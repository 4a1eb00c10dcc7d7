"""Sub-commands of `srgan`: each registers its arguments and a handler that returns the exit code."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

Subparsers = Any  # argparse's _SubParsersAction is private


def _register_upscale(commands: Subparsers) -> None:
    p = commands.add_parser("upscale", help="upscale image files or folders x4")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument(
        "-o", "--output", required=True, help="output folder (or a file name when there is one input image)"
    )
    _add_model_arguments(p)
    p.add_argument("--format", choices=("png", "jpeg", "webp"), help="output format (default: the input's)")
    p.add_argument("--quality", type=int, default=90, help="jpeg/webp quality 1-100 (default 90)")
    p.set_defaults(handler=_upscale)


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    from app.settings import Settings

    defaults = Settings.model_fields
    p.add_argument("--model", choices=("srgan", "srresnet"), default="srgan")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16", "bfloat16"),
        default="auto",
        help="auto: float16 on CUDA, float32 on the CPU",
    )
    p.add_argument("--tile", type=int, default=defaults["tile"].default, help="LR tile side")
    p.add_argument("--tile-pad", type=int, default=defaults["tile_pad"].default, help="LR context per side")
    p.add_argument("--batch", type=int, default=4, help="tiles per device call")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=defaults["max_input_pixels"].default,
        help="refuse inputs with more pixels than this",
    )


def _upscale(args: argparse.Namespace) -> int:
    from app.cli.offline import upscale_files

    return upscale_files(args)


def _register_compare(commands: Subparsers) -> None:
    p = commands.add_parser("compare", help="the /compare slide, offline")
    p.add_argument("image", metavar="IMAGE", help="the ground-truth image")
    p.add_argument("-o", "--output", required=True, help="where to write the labelled mosaic PNG")
    p.add_argument("--json", action="store_true", help="also print the scores as JSON")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from app.cli.offline import compare_file

    return compare_file(args)


def _register_train(commands: Subparsers) -> None:
    from model.train import TrainConfig

    p = commands.add_parser("train", help="train the generator (resumes from OUT/last.pt)")
    p.add_argument("--data", action="append", required=True, help="folder of HR images (repeatable)")
    p.add_argument("--stage", choices=("srresnet", "srgan"), required=True)
    p.add_argument("--out", required=True, help="output folder for checkpoints and generator.safetensors")
    defaults = TrainConfig(data=["."])
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("data", "stage"):
            continue
        value = getattr(defaults, f.name)
        # Field types are strings under postponed annotations, e.g. "float | None".
        kind = next((t for t in (bool, int, float) if str(f.type).startswith(t.__name__)), str)
        if kind is bool:
            p.add_argument(
                f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=value
            )
        else:
            p.add_argument(
                f"--{f.name.replace('_', '-')}", type=kind, default=value, help=f"(default {value})"
            )
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from model.train import TrainConfig, Trainer

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    Trainer(TrainConfig(**values), args.out).run()
    return 0


def _register_eval(commands: Subparsers) -> None:
    p = commands.add_parser("eval", help="PSNR/SSIM with the literature's protocol")
    p.add_argument("--data", action="append", required=True, help="folder of HR images (repeatable)")
    p.add_argument(
        "--method",
        action="append",
        help="nearest, bilinear, bicubic, srresnet, srgan, or a weights path (repeatable; default: all five)",
    )
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where generators run")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    from app.weights_paths import shipped_weights
    from model.evaluate import INTERPOLATIONS, evaluate_generator, evaluate_method
    from model.inference import resolve_device
    from model.weights import load_generator

    methods = args.method or [*INTERPOLATIONS, "srresnet", "srgan"]
    device = resolve_device(args.device)
    rows = []
    for folder in args.data:
        for method in methods:
            if method in INTERPOLATIONS:
                result = evaluate_method(INTERPOLATIONS[method], folder, args.scale, method)
            else:
                path = shipped_weights(method) if method in ("srresnet", "srgan") else Path(method)
                model, _ = load_generator(path)
                result = evaluate_generator(model.to(device).eval(), folder, args.scale, method)
            rows.append(result)
            if not args.json:
                print(
                    f"{result.dataset:10s} {result.method:12s} x{result.scale} n={result.n_images:3d} "
                    f"PSNR {result.psnr:6.2f} dB  SSIM {result.ssim:.4f}  grad {result.gradient_ratio:.3f}"
                )
    if args.json:
        keys = ("dataset", "method", "scale", "n_images", "psnr", "ssim")
        print(json.dumps([{k: getattr(r, k) for k in keys} for r in rows], indent=2))
    return 0


def _register_serve(commands: Subparsers) -> None:
    p = commands.add_parser("serve", help="run the HTTP service (settings from SRGAN_* variables)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from app.http.server import serve

    serve(args.host, args.port)
    return 0


REGISTER: list[Callable[[Subparsers], None]] = [
    _register_serve,
    _register_upscale,
    _register_compare,
    _register_train,
    _register_eval,
]
