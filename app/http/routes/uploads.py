"""What the image routes share: reading the uploaded image, and abandoning work for a departed client."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import Request

from app.errors import BadImage, ClientDisconnected, InvalidParameter, UnsupportedFormat
from app.http.multipart import read_file_part

T = TypeVar("T")

# The multipart body, described for /docs and schema-driven clients (the route parses it itself,
# after authentication, instead of letting FastAPI parse it first).
IMAGE_UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "PNG, JPEG or WebP"}
                    },
                }
            }
        },
    }
}


async def read_image_field(request: Request) -> bytes:
    """The bytes of the multipart file part `image`, read into memory (`app.http.multipart`); 415 for
    another body type, 422 without the part, 400 for an empty one."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UnsupportedFormat(
            "send the image as multipart/form-data in the field 'image' "
            f"(got Content-Type {content_type or 'none'!r})"
        )
    data = await read_file_part(request, "image", max_files=1, max_fields=16)
    if data is None:
        raise InvalidParameter("the multipart field 'image' is missing (it must be a file part)")
    if not data:
        raise BadImage("the uploaded image is empty")
    return data


async def _client_gone(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; if the client disconnects first, cancel it, wait until it has stopped (the engine has
    dropped its queued tiles), and raise ClientDisconnected (answered as 499)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_client_gone(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    if task.cancelled():
        raise ClientDisconnected()
    return task.result()
