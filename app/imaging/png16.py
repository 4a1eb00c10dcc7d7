"""16-bit PNG pixels that Pillow cannot hold: colour, grey + alpha, or a transparent-colour key.

Pillow's 16-bit support stops at single-channel grey (mode I;16): it decodes 16-bit RGB, RGBA and LA to
8 bits. So these images are read with `pypng` (pure Python, seconds per megapixel for a PNG whose rows
use the Paeth filter: docs/BENCHMARKS.md, finding 3; which is why the common 8-bit and grey 16-bit cases
stay with Pillow) and written here directly. Writing is simple enough to do with numpy and zlib, and
fast, because the "Up" filter is a whole-array subtraction.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import png

SIGNATURE = b"\x89PNG\r\n\x1a\n"

# PNG colour type for 1 (grey), 2 (grey + alpha), 3 (RGB) and 4 (RGBA) channels.
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_FILTER_UP = 2


def needs_png16(data: bytes, has_transparency_key: bool) -> bool:
    """True when `data` (a PNG Pillow has already opened) is 16-bit and not plain grey.

    Bit depth and colour type are the 9th and 10th bytes of IHDR, which the PNG spec puts first. Pillow
    tolerates it elsewhere; such a malformed file is left to Pillow, at 8 bits.
    """
    if data[12:16] != b"IHDR":
        return False
    bit_depth, colour_type = data[24], data[25]
    return bit_depth == 16 and (colour_type != 0 or has_transparency_key)


# Decoding here is pure Python and holds the GIL for seconds per megapixel (docs/BENCHMARKS.md, finding
# 3): bounded so that one small upload cannot occupy a server for tens of seconds.
MAX_PIXELS = 1024 * 1024


def read_png16(data: bytes) -> tuple[np.ndarray, bool]:
    """Decode to (H x W x C uint16 pixels, is_grey); a tRNS colour key becomes an alpha channel.

    Uses `Reader.read`, not `asDirect`, because the latter rescales values to an sBIT depth.
    """
    width, height, rows, info = png.Reader(bytes=data).read()
    flat = np.vstack([np.frombuffer(row, dtype=np.uint16) for row in rows])
    pixels = flat.reshape(height, width, info["planes"])
    key = info.get("transparent")
    if key is not None:
        opaque = np.any(pixels != np.asarray(key, dtype=np.uint16), axis=-1)
        pixels = np.dstack([pixels, np.where(opaque, np.uint16(65535), np.uint16(0))])
    return pixels, bool(info["greyscale"])


def write_png16(pixels: np.ndarray, icc_profile: bytes | None, compress_level: int = 6) -> bytes:
    """Encode H x W x C uint16 pixels (C = 1..4) as a 16-bit PNG, with the ICC profile when given;
    `compress_level` is zlib's (0-9)."""
    height, width, channels = pixels.shape
    rows = pixels.astype(">u2").reshape(height, -1).view(np.uint8)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = _FILTER_UP
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    header = struct.pack(">IIBBBBB", width, height, 16, _COLOUR_TYPES[channels], 0, 0, 0)
    chunks = [_chunk(b"IHDR", header)]
    if icc_profile is not None:
        # Profile name, NUL, compression method 0 (zlib), compressed profile.
        chunks.append(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
    chunks += [_chunk(b"IDAT", zlib.compress(filtered.tobytes(), compress_level)), _chunk(b"IEND", b"")]
    return SIGNATURE + b"".join(chunks)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)
