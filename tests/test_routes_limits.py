"""The image routes under the memory budget and the host pool: refused before decoding, counted, and
their reservations returned however a request ends."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from app import comparison
from app.http.routes import upscale as upscale_route
from app.http.service import Service
from app.limits.budget import MIB
from model.synthetic import natural_like_image
from tests.api_helpers import assert_error, png_bytes, running_client, upload
from tests.test_disconnect import until, upload_scope

IMAGE = png_bytes(natural_like_image(40, 40))


def service_of(client: httpx.AsyncClient) -> Service:
    service: Service = client.app.state.service  # type: ignore[attr-defined]
    return service


def rejected(client: httpx.AsyncClient, reason: str) -> float:
    value = service_of(client).metrics.registry.get_sample_value("srgan_rejected_total", {"reason": reason})
    return value or 0.0


def reserved(client: httpx.AsyncClient) -> int:
    limits = service_of(client).limits
    assert limits is not None
    return limits.memory.reserved_bytes


async def test_a_request_over_the_memory_left_is_503_memory_with_retry_after(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir, memory_budget_mb=64) as client:
        limits = service_of(client).limits
        assert limits is not None
        others = limits.memory.reserve(60 * MIB, what="requests in flight")
        response = await client.post("/upscale", **upload(IMAGE))
        assert_error(response, 503, "memory")
        assert int(response.headers["retry-after"]) >= 1
        assert rejected(client, "memory") == 1
        others.release()
        assert (await client.post("/upscale", **upload(IMAGE))).status_code == 200
        assert reserved(client) == 0


async def test_an_image_that_alone_needs_more_than_the_budget_is_413(tiny_weights_dir: Path) -> None:
    big = png_bytes(natural_like_image(400, 400))  # a 1600x1600 WebP output and its buffers: over 64 MiB
    async with running_client(tiny_weights_dir, memory_budget_mb=64, max_input_pixels=512 * 512,
                              tile=32) as client:
        response = await client.post("/upscale?format=webp", **upload(big))
        assert_error(response, 413, "too_large")
        assert "budget" in response.json()["error"]["message"]
        assert reserved(client) == 0


async def test_reservations_come_back_after_success_refusal_and_bad_input(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir) as client:
        assert (await client.post("/upscale", **upload(IMAGE))).status_code == 200
        assert (await client.post("/compare", **upload(IMAGE))).status_code == 200
        assert (await client.post("/compare?output=image", **upload(IMAGE))).status_code == 200
        assert_error(await client.post("/upscale", **upload(b"\x01not an image")), 400, "bad_image")
        assert_error(await client.post("/upscale", **upload(IMAGE, field="other")), 422, "invalid_parameter")
        assert_error(await client.post("/upscale", **upload(png_bytes(natural_like_image(300, 300)))), 413,
                     "too_large")
        assert reserved(client) == 0


async def test_compare_has_its_own_pixel_limit(tiny_weights_dir: Path) -> None:
    image = png_bytes(natural_like_image(64, 64))
    async with running_client(tiny_weights_dir, compare_max_pixels=48 * 48) as client:
        assert_error(await client.post("/compare", **upload(image)), 413, "too_large")
        assert (await client.post("/upscale", **upload(image))).status_code == 200
        within = png_bytes(natural_like_image(48, 48))
        assert (await client.post("/compare", **upload(within))).status_code == 200


async def test_a_busy_host_pool_refuses_new_requests_before_reading_them(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir) as client:
        limits = service_of(client).limits
        assert limits is not None
        gate = threading.Event()
        busy = limits.pool.workers + limits.pool.max_backlog + 1
        jobs = [asyncio.ensure_future(limits.pool.run(gate.wait)) for _ in range(busy)]
        try:
            while limits.pool.backlog <= limits.pool.max_backlog:
                await asyncio.sleep(0.01)
            response = await client.post("/upscale", **upload(IMAGE))
            assert_error(response, 503, "host_busy")
            assert int(response.headers["retry-after"]) >= 1
            assert rejected(client, "host_busy") == 1
        finally:
            gate.set()
            await asyncio.gather(*jobs)
        assert (await client.post("/upscale", **upload(IMAGE))).status_code == 200


async def test_compare_json_images_are_png_data_uris_of_the_bounded_original(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir) as client:
        body = (await client.post("/compare", **upload(IMAGE))).json()
    assert body["original_size"] == {"width": 40, "height": 40}
    assert all(m["image"].startswith("data:image/png;base64,") for m in body["methods"])
    assert np.isfinite([m["psnr"] for m in body["methods"]]).all()


async def test_compare_stops_at_the_stage_where_its_client_left_and_returns_its_memory(
    tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    later_stages: list[str] = []
    for stage in ("score_method", "original_niqe", "assemble"):
        monkeypatch.setattr(comparison, stage, lambda *args, stage=stage: later_stages.append(stage))
    async with running_client(tiny_weights_dir) as client:
        app = client.app  # type: ignore[attr-defined]
        engine = service_of(client).engine
        assert engine is not None
        scope, body = upload_scope("/compare", png_bytes(natural_like_image(64, 64)))
        gone = asyncio.Event()
        messages = iter([{"type": "http.request", "body": body, "more_body": False}])

        async def receive() -> dict[str, object]:
            message = next(messages, None)
            if message is None:
                await gone.wait()
                return {"type": "http.disconnect"}
            return message

        async def send(message: object) -> None:
            raise AssertionError(f"nothing may be sent to a client that has left: {message}")

        release = threading.Event()  # the engine's worker is held: the models' tiles stay queued
        executor = engine._executor
        assert executor is not None
        executor.submit(release.wait, 30)
        try:
            call = asyncio.ensure_future(app(scope, receive, send))
            await until(lambda: engine.queue_depth_tiles > 0)
            assert reserved(client) > 0
            gone.set()
            await asyncio.wait_for(call, 10)
        finally:
            release.set()
        await until(lambda: reserved(client) == 0)
    assert later_stages == []


async def test_start_up_warns_when_the_largest_allowed_image_cannot_fit_the_budget(
    tiny_weights_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.limits"):
        async with running_client(tiny_weights_dir, memory_budget_mb=64):
            pass
    assert "memory budget 64 MiB (SRGAN_MEMORY_BUDGET_MB)" in caplog.text
    assert "will be refused with 413" in caplog.text


async def test_the_engine_refuses_from_the_header_before_anything_is_decoded(
    tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded an image the engine refuses")

    monkeypatch.setattr(upscale_route, "decode_image", never)
    async with running_client(tiny_weights_dir) as client:
        strip = png_bytes(natural_like_image(1, 10_000))  # 625 tiles of 16; the queue holds 512
        response = await client.post("/upscale", **upload(strip))
        assert_error(response, 413, "too_large")
        assert "tiles" in response.json()["error"]["message"]
        assert reserved(client) == 0
