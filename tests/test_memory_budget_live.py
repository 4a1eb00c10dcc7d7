"""A real `srgan serve` under a memory budget, flooded with maximum-size requests at once: every answer is
200 or 503, and the server's peak resident memory stays within its resident size before plus the budget."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import imagecodecs
import numpy as np
import pytest

from app.imaging.header import read_header
from app.limits import cost
from app.limits.budget import MIB
from model.synthetic import natural_like_image
from tests.api_helpers import upload
from tests.live_server import live_server

SIDE = 512  # the pixel limit below: a maximum-size request
CONCURRENT = 8


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def rgba16_png(seed: int) -> bytes:
    """A maximum-size 16-bit RGBA PNG, the most memory per pixel a request can ask for."""
    deep = natural_like_image(SIDE, SIDE, seed).astype(np.uint16) * 257
    alpha = np.linspace(0, 65535, SIDE * SIDE).reshape(SIDE, SIDE, 1).astype(np.uint16)
    return bytes(imagecodecs.png_encode(np.dstack([deep, alpha])))


def test_concurrent_maximum_size_requests_stay_within_the_memory_budget(
    tiny_weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = [rgba16_png(seed) for seed in range(CONCURRENT)]
    one = cost.upscale_bytes(read_header(images[0], max_pixels=SIDE * SIDE), upload_bytes=len(images[0]),
                             scale=4, fmt="png", tile=96, pad=12)
    budget_mb = (2 * one) // MIB + 1  # two at a time, at most
    spool = Path(tempfile.mkdtemp(dir=tmp_path))
    monkeypatch.setenv("TMPDIR", str(spool))  # nothing of an upload may land here
    with live_server(tiny_weights_dir, tmp_path, max_input_pixels=str(SIDE * SIDE),
                     memory_budget_mb=str(budget_mb), max_batch="4", tile="96", tile_pad="12") as server:
        pid = server.process.pid
        with httpx.Client(timeout=120) as client:  # a first request loads what stays loaded (codecs)
            assert client.post(f"{server.url}/upscale", **upload(images[0])).status_code == 200
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak count starts again from here
        before_kib = status_kib(pid, "VmRSS")

        def post(data: bytes) -> httpx.Response:
            with httpx.Client(timeout=120) as client:
                return client.post(f"{server.url}/upscale", **upload(data))

        with ThreadPoolExecutor(CONCURRENT) as senders:
            responses = list(senders.map(post, images))
        peak_kib = status_kib(pid, "VmHWM")
        assert not list(spool.iterdir())
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 503}, codes
    assert 200 in codes
    assert 503 in codes, "the budget holds two at a time: the others must have been refused"
    for response in responses:
        if response.status_code == 503:
            assert response.json()["error"]["code"] in ("memory", "host_busy")
            assert int(response.headers["retry-after"]) >= 1
    assert peak_kib * 1024 <= before_kib * 1024 + budget_mb * MIB, (
        f"peak {peak_kib // 1024} MiB above {before_kib // 1024} MiB resident + {budget_mb} MiB budget"
    )
