"""POST /compare: the talk's slide. The upload is the ground truth; every method restores its reduction."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from app import comparison as methods
from app.http.auth import AuthDep
from app.http.routes.uploads import IMAGE_UPLOAD_OPENAPI, read_image_field, unless_disconnected
from app.http.service import ServiceDep
from app.imaging.decode import decode_image
from app.logs import request_id_var

router = APIRouter()


@router.post(
    "/compare",
    openapi_extra=IMAGE_UPLOAD_OPENAPI,
    responses={
        200: {
            "content": {"application/json": {}, "image/png": {}},
            "description": "scores and images per method, or the labelled mosaic",
        }
    },
    summary="Compare the interpolations and every registered model against the uploaded original",
)
async def compare_methods(
    request: Request,
    service: ServiceDep,
    _: AuthDep,
    output: Annotated[
        Literal["json", "image"], Query(description="JSON with data URIs, or one PNG")
    ] = "json",
) -> Any:
    deadline = service.deadline()
    engine = service.require_ready()
    plan = methods.Plan.for_registry(service.registry)
    data = await read_image_field(request)
    decoded = await asyncio.to_thread(decode_image, data, max_pixels=service.settings.max_input_pixels)
    hr = await asyncio.to_thread(methods.ground_truth, decoded, plan)
    lr = await asyncio.to_thread(methods.degrade, hr, plan)
    request_id = request_id_var.get()

    async def restore_all() -> dict[str, Any]:
        interpolation = asyncio.ensure_future(asyncio.to_thread(methods.interpolate_all, lr, plan))
        models = [
            asyncio.ensure_future(engine.upscale(name, lr, deadline=deadline, request_id=request_id))
            for name in plan.models
        ]
        try:
            interpolated, *restored = await asyncio.gather(interpolation, *models)
        finally:
            for job in (interpolation, *models):  # one failed: the others' tiles must not stay queued
                job.cancel()
        return {**interpolated, **dict(zip(plan.models, restored, strict=True))}

    outputs = await unless_disconnected(request, restore_all())
    comparison = await asyncio.to_thread(methods.assemble, plan, hr, lr, outputs)
    service.metrics.pixels.labels("in").inc(len(plan.models) * lr.shape[0] * lr.shape[1])
    service.metrics.pixels.labels("out").inc(len(plan.models) * hr.shape[0] * hr.shape[1])
    if output == "image":
        return Response(await asyncio.to_thread(methods.render_mosaic, comparison), media_type="image/png")
    return await asyncio.to_thread(methods.to_json, comparison)
