from pathlib import Path

import httpx

from app.engine import default_batch_size
from app.http.app import create_app
from app.settings import Settings
from app.telemetry import Metrics
from model.registry import REGISTRY
from model.synthetic import natural_like_image
from tests.api_helpers import assert_error, metric_value, png_bytes, running_client, upload


async def test_health_ready_models_and_docs(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        models = (await client.get("/v1/models")).json()["models"]
        assert {m["name"] for m in models} == {"srgan", "srresnet", "srgan-real"}
        for m in models:
            assert m["scale"] == 4 and m["device"] == "cpu" and m["dtype"] == "float32"
            assert m["tile_size"] == 16 and m["max_batch"] == 4
            assert m["parameters"] == 10355  # TINY_ARCH, its batch norms folded into the convolutions
        assert (await client.get("/docs")).status_code == 200
        spec = (await client.get("/openapi.json")).json()
        assert "multipart/form-data" in spec["paths"]["/upscale"]["post"]["requestBody"]["content"]


async def test_max_batch_defaults_to_one_tile_on_a_cpu_and_eight_on_a_gpu(tiny_weights_dir: Path) -> None:
    # On a CPU a batch costs time in proportion to its tiles, so batching only adds queueing delay.
    assert default_batch_size("cpu") == 1 and default_batch_size("cuda") == 8
    assert default_batch_size("cpu", 3) == 3 and default_batch_size("cuda", 3) == 3
    async with running_client(tiny_weights_dir, max_batch=None) as client:
        models = (await client.get("/v1/models")).json()["models"]
        assert {m["max_batch"] for m in models} == {1}
        response = await client.post("/upscale", **upload(png_bytes(natural_like_image(40, 40))))
        assert response.status_code == 200
        text = (await client.get("/metrics")).text
    # 40x40 in tiles of 16 is 3x3 tiles, each its own batch (warm-up batches are not counted).
    default = REGISTRY.default.name
    assert metric_value(text, "srgan_batch_size_tiles_count", model=default) == 9
    assert metric_value(text, "srgan_batch_size_tiles_bucket", model=default, le="1.0") == 9


async def test_metrics_count_requests_pixels_batches_and_rejections(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir) as client:
        await client.post("/upscale", **upload(png_bytes(natural_like_image(20, 10))))
        await client.post("/upscale", **upload(b"not an image"))
        text = (await client.get("/metrics")).text
    default = REGISTRY.default.name
    recorded = {
        ("srgan_requests_total", (("code", "200"), ("endpoint", "/upscale"))): 1,
        ("srgan_requests_total", (("code", "400"), ("endpoint", "/upscale"))): 1,
        ("srgan_request_duration_seconds_count", (("endpoint", "/upscale"),)): 2,
        ("srgan_pixels_total", (("direction", "in"),)): 200,
        ("srgan_pixels_total", (("direction", "out"),)): 3200,
        ("srgan_rejected_total", (("reason", "bad_image"),)): 1,
        ("srgan_model_ready", ()): 1,
        # 20x10 is 2 tiles of 16: one batch of 2, each tile's wait observed; both left the queue.
        ("srgan_queue_depth_tiles", ()): 0,
        ("srgan_queue_wait_seconds_count", ()): 2,
        ("srgan_batch_size_tiles_count", (("model", default),)): 1,
        ("srgan_batch_size_tiles_sum", (("model", default),)): 2,
        ("srgan_batch_duration_seconds_count", (("model", default),)): 1,
        ("srgan_batch_size_tiles_count", (("model", "srresnet"),)): None,
    }
    assert {key: metric_value(text, key[0], **dict(key[1])) for key in recorded} == recorded


async def test_not_ready_before_start_is_503_with_retry_after(tiny_weights_dir: Path) -> None:
    app = create_app(Settings(device="cpu", weights_dir=tiny_weights_dir), Metrics())  # lifespan not run
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"] == "5"
        assert (await client.get("/healthz")).status_code == 200
        response = await client.post("/upscale", **upload(png_bytes(natural_like_image(8, 8))))
    assert_error(response, 503, "not_ready")
    assert response.headers["retry-after"] == "5"


async def test_request_id_is_echoed_or_made(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir) as client:
        given = await client.get("/healthz", headers={"x-request-id": "abc-123"})
        made = await client.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert given.headers["x-request-id"] == "abc-123"
    assert made.headers["x-request-id"] != "bad id with spaces" and len(made.headers["x-request-id"]) == 16


async def test_unknown_path_is_json_404(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir) as client:
        assert_error(await client.get("/nope"), 404, "http_error")
