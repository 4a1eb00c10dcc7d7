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
from model.synthetic import natural_like_image
from model.tiling import Tile, TileGrid, mirror_pad, run_windows, upscale_tiled, upscale_whole
from model.weights import load_generator
from tests.conftest import SHARED_DATASETS, tiny_generator


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


def test_image_borders_are_mirrored_without_repeating_the_edge_pixel() -> None:
    """At the image's own borders a window's context is the image reflected (c b | a b c), the border
    whole-image inference with the same pad sees, not the edge repeated (a a | a b c) nor zeros."""
    image = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    padded = TileGrid(5, 6, tile=4, pad=2).pad_image(image)
    np.testing.assert_array_equal(padded[2:7, 0:2], image[:, [2, 1]])  # left
    np.testing.assert_array_equal(padded[0:2, 2:8], image[[2, 1], :])  # top
    np.testing.assert_array_equal(padded[2:7, 8:10], image[:, [4, 3]])  # right
    np.testing.assert_array_equal(padded[7:9, 2:8], image[[3, 2], :])  # bottom
    seen: list[np.ndarray] = []

    def record(windows: np.ndarray) -> np.ndarray:
        seen.append(windows[0].copy())
        return nearest_x4(windows)

    upscale_whole(image, record, scale=4, pad=2)
    np.testing.assert_array_equal(seen[0][2:7, 0:2], image[:, [2, 1]])


def test_a_one_pixel_side_is_mirrored_including_its_edge_pixel() -> None:
    """Reflection needs two pixels; a 1-pixel-high or -wide image repeats its one row or column."""
    row = np.arange(4 * 3, dtype=np.uint8).reshape(1, 4, 3)
    padded = TileGrid(1, 4, tile=4, pad=2).pad_image(row)
    np.testing.assert_array_equal(padded[:, 2:6], np.repeat(row, 8, axis=0))
    np.testing.assert_array_equal(padded[2, 0:2], row[0, [1, 0]])


