"""A client that disconnects is a 499: one log line, counted under code 499 and reason client_closed, its
queued tiles dropped; never a 500 with a traceback."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest

from app.telemetry import Metrics
from model.synthetic import natural_like_image
from tests.api_helpers import png_bytes, running_client
from tests.live_server import live_server

Message = dict[str, Any]


def metric(text: str, sample: str) -> float:
    """The value of one sample line of a Prometheus text exposition (0 when absent)."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


def metrics_text(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def upload_scope(path: str, image: bytes) -> tuple[dict[str, Any], bytes]:
    """An ASGI scope and body for a multipart POST of `image`, as uvicorn would pass them."""
    request = httpx.Request("POST", f"http://test{path}", files={"image": ("image.png", image, "image/png")})
    body = request.read()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", request.headers["content-type"].encode()),
                    (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }
    return scope, body


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def assert_one_quiet_499(caplog: pytest.LogCaptureFixture, path: str) -> None:
    lines = [r.getMessage() for r in caplog.records if r.name == "app.http.middleware"]
    assert [line.split(" in ")[0] for line in lines] == [f"POST {path} -> 499 client closed"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize("path", ["/upscale", "/compare"])
async def test_a_client_gone_while_its_tiles_queue_is_499_and_its_tiles_are_dropped(
    tiny_weights_dir: Path, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.INFO)
    async with running_client(tiny_weights_dir) as client:
        app = client.app  # type: ignore[attr-defined]
        service = app.state.service
        engine = service.engine
        scope, body = upload_scope(path, png_bytes(natural_like_image(64, 64)))
        gone = asyncio.Event()
        sent: list[Message] = []
        body_sent = False

        async def receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        # Hold the engine's one worker thread, so that the request's tiles stay queued until it leaves.
        release = threading.Event()
        engine._executor.submit(release.wait, 30)
        caplog.clear()
        try:
            call = asyncio.ensure_future(app(scope, receive, send))
            await until(lambda: engine.queue_depth_tiles > 0)
            gone.set()
            await asyncio.wait_for(call, 10)
            # Dropped, not run: the worker is still held, and nothing of the request is queued any more.
            assert engine.queue_depth_tiles == 0
        finally:
            release.set()
        text = metrics_text(service.metrics)
    assert sent == []  # nothing is sent to a client that has left
    assert metric(text, f'srgan_requests_total{{code="499",endpoint="{path}"}}') == 1
    assert metric(text, 'srgan_rejected_total{reason="client_closed"}') == 1
    assert metric(text, f'srgan_requests_total{{code="500",endpoint="{path}"}}') == 0
    assert_one_quiet_499(caplog, path)


async def test_a_client_gone_during_its_upload_is_499(
    tiny_weights_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_client(tiny_weights_dir) as client:
        app = client.app  # type: ignore[attr-defined]
        scope, body = upload_scope("/upscale", png_bytes(natural_like_image(64, 64)))
        half: Message = {"type": "http.request", "body": body[: len(body) // 2], "more_body": True}
        messages = iter([half, {"type": "http.disconnect"}])
        sent: list[Message] = []

        async def receive() -> Message:
            return next(messages)

        async def send(message: Message) -> None:
            sent.append(message)

        caplog.clear()
        await app(scope, receive, send)
        text = metrics_text(app.state.service.metrics)
    assert sent == []
    assert metric(text, 'srgan_requests_total{code="499",endpoint="/upscale"}') == 1
    assert metric(text, 'srgan_rejected_total{reason="client_closed"}') == 1
    assert_one_quiet_499(caplog, "/upscale")


def test_a_real_client_that_times_out_is_logged_and_counted_as_499(
    tiny_weights_dir: Path, tmp_path: Path
) -> None:
    # A batch waits up to 1 s to fill its 256 tiles, so the image's 100 tiles stay queued for a second
    # after they arrive; the client gives up after 0.3 s of silence and closes the connection.
    with live_server(
        tiny_weights_dir, tmp_path, tile="16", tile_pad="4", max_batch="256", max_wait_ms="1000"
    ) as server:
        image = png_bytes(natural_like_image(160, 160))
        with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=httpx.Timeout(30, read=0.3)) as client:
            client.post(f"{server.url}/upscale", files={"image": ("a.png", image)})
        deadline = time.monotonic() + 30
        while metric(text := httpx.get(f"{server.url}/metrics").text,
                     'srgan_requests_total{code="499",endpoint="/upscale"}') < 1:
            assert time.monotonic() < deadline, f"no 499 counted:\n{server.log()[-3000:]}"
            time.sleep(0.05)
        log = server.log()
    assert metric(text, 'srgan_rejected_total{reason="client_closed"}') == 1
    assert metric(text, "srgan_queue_depth_tiles") == 0
    # Its tiles were dropped before their batch ran: no batch of any model was ever run.
    assert metric(text, 'srgan_batch_size_tiles_count{model="srgan"}') == 0
    assert "POST /upscale -> 499 client closed" in log
    assert "Traceback" not in log and "InvalidStateError" not in log
