"""`srgan serve`: uvicorn in one process, with a SIGTERM that drains before it stops."""

from __future__ import annotations

import logging
from types import FrameType

import uvicorn

from app.http.app import create_app
from app.http.service import Service
from app.logs import configure_logging
from app.settings import Settings

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT, fail readiness and refuse new work first; uvicorn then stops accepting, lets
    in-flight requests finish for up to `timeout_graceful_shutdown`, and the lifespan stops the engine."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.service.begin_drain()
        super().handle_exit(sig, frame)


def serve(host: str, port: int) -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.drain_timeout_s) or None,
    )
    logger.info("serving on http://%s:%d", host, port)
    DrainingServer(config, app.state.service).run()
