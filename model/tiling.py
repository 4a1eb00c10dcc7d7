"""Tiled inference, the one path from an image to its upscaled image: the CLI, the service's engine and
the evaluation all run their windows through `run_windows`, which halves a batch that runs out of memory.

An image is split into fixed-size low-resolution windows; the upscaled cores are stitched back together.

Every window has the same shape, (tile + 2 * pad) squared, so windows from any images batch together.
A window is a `tile` x `tile` core plus `pad` pixels of real neighbouring context on each side; only at
the image's own borders is the context a mirror image (reflect padding), the same as whole-image
inference with `reflect_pad` does, so the stitched result matches whole-image inference wherever the
network's effective receptive field fits in the pad.

Coordinates are low-resolution pixels unless a name says `output_`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

logger = logging.getLogger(__name__)

# Maps a batch of windows (N, S, S, 3) to their upscaled outputs (N, S*scale, S*scale, 3), same dtype.
WindowFn = Callable[[np.ndarray], np.ndarray]


class WindowModel(Protocol):
    """A `WindowFn` that knows its own upscale factor (the engine serves models of different scales)."""

    @property
    def scale(self) -> int: ...

    def __call__(self, windows: np.ndarray) -> np.ndarray: ...


# What "this batch does not fit in device memory" looks like; such a batch is retried in halves.
OOM_ERRORS: tuple[type[BaseException], ...] = (torch.cuda.OutOfMemoryError,)


@dataclass(frozen=True)
class Tile:
    """One tile's core region in the image, and where its window starts in the padded image."""

    index: int
    input_start_y: int
    input_start_x: int
    height: int
    width: int


