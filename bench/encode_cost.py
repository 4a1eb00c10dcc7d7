"""Encoding cost per output megapixel: what one core spends writing an upscaled image as PNG, JPEG or WebP.

The service's own path (`app.imaging.encode.encode_image`, its PNG level and JPEG/WebP quality 90) on
content like the model's output: a natural-looking image made in code, enlarged x4 bicubically (smooth
areas and soft edges, as an upscaled image has; noise would make PNG and WebP slower than they are on
real outputs). One thread, the median of `--repeats` encodes per size. `--alternatives` adds the
encoder settings the service does not use, for comparison: PNG levels 0 and 6, the WebP methods other
than the service's (Pillow's default is 4), and simplejpeg where it is installed.

    python -m bench.encode_cost                        # 512^2, 1024^2 and 2048^2 outputs, a minute
    python -m bench.encode_cost --alternatives --json /tmp/encode.json
"""

from __future__ import annotations

import argparse
import importlib
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, features

from app.imaging.encode import PNG_COMPRESS_LEVEL, WEBP_METHOD, encode_image
from app.imaging.image import DecodedImage
from bench.serving import emit, machine, parse_sizes
from model.synthetic import natural_like_image

QUALITY = 90


def upscaled_like(width: int, height: int) -> np.ndarray:
    """An image with the smoothness of an x4 upscale: a natural-like quarter-size image, enlarged."""
    small = natural_like_image(max(height // 4, 1), max(width // 4, 1))
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))


def pillow(fmt: str, **options: object) -> Callable[[np.ndarray], bytes]:
    def encode(pixels: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, fmt, **options)
        return out.getvalue()

    return encode


def encoders(alternatives: bool) -> dict[str, Callable[[np.ndarray], bytes]]:
    """Label -> encode(pixels); the service's three first."""
    chosen: dict[str, Callable[[np.ndarray], bytes]] = {
        f"service png (zlib level {PNG_COMPRESS_LEVEL})": lambda p: encode_image(_decoded(p), "png"),
        f"service jpeg (q{QUALITY}, Pillow)": lambda p: encode_image(_decoded(p), "jpeg", quality=QUALITY),
        f"service webp (q{QUALITY}, method {WEBP_METHOD})": lambda p: encode_image(_decoded(p), "webp",
                                                                             quality=QUALITY),
    }
    if alternatives:
        for level in (0, 6):
            chosen[f"png level {level}"] = pillow("PNG", compress_level=level)
        for method in sorted({0, 2, 4, 6} - {WEBP_METHOD}):
            chosen[f"webp q{QUALITY} method {method}"] = pillow("WEBP", quality=QUALITY, method=method)
        try:
            simplejpeg = importlib.import_module("simplejpeg")
            chosen[f"jpeg q{QUALITY} simplejpeg"] = lambda p: simplejpeg.encode_jpeg(
                np.ascontiguousarray(p), quality=QUALITY, colorspace="RGB", colorsubsampling="420"
            )
        except ImportError:
            pass
    return chosen


def _decoded(pixels: np.ndarray) -> DecodedImage:
    return DecodedImage(pixels, None, False, None, "png")


def measure(encode: Callable[[np.ndarray], bytes], pixels: np.ndarray, repeats: int) -> dict[str, float]:
    encode(pixels)  # allocator and library warm-up
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        size = len(encode(pixels))
        times.append(time.perf_counter() - started)
    megapixels = pixels.shape[0] * pixels.shape[1] / 1e6
    seconds = statistics.median(times)
    return {
        "ms_per_mp": seconds * 1000 / megapixels,
        "mp_per_s_per_core": megapixels / seconds,
        "bytes_per_pixel": size / (megapixels * 1e6),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512x512,1024x1024,2048x2048", help="output sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--alternatives", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for width, height in parse_sizes(args.sizes):
        pixels = upscaled_like(width, height)
        for label, encode in encoders(args.alternatives).items():
            rows.append({"encoder": label, "output": f"{width}x{height}",
                         **measure(encode, pixels, args.repeats)})
            print(f"{label:34s} {width}x{height}: {rows[-1]['ms_per_mp']:7.1f} ms/MP, "
                  f"{rows[-1]['bytes_per_pixel']:.2f} B/px", flush=True)
    emit({"machine": machine(), "pillow_libjpeg_turbo": features.check_feature("libjpeg_turbo"),
          "threads": 1, "rows": rows}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
