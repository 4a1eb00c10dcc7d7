"""Tiled inference, the one path from an image to its upscaled image: the CLI, the service's engine and
the evaluation all run their windows through `run_windows`, which halves a batch that runs out of memory.

An image is split into low-resolution windows; the upscaled cores are stitched back together.

A window is a core plus `pad` pixels of real neighbouring context on each side; only at the image's own
borders is the context a mirror image (reflect padding), the same as whole-image inference with
`upscale_whole(..., pad=pad)` does, so the stitched result matches whole-image inference wherever the
network's effective receptive field fits in the pad. Every window of a grid has one shape, so windows
from any images batch together; a *fitted* grid (`TileGrid(..., fit=True)`, where batches hold one
tile) instead shrinks its cores to split the image evenly, so an image that fits in one tile is one
window of its own size plus the pad: exactly `upscale_whole`, with no pixels computed beyond it.

The same code cuts windows from numpy arrays on the host (`upscale_tiled`, the CLI's path) and from
tensors on the model's device (the service's engine, which uploads each image once and copies one
upscaled image back).

Coordinates are low-resolution pixels unless a name says `output_`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

logger = logging.getLogger(__name__)

# Host pixels or device pixels: tiling slices, stacks and pastes both the same way.
Pixels = TypeVar("Pixels", np.ndarray, torch.Tensor)

# Maps a batch of windows (N, H, W, 3) to their upscaled outputs (N, H*scale, W*scale, 3), same dtype.
WindowFn = Callable[[np.ndarray], np.ndarray]


class WindowModel(Protocol):
    """A `WindowFn` that knows its own upscale factor (the engine serves models of different scales)."""

    @property
    def scale(self) -> int: ...

    def __call__(self, windows: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class DeviceWindowModel(Protocol):
    """A model that upscales windows resident on its device (`model.inference.Upscaler`).

    `upscale_windows` maps (N, H, W, 3) uint8 or int32 (16-bit pixels) tensors on `device` to
    (N, H*scale, W*scale, 3) tensors of the same dtype there. `fixed_shape` is true for a model compiled
    for one window shape and batch (CUDA graphs): its windows must not change shape, and its calls must
    come from one thread at a time.
    """

    @property
    def scale(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def fixed_shape(self) -> bool: ...

    def upscale_windows(self, windows: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class HostModel:
    """A numpy `WindowModel` (a test's fake, an embedder's function) seen as a `DeviceWindowModel` on the
    CPU: tensors are handed over as numpy views, 16-bit pixels as uint16."""

    model: WindowModel
    device = torch.device("cpu")
    fixed_shape = False

    @property
    def scale(self) -> int:
        return self.model.scale

    def upscale_windows(self, windows: torch.Tensor) -> torch.Tensor:
        wide = windows.dtype == torch.int32
        upscaled = self.model(windows.numpy().astype(np.uint16) if wide else windows.numpy())
        if wide and upscaled.dtype == np.uint16:
            return torch.from_numpy(upscaled.astype(np.int32))
        return torch.from_numpy(upscaled)  # a wrong dtype is left for run_windows to report


def on_device(model: WindowModel | DeviceWindowModel) -> DeviceWindowModel:
    """`model` itself when it upscales device tensors, else its numpy calls wrapped by `HostModel`."""
    return model if isinstance(model, DeviceWindowModel) else HostModel(model)


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
    """The tiling of a `height` x `width` image into cores of at most `tile` pixels a side with `pad` context.

    Args:
        height, width: image size, at least 1x1.
        tile: core side (the largest, when `fit`), at least 1.
        pad: context on each side of a core, at least 0.
        fit: shrink the cores to split the image evenly: as many rows and columns as with `tile`, each
            ceil(height / rows) x ceil(width / cols). An image within one tile is then a single window
            of its own size plus the pad. Windows of a fitted grid have the image's own shape, so only
            batches of one tile mix images freely.
    """

    height: int
    width: int
    tile: int
    pad: int
    fit: bool = False

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"image must be at least 1x1, got {self.width}x{self.height}")
        if self.tile < 1:
            raise ValueError(f"tile must be at least 1, got {self.tile}")
        if self.pad < 0:
            raise ValueError(f"pad must be non-negative, got {self.pad}")

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile)

    @property
    def cols(self) -> int:
        return -(-self.width // self.tile)

    @property
    def tile_height(self) -> int:
        return -(-self.height // self.rows) if self.fit else self.tile

    @property
    def tile_width(self) -> int:
        return -(-self.width // self.cols) if self.fit else self.tile

    @property
    def window_shape(self) -> tuple[int, int]:
        """(height, width) of every window of this grid."""
        return self.tile_height + 2 * self.pad, self.tile_width + 2 * self.pad

    @property
    def window_pixels(self) -> int:
        """Low-resolution pixels the model computes for the whole image: the cost of the tiling."""
        window_height, window_width = self.window_shape
        return len(self) * window_height * window_width

    def __len__(self) -> int:
        return self.rows * self.cols

    def tiles(self) -> list[Tile]:
        """Tiles in raster order."""
        tile_height, tile_width = self.tile_height, self.tile_width
        return [
            Tile(
                index=r * self.cols + c,
                input_start_y=r * tile_height,
                input_start_x=c * tile_width,
                height=min(tile_height, self.height - r * tile_height),
                width=min(tile_width, self.width - c * tile_width),
            )
            for r in range(self.rows)
            for c in range(self.cols)
        ]

    def pad_image(self, image: Pixels) -> Pixels:
        """The image mirrored by `pad` on every side, and further at the bottom/right to fill whole tiles."""
        extra_y = self.rows * self.tile_height - self.height
        extra_x = self.cols * self.tile_width - self.width
        return mirror_pad(image, ((self.pad, self.pad + extra_y), (self.pad, self.pad + extra_x)))

    def window_of(self, padded: Pixels, tile: Tile) -> Pixels:
        """The window of `tile` in the padded image (a view, no copy)."""
        window_height, window_width = self.window_shape
        return padded[
            tile.input_start_y : tile.input_start_y + window_height,
            tile.input_start_x : tile.input_start_x + window_width,
        ]

    def paste(self, output: Pixels, tile: Tile, upscaled_window: Pixels, scale: int) -> None:
        """Copy the core of an upscaled window into its place in the output image."""
        output_pad = self.pad * scale
        output_start_y, output_start_x = tile.input_start_y * scale, tile.input_start_x * scale
        output_h, output_w = tile.height * scale, tile.width * scale
        output[output_start_y : output_start_y + output_h, output_start_x : output_start_x + output_w] = (
            upscaled_window[output_pad : output_pad + output_h, output_pad : output_pad + output_w]
        )


def run_windows(
    upscale_windows: Callable[[Pixels], Pixels],
    windows: Pixels,
    *,
    scale: int,
    oom_errors: tuple[type[BaseException], ...] = OOM_ERRORS,
    context: str = "",
) -> Pixels:
    """`upscale_windows(windows)`, retried as two halves (recursively) when the device runs out of memory.

    Works on host arrays and on device tensors alike. A single window that does not fit re-raises the
    out-of-memory error. An output of the wrong shape or dtype raises RuntimeError here, so a wrong model
    fails its batch instead of pasting garbage. `context` (e.g. the model and request ids) is appended to
    the log line of a split.
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
        halves = [
            run_windows(upscale_windows, part, scale=scale, oom_errors=oom_errors, context=context)
            for part in (windows[:half], windows[half:])
        ]
        return torch.cat(halves) if isinstance(windows, torch.Tensor) else np.concatenate(halves)
    expected = (len(windows), windows.shape[1] * scale, windows.shape[2] * scale, windows.shape[3])
    if tuple(upscaled.shape) != expected or upscaled.dtype != windows.dtype:
        raise RuntimeError(f"the model returned {tuple(upscaled.shape)} {upscaled.dtype} for "
                           f"{tuple(windows.shape)} {windows.dtype}, expected {expected}"
                           + (f" ({context})" if context else ""))
    return upscaled


