"""The image codec: every mode round-trips, alpha has no fringes, bad input is a 4xx error, never a 500."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageOps

from app.errors import BadImage, InvalidParameter, ServiceError, TooLarge, UnsupportedFormat
from app.imaging.decode import decode_image, read_image_file
from app.imaging.encode import encode_image
from app.imaging.image import DecodedImage, finish_upscale, guess_format_from_name

MAX_PIXELS = 1_000_000
PIL_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def gradient(mode: str, width: int = 24, height: int = 16) -> Image.Image:
    """A patterned test image in `mode`, different along both axes so rotations are visible; alpha, if any,
    goes from transparent to opaque along x."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.dstack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256])
    image = Image.fromarray(rgb.astype(np.uint8)).convert(mode)
    if "A" in mode:
        image.putalpha(Image.fromarray((x * 255 // max(width - 1, 1)).astype(np.uint8)))
    return image


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, PIL_NAMES.get(fmt, fmt), **options)
    return out.getvalue()


def decode(data: bytes) -> DecodedImage:
    return decode_image(data, max_pixels=MAX_PIXELS)


def reopen(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def fake_model(decoded: DecodedImage, scale: int = 4) -> np.ndarray:
    """Stand-in for the network: bicubic upscaling of the (premultiplied) RGB array."""
    image = Image.fromarray(decoded.rgb)
    return np.array(image.resize((decoded.width * scale, decoded.height * scale), Image.Resampling.BICUBIC))


def noise(width: int, height: int) -> Image.Image:
    """Incompressible pixels, so that a cut through the file is a cut through the pixel data."""
    return Image.fromarray(np.random.default_rng(width).integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_with_garbage_pixels(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height, followed by pixel data that cannot be decompressed."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", b"not zlib") + png_chunk(b"IEND", b"")


def pypng_bytes(pixels: np.ndarray, **options: object) -> bytes:
    """Encode H x W x C uint16 pixels with pypng, an encoder independent of the code under test."""
    height, width, channels = pixels.shape
    writer = png.Writer(
        width, height, greyscale=channels < 3, alpha=channels in (2, 4), bitdepth=16, **options
    )
    out = io.BytesIO()
    writer.write(out, pixels.reshape(height, -1))
    return out.getvalue()


def pypng_pixels(data: bytes) -> tuple[np.ndarray, dict[str, object]]:
    width, height, rows, info = png.Reader(bytes=data).read()
    flat = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return flat.reshape(height, width, -1), info


def case(
    mode: str, fmt: str, has_alpha: bool, grayscale: bool, outputs: dict[str, str], **options: object
) -> object:
    """A round-trip case: the input, what its decoding must say, and the mode each output format gets."""
    data = save(gradient(mode), fmt, **options)
    label = f"{mode}{'+transparency' if options else ''} {fmt}"
    return pytest.param(data, has_alpha, grayscale, outputs, id=label)


RGB_OUT = {"png": "RGB", "jpeg": "RGB", "webp": "RGB"}
RGBA_OUT = {"png": "RGBA", "jpeg": "RGB", "webp": "RGBA"}


@pytest.mark.parametrize(
    ("data", "has_alpha", "grayscale", "outputs"),
    [
        case("RGB", "png", False, False, RGB_OUT),
        case("RGB", "jpeg", False, False, RGB_OUT),
        case("RGB", "webp", False, False, RGB_OUT),
        case("RGB", "png", True, False, RGBA_OUT, transparency=(0, 0, 0)),
        case("RGBA", "png", True, False, RGBA_OUT),
        case("RGBA", "webp", True, False, RGBA_OUT),
        case("L", "png", False, True, {"png": "L", "jpeg": "L", "webp": "RGB"}),
        case("L", "jpeg", False, True, {"png": "L", "jpeg": "L"}),
        case("L", "png", True, True, {"png": "LA"}, transparency=0),
        case("LA", "png", True, True, {"png": "LA", "jpeg": "L", "webp": "RGBA"}),
        case("1", "png", False, True, {"png": "L"}),
        case("P", "png", False, False, RGB_OUT),
        case("P", "png", True, False, RGBA_OUT, transparency=0),
        case("CMYK", "jpeg", False, False, RGB_OUT),
    ],
)
def test_every_mode_round_trips(
    data: bytes, has_alpha: bool, grayscale: bool, outputs: dict[str, str]
) -> None:
    decoded = decode(data)
    assert (decoded.width, decoded.height) == (24, 16)
    assert decoded.rgb.shape == (16, 24, 3) and decoded.rgb.dtype == np.uint8
    assert decoded.rgb.flags.c_contiguous
    assert (decoded.alpha is not None) == has_alpha
    assert decoded.grayscale == grayscale
    for fmt, mode in outputs.items():
        output = reopen(encode_image(decoded, fmt))
        assert (output.format, output.mode, output.size) == (PIL_NAMES[fmt], mode, (24, 16))


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA"])
def test_png_round_trip_keeps_pixels(mode: str) -> None:
    source = gradient(mode)
    if mode in ("LA", "RGBA"):  # opaque alpha: premultiplying is then exact
        source.putalpha(255)
    output = reopen(encode_image(decode(save(source, "png")), "png"))
    assert np.array_equal(np.asarray(output), np.asarray(source))


def test_palette_transparency_becomes_alpha() -> None:
    source = gradient("P")
    transparent_index = source.getpixel((0, 0))
    decoded = decode(save(source, "png", transparency=transparent_index))
    assert decoded.alpha is not None and decoded.alpha[0, 0] == 0 and decoded.alpha.max() == 255


def test_cmyk_colours_convert_to_rgb() -> None:
    decoded = decode(save(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), "jpeg", quality=100))
    assert np.abs(decoded.rgb.astype(int) - (0, 255, 255)).max() <= 2


def test_one_bit_becomes_grey() -> None:
    decoded = decode(save(Image.new("1", (8, 8), 1), "png"))
    assert decoded.grayscale and decoded.rgb.min() == 255


def test_gray16_png_round_trips_at_16_bits() -> None:
    values = (np.arange(16 * 24, dtype=np.uint16).reshape(16, 24) * 170).astype(np.uint16)
    decoded = decode(save(Image.fromarray(values), "png"))
    assert decoded.rgb.dtype == np.uint16 and decoded.grayscale
    output = reopen(encode_image(decoded, "png"))
    assert output.mode == "I;16" and np.array_equal(np.asarray(output), values)


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True])
def test_png16_with_colour_or_alpha_round_trips_at_16_bits(channels: int, interlace: bool) -> None:
    values = np.random.default_rng(channels).integers(0, 65536, (9, 13, channels), dtype=np.uint16)
    values[..., -1] = 65535 if channels in (2, 4) else values[..., -1]  # opaque, so premultiplying is exact
    decoded = decode(pypng_bytes(values, interlace=interlace))
    assert decoded.rgb.dtype == np.uint16 and decoded.grayscale == (channels == 2)
    output, info = pypng_pixels(encode_image(decoded, "png"))
    assert info["bitdepth"] == 16 and np.array_equal(output, values)


def test_png16_transparency_key_becomes_alpha() -> None:
    values = np.full((4, 5, 3), 1000, dtype=np.uint16)
    values[0, 0] = (7, 8, 9)
    decoded = decode(pypng_bytes(values, transparent=(7, 8, 9)))
    assert decoded.alpha is not None and decoded.alpha[0, 0] == 0 and decoded.alpha[1, 1] == 65535


def test_png16_output_is_readable_by_pillow_and_keeps_the_profile() -> None:
    values = np.random.default_rng(0).integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    decoded = decode(pypng_bytes(values))
    image = DecodedImage(decoded.rgb, None, False, SRGB_PROFILE, "png")
    output = reopen(encode_image(image, "png"))
    output.load()
    assert output.size == (7, 6) and output.info["icc_profile"] == SRGB_PROFILE


def zlib_level_of_first_idat(png_bytes: bytes) -> int:
    """The FLEVEL field of the first IDAT chunk's zlib header: 0 is zlib's fastest levels (0-1), 2 level 6."""
    offset = 8
    while offset < len(png_bytes):
        (length,) = struct.unpack(">I", png_bytes[offset : offset + 4])
        if png_bytes[offset + 4 : offset + 8] == b"IDAT":
            return png_bytes[offset + 9] >> 6
        offset += 12 + length
    raise AssertionError("no IDAT chunk")


@pytest.mark.parametrize("deep", [False, True])
def test_png_output_uses_zlibs_fast_level(deep: bool) -> None:
    # x4 outputs are large and encoding them is the service's main CPU cost: level 1, not Pillow's 6.
    values = np.random.default_rng(0).integers(0, 65536 if deep else 256, (40, 30, 3))
    pixels = values.astype(np.uint16 if deep else np.uint8)
    encoded = encode_image(DecodedImage(pixels, None, False, None, "png"), "png")
    assert zlib_level_of_first_idat(encoded) == 0
    default_level = pypng_bytes(pixels) if deep else save(Image.fromarray(pixels), "png")
    assert zlib_level_of_first_idat(default_level) != 0  # the measure tells the levels apart
    assert np.array_equal(decode(encoded).rgb, pixels)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_16_bit_input_is_quantised_for_lossy_formats(fmt: str) -> None:
    values = np.full((8, 8, 3), 257 * 200, dtype=np.uint16)
    output = reopen(encode_image(decode(pypng_bytes(values)), fmt))
    assert output.mode == "RGB" and np.abs(np.asarray(output).astype(int) - 200).max() <= 2


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = save(gradient("RGB"), "png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(reopen(data)))
    assert np.array_equal(decode(data).rgb, expected)


def test_jpeg_orientation_6_swaps_width_and_height() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode(save(gradient("RGB", 40, 20), "jpeg", exif=exif))
    assert (decoded.width, decoded.height) == (20, 40)
    assert reopen(encode_image(decoded, "jpeg")).size == (20, 40)


@pytest.mark.parametrize("source_fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("output_fmt", ["png", "jpeg", "webp"])
def test_icc_profile_is_carried(source_fmt: str, output_fmt: str) -> None:
    decoded = decode(save(gradient("RGB"), source_fmt, icc_profile=SRGB_PROFILE))
    assert decoded.icc_profile == SRGB_PROFILE
    upscaled = finish_upscale(decoded, fake_model(decoded), 4)
    assert reopen(encode_image(upscaled, output_fmt)).info.get("icc_profile") == SRGB_PROFILE


def test_icc_profile_for_another_colour_space_is_dropped() -> None:
    cmyk_profile = SRGB_PROFILE[:16] + b"CMYK" + SRGB_PROFILE[20:]
    assert decode(save(gradient("RGB"), "png", icc_profile=cmyk_profile)).icc_profile is None


def test_alpha_edges_keep_their_colour() -> None:
    """An opaque red square on transparent black: upscaled edge pixels must stay red, not darken."""
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[4:12, 4:12] = (255, 0, 0, 255)
    decoded = decode(save(Image.fromarray(rgba), "png"))
    output = np.asarray(reopen(encode_image(finish_upscale(decoded, fake_model(decoded), 4), "png")))
    assert output.shape == (64, 64, 4)
    visible = output[..., 3] >= 16
    edges = visible & (output[..., 3] < 255)
    assert edges.sum() > 50
    assert output[visible, 0].min() >= 240 and output[visible, 1:3].max() <= 15


def test_jpeg_output_composites_alpha_on_white() -> None:
    rgba = np.zeros((8, 16, 4), dtype=np.uint8)
    rgba[:, 8:] = (255, 0, 0, 255)
    output = np.asarray(reopen(encode_image(decode(save(Image.fromarray(rgba), "png")), "jpeg", quality=100)))
    assert output[:, :4].min() >= 250
    assert np.abs(output[:, 12:].astype(int) - (255, 0, 0)).max() <= 8


def test_finish_upscale_keeps_metadata_and_upscales_alpha() -> None:
    decoded = decode(save(gradient("LA"), "png", icc_profile=SRGB_PROFILE[:16] + b"GRAY" + SRGB_PROFILE[20:]))
    upscaled = finish_upscale(decoded, fake_model(decoded, 2), 2)
    assert (upscaled.width, upscaled.height) == (48, 32)
    assert upscaled.alpha is not None and upscaled.alpha.shape == (32, 48)
    assert upscaled.grayscale and upscaled.icc_profile == decoded.icc_profile
    assert reopen(encode_image(upscaled, "png")).mode == "LA"


def test_finish_upscale_rejects_output_of_the_wrong_shape() -> None:
    decoded = decode(save(gradient("RGB"), "png"))
    with pytest.raises(ValueError, match="expected"):
        finish_upscale(decoded, fake_model(decoded, 2), 4)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_animated_images_are_refused(fmt: str) -> None:
    frames = [gradient("RGB"), gradient("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    data = save(frames[0], fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedFormat, match="animated images are not supported"):
        decode(data)


def test_mpo_uses_its_primary_image() -> None:
    red, black = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8))
    decoded = decode(save(red, "MPO", save_all=True, append_images=[black]))
    assert decoded.source_format == "jpeg" and decoded.rgb[..., 0].min() > 200


@pytest.mark.parametrize(
    "data",
    [
        save(gradient("RGB"), "GIF"),
        save(gradient("RGB"), "GIF", save_all=True, append_images=[gradient("L")]),
        save(gradient("RGB"), "BMP"),
        save(gradient("RGB"), "TIFF"),
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b"\xef\xbb\xbf  <svg width='1' height='1'></svg>",
        b"<!DOCTYPE html><html><body>hello</body></html>",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    ],
    ids=["gif", "animated-gif", "bmp", "tiff", "svg", "svg-bom", "html", "pdf"],
)
def test_other_known_types_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat, match="PNG, JPEG or WebP"):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        np.random.default_rng(1).bytes(4096),
        b"just some text",
        save(noise(64, 64), "png")[:1200],
        save(noise(64, 64), "jpeg")[:1600],
        save(noise(64, 64), "webp")[:240],
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
        b"\xff\xd8\xff\xe0" + b"\x00" * 40,
        png_with_garbage_pixels(4, 4),
    ],
    ids=[
        "empty",
        "random",
        "text",
        "truncated-png",
        "truncated-jpeg",
        "truncated-webp",
        "png-magic",
        "jpeg-magic",
        "corrupt-pixels",
    ],
)
def test_undecodable_bytes_are_bad_images(data: bytes) -> None:
    with pytest.raises(BadImage):
        decode(data)


