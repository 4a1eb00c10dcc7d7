"""Peak memory of `srgan upscale` on one big image (default 2048x2048 in, 8192x8192 out).

The tiler bounds device memory to one batch of windows, but the host still holds the decoded input, its
padded copy, the 8192 x 8192 x 3 output and the encoder's buffers. This writes a `--size` square PNG
made in code, runs `srgan upscale` on it under `/usr/bin/time -v` (apt package `time`), and reports the
peak resident set size and the wall time. Target: peak RSS <= 2.5 GB at 2048 x 2048.

On a CPU the full model needs minutes per megapixel, so `--size 256` or `--tiny` (random 8-feature
weights: same image buffers, small activations) make quick runs:

    python -m bench.big_image                          # 2048x2048, shipped weights
    python -m bench.big_image --tiny                   # 2048x2048, tiny weights (buffers only)
    python -m bench.big_image --size 256               # shipped weights, small image (activations)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from app.settings import Settings
from bench.serving import (
    REPO,
    emit,
    machine,
    write_tiny_weights,
)
from model.registry import REGISTRY
from model.synthetic import natural_like_image

TIME = "/usr/bin/time"


def upscale_command(source: Path, target: Path, args: argparse.Namespace) -> list[str]:
    """`srgan upscale ...`, through the console script when it is installed, else its module."""
    srgan = shutil.which("srgan")
    head = [srgan] if srgan else [sys.executable, "-m", "app.cli"]
    return [
        *head,
        "upscale",
        str(source),
        "-o",
        str(target),
        "--device",
        args.device,
        "--tile",
        str(args.tile),
        "--tile-pad",
        str(args.pad),
        "--batch",
        str(args.batch),
        "--model",
        args.model,
    ]


def measure(args: argparse.Namespace, weights: Path, folder: Path) -> dict[str, Any]:
    source, target = folder / "big.png", folder / "big_upscaled.png"
    Image.fromarray(natural_like_image(args.size, args.size, seed=3)).save(source)
    env = {
        **os.environ,
        "SRGAN_WEIGHTS_DIR": str(weights),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    command = [TIME, "-v", *upscale_command(source, target, args)]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=args.timeout_s)
    report = done.stderr
    peak_kb = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", report)
    if done.returncode != 0 or peak_kb is None:
        raise RuntimeError(f"srgan upscale failed ({done.returncode}):\n{report[-3000:]}")
    with Image.open(target) as out:
        output_size = out.size
    peak_bytes = int(peak_kb.group(1)) * 1024
    return {
        "command": " ".join(command[2:]),
        "input": f"{args.size}x{args.size}",
        "output": f"{output_size[0]}x{output_size[1]}",
        "peak_rss_gb": peak_bytes / 1e9,
        "wall_time": wall.group(1) if wall else None,
        "pass_peak_rss": peak_bytes <= args.limit_gb * 1e9,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="input side in pixels (default 2048)")
    parser.add_argument("--weights", type=Path, default=REPO / "model" / "weights")
    parser.add_argument("--tiny", action="store_true", help="tiny random weights")
    parser.add_argument("--model", default=REGISTRY.default.name, choices=REGISTRY.names())
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--tile", type=int, default=Settings.model_fields["tile"].default,
                        help="default: the CLI's and the service's")
    parser.add_argument("--pad", type=int, default=REGISTRY.default.context_pad,
                        help="default: the default model's context pad")
    parser.add_argument("--batch", type=int, default=4, help="CLI default 4")
    parser.add_argument("--limit-gb", type=float, default=2.5)
    parser.add_argument("--timeout-s", type=float, default=3600.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not Path(TIME).exists():
        parser.error(f"{TIME} is missing: apt-get install time")
    with tempfile.TemporaryDirectory() as tmp:
        weights = write_tiny_weights(Path(tmp) / "weights") if args.tiny else args.weights
        result = {
            "machine": machine(),
            "weights": "tiny" if args.tiny else str(weights),
            **measure(args, weights, Path(tmp)),
        }
    emit(result, args.json)
    return 0 if result["pass_peak_rss"] else 1


if __name__ == "__main__":
    sys.exit(main())
