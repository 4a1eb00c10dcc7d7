from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from app.settings import Settings
from model.inference import Upscaler
from model.metrics import psnr_y
from model.registry import REGISTRY
from model.tiling import TileGrid, upscale_tiled, upscale_whole
from model.weights import load_generator
from tests.conftest import SHARED_DATASETS, tiny_generator

SHIPPED = Path(__file__).resolve().parents[1] / "model" / "weights" / "srresnet_x4.safetensors"


def nearest_x4(windows: np.ndarray) -> np.ndarray:
    return windows.repeat(4, axis=1).repeat(4, axis=2)


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 70), width=st.integers(1, 70), tile=st.integers(1, 24), pad=st.integers(0, 9))
def test_every_size_stitches_exactly(height: int, width: int, tile: int, pad: int) -> None:
    """With a pointwise 'model', tiles must reassemble into exactly the whole-image result: every pixel
    written once, from the right place, for every size including 1x1, primes and sizes below a tile."""
    image = np.random.default_rng(height * 100 + width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = upscale_tiled(image, nearest_x4, scale=4, tile=tile, pad=pad, batch_size=3)
    np.testing.assert_array_equal(out, nearest_x4(image[None])[0])


def test_windows_all_have_one_shape_and_real_context_inside() -> None:
    image = np.arange(10 * 13 * 3, dtype=np.uint16).reshape(10, 13, 3)
    grid = TileGrid(10, 13, tile=4, pad=2)
    padded = grid.pad_image(image)
    tiles = grid.tiles()
    assert len(tiles) == len(grid) == 3 * 4
    assert {grid.window_of(padded, t).shape for t in tiles} == {(8, 8, 3)}
    # The second tile's window starts 2 pixels left of its core: real neighbours, not a mirror.
    np.testing.assert_array_equal(grid.window_of(padded, tiles[1])[2:6, 0:2], image[0:4, 2:4])


def test_grid_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1x1"):
        TileGrid(0, 5, 4, 1)
    with pytest.raises(ValueError, match="tile"):
        TileGrid(5, 5, 0, 1)
    with pytest.raises(ValueError, match="pad"):
        TileGrid(5, 5, 4, -1)


def test_sixteen_bit_images_stay_sixteen_bit() -> None:
    upscaler = Upscaler.from_module("t", tiny_generator(0), torch.device("cpu"), torch.float32)
    image = np.random.default_rng(1).integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    out = upscale_tiled(image, upscaler, scale=4, tile=8, pad=2)
    assert out.dtype == np.uint16 and out.shape == (36, 44, 3)


def _natural_image() -> np.ndarray:
    path = SHARED_DATASETS / "eval" / "Set5" / "butterfly.png"
    if not path.exists():
        pytest.skip(f"{path} is not here: the tiled-vs-whole quality check needs a natural image")
    return np.asarray(Image.open(path).convert("RGB"))[64:192, 64:192]


def test_tiled_output_matches_whole_image_inference_with_the_shipped_weights() -> None:
    """At the default tile and pad, stitching is invisible: PSNR >= 45 dB against whole-image inference."""
    if not SHIPPED.exists():
        pytest.fail(f"{SHIPPED} is missing: the shipped weights are part of the product")
    model, _ = load_generator(SHIPPED)
    upscaler = Upscaler.from_module("srresnet", model, torch.device("cpu"), torch.float32)
    pad = REGISTRY["srresnet"].context_pad
    image = _natural_image()
    whole = upscale_whole(image, upscaler, scale=4, pad=pad)
    tiled = upscale_tiled(image, upscaler, scale=4, tile=Settings().tile, pad=pad)
    assert psnr_y(tiled, whole, crop_border=0) >= 45.0
