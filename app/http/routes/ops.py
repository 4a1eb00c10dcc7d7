"""Operational endpoints: liveness, readiness, metrics and the loaded models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.engine import default_batch_size
from app.http.service import ServiceDep

router = APIRouter()


@router.get("/healthz", summary="Liveness: 200 while the process serves")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", summary="Readiness: 200 once models are loaded and warm, 503 before and while draining"
)
async def readyz(service: ServiceDep) -> JSONResponse:
    if service.ready and not service.draining:
        return JSONResponse({"status": "ready"})
    state = "draining" if service.draining else "loading"
    return JSONResponse({"status": state}, status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    service.refresh_device_memory()
    if service.engine is not None:
        service.metrics.queue_depth.set(service.engine.queue_depth_tiles)
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models", summary="The loaded models")
async def models(service: ServiceDep) -> dict[str, Any]:
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
