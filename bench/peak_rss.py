"""Peak resident memory of `srgan serve` while N maximum-size requests arrive at once.

Tiny random weights (the host's image buffers are the same as with the shipped ones; only the model's
activations differ), a tile queue that holds all N requests (SRGAN_MAX_QUEUE_TILES = 512 N), the
service's default pixel limit (a 2048 x 2048 input, 8192 x 8192 output), and
an RGBA PNG, the mode that costs the most memory per pixel at 8 bits. After one small warm-up request
the server's peak count is reset (/proc/PID/clear_refs), the N uploads are sent together, and the
server's VmHWM is read when all have been answered. `--repo` serves another checkout (a `git worktree`
of an older commit) for a before/after comparison:

    git worktree add /tmp/before 8dc6aee
    python -m bench.peak_rss --concurrent 3 --repo /tmp/before
    python -m bench.peak_rss --concurrent 3
    python -m bench.peak_rss --concurrent 3 --budget-mb 2048
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench.serving import REPO, Server, emit, machine, rss_bytes, write_tiny_weights
from model.synthetic import natural_like_image


def rgba_png(side: int, seed: int) -> bytes:
    image = Image.fromarray(natural_like_image(side, side, seed))
    image.putalpha(Image.fromarray(np.linspace(0, 255, side * side).reshape(side, side).astype(np.uint8)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def peak_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def run(args: argparse.Namespace, weights: Path) -> dict[str, Any]:
    # The tile queue holds every request, so that memory, not the queue bound, decides who is served.
    env = {"SRGAN_DEVICE": "cpu", "SRGAN_WEIGHTS_DIR": str(weights), "SRGAN_REQUEST_TIMEOUT_S": "900",
           "SRGAN_MAX_QUEUE_TILES": str(512 * args.concurrent)}
    if args.budget_mb is not None:
        env["SRGAN_MEMORY_BUDGET_MB"] = str(args.budget_mb)
    images = [rgba_png(args.side, seed) for seed in range(args.concurrent)]
    with Server(env, repo=args.repo, ready_timeout_s=300) as server:
        url = f"{server.url}/upscale"
        warm_up = rgba_png(64, 99)
        with httpx.Client(timeout=120) as client:
            client.post(url, files={"image": ("w.png", warm_up, "image/png")}).raise_for_status()
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")
        before = rss_bytes(server.pid)

        def post(data: bytes) -> tuple[int, str]:
            with httpx.Client(timeout=1800) as client:
                response = client.post(url, files={"image": ("big.png", data, "image/png")})
                code = response.json()["error"]["code"] if response.status_code != 200 else ""
                return response.status_code, code

        started = time.monotonic()
        with ThreadPoolExecutor(args.concurrent) as senders:
            answers = list(senders.map(post, images))
        wall = time.monotonic() - started
        peak = peak_bytes(server.pid)
        log = server.log_tail(200)
    mib = 1 << 20
    budget_line = next((line for line in log.splitlines() if "memory budget" in line), None)
    return {
        "repo": str(args.repo),
        "requests": f"{args.concurrent} x {args.side}x{args.side} RGBA PNG ({len(images[0]) // 1024} KiB)",
        "answers": [f"{status} {code}".strip() for status, code in answers],
        "rss_before_mib": before // mib,
        "peak_rss_mib": peak // mib,
        "peak_above_before_mib": (peak - before) // mib,
        "budget": budget_line.split("] ", 1)[-1] if budget_line else "none (no memory budget)",
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrent", type=int, default=3)
    parser.add_argument("--side", type=int, default=2048, help="input side (default 2048, the pixel limit)")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout to serve (default: this one)")
    parser.add_argument("--budget-mb", type=int, help="SRGAN_MEMORY_BUDGET_MB (default: the service's)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = {"machine": machine(), **run(args, write_tiny_weights(Path(tmp)))}
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
