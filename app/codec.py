"""Image bytes <-> pixel arrays for the model, shared by the CLI and the HTTP service.

Three synchronous calls (the service runs them in worker threads): `decode_image`, then the model upscales
`DecodedImage.rgb`, then `finish_upscale` and `encode_image`. Choices a caller can observe:

- Input: PNG, JPEG and WebP, told apart by their signature. Other known types (GIF, BMP, TIFF, SVG, HTML,
  PDF, HEIF, ...) raise UnsupportedFormat (415); bytes of no known type, empty or broken, raise BadImage
  (400).
- Animated PNG and WebP raise UnsupportedFormat: there is no single frame to upscale and picking one would
  silently drop the rest. An MPO (a JPEG with extra frames, as some cameras write) is not an animation: its
  primary image is used. GIF is rejected as a format, animated or not.
- Limits: the pixel count is checked from the header, before any pixel data is decompressed, against
  `max_pixels` and Pillow's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`, left as it is), both raising
  TooLarge. `Image.open` only warns between one and two times that limit; checking the same limit ourselves
  makes it an error without touching the process-wide warning filters, which are not thread-safe.
- EXIF orientation is applied; EXIF itself is not copied to the output (it may hold a location). An ICC
  profile is carried to the output when it describes the output's colour space (RGB or grey).
- Modes: grey (1-bit, L, 16-bit) stays grey and grey + alpha stays LA, except in WebP, which has no grey
  mode; palettes become RGB, or RGBA when they have transparency; CMYK becomes RGB (without colour
  management, and a CMYK profile is dropped).
- Alpha: `rgb` is premultiplied by alpha in every DecodedImage, so the model never spreads the colour of
  invisible pixels into visible ones; `encode_image` un-premultiplies. JPEG has no alpha: such images are
  composited on white.
- Bit depth: 16-bit PNGs decode to uint16 arrays and encode back to 16-bit PNG (grey, grey + alpha, RGB,
  RGBA; all but plain grey through `app.png16`, as Pillow holds those at 8 bits only); JPEG and WebP output
  is rounded to 8 bits.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import png
from PIL import ExifTags, Image

from app import pixels, png16
from app.errors import BadImage, InvalidParameter, TooLarge, UnsupportedFormat

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

_ACCEPTED = "PNG, JPEG or WebP"
_PILLOW_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# zlib level for PNG output. A x4 output has 16x the input's pixels, and encoding it is the CPU's
# largest job per request: on the dev machine a 1024^2 photo took 393 ms at Pillow's default level 6 and
# 164 ms at level 1, for a file 10 % larger. On the GPU the service was CPU-bound on exactly this
# (docs/BENCHMARKS.md, "GPU"), so the fast level wins; /compare's PNGs already used it.
PNG_COMPRESS_LEVEL = 1
_SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".webp": "webp"}
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


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """Pixels ready for the model, plus what is needed to encode them back like the input."""

    rgb: np.ndarray  # H x W x 3, uint8 or uint16, C-contiguous; premultiplied by alpha when alpha is not None
    alpha: np.ndarray | None  # H x W, same dtype as rgb
    grayscale: bool  # written back as L / LA / 16-bit grey where the output format allows
    icc_profile: bytes | None
    source_format: str  # "png" | "jpeg" | "webp"

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def decode_image(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode PNG, JPEG or WebP bytes; raise BadImage, UnsupportedFormat or TooLarge for what we refuse."""
    source_format = _sniff(data)
    try:
        with Image.open(io.BytesIO(data), formats=[_PILLOW_NAMES[source_format]]) as image:
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


def finish_upscale(decoded: DecodedImage, sr_rgb: np.ndarray, scale: int) -> DecodedImage:
    """Combine the model's output with the rest of `decoded`: alpha upscaled bicubically, grey flag and ICC
    profile kept. `sr_rgb` is the model's H*scale x W*scale x 3 output for `decoded.rgb`, same dtype.

    The result stays premultiplied; colour above its alpha (model overshoot) is clipped to the alpha.
    """
    expected = (decoded.height * scale, decoded.width * scale, 3)
    if sr_rgb.shape != expected or sr_rgb.dtype != decoded.rgb.dtype:
        raise ValueError(
            f"model output is {sr_rgb.shape} {sr_rgb.dtype}, expected {expected} {decoded.rgb.dtype}"
        )
    if decoded.alpha is None:
        return replace(decoded, rgb=np.ascontiguousarray(sr_rgb))
    alpha = pixels.upscale_alpha(decoded.alpha, scale)
    return replace(decoded, rgb=np.minimum(sr_rgb, alpha[..., None]), alpha=alpha)


def encode_image(image: DecodedImage, fmt: str, *, quality: int = 90) -> bytes:
    """Encode as `fmt` (png, jpeg, webp); `quality` (1-100) applies to jpeg and webp."""
    if fmt not in MEDIA_TYPES:
        raise InvalidParameter(f"format must be one of {', '.join(MEDIA_TYPES)}, not {fmt!r}")
    if not 1 <= quality <= 100:
        raise InvalidParameter(f"quality must be between 1 and 100, not {quality}")
    channels = _output_channels(image, fmt)
    icc_profile = _icc_for(image.icc_profile, channels.shape[2])
    if channels.dtype == np.uint16 and channels.shape[2] > 1:
        return png16.write_png16(channels, icc_profile, PNG_COMPRESS_LEVEL)
    options: dict[str, object] = (
        {"compress_level": PNG_COMPRESS_LEVEL} if fmt == "png" else {"quality": quality}
    )
    if icc_profile is not None:
        options["icc_profile"] = icc_profile
    out = io.BytesIO()
    Image.fromarray(channels[..., 0] if channels.shape[2] == 1 else channels).save(
        out, _PILLOW_NAMES[fmt], **options
    )
    return out.getvalue()


def guess_format_from_name(path: str | os.PathLike[str]) -> str | None:
    """The format a file name's suffix stands for ("png", "jpeg", "webp"), or None for any other suffix."""
    return _SUFFIX_FORMATS.get(Path(path).suffix.lower())


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
        icc_profile=_icc_for(icc_profile, channels.shape[2]),
        source_format=fmt,
    )


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


def _icc_for(icc_profile: bytes | None, channels: int) -> bytes | None:
    """The profile if its colour space (ICC header bytes 16-19) is the one of pixels with `channels`."""
    wanted = b"GRAY" if channels <= 2 else b"RGB "
    return icc_profile if icc_profile is not None and icc_profile[16:20] == wanted else None
