"""Operational endpoints: liveness, readiness, metrics and the loaded models.

/metrics is its own router: on the service port only when SRGAN_METRICS_PORT is not set.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.engine import default_batch_size
from app.http.auth import AuthDep
from app.http.service import Service, ServiceDep

router = APIRouter()
metrics_router = APIRouter()


@router.get(
    "/healthz",
    summary="Liveness: 200 while the engine works; 503 when its batch loop has died or no batch finishes "
    "while work waits",
)
async def healthz(service: ServiceDep) -> JSONResponse:
    problem = service.engine_problem()
    if problem is None:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unhealthy", "reason": problem}, status_code=503)


@router.get(
    "/readyz",
    summary="Readiness: 200 once models are loaded and warm; 503 before, while draining and while the "
    "engine cannot make progress",
)
async def readyz(service: ServiceDep) -> JSONResponse:
    state = service.readiness()
    if state == "ready":
        return JSONResponse({"status": state})
    return JSONResponse({"status": state}, status_code=503, headers={"Retry-After": "5"})


def render_metrics(service: Service) -> Response:
    """The Prometheus text exposition of the service's registry, its scrape-time gauges refreshed."""
    service.refresh_metrics()
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@metrics_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    return render_metrics(service)


@router.get("/v1/models", summary="The loaded models")
async def models(service: ServiceDep, _: AuthDep) -> dict[str, Any]:
    s = service.settings
    return {
        "models": [
            {
                "name": name,
                "label": service.registry[name].label,
                "description": service.registry[name].description,
                "default": name == service.registry.default.name,
                "scale": u.scale,
                "parameters": u.parameters,
                "device": str(u.device),
                "dtype": str(u.dtype).removeprefix("torch."),
                "tile_size": s.tile,
                "tile_pad": service.tile_pad,
                "max_batch": default_batch_size(u.device.type, s.max_batch),
                "architecture": u.info.arch if u.info else None,
                "training": u.info.training if u.info else None,
            }
            for name, u in service.upscalers.items()
        ]
    }
