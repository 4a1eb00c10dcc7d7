import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from model.inference import Upscaler
from model.registry import REGISTRY
from model.synthetic import natural_like_image
from model.tiling import upscale_tiled
from tests.api_helpers import (
    TEST_SETTINGS,
    assert_error,
    decode,
    png_bytes,
    running_client,
    until,
    upload,
)


def direct(weights_dir: Path, name: str, image: np.ndarray) -> np.ndarray:
    """What the service must return: the shipped tiler run directly on the same weights."""
    upscaler = Upscaler.from_file(name, REGISTRY.weights_path(name, weights_dir), torch.device("cpu"),
                                  torch.float32)
    return upscale_tiled(image, upscaler, scale=4, tile=TEST_SETTINGS["tile"], pad=TEST_SETTINGS["tile_pad"])


async def test_png_in_png_out_equals_direct_tiled_inference(tiny_weights_dir: Path) -> None:
    image = natural_like_image(37, 45)
    async with running_client(tiny_weights_dir) as client:
        sent = time.monotonic()
        response = await client.post("/upscale", **upload(png_bytes(image)))
        round_trip_ms = (time.monotonic() - sent) * 1000
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-model"] == REGISTRY.default.name
    assert response.headers["x-output-size"] == "180x148"
    assert 0 < float(response.headers["x-processing-time-ms"]) <= round_trip_ms
    assert response.headers["x-request-id"]
    expected = direct(tiny_weights_dir, REGISTRY.default.name, image)
    np.testing.assert_array_equal(decode(response.content), expected)


@pytest.fixture
def batch_invariant_convolutions() -> Iterator[None]:
    """oneDNN and NNPACK pick kernels by batch size, so float results move by ~1e-7 with batch composition
    and can flip a rounding; torch's plain convolution computes each window alone. Comparing byte for byte
    against unbatched inference needs that (tests/test_engine.py checks the backend honours it)."""
    with torch.backends.mkldnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False):
        yield


