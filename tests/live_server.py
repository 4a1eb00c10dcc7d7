"""A real `srgan serve` process on a free loopback port, for tests that need sockets, signals or a browser."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def live_server(weights_dir: Path, log_dir: Path, **settings: str) -> Iterator[LiveServer]:
    """Start `srgan serve` with the given weights and SRGAN_* settings (names without the prefix, e.g.
    TILE="16"); yield once /readyz answers 200; stop it (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRGAN_")}
    env.update(
        {
            "SRGAN_DEVICE": "cpu",
            "SRGAN_WEIGHTS_DIR": str(weights_dir),
            # The largest square image allowed must fit the queue bound in the tests' small tiles.
            "SRGAN_MAX_INPUT_PIXELS": str(256 * 256),
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        }
    )
    env.update({f"SRGAN_{name.upper()}": value for name, value in settings.items()})
    log_path = log_dir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(f"http://127.0.0.1:{port}", port, process, log_path)
    try:
        _wait_ready(server, timeout_s=90)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(server: LiveServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"srgan serve exited with {server.process.returncode}:\n{server.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"srgan serve not ready in {timeout_s:.0f} s:\n{server.log()[-3000:]}")
        time.sleep(0.2)
