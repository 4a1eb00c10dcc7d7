"""POST /compare: the talk's slide. The upload is the ground truth; every method restores its reduction
and is scored with PSNR/SSIM (higher is better) and NIQE (lower is better)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request, Response

from app import comparison as methods
from app.http.auth import AuthDep
from app.http.reservations import HeldResponse, admit
from app.http.routes.uploads import IMAGE_UPLOAD_OPENAPI, read_image_field, unless_disconnected
from app.http.service import ServiceDep
from app.imaging.decode import decode_image
from app.imaging.header import read_header
from app.limits import cost
from app.logs import request_id_var

router = APIRouter()
T = TypeVar("T")


@router.post(
    "/compare",
    openapi_extra=IMAGE_UPLOAD_OPENAPI,
    responses={
        200: {
            "content": {"application/json": {}, "image/png": {}},
            "description": "per method its PSNR/SSIM (higher is better), NIQE (lower is better; null with "
            "`niqe_unavailable` saying why for an image under two 96x96 patches) and image, the "
            "original's NIQE, and `better` naming each score's direction; or the labelled mosaic",
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
) -> Response:
    deadline = service.deadline()
    engine = service.require_ready()
    limits = service.require_limits()
    plan = methods.Plan.for_registry(service.registry)
    settings = service.settings
    max_pixels = min(settings.max_input_pixels, settings.compare_max_pixels)
    reservation = admit(request, limits, max_upload_bytes=settings.max_upload_bytes, what="an upload")
    try:
        data = await read_image_field(request)
        header = await limits.pool.run(functools.partial(read_header, data, max_pixels=max_pixels),
                                       hold=reservation)
        needs = cost.compare_bytes(header, upload_bytes=len(data), plan_models=len(plan.models),
                                   scale=plan.scale, tile=settings.tile, pad=service.tile_pad,
                                   output=output)
        reservation.resize(needs, what=f"comparing a {header.width}x{header.height} image")
        request_id = request_id_var.get()
        engine.check_admission(max(header.height // plan.scale, 1), max(header.width // plan.scale, 1),
                               deadline=deadline, request_id=request_id)

        async def run(fn: Callable[..., T], *args: Any) -> T:
            return await limits.pool.run(fn, *args, hold=reservation)

        async def work() -> tuple[bytes, int, int]:
            decoded = await run(functools.partial(decode_image, data, max_pixels=max_pixels))
            hr = await run(methods.ground_truth, decoded, plan)
            del decoded
            lr = await run(methods.degrade, hr, plan)
            interpolation = asyncio.ensure_future(run(methods.interpolate_all, lr, plan))
            models = [
                asyncio.ensure_future(engine.upscale(name, lr, deadline=deadline, request_id=request_id))
                for name in plan.models
            ]
            try:
                interpolated, *restored = await asyncio.gather(interpolation, *models)
            finally:
                for job in (interpolation, *models):  # one failed: the others' tiles must not stay queued
                    job.cancel()
                await asyncio.gather(interpolation, *models, return_exceptions=True)
            outputs = {**interpolated, **dict(zip(plan.models, restored, strict=True))}
            # One host job per image, one after another: a megapixel's NIQE takes about a second, so other
            # requests' stages get a thread in between, and only one image's scoring temporaries exist at
            # a time (what the reservation counts).
            scores = {name: await run(methods.score_method, outputs[name], hr, plan) for name in plan.labels}
            reference = await run(methods.original_niqe, hr, plan)
            comparison = methods.assemble(plan, hr, lr, outputs, scores, reference)
            render = methods.render_mosaic if output == "image" else methods.json_bytes
            return await run(render, comparison), lr.shape[0] * lr.shape[1], hr.shape[0] * hr.shape[1]

        body, low_pixels, high_pixels = await unless_disconnected(request, work())
    except BaseException:
        reservation.release()
        raise
    service.metrics.pixels.labels("in").inc(len(plan.models) * low_pixels)
    service.metrics.pixels.labels("out").inc(len(plan.models) * high_pixels)
    return HeldResponse(body, reservation=reservation, send_timeout_s=settings.request_timeout_s,
                        media_type="image/png" if output == "image" else "application/json")
