"""A request's memory reservation, from admission until its response has been sent.

`admit` is the first thing an image route does: it refuses at once while the host pool has too much
work waiting (HostBusy, 503) and reserves what reading the upload will hold (its declared length, or
the upload limit when none is declared). The route then resizes the reservation to the request's cost
once the header is known, and returns a `HeldResponse`, which releases it when the body has been
handed to the connection, or when sending fails. A route that raises releases it itself.
"""

from __future__ import annotations

import asyncio

from fastapi import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.errors import ClientDisconnected
from app.limits import HostLimits, cost
from app.limits.budget import Reservation

# The body goes out in pieces of this size, so that what waits in the connection's write buffer after
# the last piece is small: until then the reservation counts the body.
SEND_CHUNK_BYTES = 1 << 20


def admit(request: Request, limits: HostLimits, *, max_upload_bytes: int, what: str) -> Reservation:
    """Check the host pool's backlog and reserve the memory that reading the upload takes."""
    limits.pool.admit(what)
    try:
        declared = int(request.headers.get("content-length", ""))
    except ValueError:
        declared = max_upload_bytes
    return limits.memory.reserve(cost.upload_bytes(min(max(declared, 0), max_upload_bytes)), what=what)


class HeldResponse(Response):
    """A response whose body is sent in SEND_CHUNK_BYTES pieces, each within `send_timeout_s` (a client
    that stops reading is cut off, as if it had disconnected), after which `reservation` is released."""

    def __init__(self, content: bytes, *, reservation: Reservation, send_timeout_s: float,
                 media_type: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.reservation = reservation
        self.send_timeout_s = send_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            body = memoryview(self.body)
            for start in range(0, max(len(body), 1), SEND_CHUNK_BYTES):
                piece = body[start : start + SEND_CHUNK_BYTES]
                more = start + SEND_CHUNK_BYTES < len(body)
                message = {"type": "http.response.body", "body": bytes(piece), "more_body": more}
                try:
                    await asyncio.wait_for(send(message), self.send_timeout_s)
                except TimeoutError:
                    raise ClientDisconnected() from None
        finally:
            self.reservation.release()
