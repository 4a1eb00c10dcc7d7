"""Image bytes -> DecodedImage: format sniffing, limits checked from the header, modes and orientation."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import png
from PIL import ExifTags, Image

from app.errors import BadImage, TooLarge, UnsupportedFormat
from app.imaging import pixels, png16
from app.imaging.image import PILLOW_NAMES, DecodedImage, icc_for

_ACCEPTED = "PNG, JPEG or WebP"
_OTHER_SIGNATURES = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"%!PS", "PostScript"),
    (b"8BPS", "Photoshop"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)
# What malformed data makes Pillow's decoders raise (pypng's is png.Error); anything else is a bug, a 500.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error, zlib.error)


def decode_image(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode PNG, JPEG or WebP bytes; raise BadImage, UnsupportedFormat or TooLarge for what we refuse."""
    source_format = _sniff(data)
    try:
        with Image.open(io.BytesIO(data), formats=[PILLOW_NAMES[source_format]]) as image:
            _check_single_frame(image, source_format)
            _check_pixel_count(image.size, max_pixels)
            if source_format == "png" and png16.needs_png16(data, "transparency" in image.info):
                _check_pixel_count(image.size, min(max_pixels, png16.MAX_PIXELS))
                channels, grayscale = png16.read_png16(data)
            else:
                channels, grayscale = _pillow_pixels(image)
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            icc_profile = image.info.get("icc_profile") or None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge(f"the image has too many pixels to decode safely: {exc}") from exc
    except (*_DECODE_ERRORS, png.Error) as exc:
        raise BadImage(f"the {source_format.upper()} data could not be decoded: {exc}") from exc
    return _assemble(pixels.upright(channels, orientation), grayscale, icc_profile, source_format)


def read_image_file(path: str | os.PathLike[str], *, max_pixels: int) -> DecodedImage:
    """`decode_image` on a file's bytes, for the CLI. OSError from reading the file propagates; decode
    errors carry the same message as over HTTP (the caller names the file)."""
    return decode_image(Path(path).read_bytes(), max_pixels=max_pixels)


def _sniff(data: bytes) -> str:
    """Our format from the leading bytes, or the error that explains why we will not decode them."""
    if data.startswith(png16.SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    other = _known_other_type(data)
    if other is not None:
        raise UnsupportedFormat(f"{other} is not supported; send a {_ACCEPTED} image")
    raise BadImage(f"the data is not an image; send a {_ACCEPTED} image")


def _known_other_type(data: bytes) -> str | None:
    """Name a file type we recognise but do not accept, so the user gets 415 instead of 400."""
    for signature, name in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return name
    if data[4:8] == b"ftyp":
        return "AVIF" if data[8:12] in (b"avif", b"avis") else "HEIF or MP4"
    text = data[:512].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith(b"<"):
        return "SVG" if b"<svg" in text else "HTML or XML"
    return None


def _check_single_frame(image: Image.Image, source_format: str) -> None:
    if source_format != "jpeg" and getattr(image, "n_frames", 1) > 1:
        raise UnsupportedFormat(f"animated images are not supported; send a single frame as {_ACCEPTED}")


def _check_pixel_count(size: tuple[int, int], max_pixels: int) -> None:
    limit = max_pixels if Image.MAX_IMAGE_PIXELS is None else min(max_pixels, Image.MAX_IMAGE_PIXELS)
    width, height = size
    if width * height > limit:
        raise TooLarge(f"the image is {width}x{height} = {width * height} pixels; the limit is {limit}")


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
