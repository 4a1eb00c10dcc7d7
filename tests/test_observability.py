"""What operators and alerts read: /metrics on its own port or the service's, readiness and
srgan_model_ready during a drain, unexpected errors counted as 500 and `internal`, device memory."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
import pytest
import torch
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.http.app import create_metrics_app
from app.http.service import Service
from app.settings import Settings
from app.telemetry import Metrics
from model.inference import Upscaler
from model.synthetic import natural_like_image
from tests.api_helpers import assert_error, png_bytes, running_client, upload


async def test_with_a_metrics_port_metrics_leave_the_service_port(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir, metrics_port=9100) as client:
        assert_error(await client.get("/metrics"), 404, "http_error")
        assert (await client.get("/healthz")).status_code == 200
        service = client.app.state.service  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=create_metrics_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as scraper:
            scraped = await scraper.get("/metrics")
            assert (await scraper.get("/healthz")).status_code == 404  # only /metrics on that port
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert "srgan_model_ready 1.0" in scraped.text
    # The service port's refusal above is in the same registry.
    assert 'srgan_requests_total{code="404",endpoint="other"} 1.0' in scraped.text


async def test_without_a_metrics_port_metrics_are_on_the_service_port(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200 and "srgan_model_ready 1.0" in response.text


async def test_while_draining_readiness_and_model_ready_fail_and_liveness_holds(
    tiny_weights_dir: Path,
) -> None:
    image = png_bytes(natural_like_image(16, 16))
    async with running_client(tiny_weights_dir) as client:
        assert (await client.get("/readyz")).status_code == 200
        client.app.state.service.begin_drain()  # type: ignore[attr-defined]  # what SIGTERM does
        ready = await client.get("/readyz")
        metrics = (await client.get("/metrics")).text
        health = await client.get("/healthz")
        refused = await client.post("/upscale", **upload(image))
    assert ready.status_code == 503 and ready.json() == {"status": "draining"}
    assert ready.headers["retry-after"] == "5"
    assert "srgan_model_ready 0.0" in metrics
    assert health.status_code == 200  # draining is no reason to restart the process
    assert_error(refused, 503, "not_ready")
    assert refused.headers["retry-after"] == "1"


async def test_an_unexpected_error_is_a_500_with_the_request_id_counted_as_internal(
    tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Upscaler, windows: object) -> object:
        raise RuntimeError("a bug in the model code")

    caplog.set_level(logging.INFO)
    async with running_client(tiny_weights_dir) as client:
        monkeypatch.setattr(Upscaler, "upscale_windows", broken)
        caplog.clear()
        response = await client.post(
            "/upscale", **upload(png_bytes(natural_like_image(16, 16))), headers={"x-request-id": "bug-1"}
        )
        metrics = (await client.get("/metrics")).text
    assert_error(response, 500, "internal")
    assert response.headers["x-request-id"] == "bug-1"
    # What the alert rules read (code=~"5..", code!="503"), and the refusal counter.
    assert 'srgan_requests_total{code="500",endpoint="/upscale"} 1.0' in metrics
    assert 'srgan_rejected_total{reason="internal"} 1.0' in metrics
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert [r.getMessage() for r in tracebacks] == ["POST /upscale failed with an unexpected error"]
    assert tracebacks[0].exc_info is not None and tracebacks[0].exc_info[0] is RuntimeError
    access = [r.getMessage() for r in caplog.records if r.name == "app.http.middleware" and not r.exc_info]
    assert [line.split(" in ")[0] for line in access] == ["POST /upscale -> 500"]


def test_device_memory_total_is_exported_beside_allocated_and_reserved_on_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No GPU here: torch.cuda's answers are stood in for; what is checked is which gauge gets which.
    gib = 1024**3
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 3 * gib)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 5 * gib)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (100 * gib, 141 * gib))
    service = Service(settings=Settings(), metrics=Metrics())

    def device_memory() -> dict[str, float]:
        service.refresh_metrics()
        text = generate_latest(service.metrics.registry).decode()
        families = [f for f in text_string_to_metric_families(text) if f.name == "srgan_device_memory_bytes"]
        return {s.labels["kind"]: s.value for f in families for s in f.samples}

    assert device_memory() == {}  # models on the CPU
    service.upscalers["srgan"] = cast(Upscaler, SimpleNamespace(device=torch.device("cuda", 0)))
    assert device_memory() == {"allocated": 3 * gib, "reserved": 5 * gib, "total": 141 * gib}