def upscale_tiled(
    image: np.ndarray,
    upscale_windows: WindowFn,
    *,
    scale: int,
    tile: int,
    pad: int,
    batch_size: int = 4,
    fit: bool = False,
    progress: Callable[[int], None] | None = None,
    oom_errors: tuple[type[BaseException], ...] = OOM_ERRORS,
) -> np.ndarray:
    """Upscale an H x W x 3 image window by window on the host; device memory is bounded by one batch.

    `fit` fits the tiles to the image (`TileGrid`). `progress`, if given, is called with the number of
    tiles done after each batch.
    """
    grid = TileGrid(image.shape[0], image.shape[1], tile, pad, fit)
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
    window = mirror_pad(image, ((pad, pad), (pad, pad)))
    upscaled = run_windows(upscale_windows, window[None], scale=scale)[0]
    output_pad = pad * scale
    return np.ascontiguousarray(
        upscaled[output_pad : output_pad + height * scale, output_pad : output_pad + width * scale]
    )


def mirror_pad(image: Pixels, widths: tuple[tuple[int, int], tuple[int, int]]) -> Pixels:
    """Mirror an H x W (x C) image outwards by ((top, bottom), (left, right)), defined for every size down
    to 1x1; a tensor is padded on its own device, whatever its dtype."""
    # 'symmetric' mirrors including the edge pixel, so it is defined for a 1-pixel side, where 'reflect'
    # is not; numpy repeats the mirroring when the pad is wider than the image.
    mode: Literal["reflect", "symmetric"] = "reflect" if min(image.shape[:2]) > 1 else "symmetric"
    rows = np.pad(np.arange(image.shape[0]), widths[0], mode=mode)
    cols = np.pad(np.arange(image.shape[1]), widths[1], mode=mode)
    if isinstance(image, torch.Tensor):
        return image.index_select(0, torch.from_numpy(rows).to(image.device)).index_select(
            1, torch.from_numpy(cols).to(image.device)
        )
    return image[np.ix_(rows, cols)]
