"""Natural-looking synthetic images for tests and benchmarks, made in code (no files to ship)."""

from __future__ import annotations

import numpy as np


def natural_like_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An H x W x 3 uint8 image of gradients, a disc and noise: smooth regions and edges for the tests to
    see structure, and a PNG that compresses like a photo, not like a flat or a random image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([x / max(width, 1), y / max(height, 1), 0.5 + 0.5 * np.sin(x / 5 + y / 7)], axis=-1)
    disc = ((y - height / 2) ** 2 + (x - width / 3) ** 2) < (min(height, width) / 4) ** 2
    base[disc] = [0.9, 0.2, 0.1]
    image = base * 255 + rng.normal(0, 6, base.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
