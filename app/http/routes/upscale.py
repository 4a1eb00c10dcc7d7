"""POST /upscale: one image in, the same image upscaled by the chosen model's scale out."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from app.http.auth import AuthDep
from app.http.routes.uploads import IMAGE_UPLOAD_OPENAPI, read_image_field, unless_disconnected
from app.http.service import ServiceDep
from app.imaging.decode import decode_image
from app.imaging.encode import encode_image
from app.imaging.image import MEDIA_TYPES, finish_upscale
from app.logs import request_id_var

router = APIRouter()


@router.post(
    "/upscale",
    openapi_extra=IMAGE_UPLOAD_OPENAPI,
    response_class=Response,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}, "description": "the upscaled image"}},
    summary="Upscale an image with a registered model (GET /v1/models lists them)",
)
async def upscale(
    request: Request,
    service: ServiceDep,
    _: AuthDep,
    model: Annotated[
        str | None, Query(description="a registered model (GET /v1/models); default: the README's")
    ] = None,
    format: Annotated[Literal["png", "jpeg", "webp"], Query(description="output format")] = "png",
    quality: Annotated[int, Query(ge=1, le=100, description="jpeg/webp quality")] = 90,
) -> Response:
    started = time.perf_counter()
    deadline = service.deadline()
    engine = service.require_ready()
    name = service.check_model(model)
    scale = service.upscalers[name].scale
    data = await read_image_field(request)
    decoded = await asyncio.to_thread(decode_image, data, max_pixels=service.settings.max_input_pixels)
    sr = await unless_disconnected(
        request, engine.upscale(name, decoded.rgb, deadline=deadline, request_id=request_id_var.get())
    )

    def finish() -> tuple[bytes, int, int]:
        result = finish_upscale(decoded, sr, scale)
        return encode_image(result, format, quality=quality), result.width, result.height

    body, width, height = await asyncio.to_thread(finish)
    service.metrics.pixels.labels("in").inc(decoded.width * decoded.height)
    service.metrics.pixels.labels("out").inc(width * height)
    return Response(
        body,
        media_type=MEDIA_TYPES[format],
        headers={
            "X-Model": name,
            "X-Output-Size": f"{width}x{height}",
            "X-Processing-Time-Ms": f"{(time.perf_counter() - started) * 1000:.1f}",
        },
    )
