"""API keys (SRGAN_API_KEYS): `Authorization: Bearer KEY`, `X-API-Key: KEY`, or HTTP Basic with the key
as the password, compared in constant time. With no keys configured every request passes.

The API answers a missing key with a Bearer challenge; the documentation pages answer with a Basic one,
so that a browser asks for the key (any user name) and sends it on with the page's own requests.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.errors import Unauthorized
from app.http.service import ServiceDep

# Declared as security schemes, so that /docs offers "Authorize" and sends the key with "Try it out".
_KEY = "an API key from SRGAN_API_KEYS"
_bearer = HTTPBearer(auto_error=False, description=_KEY)
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description=_KEY)

API_CHALLENGE = 'Bearer realm="srgan"'
BROWSER_CHALLENGE = 'Basic realm="srgan", charset="UTF-8"'


def _basic_password(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


def _check(keys: frozenset[str], presented: str | None, challenge: str) -> None:
    if not keys:
        return
    if not presented:
        raise Unauthorized(
            "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'", challenge
        )
    # Compare against every key, without stopping early, so timing does not reveal which one matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    if not matched:
        raise Unauthorized("the API key is not valid", challenge)


def _requirement(challenge: str) -> Callable[..., None]:
    def require_api_key(
        request: Request,
        service: ServiceDep,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_api_key_header)],
    ) -> None:
        """401 unless a configured key is presented; nothing to check when no keys are configured."""
        presented = bearer.credentials if bearer else header or _basic_password(request)
        _check(service.settings.api_key_set, presented, challenge)

    return require_api_key


AuthDep = Annotated[None, Depends(_requirement(API_CHALLENGE))]
# For pages a browser opens by address (/docs, /redoc, /openapi.json), which cannot carry a header.
BrowserAuthDep = Annotated[None, Depends(_requirement(BROWSER_CHALLENGE))]
