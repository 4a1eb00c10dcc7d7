"""16-bit PNG pixels that Pillow cannot hold: colour, grey + alpha, or a transparent-colour key.

Pillow's 16-bit support stops at single-channel grey (mode I;16): it decodes 16-bit RGB, RGBA and LA to
8 bits. So these images are read with libpng, through `imagecodecs` (compiled, well kept, BSD), after
`png_chunks.checked` has bounded their image data by the header: libpng itself would inflate whatever
data follows the image. Writing is simple enough to do with numpy and zlib, and fast, because the "Up"
filter is a whole-array subtraction.
"""

from __future__ import annotations

import struct
import zlib

import imagecodecs
import numpy as np

from app.imaging.pixels import STRIP_PIXELS
from app.imaging.png_chunks import SIGNATURE, PngHeader

# PNG colour type for 1 (grey), 2 (grey + alpha), 3 (RGB) and 4 (RGBA) channels.
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_FILTER_UP = 2
# What libpng (through imagecodecs) raises for malformed data; some of its messages fail to decode as
# UTF-8 and surface as UnicodeDecodeError, a ValueError.
DECODE_ERRORS = (imagecodecs.PngError, ValueError)


def needs_png16(header: PngHeader, has_transparency_key: bool) -> bool:
    """True when the PNG is 16-bit and not plain grey (which Pillow reads exactly)."""
    return header.bit_depth == 16 and (header.colour_type != 0 or has_transparency_key)


def read_png16(data: bytes, header: PngHeader) -> tuple[np.ndarray, bool]:
    """Decode checked PNG bytes (`png_chunks.checked`) to (H x W x C uint16 pixels, is_grey); a tRNS
    colour key becomes an alpha channel. libpng applies no gamma or sBIT scaling unless asked to."""
    pixels = imagecodecs.png_decode(data)
    return (pixels[..., None] if pixels.ndim == 2 else pixels), header.colour_type in (0, 4)


def write_png16(pixels: np.ndarray, icc_profile: bytes | None, compress_level: int = 6) -> bytes:
    """Encode H x W x C uint16 pixels (C = 1..4) as a 16-bit PNG, with the ICC profile when given;
    `compress_level` is zlib's (0-9). Rows are filtered and compressed a strip at a time, one IDAT chunk
    per strip, so the encoder holds the compressed output and one strip, not copies of the image."""
    height, width, channels = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, 16, _COLOUR_TYPES[channels], 0, 0, 0)
    parts = [SIGNATURE, _chunk(b"IHDR", header)]
    if icc_profile is not None:
        # Profile name, NUL, compression method 0 (zlib), compressed profile.
        parts.append(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
    compressor = zlib.compressobj(compress_level)
    above = np.zeros(width * channels * 2, np.uint8)  # the row before the strip; zeros above the first
    step = max(1, STRIP_PIXELS // width)
    for top in range(0, height, step):
        rows = pixels[top : top + step].astype(">u2").reshape(-1, width * channels).view(np.uint8)
        filtered = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.uint8)
        filtered[:, 0] = _FILTER_UP
        np.subtract(rows[0], above, out=filtered[0, 1:])
        np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
        above = rows[-1].copy()
        if compressed := compressor.compress(filtered.data):
            parts.append(_chunk(b"IDAT", compressed))
    parts += [_chunk(b"IDAT", compressor.flush()), _chunk(b"IEND", b"")]
    return b"".join(parts)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)
