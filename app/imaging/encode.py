"""DecodedImage -> PNG, JPEG or WebP bytes, in the input's mode and bit depth where the format allows."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.errors import InvalidParameter
from app.imaging import pixels, png16
from app.imaging.image import MEDIA_TYPES, PILLOW_NAMES, DecodedImage, icc_for

# zlib level for PNG output. An upscaled output has scale^2 times the input's pixels, and encoding it is
# the CPU's largest job per request; level 1 takes well under half the time of Pillow's default 6 for a
# slightly larger file, and on a GPU the service is CPU-bound on exactly this (docs/BENCHMARKS.md, GPU
# benchmark), so the fast level wins.
PNG_COMPRESS_LEVEL = 1


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
    options: dict[str, object] = (
        {"compress_level": PNG_COMPRESS_LEVEL} if fmt == "png" else {"quality": quality}
    )
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
