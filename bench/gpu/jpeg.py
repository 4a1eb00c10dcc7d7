"""Section `jpeg`: JPEG output encoded on the GPU (nvJPEG through torchvision, as `app.imaging.encode` does
where it can) against Pillow's libjpeg-turbo on one core: milliseconds per output megapixel, bytes per
pixel and PSNR against the image, and whether concurrent GPU encodes all decode (pytorch/vision#9060)."""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from app.imaging import encode
from app.imaging.image import DecodedImage
from bench.encode_cost import upscaled_like
from model.metrics import psnr_y

QUALITY = 90


def _pillow(pixels: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _row(name: str, encoder: Callable[[np.ndarray, int], bytes], pixels: np.ndarray,
         repeats: int) -> dict[str, Any]:
    encoder(pixels, QUALITY)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        data = encoder(pixels, QUALITY)
        times.append(time.perf_counter() - started)
    megapixels = pixels.shape[0] * pixels.shape[1] / 1e6
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return {
        "encoder": name,
        "output": f"{pixels.shape[1]}x{pixels.shape[0]}",
        "ms_per_mp": statistics.median(times) * 1000 / megapixels,
        "bytes_per_pixel": len(data) / (megapixels * 1e6),
        "psnr_db": psnr_y(decoded, pixels, 0),
    }


def jpeg_encoders(sides: list[int], repeats: int = 5, threads: int = 8,
                  per_thread: int = 10) -> dict[str, Any]:
    encode.device_jpeg_encoder.cache_clear()
    gpu = encode.device_jpeg_encoder()
    result: dict[str, Any] = {"gpu_encoder": "nvJPEG (torchvision)" if gpu else "unavailable (see log.txt)"}
    rows = []
    for side in sides:
        pixels = upscaled_like(side, side)
        rows.append(_row("Pillow (libjpeg-turbo), 1 core", _pillow, pixels, repeats))
        if gpu is not None:
            rows.append(_row("GPU (nvJPEG)", gpu, pixels, repeats))
    result["rows"] = rows
    if gpu is not None:
        pixels = upscaled_like(sides[0], sides[0])
        image = DecodedImage(pixels, None, False, None, "png")

        def many(_: int) -> int:
            broken = 0
            for _ in range(per_thread):
                data = encode.encode_image(image, "jpeg", quality=QUALITY)
                try:
                    Image.open(io.BytesIO(data)).load()
                except Exception:
                    broken += 1
            return broken

        with ThreadPoolExecutor(threads) as pool:
            result["concurrent"] = {"threads": threads, "encodes": threads * per_thread,
                                    "undecodable": sum(pool.map(many, range(threads)))}
    return result
