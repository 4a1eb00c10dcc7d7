"""Every error the service can return, mapped to HTTP in one place, as {"error": {"code", "message"}}.

Unexpected errors (500) are answered by the request middleware, which knows the request id.
"""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import errors
from app.telemetry import Metrics

STATUS: dict[type[errors.ServiceError], int] = {
    errors.BadImage: 400,
    errors.MalformedRequest: 400,
    errors.Unauthorized: 401,
    errors.UploadTimeout: 408,
    errors.TooLarge: 413,
    errors.UnsupportedFormat: 415,
    errors.InvalidParameter: 422,
    errors.TooSmall: 422,
    errors.Overloaded: 503,
    errors.NotReady: 503,
    errors.DeadlineExceeded: 504,
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def service_error_response(exc: errors.ServiceError, metrics: Metrics) -> JSONResponse:
    """The response for a domain error; every refusal is also counted in srgan_rejected_total."""
    metrics.rejected.labels(exc.code).inc()
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500)
    headers = {}
    if isinstance(exc, errors.Overloaded | errors.NotReady):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = exc.challenge
    return error_response(status, exc.code, exc.message, headers)


def internal_error_response(metrics: Metrics) -> JSONResponse:
    """The response for an unexpected error (a bug, not bad input), counted as `reason="internal"`."""
    metrics.rejected.labels("internal").inc()
    return error_response(500, "internal", "internal error; the request id is in X-Request-ID")


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    async def on_service_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.ServiceError)
        return service_error_response(exc, metrics)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        metrics.rejected.labels("invalid_parameter").inc()
        return error_response(422, "invalid_parameter", problems or "invalid request")

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, "http_error", str(exc.detail), dict(exc.headers or {}))

    app.add_exception_handler(errors.ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
