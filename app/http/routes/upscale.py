"""POST /upscale: one image in, the same image upscaled by the chosen model's scale out."""

from __future__ import annotations

import functools
import time
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query, Request, Response

from app.http.auth import AuthDep
from app.http.reservations import HeldResponse, admit
from app.http.routes.uploads import IMAGE_UPLOAD_OPENAPI, read_image_field, unless_disconnected
from app.http.service import ServiceDep
from app.imaging.decode import decode_image
from app.imaging.encode import encode_image
from app.imaging.header import read_header
from app.imaging.image import MEDIA_TYPES, DecodedImage, finish_upscale
from app.limits import cost
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
    limits = service.require_limits()
    name = service.check_model(model)
    scale = service.upscalers[name].scale
    settings = service.settings
    reservation = admit(request, limits, max_upload_bytes=settings.max_upload_bytes, what="an upload")
    try:
        data = await read_image_field(request)
        header = await limits.pool.run(
            functools.partial(read_header, data, max_pixels=settings.max_input_pixels), hold=reservation
        )
        needs = cost.upscale_bytes(header, upload_bytes=len(data), scale=scale, fmt=format,
                                   tile=settings.tile, pad=service.tile_pad)
        reservation.resize(needs, what=f"a {header.width}x{header.height} image")
        request_id = request_id_var.get()
        engine.check_admission(header.height, header.width, deadline=deadline, request_id=request_id)

        def finish(decoded: DecodedImage, sr: np.ndarray) -> tuple[bytes, int, int]:
            result = finish_upscale(decoded, sr, scale)
            return encode_image(result, format, quality=quality), result.width, result.height

        async def work() -> tuple[bytes, int, int]:
            decoded = await limits.pool.run(
                functools.partial(decode_image, data, max_pixels=settings.max_input_pixels), hold=reservation
            )
            sr = await engine.upscale(name, decoded.rgb, deadline=deadline, request_id=request_id)
            return await limits.pool.run(finish, decoded, sr, hold=reservation)

        body, width, height = await unless_disconnected(request, work())
    except BaseException:
        reservation.release()
        raise
    service.metrics.pixels.labels("in").inc(header.pixels)
    service.metrics.pixels.labels("out").inc(width * height)
    return HeldResponse(
        body,
        reservation=reservation,
        send_timeout_s=settings.request_timeout_s,
        media_type=MEDIA_TYPES[format],
        headers={
            "X-Model": name,
            "X-Output-Size": f"{width}x{height}",
            "X-Processing-Time-Ms": f"{(time.perf_counter() - started) * 1000:.1f}",
        },
    )
