"""Peak host memory of each stage of a request, measured, beside what `app.limits.cost` reserves for it.

Each case runs in a fresh process: the input is made, then the peak resident set (VmHWM, reset through
/proc/self/clear_refs before each stage) is read around decoding, the engine's buffers (`prepare`),
and finishing plus encoding, with a nearest-neighbour stand-in for the model. /compare cases run
`ground_truth` to `to_json` and `render_mosaic` with the same stand-in. The table shows the measured
peak of the whole request above the process's resident size before it, and the estimate.

    python -m bench.memory_cost                     # 512x512 inputs (2048x2048 outputs)
    python -m bench.memory_cost --side 1024 --json out.json
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.limits.container import resident_bytes
from bench.serving import REPO, emit, machine
from model.synthetic import natural_like_image

SCALE, TILE, PAD = 4, 96, 12
# name -> (input format, Pillow mode or "rgb16"/"rgba16", output format or "compare-json"/"compare-image")
CASES = {
    "png rgb8 -> png": ("png", "RGB", "png"),
    "png rgba8 -> png": ("png", "RGBA", "png"),
    "png rgba8 -> webp": ("png", "RGBA", "webp"),
    "png la8 -> png": ("png", "LA", "png"),
    "png rgb16 -> png": ("png", "rgb16", "png"),
    "png rgba16 -> png": ("png", "rgba16", "png"),
    "png rgba16 -> jpeg": ("png", "rgba16", "jpeg"),
    "png rgba8 noise -> png": ("png", "RGBA-noise", "png"),
    "png rgb16 noise -> png": ("png", "rgb16-noise", "png"),
    "jpeg progressive -> jpeg": ("jpeg", "RGB", "jpeg"),
    "webp rgba -> png": ("webp", "RGBA", "png"),
    "png rgb8 /compare json": ("png", "RGB", "compare-json"),
    "png rgba16 /compare image": ("png", "rgba16", "compare-image"),
    "png rgb8 64-high strip /compare json": ("png", "RGB-strip", "compare-json"),
    "png rgb8 104-high strip /compare json": ("png", "RGB-niqestrip", "compare-json"),
}


def make_input(fmt: str, mode: str, side: int) -> bytes:
    """A `side`-square image in `mode`; "-noise" makes it incompressible (the largest encoded size),
    "-strip" makes it 64 pixels high with as many pixels (the longest axes for /compare's resizes),
    "-niqestrip" 104 (the lowest that NIQE scores: the longest axis for its half-size resize)."""
    mode, _, variant = mode.partition("-")
    strip_height = {"strip": 64, "niqestrip": 104}.get(variant)
    height, width = (strip_height, side * side // strip_height) if strip_height else (side, side)
    rng = np.random.default_rng(5)
    rgb = (rng.integers(0, 256, (height, width, 3), dtype=np.uint8) if variant == "noise"
           else natural_like_image(height, width, 5))
    alpha = np.linspace(0, 255, height * width).reshape(height, width).astype(np.uint8)
    if mode in ("rgb16", "rgba16"):
        import imagecodecs

        deep = rgb.astype(np.uint16) * 257
        pixels = deep if mode == "rgb16" else np.dstack([deep, alpha.astype(np.uint16) * 257])
        return bytes(imagecodecs.png_encode(pixels))
    image = Image.fromarray(rgb).convert(mode)
    if "A" in mode:
        image.putalpha(Image.fromarray(alpha))
    out = io.BytesIO()
    image.save(out, fmt.upper(), **({"progressive": True, "quality": 95} if fmt == "jpeg" else {}))
    return out.getvalue()


def _reset_peak() -> int:
    """Return freed heap to the system (else a stage reuses what making the input left, and seems
    free), then restart the peak count; the resident size now."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return resident_bytes()


def _peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _engine_buffers(image: np.ndarray, grid: Any) -> tuple[np.ndarray, np.ndarray]:
    """What the engine holds on a CPU device besides the image: its padded copy and the output."""
    side_y, side_x = grid.rows * grid.tile + 2 * grid.pad, grid.cols * grid.tile + 2 * grid.pad
    padded = np.ones((side_y, side_x, 3), image.dtype)
    return padded, np.empty((image.shape[0] * SCALE, image.shape[1] * SCALE, 3), image.dtype)


def _stand_in_model(rgb: np.ndarray, out: np.ndarray, noise: bool) -> None:
    """Fill the output as the model would, in place: nearest-neighbour, or noise for incompressible cases."""
    if noise:
        rng = np.random.default_rng(0)
        for top in range(0, out.shape[0], 64):
            strip = out[top : top + 64]
            strip[...] = np.frombuffer(rng.bytes(strip.nbytes), strip.dtype).reshape(strip.shape)
        return
    for dy in range(SCALE):
        for dx in range(SCALE):
            out[dy::SCALE, dx::SCALE] = rgb


def run_case(name: str, side: int) -> dict[str, Any]:
    """In this process: the stages of one case, each stage's peak above the resident size at the start."""
    from app import comparison
    from app.imaging.decode import decode_image
    from app.imaging.encode import encode_image
    from app.imaging.header import read_header
    from app.imaging.image import finish_upscale
    from app.limits import cost
    from model.registry import REGISTRY
    from model.tiling import TileGrid

    fmt, mode, target = CASES[name]
    data = make_input(fmt, mode, side)
    header = read_header(data, max_pixels=1 << 30)
    start = _reset_peak()
    decoded = decode_image(data, max_pixels=1 << 30)
    stages = {"decode": _peak() - start}
    plan = comparison.Plan.for_registry(REGISTRY)
    if target.startswith("compare"):
        hr = comparison.ground_truth(decoded, plan)
        lr = comparison.degrade(hr, plan)
        outputs = comparison.interpolate_all(lr, plan)
        for model in plan.models:
            grid = TileGrid(lr.shape[0], lr.shape[1], TILE, PAD)
            padded, output = _engine_buffers(lr, grid)
            _stand_in_model(lr, output, "noise" in mode)
            outputs[model] = output
        stages["restore"] = _peak() - start
        result = comparison.assemble(plan, hr, lr, outputs)
        stages["score"] = _peak() - start
        if target == "compare-json":
            body = json.dumps(comparison.to_json(result)).encode()
        else:
            body = comparison.render_mosaic(result)
        stages["render"] = _peak() - start
        estimate = cost.compare_bytes(header, upload_bytes=len(data), plan_models=len(plan.models),
                                      scale=SCALE, tile=TILE, pad=PAD,
                                      output="json" if target == "compare-json" else "image")
    else:
        grid = TileGrid(decoded.height, decoded.width, TILE, PAD)
        padded, output = _engine_buffers(decoded.rgb, grid)
        _stand_in_model(decoded.rgb, output, "noise" in mode)
        del padded
        stages["engine"] = _peak() - start
        body = encode_image(finish_upscale(decoded, output, SCALE), target)
        stages["encode"] = _peak() - start
        estimate = cost.upscale_bytes(header, upload_bytes=len(data), scale=SCALE, fmt=target, tile=TILE,
                                      pad=PAD)
    return {"case": name, "input": f"{header.width}x{header.height}", "upload_bytes": len(data),
            "body_bytes": len(body), "stages": stages, "peak": max(stages.values()), "estimate": estimate}


def measure(name: str, side: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.memory_cost", "--one", name, "--side", str(side)],
                          cwd=REPO, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=512, help="input side in pixels (default 512)")
    parser.add_argument("--one", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_case(args.one, args.side)))
        return 0
    results = [measure(name, args.side) for name in CASES]
    mib = 1 << 20
    print(f"| case ({args.side}² in) | decode | later stages | peak | estimate | estimate / peak |")
    print("|---|---|---|---|---|---|")
    for r in results:
        later = ", ".join(f"{k} {v / mib:.0f}" for k, v in r["stages"].items() if k != "decode")
        ratio = r["estimate"] / r["peak"]
        print(f"| {r['case']} | {r['stages']['decode'] / mib:.0f} MiB | {later} | "
              f"{r['peak'] / mib:.0f} MiB | {r['estimate'] / mib:.0f} MiB | {ratio:.2f} |")
    emit({"machine": machine(), "side": args.side, "results": results}, args.json)
    return 0 if all(r["estimate"] >= r["peak"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
