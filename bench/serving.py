"""What the serving benchmarks share: a real `srgan serve` subprocess on loopback, its metrics and memory,
image payloads made in code, tiny weights for dry runs, and latency statistics.

The server is started as `python -m app.cli serve` (the `srgan` console script's own entry point) so that
the process id we sample is the server itself, not a launcher shim.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]
TINY_ARCH = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "upscale": 4}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def write_tiny_weights(folder: Path) -> Path:
    """A weights file per registered model, of a random 8-feature, 1-block generator at the model's
    scale: milliseconds per tile."""
    import torch

    from model.generator import Generator
    from model.registry import REGISTRY
    from model.weights import save_generator

    folder.mkdir(parents=True, exist_ok=True)
    for seed, spec in enumerate(REGISTRY):
        torch.manual_seed(seed)
        arch = {**TINY_ARCH, "upscale": spec.scale}
        save_generator(
            folder / spec.weights_file,
            Generator(**arch).eval(),
            arch,
            {"stage": spec.name, "note": "random weights for benchmark dry runs"},
        )
    return folder


def max_input_pixels(tile: int, max_queue_tiles: int | None = None) -> int:
    """SRGAN_MAX_INPUT_PIXELS for a server with small tiles: the service's default, or less where the
    settings check requires it (the largest square image must fit the queue bound in tiles)."""
    fields = Settings.model_fields
    queue = max_queue_tiles or fields["max_queue_tiles"].default
    return min(fields["max_input_pixels"].default, (math.isqrt(queue) * tile) ** 2)


def base_env(
    device: str, weights: Path, tile: int, pad: int, deadline_s: float, max_queue_tiles: int | None = None
) -> dict[str, str]:
    """The SRGAN_* settings every benchmark server sets: device, weights, tiling and deadline."""
    return {
        "SRGAN_DEVICE": device,
        "SRGAN_WEIGHTS_DIR": str(weights),
        "SRGAN_TILE": str(tile),
        "SRGAN_TILE_PAD": str(pad),
        "SRGAN_MAX_INPUT_PIXELS": str(max_input_pixels(tile, max_queue_tiles)),
        "SRGAN_REQUEST_TIMEOUT_S": str(deadline_s),
    }


def server_env(args: argparse.Namespace, weights: Path, **extra: str) -> dict[str, str]:
    """SRGAN_* settings for a benchmark server from the common flags (device, tile, pad, batch,
    max_wait_ms when the script has it, deadline_s), plus `extra` (full variable names)."""
    queue = extra.get("SRGAN_MAX_QUEUE_TILES")
    env = base_env(args.device, weights, args.tile, args.pad, args.deadline_s, int(queue) if queue else None)
    if args.batch is not None:  # else the service's default for the device
        env["SRGAN_MAX_BATCH"] = str(args.batch)
    if hasattr(args, "max_wait_ms"):
        env["SRGAN_MAX_WAIT_MS"] = str(args.max_wait_ms)
    return {**env, **extra}


def probe_concurrency(batch: int | None) -> int:
    """Clients for a closed-loop capacity probe: enough to keep batches full (2 x batch), at least 4,
    and no more, since a CPU at one tile per batch cannot serve 16 at once within a deadline."""
    return max(4, 2 * (batch or 1))


@contextlib.contextmanager
def bench_server(args: argparse.Namespace, **extra: str) -> Iterator[Server]:
    """A ready `srgan serve` with the script's settings: tiny random weights with --tiny (dry runs),
    else --weights."""
    with tempfile.TemporaryDirectory() as tmp:
        weights = write_tiny_weights(Path(tmp)) if args.tiny else args.weights
        with Server(server_env(args, weights, **extra)) as server:
            yield server


def emit(result: Mapping[str, object], json_path: Path | None) -> None:
    """Print a benchmark's result as JSON, and save it to `json_path` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if json_path:
        json_path.write_text(text + "\n")


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'32x32,64x48' -> [(32, 32), (64, 48)] as (width, height)."""
    sizes = []
    for item in text.split(","):
        width, _, height = item.strip().lower().partition("x")
        sizes.append((int(width), int(height or width)))
    return sizes


def tiles_of(width: int, height: int, tile: int) -> int:
    return math.ceil(width / tile) * math.ceil(height / tile)


def percentiles(values: Sequence[float], points: Iterable[int] = (50, 95, 99)) -> dict[str, float | None]:
    """Linear-interpolated percentiles (numpy's default); None for an empty sample."""
    if not values:
        return {f"p{p}": None for p in points}
    return {f"p{p}": float(np.percentile(values, p)) for p in points}


def machine() -> dict[str, str | int]:
    """Where a number was measured: CPU model, cores, memory, OS, torch build."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = 0
    with contextlib.suppress(ValueError, OSError):
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    import torch

    return {
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        # Other work on the machine (the training job, other tests) shows here: read beside the numbers.
        "loadavg_1m_5m": " ".join(f"{v:.1f}" for v in os.getloadavg()[:2]),
    }


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """`srgan serve` on a free loopback port with `env` (SRGAN_* settings) on top of a clean environment.

    Use as a context manager: it waits for /readyz, and on exit sends SIGTERM (graceful drain) and kills
    the process if it has not ended within `stop_timeout_s`.
    """

    env: Mapping[str, str]
    threads: int | None = None  # torch intra-op threads (OMP_NUM_THREADS); None: torch's default
    ready_timeout_s: float = 180.0
    stop_timeout_s: float = 30.0
    port: int = field(default_factory=free_port)
    repo: Path = REPO  # the checkout to serve (another one, e.g. a `git worktree`, for before/after runs)
    module: str = "app.cli"  # run as `python -m MODULE serve --host H --port P`
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SRGAN_")}
        env.update(self.env)
        if self.threads is not None:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.repo), env.get("PYTHONPATH")]))
        handle, name = tempfile.mkstemp(prefix="srgan-serve-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(handle, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "serve", "--host", LOOPBACK, "--port", str(self.port)],
                env=env,
                cwd=self.repo,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(
                        f"srgan serve exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise TimeoutError(f"srgan serve not ready after {self.ready_timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log_path is not None and kind is None:
            self.log_path.unlink(missing_ok=True)


def scrape(url: str) -> dict[str, float]:
    """/metrics as {'name{label="value",...}': value}, plus each family's samples summed under 'name'."""
    text = httpx.get(f"{url}/metrics", timeout=10.0).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
            if "le" not in sample.labels:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def metric_delta(before: Mapping[str, float], after: Mapping[str, float], prefix: str) -> dict[str, float]:
    """Counters that start with `prefix` and changed between two scrapes."""
    return {
        k: after[k] - before.get(k, 0.0)
        for k in after
        if k.startswith(prefix) and "{" in k and after[k] != before.get(k, 0.0)
    }


def mean_batch_fill(before: Mapping[str, float], after: Mapping[str, float]) -> tuple[float | None, int]:
    """Mean tiles per batch between two scrapes (srgan_batch_size_tiles sum/count), and the batch count."""
    count = after.get("srgan_batch_size_tiles_count", 0.0) - before.get("srgan_batch_size_tiles_count", 0.0)
    total = after.get("srgan_batch_size_tiles_sum", 0.0) - before.get("srgan_batch_size_tiles_sum", 0.0)
    return (total / count if count else None), int(count)
