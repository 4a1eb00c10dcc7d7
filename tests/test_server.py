"""`srgan serve` as a process: SIGTERM drains in-flight work before the process exits."""

import signal
import threading
import time
from pathlib import Path

import httpx

from model.synthetic import natural_like_image
from tests.api_helpers import decode, metric_value, png_bytes, upload
from tests.live_server import live_server


def test_sigterm_lets_the_request_in_flight_finish_then_exits_cleanly(
    tiny_weights_dir: Path, tmp_path: Path
) -> None:
    # max_batch 1 and a 160x160 image (100 tiles of 16) keep the request in flight for a while.
    with live_server(
        tiny_weights_dir, tmp_path, tile="16", tile_pad="4", max_batch="1", drain_timeout_s="60"
    ) as server:
        result: dict[str, httpx.Response] = {}

        def post() -> None:
            with httpx.Client(timeout=120) as client:
                result["response"] = client.post(
                    f"{server.url}/upscale", **upload(png_bytes(natural_like_image(160, 160)))
                )

        sender = threading.Thread(target=post)
        sender.start()
        deadline = time.monotonic() + 30
        while not metric_value(httpx.get(f"{server.url}/metrics").text, "srgan_queue_depth_tiles"):
            assert time.monotonic() < deadline, "the request's tiles never queued"
            time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        sender.join(timeout=120)
        # uvicorn re-raises the signal once its graceful shutdown is done, so supervisors see SIGTERM.
        assert server.process.wait(timeout=60) == -signal.SIGTERM
    response = result["response"]
    assert response.status_code == 200
    assert decode(response.content).shape == (640, 640, 3)
    log = server.log()
    # The request was answered after the drain began, and before the application shut down.
    assert (
        log.index("draining") < log.index("POST /upscale -> 200") < log.index("Application shutdown complete")
    )
