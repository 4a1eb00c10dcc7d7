"""Training data: HR images decoded once into memory, LR made once by MATLAB bicubic, random aligned patches.

Downscaling whole images (rather than each patch) gives every LR patch real context at its borders,
exactly like the evaluation protocol, and makes sampling a pair of array slices: fast enough that the
GPU never waits, without worker processes.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from model.imresize import imresize

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def load_hr(path: Path, scale: int) -> np.ndarray:
    """An RGB uint8 image cropped to a multiple of `scale` (the evaluation protocol's HR)."""
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"))
    height, width = rgb.shape[:2]
    return np.ascontiguousarray(rgb[: height - height % scale, : width - width % scale])


class PatchSampler:
    """Random (LR, HR) patch pairs with flips and 90-degree rotations.

    Args:
        folders: folders of HR images.
        scale: upscale factor.
        patch_size: HR patch side; must be divisible by `scale`.
    """

    def __init__(self, folders: Sequence[str | Path], scale: int = 4, patch_size: int = 96) -> None:
        if patch_size % scale:
            raise ValueError(f"patch_size {patch_size} must be divisible by scale {scale}")
        self.scale, self.patch_size = scale, patch_size
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        for folder in folders:
            for path in list_images(folder):
                hr = load_hr(path, scale)
                if min(hr.shape[:2]) >= patch_size:
                    self.pairs.append((imresize(hr, 1 / scale), hr))
        if not self.pairs:
            raise ValueError(f"no image in {list(folders)} is at least {patch_size}px on each side")
        logger.info(
            "loaded %d training images (%.0f MB of HR pixels)",
            len(self.pairs),
            sum(hr.nbytes for _, hr in self.pairs) / 1e6,
        )

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """`batch_size` pairs as uint8 NHWC arrays: LR (patch/scale)^2, HR patch^2."""
        lr_side = self.patch_size // self.scale
        lr_batch = np.empty((batch_size, lr_side, lr_side, 3), np.uint8)
        hr_batch = np.empty((batch_size, self.patch_size, self.patch_size, 3), np.uint8)
        for i in range(batch_size):
            lr, hr = self.pairs[rng.integers(len(self.pairs))]
            y = int(rng.integers(lr.shape[0] - lr_side + 1))
            x = int(rng.integers(lr.shape[1] - lr_side + 1))
            lr_patch = lr[y : y + lr_side, x : x + lr_side]
            hr_patch = hr[
                y * self.scale : (y + lr_side) * self.scale, x * self.scale : (x + lr_side) * self.scale
            ]
            # Bicubic commutes with flips and transposes, so one dihedral transform on both stays a true pair.
            flip_v, flip_h, transpose = rng.integers(2, size=3)
            for arr_index, patch in enumerate((lr_patch, hr_patch)):
                if flip_v:
                    patch = patch[::-1]
                if flip_h:
                    patch = patch[:, ::-1]
                if transpose:
                    patch = patch.transpose(1, 0, 2)
                (lr_batch if arr_index == 0 else hr_batch)[i] = patch
        return lr_batch, hr_batch


def prefetch(
    sampler: PatchSampler, batch_size: int, seed: int, depth: int = 4
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless batches made in a daemon thread, `depth` ahead of the consumer."""
    batches: queue.Queue[tuple[np.ndarray, np.ndarray]] = queue.Queue(maxsize=depth)
    rng = np.random.default_rng(seed)

    def produce() -> None:
        while True:
            batches.put(sampler.sample(batch_size, rng))

    threading.Thread(target=produce, name="patch-prefetch", daemon=True).start()
    while True:
        yield batches.get()
