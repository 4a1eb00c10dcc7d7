"""Tiled inference: split a low-resolution image into fixed-size windows, upscale them, stitch the cores.

Every window has the same shape, (tile + 2 * pad) squared, so windows from any images batch together.
A window is a `tile` x `tile` core plus `pad` pixels of real neighbouring context on each side; only at
the image's own borders is the context a mirror image (reflect padding), the same as whole-image
inference with `reflect_pad` does, so the stitched result matches whole-image inference wherever the
network's effective receptive field fits in the pad.

Coordinates are low-resolution pixels unless a name says `output_`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Maps a batch of windows (N, S, S, 3) to their upscaled outputs (N, S*scale, S*scale, 3), same dtype.
WindowFn = Callable[[np.ndarray], np.ndarray]


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
        widths = ((self.pad, self.pad + extra_y), (self.pad, self.pad + extra_x), (0, 0))
        # 'symmetric' mirrors including the edge pixel, so it is defined for a 1-pixel image, where
        # 'reflect' is not; numpy repeats the mirroring when the pad is wider than the image.
        if min(self.height, self.width) > 1:
            return np.pad(image, widths[: image.ndim], mode="reflect")
        return np.pad(image, widths[: image.ndim], mode="symmetric")

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


def upscale_tiled(
    image: np.ndarray,
    upscale_windows: WindowFn,
    *,
    scale: int,
    tile: int,
    pad: int,
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
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
        for t, upscaled in zip(batch, upscale_windows(windows), strict=True):
            grid.paste(output, t, upscaled, scale)
        if progress is not None:
            progress(len(batch))
    return output


def upscale_whole(image: np.ndarray, upscale_windows: WindowFn, *, scale: int, pad: int) -> np.ndarray:
    """Reference: the whole image as one window, mirrored by `pad` at its borders like the tiles are."""
    grid = TileGrid(image.shape[0], image.shape[1], max(image.shape[:2]), pad)
    return upscale_tiled(image, upscale_windows, scale=scale, tile=grid.tile, pad=pad, batch_size=1)
