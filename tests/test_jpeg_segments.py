"""A JPEG header that would take Pillow's Python reader too many steps is refused before Pillow reads it."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.errors import BadImage
from app.imaging.decode import decode_image
from app.imaging.jpeg_segments import MAX_HEADER_STEPS
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
