"""The app factory: `create_app(settings)` wires settings, metrics, middleware, routes and the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.http.error_mapping import install_error_handlers
from app.http.middleware import RequestContextMiddleware
from app.http.routes import compare, demo, ops, upscale
from app.http.service import Service
from app.settings import Settings
from app.telemetry import Metrics


def create_app(settings: Settings | None = None, metrics: Metrics | None = None) -> FastAPI:
    """A new app with its own service state; nothing is loaded until the lifespan starts."""
    settings = settings or Settings()
    service = Service(settings=settings, metrics=metrics or Metrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="SRGAN x4 super-resolution",
        version="0.1.0",
        lifespan=lifespan,
        description="Upscale images x4 with SRGAN/SRResNet; compare with interpolation.",
    )
    app.state.service = service
    app.add_middleware(
        RequestContextMiddleware,
        metrics=service.metrics,
        max_upload_bytes=settings.max_upload_bytes,
        upload_timeout_s=settings.request_timeout_s,
    )
    install_error_handlers(app, service.metrics)
    for module in (upscale, compare, ops, demo):
        app.include_router(module.router)
    return app
