"""ASGI middleware: request ids, request metrics and access log, the upload size and time bounds, and the
answer to a departed client (499) or an unexpected error (500).

Pure ASGI (not BaseHTTPMiddleware) so that the body is bounded while it streams in, before
python-multipart has spooled it anywhere, and so that routes still see client disconnects.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import errors
from app.http.error_mapping import internal_error_response, service_error_response
from app.logs import request_id_var
from app.telemetry import Metrics

logger = logging.getLogger(__name__)

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Multipart framing (boundaries, part headers) on top of the image bytes themselves.
_MULTIPART_OVERHEAD = 16 * 1024


class RequestContextMiddleware:
    """Assigns X-Request-ID, records srgan_requests_total / _duration_seconds, logs one line per request,
    and enforces the upload limits: over `max_upload_bytes` -> 413, slower than `upload_timeout_s` -> 408.

    `endpoints` are the paths named in metrics (the app's route table); any other path is counted as
    "other", so that scanners cannot grow the label sets.
    """

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, endpoints: frozenset[str], max_upload_bytes: int,
        upload_timeout_s: float
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = endpoints
        self.max_body = max_upload_bytes + _MULTIPART_OVERHEAD
        self.upload_timeout_s = upload_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        token = request_id_var.set(request_id)
        path = scope["path"]
        endpoint = path if path in self.endpoints else "other"
        started = time.perf_counter()
        # What the client was sent; an app that returns without a response gets uvicorn's 500.
        status = {"code": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.update(code=message["status"], started=True)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        try:
            if declared > self.max_body:
                raise errors.TooLarge(
                    f"upload of {declared} bytes is over the limit of "
                    f"{self.max_body - _MULTIPART_OVERHEAD} bytes"
                )
            await self.app(scope, self._bounded(receive), send_with_id)
        except (errors.ClientDisconnected, ClientDisconnect):
            # Gone while its work queued or its upload arrived: nothing is sent, and its tiles are dropped.
            status["code"] = 499  # nginx's "client closed request"
            self.metrics.rejected.labels("client_closed").inc()
        except errors.ServiceError as exc:
            # Refused before the app ran (declared size), or raised from receive() outside a route.
            await service_error_response(exc, self.metrics)(scope, receive, send_with_id)
        except Exception:
            if status["started"]:
                raise  # too late for an error response: uvicorn logs it and closes the connection
            logger.exception("%s %s failed with an unexpected error", scope["method"], path)
            await internal_error_response(self.metrics)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            code = status["code"]
            self.metrics.requests.labels(endpoint, str(code)).inc()
            self.metrics.request_duration.labels(endpoint).observe(elapsed)
            if endpoint not in ("/healthz", "/readyz", "/metrics"):
                outcome = f"{code} client closed" if code == 499 else str(code)
                logger.info("%s %s -> %s in %.0f ms", scope["method"], path, outcome, elapsed * 1000)
            request_id_var.reset(token)

    def _bounded(self, receive: Receive) -> Receive:
        received = 0
        body_done = False
        deadline = time.monotonic() + self.upload_timeout_s

        async def bounded_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                # After the body, receive() only reports a disconnect: wait for it without a deadline.
                return await receive()
            try:
                message: Message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                raise errors.UploadTimeout(
                    f"the upload did not complete within {self.upload_timeout_s:.0f} s"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise errors.TooLarge(
                        f"upload is over the limit of {self.max_body - _MULTIPART_OVERHEAD} bytes"
                    )
                body_done = not message.get("more_body", False)
            return message

        return bounded_receive
