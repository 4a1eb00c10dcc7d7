"""Authentication fails closed: with keys, the API and its documentation need one (401 with a
WWW-Authenticate challenge); SRGAN_AUTH=required refuses to start without keys."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import Settings
from model.synthetic import natural_like_image
from tests.api_helpers import assert_error, png_bytes, running_client, upload
from tests.live_server import REPO, free_port

API_CHALLENGE = 'Bearer realm="srgan"'
BROWSER_CHALLENGE = 'Basic realm="srgan", charset="UTF-8"'


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def protected(image: bytes) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, request arguments, the challenge of its 401) for every route that needs a key."""
    return [
        ("POST", "/upscale", upload(image), API_CHALLENGE),
        ("POST", "/compare", upload(image), API_CHALLENGE),
        ("GET", "/v1/models", {}, API_CHALLENGE),
        ("GET", "/docs", {}, BROWSER_CHALLENGE),
        ("GET", "/redoc", {}, BROWSER_CHALLENGE),
        ("GET", "/openapi.json", {}, BROWSER_CHALLENGE),
    ]


async def test_with_keys_the_api_and_its_documentation_need_one(tiny_weights_dir: Path) -> None:
    image = png_bytes(natural_like_image(24, 24))
    async with running_client(tiny_weights_dir, api_keys="alpha, beta") as client:
        for method, path, arguments, challenge in protected(image):
            for headers in ({}, {"authorization": "Bearer nope"}, {"x-api-key": "alph"},
                            {"authorization": basic("alpha", "")}, {"authorization": "Basic !!not base64"}):
                refused = await client.request(method, path, headers=headers, **arguments)
                assert_error(refused, 401, "unauthorized")
                assert refused.headers["www-authenticate"] == challenge, (path, headers)
            for headers in ({"authorization": "Bearer beta"}, {"authorization": "bearer  alpha"},
                            {"x-api-key": "alpha"}, {"authorization": basic("anyone", "beta")}):
                served = await client.request(method, path, headers=headers, **arguments)
                assert served.status_code == 200, (path, headers, served.text[:200])
        # Probes, the demo page (whose own requests carry the key) and, on the service port, metrics.
        for path in ("/healthz", "/readyz", "/", "/metrics"):
            assert (await client.get(path)).status_code == 200, path
        metrics = (await client.get("/metrics")).text
    assert f'srgan_rejected_total{{reason="unauthorized"}} {6 * 5}.0' in metrics


async def test_without_keys_everything_is_open_and_the_schema_declares_the_key(
    tiny_weights_dir: Path,
) -> None:
    async with running_client(tiny_weights_dir) as client:
        for path in ("/v1/models", "/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        schema = (await client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"] == {
        "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "an API key from SRGAN_API_KEYS"},
        "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                         "description": "an API key from SRGAN_API_KEYS"},
    }
    for path, method in (("/upscale", "post"), ("/compare", "post"), ("/v1/models", "get")):
        assert schema["paths"][path][method]["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert "/docs" not in schema["paths"] and "/openapi.json" not in schema["paths"]


@pytest.mark.parametrize("keys", ["", " , "])
def test_required_auth_without_keys_is_refused_by_the_settings(keys: str) -> None:
    with pytest.raises(ValidationError, match="SRGAN_AUTH=required but SRGAN_API_KEYS is empty"):
        Settings(auth="required", api_keys=keys)
    assert Settings(auth="required", api_keys="k").api_key_set == {"k"}


def test_srgan_serve_refuses_to_start_with_required_auth_and_no_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRGAN_")}
    env.update({"SRGAN_AUTH": "required", "SRGAN_DEVICE": "cpu", "PYTHONPATH": str(REPO)})
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(free_port())]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "SRGAN_AUTH=required but SRGAN_API_KEYS is empty" in done.stderr
    assert "loaded" not in done.stderr and "Uvicorn running" not in done.stderr  # refused before any work


def test_a_settings_error_never_echoes_the_api_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main

    monkeypatch.setenv("SRGAN_API_KEYS", "very-secret-key")
    monkeypatch.setenv("SRGAN_TILE", "32")  # too small for the default pixel limit: refused
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "SRGAN_TILE=32" in err
    assert "very-secret-key" not in err
