"""The app factory: `create_app(settings)` wires settings, metrics, the model registry, middleware, routes
and the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.http.error_mapping import install_error_handlers
from app.http.middleware import RequestContextMiddleware
from app.http.routes import compare, demo, docs, ops, upscale
from app.http.service import Service
from app.settings import Settings
from app.telemetry import Metrics
from model.registry import REGISTRY, ModelRegistry

ROUTERS = (upscale.router, compare.router, ops.router, demo.router, docs.router)


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
        # Served by `docs.router`, behind the API key when keys are configured.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = service
    # With SRGAN_METRICS_PORT, /metrics is served there only (`create_metrics_app`).
    routers: tuple[APIRouter, ...] = ROUTERS if settings.metrics_port else (*ROUTERS, ops.metrics_router)
    for router in routers:
        app.include_router(router)
    # Our routes' paths label the metrics, so that a new route is counted without further wiring.
    endpoints = frozenset(r.path for router in routers for r in router.routes if isinstance(r, Route))
    app.add_middleware(
        RequestContextMiddleware,
        metrics=service.metrics,
        endpoints=endpoints,
        max_upload_bytes=settings.max_upload_bytes,
        upload_timeout_s=settings.request_timeout_s,
    )
    install_error_handlers(app, service.metrics)
    return app


def create_metrics_app(service: Service) -> Starlette:
    """GET /metrics alone, for SRGAN_METRICS_PORT: the service's registry, served beside its app."""

    async def metrics(request: Request) -> Response:
        return ops.render_metrics(service)

    return Starlette(routes=[Route("/metrics", metrics, methods=["GET"])])
