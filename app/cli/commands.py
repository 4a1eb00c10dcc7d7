"""Sub-commands of `srgan`: each registers its arguments and a handler that returns the exit code.

`serve`, `train` and `eval` are here; the offline image commands are in `offline`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

from app.cli.offline import Subparsers, register_compare, register_upscale
from app.settings import Settings
from model.registry import ModelRegistry

logger = logging.getLogger(__name__)


def _register_train(commands: Subparsers, registry: ModelRegistry, settings: Settings) -> None:
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


def _register_eval(commands: Subparsers, registry: ModelRegistry, settings: Settings) -> None:
    from model.evaluate import INTERPOLATIONS

    known = ", ".join([*INTERPOLATIONS, *registry.names()])
    p = commands.add_parser(
        "eval",
        help="PSNR/SSIM (higher is better) with the literature's protocol, the gradient-energy ratio "
        "(closer to 1.0 is better) and NIQE (lower is better)",
    )
    p.add_argument("--data", action="append", required=True, help="folder of HR images (repeatable)")
    p.add_argument(
        "--method", action="append", help=f"{known}, or a weights path (repeatable; default: all named)"
    )
    p.add_argument(
        "--scale",
        type=int,
        default=registry.default.scale,
        help="scale of the interpolations (default %(default)s); a model is measured at its own scale",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=settings.device,
                   help="where models run")
    p.add_argument("--weights-dir", type=Path, default=settings.weights_dir,
                   help="folder of the registered models' weights (default: the shipped weights)")
    p.add_argument("--json", action="store_true",
                   help=f"print a JSON array of {{{', '.join(JSON_KEYS)}}}; niqe is null when an image is "
                   "too small or flat for it")
    p.set_defaults(handler=_eval)


# The text table's columns, and which way each is better.
EVAL_HEADER = (
    f"{'dataset':10s} {'method':12s} scale {'n':>5s} {'PSNR dB':>8s} {'SSIM':>7s} {'grad SR/HR':>11s}  "
    "NIQE (lower is better)\n"
    "PSNR, SSIM: higher is better; grad (gradient energy SR / original): closer to 1.0 is better; "
    "NIQE: naturalness without a reference, lower is better"
)
JSON_KEYS = ("dataset", "method", "scale", "n_images", "psnr", "ssim", "gradient_ratio", "niqe")


def _eval(args: argparse.Namespace) -> int:
    from model.evaluate import INTERPOLATIONS, evaluate_generator, evaluate_method
    from model.inference import resolve_device
    from model.weights import load_generator

    registry: ModelRegistry = args.registry
    methods = args.method or [*INTERPOLATIONS, *registry.names()]
    device = resolve_device(args.device)
    rows = []
    if not args.json:
        print(EVAL_HEADER)
    for folder in args.data:
        for method in methods:
            if method in INTERPOLATIONS:
                result = evaluate_method(INTERPOLATIONS[method], folder, args.scale, method)
            else:
                path = registry.weights_path(method, args.weights_dir) if method in registry else Path(method)
                model, info = load_generator(path)
                result = evaluate_generator(model.to(device).eval(), folder, info.scale, method)
            rows.append(result)
            if not args.json:
                niqe = "—" if result.niqe is None else f"{result.niqe:.3f}"
                print(
                    f"{result.dataset:10s} {result.method:12s} x{result.scale:<4d} {result.n_images:5d} "
                    f"{result.psnr:8.2f} {result.ssim:7.4f} {result.gradient_ratio:11.3f}  {niqe}"
                )
    if args.json:
        print(json.dumps([{k: getattr(r, k) for k in JSON_KEYS} for r in rows], indent=2))
    return 0


def _register_serve(commands: Subparsers, registry: ModelRegistry, settings: Settings) -> None:
    p = commands.add_parser("serve", help="run the HTTP service (settings from SRGAN_* variables)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from app.http.server import serve

    serve(args.host, args.port)
    return 0


REGISTER: list[Callable[[Subparsers, ModelRegistry, Settings], None]] = [
    _register_serve,
    register_upscale,
    register_compare,
    _register_train,
    _register_eval,
]
