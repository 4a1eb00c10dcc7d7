"""DecodedImage -> PNG, JPEG or WebP bytes, in the input's mode and bit depth where the format allows.

JPEG is encoded on the GPU (nvJPEG, through torchvision's `encode_jpeg`) where torch sees a CUDA device
and torchvision is installed (it is optional, not a dependency), and by Pillow's libjpeg-turbo otherwise:
on a GPU server the host's cores are what bounds throughput, and the encoder is their largest job per
request (docs/BENCHMARKS.md, "Encoding cost"). PNG and WebP are always encoded by Pillow (zlib, libwebp).
"""

from __future__ import annotations

import functools
import importlib
import io
import logging
import threading
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from app.errors import InvalidParameter
from app.imaging import pixels, png16
from app.imaging.image import MEDIA_TYPES, PILLOW_NAMES, DecodedImage, icc_for

logger = logging.getLogger(__name__)

# zlib level for PNG output. An upscaled output has scale^2 times the input's pixels, and encoding it is
# the CPU's largest job per request; level 1 takes well under half the time of Pillow's default 6 for a
# slightly larger file, and on a GPU the service is CPU-bound on exactly this (docs/BENCHMARKS.md, GPU
# benchmark), so the fast level wins.
PNG_COMPRESS_LEVEL = 1
# libwebp's effort for WebP output (0-6; Pillow's default is 4): 0 encodes in under half the time of 4
# for files about 4 % larger at the same quality (docs/BENCHMARKS.md, "Encoding cost").
WEBP_METHOD = 0


def encode_image(image: DecodedImage, fmt: str, *, quality: int = 90) -> bytes:
    """Encode as `fmt` (png, jpeg, webp); `quality` (1-100) applies to jpeg and webp."""
    if fmt not in MEDIA_TYPES:
        raise InvalidParameter(f"format must be one of {', '.join(MEDIA_TYPES)}, not {fmt!r}")
    if not 1 <= quality <= 100:
        raise InvalidParameter(f"quality must be between 1 and 100, not {quality}")
    channels = _output_channels(image, fmt)
    icc_profile = icc_for(image.icc_profile, channels.shape[2])
    if channels.dtype == np.uint16 and channels.shape[2] > 1:
        return png16.write_png16(channels, icc_profile, PNG_COMPRESS_LEVEL)
    # torchvision's nvJPEG path writes no ICC profile and takes colour only: other images take Pillow.
    if fmt == "jpeg" and icc_profile is None and channels.shape[2] == 3 and (
        gpu_jpeg := device_jpeg_encoder()
    ) is not None:
        return gpu_jpeg(channels, quality)
    options: dict[str, object] = (
        {"compress_level": PNG_COMPRESS_LEVEL} if fmt == "png" else {"quality": quality}
    )
    if fmt == "webp":
        options["method"] = WEBP_METHOD
    if icc_profile is not None:
        options["icc_profile"] = icc_profile
    out = io.BytesIO()
    Image.fromarray(channels[..., 0] if channels.shape[2] == 1 else channels).save(
        out, PILLOW_NAMES[fmt], **options
    )
    return out.getvalue()


def _output_channels(image: DecodedImage, fmt: str) -> np.ndarray:
    """H x W x C pixels in the layout and bit depth `fmt` will store."""
    alpha = image.alpha
    if alpha is None:
        colour = image.rgb
    elif fmt == "jpeg":
        colour, alpha = pixels.composite_on_white(image.rgb, alpha), None
    else:
        colour = pixels.unpremultiply(image.rgb, alpha)
    if image.grayscale and fmt != "webp":
        colour = pixels.luma(colour)[..., None]
    channels = colour if alpha is None else np.dstack([colour, alpha])
    return channels if fmt == "png" else pixels.to_uint8(channels)


# Concurrent nvJPEG encodes from several threads have produced corrupt files (pytorch/vision#9060): one at
# a time, which the GPU does in a fraction of a CPU encoder's time anyway.
_DEVICE_JPEG_LOCK = threading.Lock()


@functools.cache
def device_jpeg_encoder() -> Callable[[np.ndarray, int], bytes] | None:
    """`encode(pixels, quality) -> JPEG bytes` on the GPU for H x W x 3 uint8 pixels, or None
    where there is no CUDA device, no torchvision, or its encoder fails on a probe image (logged once)."""
    if not torch.cuda.is_available():
        return None
    try:
        encode_jpeg = importlib.import_module("torchvision.io").encode_jpeg
    except Exception as exc:  # not installed, or built for another torch/CUDA
        logger.info("JPEG is encoded on the CPU: torchvision is not usable (%s: %s)", type(exc).__name__, exc)
        return None

    def encode(pixels: np.ndarray, quality: int) -> bytes:
        on_device = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).cuda()
        with _DEVICE_JPEG_LOCK:
            data = encode_jpeg(on_device, quality=quality)
            return bytes(data.cpu().numpy())

    try:
        probe = encode(np.zeros((16, 16, 3), np.uint8), 90)
        if not probe.startswith(b"\xff\xd8"):
            raise RuntimeError(f"the probe is not a JPEG file (starts with {probe[:4]!r})")
    except Exception as exc:
        logger.warning("JPEG is encoded on the CPU: the GPU encoder failed a probe (%s: %s)",
                       type(exc).__name__, exc)
        return None
    logger.info("JPEG is encoded on the GPU (nvJPEG via torchvision)")
    return encode
