"""A corpus of hostile and odd uploads, generated in code: each gets its honest status and a JSON error
(or a correct image), and the service stays healthy afterwards.

Most cases talk ASGI to an app with tiny weights; the slow upload needs a real socket, so it runs
against a real `srgan serve` subprocess with a short SRGAN_REQUEST_TIMEOUT_S.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image, ImageCms

from app.imaging.png16 import write_png16
from model.synthetic import natural_like_image
from tests.api_helpers import assert_error, png_bytes, running_client, upload
from tests.hostile_inputs import chunk, iccp, png_from_rows, rows_of, with_trailing_zeros, ztxt_bomb
from tests.live_server import LiveServer, live_server


def crafted_png(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A PNG whose IHDR claims `width` x `height` (8-bit RGB) over a few bytes of real pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * 64, 9) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def zlib_bomb_png(side: int) -> bytes:
    """A real decompression bomb: `side` x `side` RGB of zeros, 108 MB of scanlines in ~100 KB of zlib."""
    row = bytes(1 + 3 * side)  # filter byte + pixels
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return crafted_png(side, side, idat)


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _rgb(height: int = 8, width: int = 8, seed: int = 0) -> Image.Image:
    return Image.fromarray(natural_like_image(height, width, seed))


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small valid JPEG whose SOF0 header is patched to claim `width` x `height`."""
    data = bytearray(_save(_rgb(), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def animated_gif() -> bytes:
    frames = [_rgb(seed=1), _rgb(seed=2)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def apng() -> bytes:
    frames = [_rgb(seed=1), _rgb(seed=2)]
    return _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)


def exif_rotated_jpeg() -> bytes:
    """16 wide, 8 high, EXIF orientation 6 (display rotated 90 degrees clockwise: 8 wide, 16 high)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(_rgb(8, 16), "JPEG", exif=exif.tobytes())


def palette_with_transparency() -> bytes:
    image = _rgb().convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return _save(image, "PNG", transparency=0)


def png16_with_trailing_zlib_data() -> bytes:
    """The issue's attack: an 8x8 16-bit RGB PNG whose zlib stream goes on for 256 MiB."""
    pixels = natural_like_image(8, 8).astype(np.uint16) * 257
    return png_from_rows(8, 8, 16, 2, with_trailing_zeros(rows_of(pixels), 1 << 28))


def png_with_junk_after_its_zlib_stream() -> bytes:
    return png_from_rows(4, 4, 8, 2, zlib.compress(rows_of(natural_like_image(4, 4))) + bytes(4096))


def png_with_a_million_chunks() -> bytes:
    padding = chunk(b"tEXt", b"") * 1_000_000
    return png_from_rows(4, 4, 8, 2, zlib.compress(rows_of(natural_like_image(4, 4))), (padding,))


def jpeg_with_scan_markers(count: int) -> bytes:
    """A JPEG whose comment holds `count` start-of-scan markers, standing in for that many scans."""
    data = _save(_rgb(), "JPEG", progressive=True)
    comment = b"\xff\xda" * count
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:]


def png_with_ztxt_bomb() -> bytes:
    """A 1 GiB zTXt chunk in a valid image: dropped unread, the image is upscaled."""
    idat = zlib.compress(rows_of(natural_like_image(8, 8)))
    return png_from_rows(8, 8, 8, 2, idat, (ztxt_bomb(1 << 30),))


def png_with_huge_icc() -> bytes:
    """A 16 MiB ICC profile (sRGB's header, zeros after it): dropped, the image is upscaled."""
    profile = bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()) + bytes(16 << 20)
    idat = zlib.compress(rows_of(natural_like_image(8, 8)))
    return png_from_rows(8, 8, 8, 2, idat, (iccp(zlib.compress(profile)),))


def random_bytes(size: int = 4096) -> bytes:
    data = np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8).tobytes()
    return b"\x01" + data  # no known signature starts with 0x01


