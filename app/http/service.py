"""The running service's state: settings, metrics, the loaded models and the engine, and readiness.

One instance per app, created by `create_app` and reached by routes through `ServiceDep`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Annotated

import torch
from fastapi import Depends, Request

from app.engine import Engine, default_batch_size
from app.errors import InvalidParameter, NotReady
from app.limits import HostLimits, cost
from app.settings import Settings
from app.telemetry import Metrics
from model.inference import Upscaler, resolve_device, resolve_dtype
from model.registry import REGISTRY, ModelRegistry

logger = logging.getLogger(__name__)


@dataclass
class Service:
    settings: Settings
    metrics: Metrics
    registry: ModelRegistry = REGISTRY
    upscalers: dict[str, Upscaler] = field(default_factory=dict)
    engine: Engine | None = None
    limits: HostLimits | None = None  # memory budget and host pool, made once the weights are loaded
    ready: bool = False
    draining: bool = False
    drain_started: float | None = None  # time.monotonic() of SIGTERM
    _reported_problem: str | None = field(default=None, init=False, repr=False)

    def require_ready(self) -> Engine:
        """The engine, or NotReady (503) while loading, draining or while the engine cannot make progress."""
        if self.draining:
            raise NotReady("the service is shutting down; retry on another replica", retry_after_s=1)
        if not self.ready or self.engine is None:
            raise NotReady("the model is still loading", retry_after_s=5)
        if self.engine_problem() is not None:
            raise NotReady("the inference engine is not making progress; retry on another replica")
        return self.engine

    def engine_problem(self) -> str | None:
        """Why the engine cannot make progress (`Engine.health_problem`), or None; logged when it changes."""
        problem = None if self.engine is None else self.engine.health_problem()
        if (problem is None) != (self._reported_problem is None):
            if problem is None:
                logger.warning("the engine makes progress again")
            else:
                logger.error("the engine cannot make progress: %s; liveness and readiness now fail", problem)
        self._reported_problem = problem
        return problem

    def readiness(self) -> str:
        """`ready`, or why not: `loading`, `draining` or `unhealthy` (the engine cannot make progress)."""
        if self.draining:
            return "draining"
        if not self.ready:
            return "loading"
        return "unhealthy" if self.engine_problem() is not None else "ready"

    def require_limits(self) -> HostLimits:
        """The memory budget and host pool (made in `start`, before the service reports ready)."""
        if self.limits is None:
            raise NotReady("the model is still loading", retry_after_s=5)
        return self.limits

    def deadline(self) -> float:
        return time.monotonic() + self.settings.request_timeout_s

    @property
    def tile_pad(self) -> int:
        return self.settings.pad_for(self.registry)

    def check_model(self, name: str | None) -> str:
        """`name`, or the default model when None; InvalidParameter (422) for a name not registered."""
        if name is None:
            return self.registry.default.name
        if name not in self.registry:
            raise InvalidParameter(f"model must be one of {', '.join(self.registry.names())}, not {name!r}")
        return name

    async def start(self) -> None:
        """Load every registered model (all are required), start the engine, warm up; then report ready."""
        s = self.settings
        started = time.perf_counter()
        device = resolve_device(s.device)
        dtype = resolve_dtype(s.dtype, device)
        max_batch = default_batch_size(device.type, s.max_batch)
        for spec in self.registry:
            upscaler = await asyncio.to_thread(self.registry.load, spec.name, s.weights_dir, device, dtype)
            if s.compile and device.type == "cuda":
                upscaler.compile(fixed_batch=max_batch)
            self.upscalers[spec.name] = upscaler
        self.engine = Engine(
            self.upscalers,
            tile=s.tile,
            pad=self.tile_pad,
            max_batch=max_batch,
            max_wait_s=s.max_wait_ms / 1000,
            max_queue_tiles=s.max_queue_tiles,
            metrics=self.metrics,
            stall_timeout_s=s.stall_timeout_s,
        )
        await self.engine.start()
        await self.engine.warmup()
        largest = cost.largest_upscale_bytes(
            s.max_input_pixels, max_upload_bytes=s.max_upload_bytes, tile=s.tile, pad=self.tile_pad,
            scale=max(spec.scale for spec in self.registry),
        )
        self.limits = HostLimits.start(s.memory_budget_mb, largest_request_bytes=largest)
        self.ready = True
        logger.info(
            "ready in %.1f s: models %s on %s (%s), tile %d pad %d, batch %d",
            time.perf_counter() - started,
            ", ".join(self.upscalers),
            device,
            str(dtype).removeprefix("torch."),
            s.tile,
            self.tile_pad,
            max_batch,
        )

    def begin_drain(self) -> None:
        """Called on SIGTERM, before the server stops accepting: readiness fails, new work is refused."""
        if not self.draining:
            logger.info("draining: readiness now fails and new work is refused")
            self.drain_started = time.monotonic()
        self.draining = True

    async def stop(self) -> None:
        """Drain whatever is left within what remains of the one drain budget, which started at SIGTERM
        (under `srgan serve`, uvicorn has spent part of it letting in-flight requests finish)."""
        self.begin_drain()
        assert self.drain_started is not None
        remaining = self.settings.drain_timeout_s - (time.monotonic() - self.drain_started)
        if self.engine is not None:
            await self.engine.stop(max(remaining, 0.0))
        if self.limits is not None:
            self.limits.stop()
        self.ready = False

    def refresh_metrics(self) -> None:
        """Gauges read at scrape time: readiness (as /readyz sees it) and, on CUDA, device memory."""
        self.metrics.model_ready.set(1 if self.readiness() == "ready" else 0)
        device = next((u.device for u in self.upscalers.values() if u.device.type == "cuda"), None)
        if device is not None:
            self.metrics.device_memory.labels("allocated").set(torch.cuda.memory_allocated(device))
            self.metrics.device_memory.labels("reserved").set(torch.cuda.memory_reserved(device))
            # The device's whole memory, so that alerts can be relative to it on any card.
            self.metrics.device_memory.labels("total").set(torch.cuda.mem_get_info(device)[1])


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]
