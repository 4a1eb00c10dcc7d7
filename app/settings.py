"""The one settings object, read from SRGAN_* environment variables and validated at start-up."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from model.registry import ModelRegistry


class Settings(BaseSettings):
    """Service configuration, and the CLI's defaults. Built by `create_app`, `srgan serve` and the CLI's
    parser, never at import time; settings that depend on each other are checked together."""

    model_config = SettingsConfigDict(env_prefix="SRGAN_", extra="ignore")

    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # None means the weights shipped inside the package.
    weights_dir: Path | None = None
    # LR tile side: 96 keeps a batch of 8 tiles under ~1 GB of activations on any GPU and wastes
    # little on small images.
    tile: int = Field(96, ge=16, le=1024)
    # LR context per tile side, which makes tiled output match whole-image output; None means the
    # largest `context_pad` among the registered models (`model.registry`).
    tile_pad: int | None = Field(None, ge=0, le=128)
    # Tiles per device call; None picks per device (`app.engine.default_batch_size`).
    max_batch: int | None = Field(None, ge=1, le=256)
    max_wait_ms: float = Field(5.0, ge=0, le=1000)  # how long a batch may wait to fill
    # Backpressure bound on queued work, as the pixels of this many full (tile + 2 pad)² windows.
    max_queue_tiles: int = Field(512, ge=1)
    request_timeout_s: float = Field(60.0, gt=0)
    drain_timeout_s: float = Field(30.0, ge=0)  # graceful shutdown: how long in-flight work may finish
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    # LR pixels; an x4 output has 16x as many. 2048x2048 (an 8192x8192, 200 MB result) is 484 tiles at
    # the default tile, so the largest square image allowed fits the default queue bound (checked below).
    max_input_pixels: int = Field(2048 * 2048, ge=1)
    # /compare holds every method's output at the original's size and scores each in float64: about 150
    # bytes a pixel (docs/BENCHMARKS.md, "Memory per request"), so its own, smaller limit.
    compare_max_pixels: int = Field(1024 * 1024, ge=1)
    # What all requests in flight may reserve (app.limits.cost estimates each); None derives it from the
    # cgroup memory limit less the resident size after start-up (app.limits.budget.default_limit_bytes).
    memory_budget_mb: int | None = Field(None, ge=64)
    # Open connections served; more are answered 503 and closed. Each costs little until it sends a
    # request, and a request's upload is counted in the memory budget.
    max_connections: int = Field(512, ge=1)
    # A connection must send a request's headers within this long (slow-header clients are closed).
    header_timeout_s: float = Field(10.0, gt=0)
    api_keys: str = ""  # comma-separated; empty means no authentication
    # `required`: refuse to start without keys, so that a missing Secret cannot turn into an open service.
    auth: Literal["optional", "required"] = "optional"
    # None serves /metrics on the service port; a port keeps it off the port that users (and the ingress)
    # reach, and Prometheus scrapes it there.
    metrics_port: int | None = Field(None, ge=1, le=65535)
    # Liveness: /healthz fails once work has waited this long with no batch finishing (or ten times the
    # measured batch time, when that is longer). Under the request timeout, so that a stalled engine is
    # seen while requests still queue behind it rather than only after they time out.
    stall_timeout_s: float = Field(30.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    compile: bool = False  # CUDA only: torch.compile the fixed tile shape (slower start, faster steady state)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"unknown log level {value!r}")
        return level

    @model_validator(mode="after")
    def _largest_image_fits_the_queue(self) -> Settings:
        """The largest square image SRGAN_MAX_INPUT_PIXELS allows must fit in SRGAN_MAX_QUEUE_TILES tiles
        of SRGAN_TILE, or every image near the limit would be refused with 413 while the limit says it
        is allowed."""
        side = math.isqrt(self.max_input_pixels)
        tiles = math.ceil(side / self.tile) ** 2
        if tiles > self.max_queue_tiles:
            per_side = math.isqrt(self.max_queue_tiles)
            raise ValueError(
                f"SRGAN_MAX_INPUT_PIXELS={self.max_input_pixels} allows a {side}x{side} image, which is "
                f"{tiles} tiles of SRGAN_TILE={self.tile}, but SRGAN_MAX_QUEUE_TILES={self.max_queue_tiles}: "
                f"set SRGAN_MAX_QUEUE_TILES to at least {tiles}, SRGAN_TILE to at least "
                f"{math.ceil(side / per_side)}, or SRGAN_MAX_INPUT_PIXELS to at most "
                f"{(per_side * self.tile) ** 2}"
            )
        return self

    @model_validator(mode="after")
    def _required_auth_has_keys(self) -> Settings:
        if self.auth == "required" and not self.api_key_set:
            raise ValueError(
                "SRGAN_AUTH=required but SRGAN_API_KEYS is empty: set SRGAN_API_KEYS to comma-separated "
                "keys (on Kubernetes, the Secret srgan-api-keys), or SRGAN_AUTH=optional to serve "
                "without keys"
            )
        return self

    def pad_for(self, registry: ModelRegistry) -> int:
        """SRGAN_TILE_PAD when set, else the largest context pad any registered model recommends."""
        if self.tile_pad is not None:
            return self.tile_pad
        return max(spec.context_pad for spec in registry)

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())


def describe_errors(exc: ValidationError) -> str:
    """One line per problem, naming the variable; never the values given, which may hold API keys."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"].removeprefix("Value error, ")
        field = "_".join(str(part) for part in error["loc"]).upper()
        lines.append(f"SRGAN_{field}: {message}" if field else message)
    return "\n".join(lines)