@dataclass(frozen=True)
class TileGrid:
    """The tiling of a `height` x `width` image into `tile`-sided cores with `pad` context.

    Args:
        height, width: image size, at least 1x1.
        tile: core side, at least 1.
        pad: context on each side of a core, at least 0.
    """

    height: int
    width: int
    tile: int
    pad: int

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"image must be at least 1x1, got {self.width}x{self.height}")
        if self.tile < 1:
            raise ValueError(f"tile must be at least 1, got {self.tile}")
        if self.pad < 0:
            raise ValueError(f"pad must be non-negative, got {self.pad}")

    @property
    def window(self) -> int:
        return self.tile + 2 * self.pad

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile)

    @property
    def cols(self) -> int:
        return -(-self.width // self.tile)

    def __len__(self) -> int:
        return self.rows * self.cols

    def tiles(self) -> list[Tile]:
        """Tiles in raster order."""
        return [
            Tile(
                index=r * self.cols + c,
                input_start_y=r * self.tile,
                input_start_x=c * self.tile,
                height=min(self.tile, self.height - r * self.tile),
                width=min(self.tile, self.width - c * self.tile),
            )
            for r in range(self.rows)
            for c in range(self.cols)
        ]

    def pad_image(self, image: np.ndarray) -> np.ndarray:
        """The image mirrored by `pad` on every side, and further at the bottom/right to fill whole tiles."""
        extra_y = self.rows * self.tile - self.height
        extra_x = self.cols * self.tile - self.width
        return mirror_pad(image, ((self.pad, self.pad + extra_y), (self.pad, self.pad + extra_x), (0, 0)))

    def window_of(self, padded: np.ndarray, tile: Tile) -> np.ndarray:
        """The fixed-size window of `tile` in the padded image (a view, no copy)."""
        return padded[
            tile.input_start_y : tile.input_start_y + self.window,
            tile.input_start_x : tile.input_start_x + self.window,
        ]

    def paste(self, output: np.ndarray, tile: Tile, upscaled_window: np.ndarray, scale: int) -> None:
        """Copy the core of an upscaled window into its place in the output image."""
        output_pad = self.pad * scale
        output_start_y, output_start_x = tile.input_start_y * scale, tile.input_start_x * scale
        output_h, output_w = tile.height * scale, tile.width * scale
        output[output_start_y : output_start_y + output_h, output_start_x : output_start_x + output_w] = (
            upscaled_window[output_pad : output_pad + output_h, output_pad : output_pad + output_w]
        )


def run_windows(
    upscale_windows: WindowFn,
    windows: np.ndarray,
    *,
    scale: int,
    oom_errors: tuple[type[BaseException], ...] = OOM_ERRORS,
    context: str = "",
) -> np.ndarray:
    """`upscale_windows(windows)`, retried as two halves (recursively) when the device runs out of memory.

    A single window that does not fit re-raises the out-of-memory error. An output of the wrong shape or
    dtype raises RuntimeError here, so a wrong model fails its batch instead of pasting garbage.
    `context` (e.g. the model and request ids) is appended to the log line of a split.
    """
    try:
        upscaled = upscale_windows(windows)
    except oom_errors:
        if len(windows) == 1:
            raise
        half = len(windows) // 2
        logger.warning("out of memory on %d tiles, retrying as %d + %d%s", len(windows), half,
                       len(windows) - half, f" ({context})" if context else "")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # return the failed attempt's cached blocks before retrying
        return np.concatenate([
            run_windows(upscale_windows, windows[:half], scale=scale, oom_errors=oom_errors, context=context),
            run_windows(upscale_windows, windows[half:], scale=scale, oom_errors=oom_errors, context=context),
        ])
    expected = (len(windows), windows.shape[1] * scale, windows.shape[2] * scale, windows.shape[3])
    if upscaled.shape != expected or upscaled.dtype != windows.dtype:
        raise RuntimeError(f"the model returned {upscaled.shape} {upscaled.dtype} for {windows.shape} "
                           f"{windows.dtype}, expected {expected}" + (f" ({context})" if context else ""))
    return upscaled


def upscale_tiled(
    image: np.ndarray,
    upscale_windows: WindowFn,
    *,
    scale: int,
    tile: int,
    pad: int,
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
    oom_errors: tuple[type[BaseException], ...] = OOM_ERRORS,
) -> np.ndarray:
    """Upscale an H x W x 3 image window by window; memory on the device is bounded by one batch.

    `progress`, if given, is called with the number of tiles done after each batch.
    """
    grid = TileGrid(image.shape[0], image.shape[1], tile, pad)
    padded = grid.pad_image(image)
    output = np.empty((grid.height * scale, grid.width * scale, image.shape[2]), image.dtype)
    tiles = grid.tiles()
    for start in range(0, len(tiles), batch_size):
        batch = tiles[start : start + batch_size]
        windows = np.stack([grid.window_of(padded, t) for t in batch])
        upscaled = run_windows(upscale_windows, windows, scale=scale, oom_errors=oom_errors)
        for t, window in zip(batch, upscaled, strict=True):
            grid.paste(output, t, window, scale)
        if progress is not None:
            progress(len(batch))
    return output


def upscale_whole(image: np.ndarray, upscale_windows: WindowFn, *, scale: int, pad: int = 0) -> np.ndarray:
    """The whole image as one window, mirrored by `pad` at its borders like the tiles are.

    With `pad` 0 this is plain whole-image inference (the network's zero padding at the borders), which
    is what the evaluation protocol measures; with the service's pad it is the reference tiling matches.
    """
    height, width = image.shape[:2]
    window = mirror_pad(image, ((pad, pad), (pad, pad), (0, 0)))
    upscaled = run_windows(upscale_windows, window[None], scale=scale)[0]
    output_pad = pad * scale
    return np.ascontiguousarray(
        upscaled[output_pad : output_pad + height * scale, output_pad : output_pad + width * scale]
    )


def mirror_pad(image: np.ndarray, widths: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Mirror the image outwards by `widths` (numpy's pad widths), defined for every size down to 1x1."""
    # 'symmetric' mirrors including the edge pixel, so it is defined for a 1-pixel image, where 'reflect'
    # is not; numpy repeats the mirroring when the pad is wider than the image.
    if min(image.shape[:2]) > 1:
        return np.pad(image, widths[: image.ndim], mode="reflect")
    return np.pad(image, widths[: image.ndim], mode="symmetric")
