"""`srgan serve` as the deployment runs it (k8s/base/srgan.env, docker-compose.yml): keys required,
/metrics on SRGAN_METRICS_PORT only, JSON logs."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model.synthetic import natural_like_image
from tests.api_helpers import png_bytes
from tests.live_server import LiveServer, free_port, live_server

KEY = "deployed-test-key"


@pytest.fixture(scope="module")
def deployed(
    tiny_weights_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, str]]:
    """The server and its metrics URL."""
    metrics_port = free_port()
    with live_server(tiny_weights_dir, tmp_path_factory.mktemp("deployed"), auth="required", api_keys=KEY,
                     metrics_port=str(metrics_port), log_format="json") as server:
        yield server, f"http://127.0.0.1:{metrics_port}/metrics"


def test_metrics_are_served_on_their_own_port_only(deployed: tuple[LiveServer, str]) -> None:
    server, metrics_url = deployed
    scraped = httpx.get(metrics_url)  # Prometheus needs no key: the port is reached only from inside
    assert scraped.status_code == 200 and "srgan_model_ready 1.0" in scraped.text
    assert httpx.get(f"{server.url}/metrics", headers={"x-api-key": KEY}).status_code == 404
    assert httpx.get(metrics_url.replace("/metrics", "/healthz")).status_code == 404


def test_the_api_needs_the_key(deployed: tuple[LiveServer, str]) -> None:
    server, _ = deployed
    image = {"image": ("a.png", png_bytes(natural_like_image(16, 16)))}
    refused = httpx.post(f"{server.url}/upscale", files=image)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="srgan"'
    assert httpx.get(f"{server.url}/docs").headers["www-authenticate"].startswith("Basic ")
    served = httpx.post(f"{server.url}/upscale", files=image, headers={"authorization": f"Bearer {KEY}"},
                        timeout=60)
    assert served.status_code == 200 and served.headers["x-output-size"] == "64x64"
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}


def test_logs_are_one_json_object_per_line_with_the_request_id(deployed: tuple[LiveServer, str]) -> None:
    server, _ = deployed
    response = httpx.get(f"{server.url}/v1/models", headers={"x-api-key": KEY, "x-request-id": "json-log-1"})
    assert response.status_code == 200
    deadline = time.monotonic() + 10
    while '"json-log-1"' not in server.log():  # written just after the response went out
        assert time.monotonic() < deadline, server.log()[-2000:]
        time.sleep(0.05)
    entries = [json.loads(line) for line in server.log().splitlines()]  # every line: one object
    assert all(set(entry) >= {"ts", "level", "logger", "request_id", "message"} for entry in entries)
    mine = [e for e in entries if e["request_id"] == "json-log-1"]
    assert [(e["logger"], e["message"].split(" in ")[0]) for e in mine] == [
        ("app.http.middleware", "GET /v1/models -> 200")
    ]
    assert any(e["logger"] == "uvicorn.error" and e["request_id"] == "-" for e in entries)


def test_sigterm_stops_the_metrics_port_with_the_service(tiny_weights_dir: Path, tmp_path: Path) -> None:
    metrics_port = free_port()
    with live_server(tiny_weights_dir, tmp_path, metrics_port=str(metrics_port)) as server:
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == -signal.SIGTERM
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert server.log().count("Finished server process") == 2  # the service and its metrics server
