"""The app factory: `create_app(settings)` wires settings, metrics, the model registry, middleware, routes
and the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.routing import Route

from app.http.error_mapping import install_error_handlers
from app.http.middleware import RequestContextMiddleware
from app.http.routes import compare, demo, ops, upscale
from app.http.service import Service
from app.settings import Settings
from app.telemetry import Metrics
from model.registry import REGISTRY, ModelRegistry

ROUTERS = (upscale.router, compare.router, ops.router, demo.router)


def create_app(
    settings: Settings | None = None, metrics: Metrics | None = None, registry: ModelRegistry = REGISTRY
) -> FastAPI:
    """A new app with its own service state; nothing is loaded until the lifespan starts."""
    settings = settings or Settings()
    service = Service(settings=settings, metrics=metrics or Metrics(), registry=registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="SRGAN super-resolution",
        version="0.1.0",
        lifespan=lifespan,
        description="Upscale images with SRGAN/SRResNet; compare with interpolation.",
    )
    app.state.service = service
    for router in ROUTERS:
        app.include_router(router)
    # Our routes' paths label the metrics, so that a new route is counted without further wiring.
    endpoints = frozenset(r.path for router in ROUTERS for r in router.routes if isinstance(r, Route))
    app.add_middleware(
        RequestContextMiddleware,
        metrics=service.metrics,
        endpoints=endpoints,
        max_upload_bytes=settings.max_upload_bytes,
        upload_timeout_s=settings.request_timeout_s,
    )
    install_error_handlers(app, service.metrics)
    return app
