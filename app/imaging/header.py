"""What an upload is, read from its first bytes and its header alone: format, size, alpha, bit depth.

`read_header` touches no pixel data, so a request's cost can be estimated (`app.limits.cost`) and
refused before anything is decoded. It raises what `decode_image` would for the same reasons:
UnsupportedFormat for file types we do not accept, BadImage for bytes that are not an image (or a JPEG
header too long to read, `jpeg_segments`), TooLarge for a pixel count over the limit or a JPEG with more
scans than `MAX_JPEG_SCANS`.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image

from app.errors import BadImage, TooLarge, UnsupportedFormat
from app.imaging import jpeg_segments, png_chunks
from app.imaging.image import PILLOW_NAMES

ACCEPTED = "PNG, JPEG or WebP"
# What malformed data makes Pillow raise; anything else is a bug, a 500.
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error, zlib.error)
# Every scan of a progressive JPEG is a pass over the whole image: a few kilobytes of upload can hold
# thousands of them. Encoders write about ten; the bound keeps decoding to a small multiple of that.
MAX_JPEG_SCANS = 100
_START_OF_SCAN = b"\xff\xda"
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


@dataclass(frozen=True)
class ImageHeader:
    """An upload's format and size, and the worst case of what decoding it yields (`alpha`: it may
    decode with an alpha channel; `sample_bytes`: 1 for 8-bit samples, 2 for 16-bit)."""

    format: str  # "png" | "jpeg" | "webp"
    width: int
    height: int
    alpha: bool
    sample_bytes: int
    png: png_chunks.PngHeader | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(data: bytes, *, max_pixels: int) -> ImageHeader:
    """Format, size, alpha and depth of PNG, JPEG or WebP bytes, checked against `max_pixels` (and
    Pillow's decompression-bomb limit) from the header."""
    fmt = sniff(data)
    if fmt == "png":
        png = png_chunks.read_header(data)
        check_pixel_count((png.width, png.height), max_pixels)
        # tRNS comes before the first IDAT; a match inside another chunk only overestimates.
        has_key = data.find(b"tRNS", 33, max(data.find(b"IDAT"), 33)) >= 0
        return ImageHeader("png", png.width, png.height, png.colour_type in (4, 6) or has_key,
                           2 if png.bit_depth == 16 else 1, png)
    if fmt == "jpeg":
        jpeg_segments.check_header(data)
        if (scans := data.count(_START_OF_SCAN)) > MAX_JPEG_SCANS:
            raise TooLarge(f"the JPEG has {scans} scans; at most {MAX_JPEG_SCANS} are decoded "
                           "(a progressive JPEG usually has about ten)")
    try:
        with Image.open(io.BytesIO(data), formats=[PILLOW_NAMES[fmt]]) as image:
            check_pixel_count(image.size, max_pixels)
            alpha = "A" in image.getbands() or "transparency" in image.info
            return ImageHeader(fmt, image.width, image.height, alpha, 1)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge(f"the image has too many pixels to decode safely: {exc}") from exc
    except PILLOW_ERRORS as exc:
        raise BadImage(f"the {fmt.upper()} data could not be decoded: {exc}") from exc


def sniff(data: bytes) -> str:
    """Our format from the leading bytes, or the error that explains why we will not decode them."""
    if data.startswith(png_chunks.SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    other = _known_other_type(data)
    if other is not None:
        raise UnsupportedFormat(f"{other} is not supported; send a {ACCEPTED} image")
    raise BadImage(f"the data is not an image; send a {ACCEPTED} image")


def check_pixel_count(size: tuple[int, int], max_pixels: int) -> None:
    limit = max_pixels if Image.MAX_IMAGE_PIXELS is None else min(max_pixels, Image.MAX_IMAGE_PIXELS)
    width, height = size
    if width * height > limit:
        raise TooLarge(f"the image is {width}x{height} = {width * height} pixels; the limit is {limit}")


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