VALID_PNG = png_bytes(natural_like_image(12, 10))
VALID_JPEG = _save(_rgb(16, 16), "JPEG")

# name -> (upload bytes, expected status, expected error code)
REFUSED: dict[str, tuple[Callable[[], bytes], int, str]] = {
    "empty_file": (lambda: b"", 400, "bad_image"),
    "random_bytes": (random_bytes, 400, "bad_image"),
    "truncated_png": (lambda: VALID_PNG[: len(VALID_PNG) // 2], 400, "bad_image"),
    "png_signature_only": (lambda: VALID_PNG[:8], 400, "bad_image"),
    "truncated_jpeg": (lambda: VALID_JPEG[: len(VALID_JPEG) // 2], 400, "bad_image"),
    "jpeg_header_only": (lambda: VALID_JPEG[:20], 400, "bad_image"),
    "png_bomb_100000x100000": (lambda: crafted_png(100_000, 100_000), 413, "too_large"),
    "png_zlib_bomb_6000x6000": (lambda: zlib_bomb_png(6000), 413, "too_large"),
    "png_width_2_31": (lambda: crafted_png(2**31 - 1, 1), 413, "too_large"),
    "png_zero_size": (lambda: crafted_png(0, 0), 400, "bad_image"),
    "jpeg_65535x65535": (lambda: jpeg_with_size(65535, 65535), 413, "too_large"),
    "jpeg_zero_width": (lambda: jpeg_with_size(0, 8), 400, "bad_image"),
    "png16_trailing_zlib_data_256MiB": (png16_with_trailing_zlib_data, 400, "bad_image"),
    "png_junk_after_zlib_stream": (png_with_junk_after_its_zlib_stream, 400, "bad_image"),
    "png_a_million_chunks": (png_with_a_million_chunks, 400, "bad_image"),
    "jpeg_101_scans": (lambda: jpeg_with_scan_markers(101), 413, "too_large"),
    "jpeg_header_of_a_million_fill_bytes": (
        lambda: VALID_JPEG[:2] + b"\xff" * 1_000_000 + VALID_JPEG[2:], 400, "bad_image"
    ),
    "animated_gif": (animated_gif, 415, "unsupported_format"),
    "apng": (apng, 415, "unsupported_format"),
    "bmp": (lambda: _save(_rgb(), "BMP"), 415, "unsupported_format"),
    "tiff": (lambda: _save(_rgb(), "TIFF"), 415, "unsupported_format"),
    "svg_named_png": (
        lambda: (
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
            b'width="10" height="10"><rect width="10" height="10"/></svg>'
        ),
        415,
        "unsupported_format",
    ),
    "html_named_png": (
        lambda: b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
        415,
        "unsupported_format",
    ),
    "pdf_named_png": (
        lambda: b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
        415,
        "unsupported_format",
    ),
}

# name -> (upload bytes, expected X-Output-Size, expected output PNG mode per Pillow)
ACCEPTED: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "1x1": (lambda: png_bytes(natural_like_image(1, 1)), "4x4", "RGB"),
    "1x10000": (lambda: png_bytes(natural_like_image(10_000, 1)), "4x40000", "RGB"),
    "cmyk_jpeg": (lambda: _save(_rgb().convert("CMYK"), "JPEG"), "32x32", "RGB"),
    "png_16bit_rgb": (
        lambda: write_png16(natural_like_image(6, 5).astype(np.uint16) * 257, None),
        "20x24",
        "RGB",
    ),
    "palette_with_transparency": (palette_with_transparency, "32x32", "RGBA"),
    "exif_rotated_jpeg": (exif_rotated_jpeg, "32x64", "RGB"),
    "png_ztxt_bomb_1GiB": (png_with_ztxt_bomb, "32x32", "RGB"),
    "png_icc_16MiB": (png_with_huge_icc, "32x32", "RGB"),
}


# One app for the module (its start-up dominates a case's time), checked for health after every case.
module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_client(tiny_weights_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    # A 1-pixel-wide image is mostly padding in every window: a small pad and large batches keep the
    # 1x10000 case (625 tiles) to a few seconds.
    # 1x10000 is 625 tiles of 16: the queue must hold it (at the default tile of 96 it is 105).
    async with running_client(tiny_weights_dir, tile=16, tile_pad=2, max_batch=32,
                              max_queue_tiles=1024) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="module")
async def client(shared_client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    yield shared_client
    await assert_still_healthy(shared_client)


async def assert_still_healthy(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    response = await client.post("/upscale", **upload(png_bytes(natural_like_image(9, 7))))
    assert response.status_code == 200, response.text
    assert response.headers["x-output-size"] == "28x36"


@module_loop
@pytest.mark.parametrize("name", sorted(REFUSED))
async def test_bad_upload_is_refused_with_json_error(client: httpx.AsyncClient, name: str) -> None:
    make, status, code = REFUSED[name]
    response = await client.post("/upscale", **upload(make(), name="image.png"))
    assert_error(response, status, code)


@module_loop
@pytest.mark.parametrize("name", sorted(ACCEPTED))
async def test_odd_but_valid_upload_is_upscaled(client: httpx.AsyncClient, name: str) -> None:
    make, size, mode = ACCEPTED[name]
    response = await client.post("/upscale", **upload(make()))
    assert response.status_code == 200, response.text
    assert response.headers["x-output-size"] == size
    with Image.open(io.BytesIO(response.content)) as out:
        assert f"{out.width}x{out.height}" == size
        assert out.mode == mode
        if name == "png_icc_16MiB":
            assert "icc_profile" not in out.info, "an ICC profile over the limit must not be copied"
    if name == "png_16bit_rgb":
        assert response.content[24] == 16, "16-bit input must come back as a 16-bit PNG"


@module_loop
async def test_no_body_and_no_content_type_is_415(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/upscale", content=b""), 415, "unsupported_format")


@module_loop
async def test_raw_image_body_instead_of_multipart_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/upscale", content=VALID_PNG, headers={"content-type": "image/png"})
    assert_error(response, 415, "unsupported_format")


def _parts(count: int, disposition: str) -> bytes:
    part = f"--abc\r\nContent-Disposition: form-data; {disposition}\r\n\r\nx\r\n"
    return "".join(part.replace("{i}", str(i)) for i in range(count)).encode() + b"--abc--\r\n"


def _image_part() -> bytes:
    """The valid PNG as the `image` part, with the delimiter's CRLF but without a closing delimiter."""
    return (
        b'--abc\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + VALID_PNG + b"\r\n"
    )


MALFORMED_MULTIPART = {
    "boundary_not_in_body": (
        "multipart/form-data; boundary=xyz",
        _parts(1, 'name="image"; filename="a"'),
        400,
        "bad_request",
    ),
    "no_boundary": ("multipart/form-data", _parts(1, 'name="image"; filename="a"'), 400, "bad_request"),
    "too_many_fields": ("multipart/form-data; boundary=abc", _parts(100, 'name="f{i}"'), 400, "bad_request"),
    "three_files": (
        "multipart/form-data; boundary=abc",
        _parts(3, 'name="image"; filename="a{i}.png"'),
        400,
        "bad_request",
    ),
    "multipart_mixed": (
        "multipart/mixed; boundary=abc",
        _parts(1, 'name="image"; filename="a"'),
        415,
        "unsupported_format",
    ),
    # Cut short: a whole valid image whose part never ends, so that only the multipart check can refuse it.
    "no_closing_boundary": ("multipart/form-data; boundary=abc", _image_part(), 400, "bad_request"),
    "ends_at_a_delimiter_without_its_closing_hyphens": (
        "multipart/form-data; boundary=abc",
        _image_part() + b"--abc",
        400,
        "bad_request",
    ),
    "ends_inside_the_part_headers": (
        "multipart/form-data; boundary=abc",
        b'--abc\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Ty',
        400,
        "bad_request",
    ),
}


@module_loop
@pytest.mark.parametrize("name", sorted(MALFORMED_MULTIPART))
async def test_malformed_multipart_is_refused(client: httpx.AsyncClient, name: str) -> None:
    content_type, body, status, code = MALFORMED_MULTIPART[name]
    response = await client.post("/upscale", content=body, headers={"content-type": content_type})
    assert_error(response, status, code)


@module_loop
async def test_wrong_field_name_is_422(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/upscale", **upload(VALID_PNG, field="file")), 422, "invalid_parameter")


@module_loop
async def test_image_as_a_text_field_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/upscale", data={"image": "not a file"}, files={"other": ("a.txt", b"x", "text/plain")}
    )
    assert_error(response, 422, "invalid_parameter")


@module_loop
@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/upscale", "model=esrgan"),
        ("/upscale", "model="),
        ("/upscale", "format=gif"),
        ("/upscale", "format=PNG"),
        ("/upscale", "quality=0"),
        ("/upscale", "quality=101"),
        ("/upscale", "quality=abc"),
        ("/upscale", "quality=1e9"),
        ("/compare", "output=xml"),
    ],
)
async def test_wrong_query_values_are_422(client: httpx.AsyncClient, path: str, query: str) -> None:
    assert_error(await client.post(f"{path}?{query}", **upload(VALID_PNG)), 422, "invalid_parameter")


@module_loop
async def test_compare_refuses_a_1x1_image_as_too_small(client: httpx.AsyncClient) -> None:
    response = await client.post("/compare", **upload(png_bytes(natural_like_image(1, 1))))
    assert_error(response, 422, "too_small")


@module_loop
async def test_oversized_upload_is_413(tiny_weights_dir: Path) -> None:
    big = random_bytes(200_000)
    async with running_client(tiny_weights_dir, max_upload_bytes=4096) as client:
        declared = await client.post("/upscale", **upload(big))
        assert_error(declared, 413, "too_large")

        boundary = "b0undary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
                f"Content-Type: image/png\r\n\r\n"
            ).encode()
            + big
            + f"\r\n--{boundary}--\r\n".encode()
        )

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        streamed = await client.post(  # no Content-Length: the limit must hold while the body streams
            "/upscale",
            content=chunks(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert_error(streamed, 413, "too_large")
        await assert_still_healthy(client)


# --- slow upload: a real server and a raw socket -------------------------------------------------------


@pytest.fixture
def slow_upload_server(tiny_weights_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """`srgan serve` on loopback with tiny weights and a 1.5 s request (upload) timeout."""
    with live_server(tiny_weights_dir, tmp_path, tile="16", tile_pad="4", max_batch="4",
                     request_timeout_s="1.5") as server:
        yield server


def test_slow_upload_gets_a_json_408_and_the_server_stays_healthy(slow_upload_server: LiveServer) -> None:
    port = slow_upload_server.port
    boundary = "slowboundary"
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        f"Content-Type: image/png\r\n\r\n"
    ).encode() + VALID_PNG[:20]
    head = (
        f"POST /upscale HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + part)  # then stall: the rest of the 100000 bytes never comes
        received = b""
        while b"\r\n\r\n" not in received or not _body_complete(received):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    elapsed = time.monotonic() - started
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), received[:300]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower()
    assert json.loads(body)["error"]["code"] == "upload_timeout"
    assert 1.0 <= elapsed < 8.0, elapsed

    assert httpx.get(f"{slow_upload_server.url}/healthz", timeout=5).status_code == 200
    files = {"image": ("a.png", VALID_PNG, "image/png")}
    response = httpx.post(f"{slow_upload_server.url}/upscale", files=files, timeout=30)
    assert response.status_code == 200, response.text


def _body_complete(received: bytes) -> bool:
    headers, _, body = received.partition(b"\r\n\r\n")
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False
