"""The API documentation: /openapi.json, /docs (Swagger UI) and /redoc, behind the API key when keys are
configured (the schema names every route and parameter). A browser is asked for the key (HTTP Basic, any
user name) and sends it with the pages' own requests."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from app.http.auth import BrowserAuthDep

router = APIRouter(include_in_schema=False)

OPENAPI_PATH = "/openapi.json"


def _openapi_url(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") + OPENAPI_PATH


@router.get(OPENAPI_PATH)
async def openapi(request: Request, _: BrowserAuthDep) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request, _: BrowserAuthDep) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=_openapi_url(request), title=f"{request.app.title} - Swagger UI")


@router.get("/redoc", response_class=HTMLResponse)
async def redoc(request: Request, _: BrowserAuthDep) -> HTMLResponse:
    return get_redoc_html(openapi_url=_openapi_url(request), title=f"{request.app.title} - ReDoc")
