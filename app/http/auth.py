"""Optional API keys: `Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from app.errors import Unauthorized
from app.http.service import ServiceDep


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def require_api_key(request: Request, service: ServiceDep) -> None:
    """No-op when no keys are configured; otherwise 401 unless a configured key is presented."""
    keys = service.settings.api_key_set
    if not keys:
        return
    presented = _presented_key(request)
    if presented is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
    # Compare against every key, without stopping early, so timing does not reveal which one matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    if not matched:
        raise Unauthorized("the API key is not valid")


AuthDep = Annotated[None, Depends(require_api_key)]
