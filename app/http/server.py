"""`srgan serve`: uvicorn in one process, with a SIGTERM that drains before it stops, and /metrics on
SRGAN_METRICS_PORT, when set, from a second server in the same event loop."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn

from app.http.app import create_app, create_metrics_app
from app.http.connections import guarded_h11
from app.http.service import Service
from app.logs import configure_logging
from app.settings import Settings

logger = logging.getLogger(__name__)


class SidecarServer(uvicorn.Server):
    """A server beside the main one, in its process and event loop; the main server takes the signals
    and stops it."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT, fail readiness and refuse new work first; uvicorn then stops accepting, lets
    in-flight requests finish for up to `timeout_graceful_shutdown`, and the lifespan stops the engine.

    `sidecar` (the metrics port) starts before the models load and stops after the drain, so that
    Prometheus sees the replica while it starts and while it drains.
    """

    def __init__(
        self, config: uvicorn.Config, service: Service, sidecar: uvicorn.Config | None = None
    ) -> None:
        super().__init__(config)
        self.service = service
        self.sidecar = SidecarServer(sidecar) if sidecar is not None else None
        self._sidecar_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.service.begin_drain()
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.sidecar is not None:
            # Bound here, so that a port in use ends the process at once with uvicorn's one-line error.
            sockets_ = [self.sidecar.config.bind_socket()]
            self._sidecar_task = asyncio.create_task(self.sidecar.serve(sockets_), name="srgan-metrics")
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self.sidecar is not None and self._sidecar_task is not None:
            self.sidecar.should_exit = True
            await self._sidecar_task


def serve(host: str, port: int) -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    sidecar = None
    if settings.metrics_port is not None:
        if settings.metrics_port == port:
            raise SystemExit(f"srgan: SRGAN_METRICS_PORT={port} is the service's own port; choose another")
        sidecar = uvicorn.Config(
            create_metrics_app(app.state.service),
            host=host,
            port=settings.metrics_port,
            log_config=None,
            lifespan="off",
        )
    rejected = app.state.service.metrics.rejected
    protocol = guarded_h11(header_timeout_s=settings.header_timeout_s,
                           max_connections=settings.max_connections,
                           on_refusal=lambda reason: rejected.labels(reason).inc())
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.drain_timeout_s) or None,
    )
    logger.info("serving on http://%s:%d", host, port)
    DrainingServer(config, app.state.service, sidecar).run()