def test_a_two_pixel_side_is_reflected_not_repeated() -> None:
    """Two pixels are enough to reflect: rows (a b) pad to (b | a b | a), not (a | a b | b)."""
    image = np.arange(2 * 3, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(mirror_pad(image, ((1, 1), (1, 1))),
                                  [[4, 3, 4, 5, 4], [1, 0, 1, 2, 1], [4, 3, 4, 5, 4], [1, 0, 1, 2, 1]])


def test_a_single_channel_image_is_reflected_like_a_grey_one() -> None:
    """The mirroring depends on the height and width only, never on the channels."""
    grey = np.arange(3 * 4, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(mirror_pad(grey[..., None], ((2, 1), (1, 2)))[..., 0],
                                  mirror_pad(grey, ((2, 1), (1, 2))))
    np.testing.assert_array_equal(mirror_pad(grey, ((2, 1), (1, 2)))[:, 0], [9, 5, 1, 5, 9, 5])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: a tensor is mirrored there")
def test_a_cuda_tensor_is_mirrored_on_its_own_device() -> None:
    image = torch.arange(5 * 6 * 3, dtype=torch.uint8).reshape(5, 6, 3)
    padded = mirror_pad(image.cuda(), ((2, 1), (1, 2)))
    assert padded.device == image.cuda().device
    np.testing.assert_array_equal(padded.cpu().numpy(), mirror_pad(image.numpy(), ((2, 1), (1, 2))))


def test_tiles_are_numbered_and_placed_in_raster_order() -> None:
    """Cores of `tile` pixels from the top left; the last row and column hold what is left."""
    tiles = TileGrid(10, 13, tile=4, pad=2).tiles()
    heights, widths = (4, 4, 2), (4, 4, 4, 1)
    assert tiles == [Tile(r * 4 + c, 4 * r, 4 * c, heights[r], widths[c]) for r in range(3) for c in range(4)]


def test_the_padded_image_is_the_pad_around_whole_tiles() -> None:
    """Padded to whole tiles at the bottom and right (10 x 13 in tiles of 4: 12 x 16), plus the pad."""
    image = np.arange(10 * 13 * 3, dtype=np.uint16).reshape(10, 13, 3)
    padded = TileGrid(10, 13, tile=4, pad=2).pad_image(image)
    np.testing.assert_array_equal(padded, mirror_pad(image, ((2, 4), (2, 5))))
    assert padded.shape == (16, 20, 3)
    assert TileGrid(9, 9, tile=4, pad=2, fit=True).pad_image(image[:9, :9]).shape == (13, 13, 3)


def test_a_wrong_model_output_is_refused_with_what_it_returned() -> None:
    windows = np.zeros((2, 3, 5, 3), np.uint8)
    with pytest.raises(RuntimeError) as refused:
        run_windows(lambda batch: batch, windows, scale=2)
    assert str(refused.value) == ("the model returned (2, 3, 5, 3) uint8 for (2, 3, 5, 3) uint8, "
                                  "expected (2, 6, 10, 3)")


def test_the_context_names_a_wrong_output_after_an_out_of_memory_split() -> None:
    def small_device(batch: np.ndarray) -> np.ndarray:
        if len(batch) > 1:
            raise MemoryError("fake: out of memory")
        return batch.astype(np.uint16)

    with pytest.raises(RuntimeError) as refused:
        run_windows(small_device, np.zeros((2, 1, 1, 3), np.uint8), scale=1, oom_errors=(MemoryError,),
                    context="model 'x4'")
    assert str(refused.value) == ("the model returned (1, 1, 1, 3) uint16 for (1, 1, 1, 3) uint8, "
                                  "expected (1, 1, 1, 3) (model 'x4')")


def test_tiled_upscaling_runs_fixed_windows_four_at_a_time_and_reports_each_batch() -> None:
    image = np.random.default_rng(0).integers(0, 256, (10, 9, 3), dtype=np.uint8)  # 3x3 tiles of 4
    shapes: list[tuple[int, ...]] = []
    done: list[int] = []

    def record(windows: np.ndarray) -> np.ndarray:
        shapes.append(windows.shape)
        return nearest_x4(windows)

    out = upscale_tiled(image, record, scale=4, tile=4, pad=1, progress=done.append)
    np.testing.assert_array_equal(out, nearest_x4(image[None])[0])
    assert shapes == [(4, 6, 6, 3), (4, 6, 6, 3), (1, 6, 6, 3)]  # not fitted: every window 4 + 2 x 1
    assert done == [4, 4, 1]


def test_tiled_upscaling_halves_a_batch_on_the_out_of_memory_errors_it_is_given() -> None:
    image = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)  # 4 tiles of 4
    sizes: list[int] = []

    def small_device(windows: np.ndarray) -> np.ndarray:
        sizes.append(len(windows))
        if len(windows) > 1:
            raise MemoryError("fake: out of memory")
        return nearest_x4(windows)

    out = upscale_tiled(image, small_device, scale=4, tile=4, pad=1, oom_errors=(MemoryError,))
    np.testing.assert_array_equal(out, nearest_x4(image[None])[0])
    assert sizes == [4, 2, 1, 1, 2, 1, 1]


def test_whole_image_inference_pads_nothing_unless_asked() -> None:
    """The evaluation protocol measures the network on the bare image (its own zero padding)."""
    image = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    shapes: list[tuple[int, ...]] = []

    def record(windows: np.ndarray) -> np.ndarray:
        shapes.append(windows.shape)
        return nearest_x4(windows)

    np.testing.assert_array_equal(upscale_whole(image, record, scale=4), nearest_x4(image[None])[0])
    assert shapes == [(1, 5, 7, 3)]


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
    """A crop of Set5's butterfly when the data set is here, else a natural-like synthetic image."""
    path = SHARED_DATASETS / "eval" / "Set5" / "butterfly.png"
    if path.exists():
        return np.asarray(Image.open(path).convert("RGB"))[64:192, 64:192]
    return natural_like_image(128, 128)


@pytest.mark.parametrize("name", REGISTRY.names())
def test_tiled_output_matches_whole_image_inference_at_the_default_tile_and_pad(name: str) -> None:
    """At the default tile and pad stitching is invisible: at most 2 levels from whole-image inference and
    >= 70 dB. Tiles without context score about 45 dB and differ by about 100 levels at the seams."""
    spec = REGISTRY[name]
    weights = Path(__file__).resolve().parents[1] / "model" / "weights" / spec.weights_file
    if not weights.exists():
        pytest.fail(f"{weights} is missing: the shipped weights are part of the product")
    model, _ = load_generator(weights)
    upscaler = Upscaler.from_module(name, model, torch.device("cpu"), torch.float32)
    settings = Settings()
    pad = settings.pad_for(REGISTRY)
    image = _natural_image()
    whole = upscale_whole(image, upscaler, scale=spec.scale, pad=pad)
    tiled = upscale_tiled(image, upscaler, scale=spec.scale, tile=settings.tile, pad=pad)
    assert np.abs(tiled.astype(int) - whole).max() <= 2
    assert psnr_y(tiled, whole, crop_border=0) >= 70.0