def test_pixel_limit_is_checked_before_pixel_data_is_read() -> None:
    """The pixel data is corrupt, so TooLarge (not BadImage) shows that only the header was read."""
    with pytest.raises(TooLarge, match="1001x1000"):
        decode_image(png_with_garbage_pixels(1001, 1000), max_pixels=1_000_000)
    decode_image(save(gradient("RGB", 1000, 1), "png"), max_pixels=1000)


def test_decompression_bomb_is_too_large() -> None:
    with pytest.raises(TooLarge):
        decode_image(png_with_garbage_pixels(100_000, 100_000), max_pixels=10**12)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_limit_applies_even_above_max_pixels() -> None:
    """Between one and two times Pillow's limit, Pillow only warns: the codec must still refuse."""
    side = int(Image.MAX_IMAGE_PIXELS**0.5 * 1.2) if Image.MAX_IMAGE_PIXELS else 10_000
    with pytest.raises(TooLarge):
        decode_image(png_with_garbage_pixels(side, side), max_pixels=10**12)


@pytest.mark.parametrize("size", [(1, 1), (1, 10_000), (10_000, 1)])
def test_extreme_shapes_decode(size: tuple[int, int]) -> None:
    decoded = decode(save(Image.new("RGB", size, (10, 20, 30)), "png"))
    assert (decoded.width, decoded.height) == size
    assert reopen(encode_image(decoded, "png")).size == size


