"""Where the shipped weights live: inside the installed `model` package, or SRGAN_WEIGHTS_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import model

MODEL_NAMES = ("srgan", "srresnet")
PACKAGED_WEIGHTS_DIR = Path(model.__file__).parent / "weights"


def shipped_weights(name: str, weights_dir: str | Path | None = None) -> Path:
    """Path of `<name>_x4.safetensors` in `weights_dir`, else SRGAN_WEIGHTS_DIR, else the package's."""
    if name not in MODEL_NAMES:
        raise ValueError(f"model must be one of {MODEL_NAMES}, got {name!r}")
    folder = Path(weights_dir or os.environ.get("SRGAN_WEIGHTS_DIR") or PACKAGED_WEIGHTS_DIR)
    return folder / f"{name}_x4.safetensors"
