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
    ready: bool = False
    draining: bool = False
    drain_started: float | None = None  # time.monotonic() of SIGTERM

    def require_ready(self) -> Engine:
        """The engine, or NotReady (503) while loading or draining."""
        if self.draining:
            raise NotReady("the service is shutting down; retry on another replica", retry_after_s=1)
        if not self.ready or self.engine is None:
            raise NotReady("the model is still loading", retry_after_s=5)
        return self.engine

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
        )
        await self.engine.start()
        await self.engine.warmup()
        self.ready = True
        self.metrics.model_ready.set(1)
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
        self.metrics.model_ready.set(0)

    async def stop(self) -> None:
        """Drain whatever is left within what remains of the one drain budget, which started at SIGTERM
        (under `srgan serve`, uvicorn has spent part of it letting in-flight requests finish)."""
        self.begin_drain()
        assert self.drain_started is not None
        remaining = self.settings.drain_timeout_s - (time.monotonic() - self.drain_started)
        if self.engine is not None:
            await self.engine.stop(max(remaining, 0.0))
        self.ready = False

    def refresh_device_memory(self) -> None:
        if torch.cuda.is_available() and any(u.device.type == "cuda" for u in self.upscalers.values()):
            self.metrics.device_memory.labels("allocated").set(torch.cuda.memory_allocated())
            self.metrics.device_memory.labels("reserved").set(torch.cuda.memory_reserved())


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]
