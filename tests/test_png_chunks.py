"""PNG image data bounded by its header, metadata bounded, and 16-bit PNG decoded by compiled code."""

from __future__ import annotations

import functools
import io
import logging
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import imagecodecs
import numpy as np
import png
import pytest
from PIL import Image, ImageCms

from app.errors import BadImage, TooLarge
from app.imaging import png_chunks
from app.imaging.decode import decode_image
from app.imaging.header import MAX_JPEG_SCANS, read_header
from app.imaging.image import MAX_ICC_PROFILE_BYTES
from model.synthetic import natural_like_image
from tests.hostile_inputs import chunk, iccp, png_from_rows, rows_of, with_trailing_zeros, ztxt_bomb

MAX_PIXELS = 4096 * 4096
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def peak_traced_bytes(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
    except BadImage:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


DEEP = (natural_like_image(8, 8, 1).astype(np.uint16) * 257)


@pytest.mark.parametrize("colour", [2, 6])
def test_image_data_past_the_header_size_is_refused_without_inflating_it(colour: int) -> None:
    """The issue's attack: an 8x8 16-bit PNG whose zlib stream goes on for a gigabyte."""
    pixels = DEEP if colour == 2 else np.dstack([DEEP, DEEP[..., :1]])
    bomb = png_from_rows(8, 8, 16, colour, with_trailing_zeros(rows_of(pixels), 1 << 30))
    assert len(bomb) < 2_000_000
    with pytest.raises(BadImage, match="more than"):
        decode_image(bomb, max_pixels=MAX_PIXELS)
    assert peak_traced_bytes(lambda: decode_image(bomb, max_pixels=MAX_PIXELS)) < 8 << 20


def test_eight_bit_image_data_past_the_header_size_is_refused_too() -> None:
    bomb = png_from_rows(8, 8, 8, 2, with_trailing_zeros(rows_of(natural_like_image(8, 8)), 1 << 26))
    with pytest.raises(BadImage, match="more than"):
        decode_image(bomb, max_pixels=MAX_PIXELS)


def test_bytes_after_the_end_of_the_zlib_stream_are_refused() -> None:
    idat = zlib.compress(rows_of(natural_like_image(4, 4))) + b"trailing junk"
    with pytest.raises(BadImage, match="past the end"):
        decode_image(png_from_rows(4, 4, 8, 2, idat), max_pixels=MAX_PIXELS)


def test_a_second_zlib_stream_in_a_later_idat_is_refused() -> None:
    rows = rows_of(natural_like_image(4, 4))
    data = png_from_rows(4, 4, 8, 2, zlib.compress(rows))
    end = data.index(b"IEND") - 4
    doubled = data[:end] + chunk(b"IDAT", zlib.compress(rows)) + data[end:]
    with pytest.raises(BadImage, match="past the end"):
        decode_image(doubled, max_pixels=MAX_PIXELS)


def test_image_data_that_ends_early_is_refused() -> None:
    short = zlib.compress(rows_of(natural_like_image(4, 4))[:-3])
    with pytest.raises(BadImage, match="ends early"):
        decode_image(png_from_rows(4, 4, 8, 2, short), max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("second", [(4, 4, 8, 2), (8192, 8192, 16, 6)])
def test_a_second_ihdr_is_refused(second: tuple[int, int, int, int]) -> None:
    """The limits are checked against the first IHDR and Pillow decodes by the last: a second one, the same or
    one claiming 64 Mpx of 16-bit RGBA over a 4x4 image's data, must not reach it."""
    data = png_from_rows(4, 4, 8, 2, zlib.compress(rows_of(natural_like_image(4, 4))))
    width, height, depth, colour = second
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    first_idat = data.index(b"IDAT") - 4
    with pytest.raises(BadImage, match="more than one IHDR"):
        decode_image(data[:first_idat] + ihdr + data[first_idat:], max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("depth", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (9, 2), (17, 13)])
def test_interlaced_images_of_every_grey_depth_decode(depth: int, size: tuple[int, int]) -> None:
    """The expected size counts every Adam7 pass, with sub-byte rows rounded up."""
    width, height = size
    values = np.random.default_rng(depth).integers(0, 2**depth, (height, width), dtype=np.uint32)
    out = io.BytesIO()
    png.Writer(width, height, greyscale=True, bitdepth=depth, interlace=True).write(out, values.tolist())
    decoded = decode_image(out.getvalue(), max_pixels=MAX_PIXELS)
    assert (decoded.width, decoded.height) == size
    assert decoded.grayscale


def test_sixteen_bit_colour_above_a_megapixel_decodes_exactly() -> None:
    """Decoding is libpng's (compiled), so the pure-Python decoder's one-megapixel limit is gone."""
    pixels = np.random.default_rng(0).integers(0, 65536, (1100, 1000, 3), dtype=np.uint16)
    decoded = decode_image(bytes(imagecodecs.png_encode(pixels)), max_pixels=MAX_PIXELS)
    assert decoded.rgb.dtype == np.uint16
    assert np.array_equal(decoded.rgb, pixels)


def test_text_chunks_never_reach_a_decoder() -> None:
    """A zTXt chunk that inflates to a gigabyte is dropped unread, in the 8-bit and the 16-bit path."""
    for depth, pixels in ((8, natural_like_image(4, 4)), (16, DEEP[:4, :4])):
        data = png_from_rows(4, 4, depth, 2, zlib.compress(rows_of(pixels)), (ztxt_bomb(1 << 30),))
        decoded = decode_image(data, max_pixels=MAX_PIXELS)
        assert np.array_equal(decoded.rgb, pixels)
        assert peak_traced_bytes(functools.partial(decode_image, data, max_pixels=MAX_PIXELS)) < 8 << 20


def test_an_icc_profile_over_the_limit_is_dropped_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    huge = SRGB_PROFILE + bytes(MAX_ICC_PROFILE_BYTES)
    data = png_from_rows(4, 4, 8, 2, zlib.compress(rows_of(natural_like_image(4, 4))),
                         (iccp(zlib.compress(huge)),))
    with caplog.at_level(logging.INFO, logger="app.imaging.png_chunks"):
        decoded = decode_image(data, max_pixels=MAX_PIXELS)
    assert decoded.icc_profile is None
    assert "dropped an ICC profile" in caplog.text


def test_an_icc_profile_within_the_limit_is_kept() -> None:
    data = png_from_rows(4, 4, 8, 2, zlib.compress(rows_of(natural_like_image(4, 4))),
                         (iccp(zlib.compress(SRGB_PROFILE)),))
    assert decode_image(data, max_pixels=MAX_PIXELS).icc_profile == SRGB_PROFILE


def test_an_oversized_icc_profile_in_a_jpeg_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    out = io.BytesIO()
    Image.fromarray(natural_like_image(8, 8)).save(out, "JPEG", icc_profile=SRGB_PROFILE
                                                   + bytes(MAX_ICC_PROFILE_BYTES))
    with caplog.at_level(logging.INFO, logger="app.imaging.image"):
        assert decode_image(out.getvalue(), max_pixels=MAX_PIXELS).icc_profile is None
    assert "dropped an ICC profile" in caplog.text


def test_too_many_chunks_are_refused() -> None:
    padding = chunk(b"tEXt", b"a\x00b") * (png_chunks.MAX_CHUNKS + 1)
    data = png_from_rows(2, 2, 8, 2, zlib.compress(rows_of(natural_like_image(2, 2))), (padding,))
    with pytest.raises(BadImage, match="chunks"):
        decode_image(data, max_pixels=MAX_PIXELS)


def test_pixel_limit_comes_before_any_inflating() -> None:
    bomb = png_from_rows(5000, 5000, 16, 6, b"not even zlib")
    with pytest.raises(TooLarge):
        decode_image(bomb, max_pixels=4096 * 4096)


def test_a_jpeg_with_more_scans_than_the_limit_is_refused_from_its_header() -> None:
    out = io.BytesIO()
    Image.fromarray(natural_like_image(16, 16)).save(out, "JPEG", progressive=True)
    progressive = out.getvalue()
    assert decode_image(progressive, max_pixels=MAX_PIXELS).width == 16
    # A comment segment full of start-of-scan markers stands in for thousands of real scans: the bound
    # counts the markers wherever they are, before libjpeg reads any of them.
    comment = b"\xff\xda" * MAX_JPEG_SCANS
    padded = progressive[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + progressive[2:]
    with pytest.raises(TooLarge, match="scans"):
        read_header(padded, max_pixels=MAX_PIXELS)


@pytest.mark.parametrize(
    ("colour", "depth", "trns", "alpha", "sample_bytes"),
    [(2, 8, False, False, 1), (2, 16, False, False, 2), (6, 8, False, True, 1), (0, 16, True, True, 2),
     (3, 8, True, True, 1), (4, 16, False, True, 2)],
)
def test_header_says_alpha_and_depth_before_decoding(colour: int, depth: int, trns: bool, alpha: bool,
                                                     sample_bytes: int) -> None:
    extra: tuple[bytes, ...] = (chunk(b"PLTE", bytes(6)),) if colour == 3 else ()
    extra += (chunk(b"tRNS", b"\x00\x00"),) if trns else ()
    header = read_header(png_from_rows(7, 3, depth, colour, b"never read", extra), max_pixels=MAX_PIXELS)
    assert (header.width, header.height, header.alpha, header.sample_bytes) == (7, 3, alpha, sample_bytes)
