"""The image codec where mutation testing (scripts/mutation, docs/TESTING.md) found it unpinned: the names
of the file types it refuses, the encoder's options and bounds, and exact pixel arithmetic at its edges."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.errors import BadImage, InvalidParameter, TooLarge, UnsupportedFormat
from app.imaging import encode, header, pixels
from app.imaging.decode import decode_image
from app.imaging.image import MAX_ICC_PROFILE_BYTES, DecodedImage, finish_upscale, icc_for
from model.synthetic import natural_like_image

ACCEPTED = "send a PNG, JPEG or WebP image"


@pytest.mark.parametrize(("data", "name"), [
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "AVIF"),
    (b"\x00\x00\x00\x1cftypavis\x00\x00\x00\x00", "AVIF"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIF or MP4"),
    (b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00", "HEIF or MP4"),
    (b'\xef\xbb\xbf \n<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
    (b"<!DOCTYPE html><html><body><SVG></SVG></body></html>", "SVG"),
    (b"<!DOCTYPE html><html></html>", "HTML or XML"),
    (b"<" + b" " * 508 + b"<svg", "HTML or XML"),  # "<svg" ends past the first 512 bytes, where we look
])
def test_known_file_types_we_do_not_take_are_named(data: bytes, name: str) -> None:
    with pytest.raises(UnsupportedFormat) as refused:
        header.sniff(data)
    assert str(refused.value) == f"{name} is not supported; {ACCEPTED}"


def colour(dtype: type[np.integer] = np.uint8) -> DecodedImage:
    rgb = natural_like_image(24, 32)
    return DecodedImage(rgb if dtype == np.uint8 else rgb.astype(np.uint16) * 257, None, False, None, "png")


def pillow(rgb: np.ndarray, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, fmt, **options)
    return out.getvalue()


def test_lossy_formats_are_written_at_the_quality_asked_webp_at_method_zero() -> None:
    image = colour()
    assert encode.encode_image(image, "jpeg") == pillow(image.rgb, "JPEG", quality=90)  # the default
    assert encode.encode_image(image, "jpeg", quality=40) == pillow(image.rgb, "JPEG", quality=40)
    assert encode.encode_image(image, "webp", quality=40) == pillow(image.rgb, "WEBP", quality=40, method=0)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_sixteen_bit_colour_is_written_in_the_format_asked(fmt: str) -> None:
    """Only PNG keeps 16 bits; JPEG and WebP get the 8-bit image, never a 16-bit PNG."""
    wide = colour(np.uint16)
    assert encode.encode_image(wide, fmt) == encode.encode_image(colour(), fmt)


def test_quality_is_one_to_one_hundred_and_the_formats_are_named() -> None:
    for quality in (1, 100):
        assert encode.encode_image(colour(), "jpeg", quality=quality).startswith(b"\xff\xd8")
    for quality in (0, 101):
        with pytest.raises(InvalidParameter) as refused:
            encode.encode_image(colour(), "jpeg", quality=quality)
        assert str(refused.value) == f"quality must be between 1 and 100, not {quality}"
    with pytest.raises(InvalidParameter) as unknown:
        encode.encode_image(colour(), "gif")
    assert str(unknown.value) == "format must be one of png, jpeg, webp, not 'gif'"


WIDE = np.array([0, 127, 128, 129, 385, 386, 65407, 65408, 65535], np.uint16)
NARROW = np.array([0, 0, 0, 1, 1, 2, 255, 255, 255], np.uint8)


def test_sixteen_to_eight_bits_rounds_to_the_nearest_level() -> None:
    np.testing.assert_array_equal(pixels.to_uint8(WIDE), NARROW)


def test_sixteen_to_eight_bits_covers_every_row_of_any_shape() -> None:
    """Strips are rows: a tall image (more rows than a strip holds, fewer columns) and a single row."""
    tall = (2000, 100, 3)
    np.testing.assert_array_equal(pixels.to_uint8(np.resize(WIDE, tall)), np.resize(NARROW, tall))
    np.testing.assert_array_equal(pixels.to_uint8(np.full((1, 2, 3), 257, np.uint16)), np.ones((1, 2, 3)))
    assert pixels.to_uint8(np.zeros((0, 4, 3), np.uint16)).shape == (0, 4, 3)


def test_premultiplied_colour_is_rounded_colour_times_alpha() -> None:
    rgb = np.array([[[200, 255, 1]]], np.uint8)
    np.testing.assert_array_equal(pixels.premultiply(rgb, np.array([[128]], np.uint8)), [[[100, 128, 1]]])


def test_unpremultiplying_clips_overshoot_and_blacks_out_what_alpha_hides() -> None:
    """Colour above its alpha (model overshoot) is full intensity; where alpha is 0 colour is black,
    whatever the model left there; an alpha of 1 still divides."""
    rgb = np.array([[[100, 30, 1], [200, 0, 1], [1, 0, 1]]], np.uint8)
    alpha = np.array([[0, 100, 1]], np.uint8)
    np.testing.assert_array_equal(pixels.unpremultiply(rgb, alpha), [[[0, 0, 0], [255, 0, 3], [255, 0, 255]]])


def test_an_opaque_image_is_finished_with_the_models_output() -> None:
    image = colour()
    upscaled = natural_like_image(48, 64)
    finished = finish_upscale(image, upscaled, 2)
    np.testing.assert_array_equal(finished.rgb, upscaled)
    assert (finished.alpha, finished.source_format) == (None, "png")


def test_colour_above_its_alpha_is_clipped_in_place_when_writeable() -> None:
    """An x4 output is the largest array a request holds: clipped where it lies, copied only if read-only."""
    alpha = np.full((1, 1), 100, np.uint8)
    image = DecodedImage(np.zeros((1, 1, 3), np.uint8), alpha, False, None, "png")
    upscaled = np.full((2, 2, 3), 150, np.uint8)
    finished = finish_upscale(image, upscaled, 2)
    assert np.shares_memory(finished.rgb, upscaled)
    np.testing.assert_array_equal(upscaled, np.full((2, 2, 3), 100))
    read_only = np.full((2, 2, 3), 150, np.uint8)
    read_only.flags.writeable = False
    np.testing.assert_array_equal(finish_upscale(image, read_only, 2).rgb, np.full((2, 2, 3), 100))


def profile(space: bytes, size: int = 128) -> bytes:
    return bytes(16) + space + bytes(size - 20)


def test_icc_profiles_are_kept_for_their_colour_space_up_to_the_size_limit() -> None:
    gray, rgb = profile(b"GRAY"), profile(b"RGB ")
    assert [icc_for(gray, channels) for channels in (1, 2, 3, 4)] == [gray, gray, None, None]
    assert [icc_for(rgb, channels) for channels in (1, 2, 3, 4)] == [None, None, rgb, rgb]
    largest = profile(b"RGB ", MAX_ICC_PROFILE_BYTES)
    assert icc_for(largest, 3) == largest
    assert icc_for(profile(b"RGB ", MAX_ICC_PROFILE_BYTES + 1), 3) is None


def test_a_decoded_image_with_alpha_is_premultiplied() -> None:
    rgba = np.array([[[200, 100, 50, 128], [10, 20, 30, 255]]], np.uint8)
    decoded = decode_image(pillow(rgba, "PNG"), max_pixels=100)
    np.testing.assert_array_equal(decoded.rgb, [[[100, 50, 25], [10, 20, 30]]])
    np.testing.assert_array_equal(decoded.alpha, [[128, 255]])


def test_a_cut_file_names_its_format_whether_cut_in_its_header_or_after_it() -> None:
    data = pillow(natural_like_image(128, 128), "JPEG")
    in_header, after_it = len(data) // 20, len(data) * 2 // 3
    for cut, why in ((in_header, "cannot identify image file"), (after_it, "image file is truncated")):
        with pytest.raises(BadImage) as refused:
            decode_image(data[:cut], max_pixels=128 * 128)
        assert str(refused.value).startswith(f"the JPEG data could not be decoded: {why}")


def test_headers_of_jpeg_and_webp_give_size_alpha_and_depth() -> None:
    rgb = natural_like_image(16, 24)
    rgba = np.dstack([rgb, np.full((16, 24), 128, np.uint8)])
    for pixels_, fmt, alpha in ((rgb, "jpeg", False), (rgb, "webp", False), (rgba, "webp", True)):
        read = header.read_header(pillow(pixels_, fmt.upper()), max_pixels=384)
        assert read == header.ImageHeader(fmt, 24, 16, alpha, 1)


def test_a_jpeg_may_have_a_hundred_scans() -> None:
    data = pillow(natural_like_image(16, 24), "JPEG")
    scans = data.count(b"\xff\xda")
    assert header.read_header(data + b"\xff\xda" * (100 - scans), max_pixels=384).format == "jpeg"
    with pytest.raises(TooLarge) as refused:
        header.read_header(data + b"\xff\xda" * (101 - scans), max_pixels=384)
    assert str(refused.value) == ("the JPEG has 101 scans; at most 100 are decoded "
                                  "(a progressive JPEG usually has about ten)")


def test_a_riff_file_that_is_not_webp_is_not_an_image() -> None:
    with pytest.raises(BadImage) as refused:
        header.sniff(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    assert str(refused.value) == f"the data is not an image; {ACCEPTED}"


def test_the_pixel_limit_is_named_with_the_image_size(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TooLarge) as refused:
        header.check_pixel_count((10, 20), 100)
    assert str(refused.value) == "the image is 10x20 = 200 pixels; the limit is 100"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own limit switched off: ours holds
    with pytest.raises(TooLarge, match=r"the limit is 100$"):
        header.check_pixel_count((10, 20), 100)
