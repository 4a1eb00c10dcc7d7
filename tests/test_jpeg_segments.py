"""A JPEG header that would cost Pillow's Python reader too much is refused before Pillow reads it."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from app.errors import BadImage
from app.imaging.decode import decode_image
from app.imaging.jpeg_segments import MAX_HEADER_STEPS, MAX_PARSED_BYTES
from model.synthetic import natural_like_image

MAX_PIXELS = 4096 * 4096
EMPTY_COMMENT = b"\xff\xfe\x00\x02"


def _jpeg(progressive: bool = False) -> bytes:
    out = io.BytesIO()
    Image.fromarray(natural_like_image(16, 16)).save(out, "JPEG", progressive=progressive)
    return out.getvalue()


def _before_first_table(padding: bytes) -> bytes:
    """`padding` between the JPEG's APP0 segment and its first quantisation table."""
    data = _jpeg()
    table = data.index(b"\xff\xdb")
    return data[:table] + padding + data[table:]


PADDED = {
    "fill_bytes": lambda count: _before_first_table(b"\xff" * count),
    "stray_bytes": lambda count: _before_first_table(b"\x00" * count),
    "empty_segments": lambda count: _before_first_table(EMPTY_COMMENT * count),
}


@pytest.mark.parametrize("kind", sorted(PADDED))
def test_a_header_over_the_step_limit_is_refused(kind: str) -> None:
    with pytest.raises(BadImage, match="steps to read"):
        decode_image(PADDED[kind](MAX_HEADER_STEPS + 1), max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("kind", sorted(PADDED))
def test_a_header_within_the_step_limit_decodes(kind: str) -> None:
    """Padding is legal JPEG: under the limit (with room for the image's own segments) it decodes."""
    assert decode_image(PADDED[kind](MAX_HEADER_STEPS - 16), max_pixels=MAX_PIXELS).width == 16


def test_segments_after_the_first_scan_are_left_to_libjpeg() -> None:
    """Only the header is Pillow's to read: the same number of segments between two scans of a
    progressive JPEG is not counted."""
    data = _jpeg(progressive=True)
    second_scan = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    padded = data[:second_scan] + EMPTY_COMMENT * (MAX_HEADER_STEPS + 1) + data[second_scan:]
    assert decode_image(padded, max_pixels=MAX_PIXELS).width == 16


def _segments(marker: bytes, prefix: bytes, total: int, unit: int = 1) -> bytes:
    """Full segments of `marker`, each `prefix` then zeros (a multiple of `unit` bytes), whose lengths add
    up to at least `total` bytes."""
    zeros = (0xFFFF - 2 - len(prefix)) // unit * unit
    segment = marker + struct.pack(">H", 2 + len(prefix) + zeros) + prefix + bytes(zeros)
    return segment * -(-total // (len(segment) - 2))


PARSED = {  # what Pillow takes apart in Python: quantisation tables (65 bytes each), EXIF, Photoshop
    "quantisation_tables": (b"\xff\xdb", b"", 65),
    "exif": (b"\xff\xe1", b"Exif\x00\x00", 1),
    "photoshop_resources": (b"\xff\xed", b"Photoshop 3.0\x00", 1),
}


@pytest.mark.parametrize("kind", sorted(PARSED))
def test_parsed_segments_over_the_byte_limit_are_refused(kind: str) -> None:
    marker, prefix, unit = PARSED[kind]
    with pytest.raises(BadImage, match="bytes of tables, EXIF and Photoshop"):
        decode_image(_before_first_table(_segments(marker, prefix, MAX_PARSED_BYTES + 1, unit)),
                     max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("kind", sorted(PARSED))
def test_parsed_segments_within_the_byte_limit_decode(kind: str) -> None:
    marker, prefix, unit = PARSED[kind]
    padded = _before_first_table(_segments(marker, prefix, MAX_PARSED_BYTES - 0x20000, unit))
    assert decode_image(padded, max_pixels=MAX_PIXELS).width == 16


def test_segments_pillow_only_stores_are_not_limited() -> None:
    """XMP (an APP1 that is not EXIF) and comments are kept as bytes, at C speed: twice the parsed-byte
    limit of them still decodes."""
    xmp = _segments(b"\xff\xe1", b"http://ns.adobe.com/xap/1.0/\x00", MAX_PARSED_BYTES)
    comments = _segments(b"\xff\xfe", b"", MAX_PARSED_BYTES)
    assert decode_image(_before_first_table(xmp + comments), max_pixels=MAX_PIXELS).width == 16
