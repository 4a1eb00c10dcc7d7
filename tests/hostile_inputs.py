"""Hostile PNG and JPEG parts made in code, for the decode tests and the bad-input corpus."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from app.imaging import png_chunks


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_from_rows(width: int, height: int, depth: int, colour: int, idat: bytes,
                  extra: tuple[bytes, ...] = ()) -> bytes:
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    return png_chunks.SIGNATURE + header + b"".join(extra) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def rows_of(pixels: np.ndarray) -> bytes:
    """Filter type 0 scanlines of H x W x C pixels, 16-bit big-endian when uint16."""
    raw = pixels.astype(">u2" if pixels.dtype == np.uint16 else np.uint8).reshape(pixels.shape[0], -1)
    return b"".join(b"\x00" + row.tobytes() for row in raw)


def with_trailing_zeros(raw: bytes, extra: int) -> bytes:
    """A zlib stream of `raw` followed by `extra` (a multiple of 1 MiB) zero bytes, about 1000:1.

    One fully flushed block of a mebibyte of zeros, repeated: each copy stands alone, so the stream
    inflates as it claims (only its final checksum is wrong, and nothing here reads that far).
    """
    compressor = zlib.compressobj(9)
    head = compressor.compress(raw) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + block * (extra >> 20) + compressor.flush()


def ztxt_bomb(inflated: int) -> bytes:
    return chunk(b"zTXt", b"Comment\x00\x00" + with_trailing_zeros(b"", inflated))


def iccp(profile_zlib: bytes) -> bytes:
    return chunk(b"iCCP", b"ICC profile\x00\x00" + profile_zlib)
