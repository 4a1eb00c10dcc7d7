"""Image bytes -> DecodedImage: format sniffing, limits checked from the header, modes and orientation."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, PngImagePlugin

from app.errors import BadImage, TooLarge, UnsupportedFormat
from app.imaging import pixels, png16, png_chunks
from app.imaging.header import ACCEPTED, PILLOW_ERRORS, read_header
from app.imaging.image import MAX_ICC_PROFILE_BYTES, PILLOW_NAMES, DecodedImage, icc_for

# Pillow's process-wide limits, stated here rather than inherited. A truncated image is an error, not a
# partly grey picture. Text chunks never reach Pillow (`png_chunks.checked` drops them), but an iCCP
# profile is inflated under the text-chunk limit, which needs room above the ICC limit.
ImageFile.LOAD_TRUNCATED_IMAGES = False
PngImagePlugin.MAX_TEXT_CHUNK = 2 * MAX_ICC_PROFILE_BYTES
PngImagePlugin.MAX_TEXT_MEMORY = 2 * MAX_ICC_PROFILE_BYTES


def decode_image(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode PNG, JPEG or WebP bytes; raise BadImage, UnsupportedFormat or TooLarge for what we refuse.

    The header is checked first (`header.read_header`); a PNG's chunks are then bounded and reduced to
    what decoding needs (`png_chunks.checked`) before any decoder sees them.
    """
    header = read_header(data, max_pixels=max_pixels)
    if header.png is not None:
        data = png_chunks.checked(data, header.png)
    try:
        with Image.open(io.BytesIO(data), formats=[PILLOW_NAMES[header.format]]) as image:
            _check_single_frame(image, header.format)
            if header.png is not None and png16.needs_png16(header.png, "transparency" in image.info):
                channels, grayscale = png16.read_png16(data, header.png)
            else:
                channels, grayscale = _pillow_pixels(image)
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            icc_profile = image.info.get("icc_profile") or None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge(f"the image has too many pixels to decode safely: {exc}") from exc
    except (*PILLOW_ERRORS, *png16.DECODE_ERRORS) as exc:
        raise BadImage(f"the {header.format.upper()} data could not be decoded: {exc}") from exc
    return _assemble(pixels.upright(channels, orientation), grayscale, icc_profile, header.format)


def read_image_file(path: str | os.PathLike[str], *, max_pixels: int) -> DecodedImage:
    """`decode_image` on a file's bytes, for the CLI. OSError from reading the file propagates; decode
    errors carry the same message as over HTTP (the caller names the file)."""
    return decode_image(Path(path).read_bytes(), max_pixels=max_pixels)


def _check_single_frame(image: Image.Image, source_format: str) -> None:
    if source_format != "jpeg" and getattr(image, "n_frames", 1) > 1:
        raise UnsupportedFormat(f"animated images are not supported; send a single frame as {ACCEPTED}")


def _pillow_pixels(image: Image.Image) -> tuple[np.ndarray, bool]:
    """Decode to (H x W x C pixels, is_grey), C being 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA)."""
    grayscale = image.mode in ("1", "L", "LA", "I;16")
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    if image.mode == "I;16":  # with a transparency key it went to png16 instead
        target = "I;16"
    else:
        target = ("LA" if has_alpha else "L") if grayscale else ("RGBA" if has_alpha else "RGB")
    channels = np.array(image if image.mode == target else image.convert(target))
    return (channels[..., None] if channels.ndim == 2 else channels), grayscale


def _assemble(channels: np.ndarray, grayscale: bool, icc_profile: bytes | None, fmt: str) -> DecodedImage:
    has_alpha = channels.shape[2] in (2, 4)
    colour = channels[..., : channels.shape[2] - has_alpha]
    rgb = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else np.ascontiguousarray(colour)
    alpha = np.ascontiguousarray(channels[..., -1]) if has_alpha else None
    return DecodedImage(
        rgb=rgb if alpha is None else pixels.premultiply(rgb, alpha),
        alpha=alpha,
        grayscale=grayscale,
        icc_profile=icc_for(icc_profile, channels.shape[2]),
        source_format=fmt,
    )
