"""Fitted tiling (no pixels computed beyond an image and its context) and tiling on device tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.inference import Upscaler
from model.tiling import TileGrid, mirror_pad, upscale_tiled, upscale_whole
from tests.conftest import tiny_generator


def nearest_x4(windows: np.ndarray) -> np.ndarray:
    return windows.repeat(4, axis=1).repeat(4, axis=2)


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 70), width=st.integers(1, 70), tile=st.integers(1, 24), pad=st.integers(0, 9))
def test_fitted_tiles_stitch_exactly_and_never_cost_more(
        height: int, width: int, tile: int, pad: int) -> None:
    image = np.random.default_rng(height * 100 + width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = upscale_tiled(image, nearest_x4, scale=4, tile=tile, pad=pad, batch_size=3, fit=True)
    np.testing.assert_array_equal(out, nearest_x4(image[None])[0])
    fitted, fixed = TileGrid(height, width, tile, pad, fit=True), TileGrid(height, width, tile, pad)
    assert len(fitted) == len(fixed), "fitting changes the tiles' size, not their number"
    assert fitted.window_pixels <= fixed.window_pixels
    assert fitted.tile_height <= tile and fitted.tile_width <= tile


def test_an_image_within_one_tile_is_one_window_of_its_own_size_plus_the_pad() -> None:
    grid = TileGrid(37, 53, tile=96, pad=12, fit=True)
    assert len(grid) == 1 and grid.window_shape == (37 + 24, 53 + 24)
    assert TileGrid(37, 53, tile=96, pad=12).window_shape == (120, 120)  # what a batch of several needs
    # Larger images are split evenly: 100 rows are two tiles of 50, not 96 + 4.
    assert TileGrid(100, 200, tile=96, pad=12, fit=True).window_shape == (50 + 24, 67 + 24)


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (30, 5), (32, 32)])
def test_a_fitted_single_tile_is_exactly_whole_image_inference(size: tuple[int, int]) -> None:
    """The generator takes any size (nothing to round up to), and a fitted one-tile image computes the
    very window `upscale_whole` does: the same bytes, 8-bit and 16-bit."""
    upscaler = Upscaler.from_module("t", tiny_generator(0), torch.device("cpu"), torch.float32)
    rng = np.random.default_rng(1)
    for image in (rng.integers(0, 256, (*size, 3), dtype=np.uint8),
                  rng.integers(0, 65536, (*size, 3), dtype=np.uint16)):
        tiled = upscale_tiled(image, upscaler, scale=4, tile=32, pad=4, fit=True)
        assert tiled.shape == (size[0] * 4, size[1] * 4, 3) and tiled.dtype == image.dtype
        np.testing.assert_array_equal(tiled, upscale_whole(image, upscaler, scale=4, pad=4))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32])
@pytest.mark.parametrize("size", [(1, 1), (1, 5), (6, 1), (4, 7)])
def test_tensors_are_mirrored_like_arrays(size: tuple[int, int], dtype: torch.dtype) -> None:
    image = np.random.default_rng(2).integers(0, 256, (*size, 3)).astype(np.int32)
    widths = ((5, 9), (3, 0))
    on_host = mirror_pad(image, widths)
    np.testing.assert_array_equal(mirror_pad(torch.from_numpy(image).to(dtype), widths).numpy(), on_host)
    if min(size) > 1:
        np.testing.assert_array_equal(on_host, np.pad(image, (*widths, (0, 0)), mode="reflect"))


def test_windows_cut_from_a_tensor_and_pasted_into_one_match_the_host_path() -> None:
    image = np.random.default_rng(3).integers(0, 256, (23, 41, 3), dtype=np.uint8)
    grid = TileGrid(23, 41, tile=8, pad=3, fit=True)
    padded_host, padded_device = grid.pad_image(image), grid.pad_image(torch.from_numpy(image))
    output = torch.zeros((23 * 4, 41 * 4, 3), dtype=torch.uint8)
    for tile in grid.tiles():
        window = grid.window_of(padded_device, tile)
        np.testing.assert_array_equal(window.numpy(), grid.window_of(padded_host, tile))
        grid.paste(output, tile, torch.from_numpy(nearest_x4(window.numpy()[None])[0]), 4)
    np.testing.assert_array_equal(output.numpy(), nearest_x4(image[None])[0])