@settings(max_examples=25, deadline=None)
@given(
    width=st.integers(1, 40),
    height=st.integers(1, 40),
    fmt=st.sampled_from(["png", "jpeg", "webp"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_sizes_round_trip(width: int, height: int, fmt: str, seed: int) -> None:
    values = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    decoded = decode(save(Image.fromarray(values), fmt, quality=95))
    assert decoded.rgb.shape == (height, width, 3)
    output = reopen(encode_image(decoded, "png"))
    assert output.size == (width, height)
    if fmt == "png":
        assert np.array_equal(np.asarray(output), values)


VALID_INPUTS = [save(gradient("RGBA"), "png"), save(gradient("RGB"), "jpeg"), save(gradient("RGBA"), "webp")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(VALID_INPUTS),
    position=st.integers(0, 10_000),
    junk=st.binary(min_size=1, max_size=8),
)
def test_corrupted_inputs_raise_service_errors_only(source: bytes, position: int, junk: bytes) -> None:
    at = position % len(source)
    data = source[:at] + junk + source[at + len(junk) :]
    with contextlib.suppress(ServiceError):
        decode(data)


def test_encode_rejects_bad_parameters() -> None:
    decoded = decode(save(gradient("RGB"), "png"))
    with pytest.raises(InvalidParameter, match="format"):
        encode_image(decoded, "gif")
    with pytest.raises(InvalidParameter, match="quality"):
        encode_image(decoded, "jpeg", quality=0)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.png", "png"),
        ("b.JPG", "jpeg"),
        ("c.jpeg", "jpeg"),
        ("d.webp", "webp"),
        ("e.gif", None),
        ("f", None),
    ],
)
def test_guess_format_from_name(name: str, fmt: str | None) -> None:
    assert guess_format_from_name(name) == fmt


def test_read_image_file_decodes_files(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    good.write_bytes(save(gradient("RGB"), "png"))
    bad.write_bytes(b"nope")
    assert read_image_file(good, max_pixels=MAX_PIXELS).width == 24
    with pytest.raises(BadImage):
        read_image_file(bad, max_pixels=MAX_PIXELS)
