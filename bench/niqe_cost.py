"""What NIQE costs /compare per image: time and allocated peak of `model.niqe.niqe` (4-pixel border crop)
on the shapes /compare admits at its pixel limit, beside what `app.limits.cost.niqe_bytes` reserves.

A square has the most patches; a strip 104 pixels high (the lowest NIQE scores) has the longest axis
to halve (resized by its band of taps, `model.imresize`). Peaks are numpy's allocations counted by
tracemalloc; times the median of `--repeat` runs on one thread.

    python -m bench.niqe_cost --pixels 1048576
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

from app.limits import cost
from bench.serving import emit, machine
from model.niqe import niqe
from model.synthetic import natural_like_image

CROP = 4


def measure(height: int, width: int, repeat: int) -> dict[str, Any]:
    image = natural_like_image(height, width, seed=1)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        value = niqe(image, crop_border=CROP)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    try:
        niqe(image, crop_border=CROP)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return {"shape": f"{width}x{height}", "niqe": value, "seconds": statistics.median(times),
            "peak_bytes": peak, "estimate_bytes": cost.niqe_bytes(height, width, CROP)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pixels", type=int, default=1 << 20, help="the limit (SRGAN_COMPARE_MAX_PIXELS)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    niqe(natural_like_image(200, 200), crop_border=CROP)  # the pristine model and tables, loaded once
    side = math.isqrt(args.pixels)
    results = [measure(h, w, args.repeat) for h, w in ((side, side), (104, args.pixels // 104))]
    mib = 1 << 20
    print("| image | NIQE time | allocated peak | reserved (niqe_bytes) |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['shape']} | {r['seconds']:.2f} s | {r['peak_bytes'] / mib:.0f} MiB | "
              f"{r['estimate_bytes'] / mib:.0f} MiB |")
    emit({"machine": machine(), "pixels": args.pixels, "results": results}, args.json)


if __name__ == "__main__":
    main()
