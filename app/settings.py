"""The one settings object, read from SRGAN_* environment variables and validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service configuration. Built by `create_app`/`srgan serve`, never at import time."""

    model_config = SettingsConfigDict(env_prefix="SRGAN_", extra="ignore")

    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # None means the weights shipped inside the package.
    weights_dir: Path | None = None
    # LR tile side: 96 keeps a batch of 8 tiles under ~1 GB of activations on any GPU and wastes
    # little on small images; the pad is context that makes tiled output match whole-image output.
    tile: int = Field(96, ge=16, le=1024)
    tile_pad: int = Field(12, ge=0, le=128)
    # Tiles per device call; None picks per device (`app.engine.default_batch_size`).
    max_batch: int | None = Field(None, ge=1, le=256)
    max_wait_ms: float = Field(5.0, ge=0, le=1000)  # how long a batch may wait to fill
    max_queue_tiles: int = Field(512, ge=1)  # backpressure bound on queued tiles
    request_timeout_s: float = Field(60.0, gt=0)
    drain_timeout_s: float = Field(30.0, ge=0)  # graceful shutdown: how long in-flight work may finish
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    # LR pixels; output is 16x. 2048x2048 (an 8192x8192, 200 MB result) is 484 tiles at the default
    # tile, so the largest image allowed still fits the default queue bound.
    max_input_pixels: int = Field(2048 * 2048, ge=1)
    api_keys: str = ""  # comma-separated; empty means no authentication
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

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())
