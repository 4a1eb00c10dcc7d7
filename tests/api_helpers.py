"""Helpers for the API tests: an app with tiny real models, and image payloads made in code."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from app.http.app import create_app
from app.settings import Settings
from app.telemetry import Metrics
from model.registry import REGISTRY, ModelRegistry

# Small tiles keep the tiny models fast while still giving multi-tile images and mixed batches.
TEST_SETTINGS: dict[str, Any] = {
    "device": "cpu",
    # The tests' references run in float32; `auto` is bfloat16 on a CPU with bfloat16 arithmetic.
    "dtype": "float32",
    "tile": 16,
    "tile_pad": 4,
    "max_batch": 4,
    "max_wait_ms": 2.0,
    # The largest square image allowed must fit the default queue bound in tiles of 16 (a settings check).
    "max_input_pixels": 256 * 256,
}


@asynccontextmanager
async def running_client(
    weights_dir: Path, registry: ModelRegistry = REGISTRY, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking ASGI to a started app (lifespan run: weights loaded, engine warm)."""
    settings = Settings(weights_dir=weights_dir, **{**TEST_SETTINGS, **overrides})
    app = create_app(settings, Metrics(), registry)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll `condition` on the event loop until it holds; fail after `timeout_s` instead of hanging."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


def metric_value(exposition: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` with exactly `labels` in a /metrics text, or None if it is absent."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(data: bytes, name: str = "image.png", field: str = "image") -> dict[str, Any]:
    return {"files": {field: (name, data, "application/octet-stream")}}


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
