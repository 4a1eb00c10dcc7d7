import tracemalloc

import numpy as np
import pytest

from model import imresize as imresize_module
from model.imresize import imresize, resize_matrix


def test_rows_of_the_weight_matrix_sum_to_one() -> None:
    for in_len, out_len, scale in [(17, 5, 0.25), (5, 20, 4.0), (3, 1, 0.25), (1, 4, 4.0)]:
        np.testing.assert_allclose(resize_matrix(in_len, out_len, scale).sum(axis=1), 1.0)


def test_constant_image_stays_constant_both_ways() -> None:
    image = np.full((13, 9, 3), 77, np.uint8)
    assert (imresize(image, 0.25) == 77).all()
    assert (imresize(image, 4) == 77).all()


def test_output_size_is_ceil_of_scaled_size() -> None:
    assert imresize(np.zeros((10, 7, 3), np.uint8), 0.25).shape == (3, 2, 3)
    assert imresize(np.zeros((3, 2), np.float64), 4).shape == (12, 8)


def test_linear_ramp_is_reproduced_at_matlab_sample_centres() -> None:
    """Keys' cubic (a = -0.5) reproduces linear functions exactly, so away from the mirrored borders a
    ramp must come out as the ramp sampled at MATLAB's centres u = x / scale + 0.5 * (1 - 1 / scale)."""
    row = np.arange(1, 41, dtype=np.float64)[None, :]
    out = imresize(row, 0.25)[0]
    centres = np.arange(1, 11) / 0.25 + 0.5 * (1 - 1 / 0.25)
    np.testing.assert_allclose(out[3:-3], centres[3:-3], atol=1e-9)
    # The borders are mirrored symmetrically: reversing the input reverses the output.
    np.testing.assert_allclose(imresize(row[:, ::-1], 0.25)[0], out[::-1], atol=1e-9)


def test_downscale_then_upscale_of_smooth_image_is_close() -> None:
    y, x = np.mgrid[0:64, 0:64]
    image = (128 + 60 * np.sin(x / 9.0) * np.cos(y / 11.0)).astype(np.uint8)
    back = imresize(imresize(image, 0.25), 4).astype(float)
    assert np.abs(back[8:-8, 8:-8] - image[8:-8, 8:-8]).mean() < 2.0


def test_rejects_non_positive_scale() -> None:
    with pytest.raises(ValueError, match="scale"):
        imresize(np.zeros((4, 4)), 0)


@pytest.mark.parametrize(
    ("shape", "scale"), [((37, 23, 3), 0.25), ((9, 6, 3), 4.0), ((50, 31), 0.5), ((1, 40), 0.25)]
)
def test_the_band_of_taps_gives_the_dense_matrix_result(
    monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...], scale: float
) -> None:
    image = np.random.default_rng(0).uniform(0, 255, shape)
    dense = imresize(image, scale)
    monkeypatch.setattr(imresize_module, "CACHED_MATRIX_BYTES", 0)  # every axis takes the band
    assert imresize_module.uses_band(shape[0], dense.shape[0])
    np.testing.assert_allclose(imresize(image, scale), dense, rtol=0, atol=1e-9)


def test_a_long_axis_is_resized_in_memory_of_the_output_size_not_out_x_in() -> None:
    """A 104 x 8192 strip halved: its dense column matrix would be 4096 x 8192 float64 (256 MiB)."""
    strip = np.random.default_rng(0).uniform(0, 255, (104, 8192))
    imresize(strip[:, :64], 0.5)  # numpy's first-use allocations, outside the measurement
    tracemalloc.start()
    try:
        out = imresize(strip, 0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (52, 4096)
    assert peak < 6 * strip.nbytes  # the input's float64 copy, the two axes' outputs and one slice