@pytest.mark.usefixtures("batch_invariant_convolutions")
async def test_many_concurrent_mixed_sizes_equal_direct_inference_byte_for_byte(
    tiny_weights_dir: Path,
) -> None:
    sizes = [(1, 1), (7, 13), (40, 33), (16, 16), (50, 9), (23, 61), (3, 2), (33, 40)]
    images = [natural_like_image(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    models = ["srgan", "srresnet"] * (len(images) // 2)
    async with running_client(tiny_weights_dir) as client:
        responses = await asyncio.gather(
            *(
                client.post(f"/upscale?model={m}", **upload(png_bytes(img)))
                for img, m in zip(images, models, strict=True)
            )
        )
    for image, model, response in zip(images, models, responses, strict=True):
        assert response.status_code == 200, response.text
        assert response.headers["x-model"] == model
        np.testing.assert_array_equal(decode(response.content), direct(tiny_weights_dir, model, image))


@pytest.mark.parametrize(("fmt", "media_type"), [("jpeg", "image/jpeg"), ("webp", "image/webp")])
async def test_lossy_formats_with_quality(tiny_weights_dir: Path, fmt: str, media_type: str) -> None:
    async with running_client(tiny_weights_dir) as client:
        response = await client.post(
            f"/upscale?format={fmt}&quality=40", **upload(png_bytes(natural_like_image(8, 8)))
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert decode(response.content).shape[:2] == (32, 32)


async def test_grayscale_and_alpha_keep_their_mode(tiny_weights_dir: Path) -> None:
    gray = natural_like_image(10, 12)[..., 0]
    rgba = np.dstack([natural_like_image(10, 12), np.full((10, 12), 128, np.uint8)])
    async with running_client(tiny_weights_dir) as client:
        gray_out = await client.post("/upscale", **upload(png_bytes(gray)))
        rgba_out = await client.post("/upscale", **upload(png_bytes(rgba)))
    assert decode(gray_out.content).shape == (40, 48)
    assert decode(rgba_out.content).shape == (40, 48, 4)


@pytest.mark.parametrize("query", ["model=esrgan", "format=gif", "quality=0", "quality=101", "quality=x"])
async def test_bad_parameters_are_422(tiny_weights_dir: Path, query: str) -> None:
    async with running_client(tiny_weights_dir) as client:
        response = await client.post(f"/upscale?{query}", **upload(png_bytes(natural_like_image(8, 8))))
    assert_error(response, 422, "invalid_parameter")


async def test_bad_bodies(tiny_weights_dir: Path) -> None:
    image = png_bytes(natural_like_image(8, 8))
    async with running_client(tiny_weights_dir) as client:
        assert_error(await client.post("/upscale", **upload(image, field="file")), 422, "invalid_parameter")
        assert_error(
            await client.post("/upscale", content=image, headers={"content-type": "image/png"}),
            415,
            "unsupported_format",
        )
        assert_error(await client.post("/upscale", **upload(b"")), 400, "bad_image")
        assert_error(
            await client.post("/upscale", **upload(np.random.default_rng(0).bytes(3000))), 400, "bad_image"
        )
        assert_error(await client.post("/upscale", **upload(image[: len(image) // 2])), 400, "bad_image")
        assert_error(
            await client.post("/upscale", **upload(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>")),
            415,
            "unsupported_format",
        )
        assert (await client.get("/healthz")).status_code == 200


async def test_limits_are_413(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir, max_upload_bytes=2048, max_input_pixels=100) as client:
        big = png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
        assert_error(await client.post("/upscale", **upload(big)), 413, "too_large")
        assert_error(
            await client.post("/upscale", **upload(png_bytes(natural_like_image(11, 10)))), 413, "too_large"
        )
        assert (
            await client.post("/upscale", **upload(png_bytes(natural_like_image(10, 10))))
        ).status_code == 200


async def test_api_keys(tiny_weights_dir: Path) -> None:
    image = png_bytes(natural_like_image(8, 8))
    async with running_client(tiny_weights_dir, api_keys="alpha, beta") as client:
        assert_error(await client.post("/upscale", **upload(image)), 401, "unauthorized")
        assert_error(
            await client.post("/upscale", **upload(image), headers={"authorization": "Bearer nope"}),
            401,
            "unauthorized",
        )
        ok = await client.post("/upscale", **upload(image), headers={"authorization": "Bearer beta"})
        assert ok.status_code == 200
        assert (
            await client.post("/upscale", **upload(image), headers={"x-api-key": "alpha"})
        ).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


async def test_queue_full_is_503_with_retry_after(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir, max_queue_tiles=40, max_input_pixels=96 * 96) as client:
        engine = client.app.state.service.engine  # type: ignore[attr-defined]
        # Hold the engine's one worker thread, so the first image's tiles stay queued however fast the
        # model runs (on a loaded machine this test otherwise raced the worker and sometimes found room).
        release = threading.Event()
        engine._executor.submit(release.wait, 30)
        try:
            big = png_bytes(natural_like_image(96, 96))
            first = asyncio.ensure_future(client.post("/upscale", **upload(big)))
            # Its 36 tiles are queued and the loop has taken a batch of 4, which waits for the worker.
            await until(lambda: engine.queue_depth_tiles == 32)
            # A measured 0.1 tiles/s, a window of 16 + 2 x 4 pixels a side every 10 s (set once the first
            # image is in: at that rate its deadline would have refused it).
            engine._admission.throughput.record(24 * 24, 10.0)
            # 9 more tiles do not fit the bound of 40: refused at once, and told to come back when the
            # one tile over the bound has been served, in 10 s.
            second = await client.post("/upscale", **upload(png_bytes(natural_like_image(40, 40))))
        finally:
            release.set()
        assert (await first).status_code == 200
    assert_error(second, 503, "queue_full")
    assert second.headers["retry-after"] == "10"


async def test_an_image_with_more_tiles_than_the_queue_holds_is_413(tiny_weights_dir: Path) -> None:
    # The settings check lets every square image within the pixel limit fit the queue; a strip of as
    # many pixels does not (64 tiles of 16).
    async with running_client(tiny_weights_dir, max_queue_tiles=8, max_input_pixels=32 * 32) as client:
        response = await client.post("/upscale", **upload(png_bytes(natural_like_image(1, 32 * 32))))
    assert_error(response, 413, "too_large")


async def test_deadline_passed_is_504(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir, request_timeout_s=0.001) as client:
        response = await client.post("/upscale", **upload(png_bytes(natural_like_image(64, 64))))
        assert (await client.get("/healthz")).status_code == 200
    assert_error(response, 504, "timeout")
