import numpy as np
import pytest

from model.metrics import gradient_ratio, psnr_y, rgb_to_y, ssim_y
from model.synthetic import natural_like_image


def test_luma_of_white_and_black_is_bt601_range() -> None:
    assert rgb_to_y(np.array([[[255, 255, 255]]], np.uint8))[0, 0] == pytest.approx(235.0, abs=1e-3)
    assert rgb_to_y(np.array([[[0, 0, 0]]], np.uint8))[0, 0] == pytest.approx(16.0)


def test_psnr_of_a_known_error() -> None:
    hr = np.full((20, 20), 100, np.uint8)
    sr = hr.copy()
    sr[4:-4, 4:-4] += 10  # gray images are measured on raw values: MSE 100 inside the crop
    assert psnr_y(sr, hr, crop_border=4) == pytest.approx(10 * np.log10(255**2 / 100))
    assert psnr_y(hr, hr, crop_border=4) == float("inf")


def test_crop_border_ignores_edge_errors() -> None:
    hr = natural_like_image(32, 32)
    sr = hr.copy()
    sr[:2] = 0
    assert psnr_y(sr, hr, crop_border=4) == float("inf")


def test_ssim_is_one_for_identical_and_lower_for_noisy() -> None:
    hr = natural_like_image(40, 40)
    assert ssim_y(hr, hr, 4) == pytest.approx(1.0)
    noisy = np.clip(hr + np.random.default_rng(0).normal(0, 20, hr.shape), 0, 255).astype(np.uint8)
    assert 0 < ssim_y(noisy, hr, 4) < 0.9
    with pytest.raises(ValueError, match="11x11"):
        ssim_y(hr[:16, :16], hr[:16, :16], 4)


def test_gradient_ratio_below_one_for_blur() -> None:
    hr = natural_like_image(40, 40)
    blurred = ((hr[:-1, :-1].astype(int) + hr[1:, 1:]) // 2).astype(np.uint8)
    assert gradient_ratio(blurred, hr[:-1, :-1], 4) < 1.0
    assert gradient_ratio(hr, hr, 4) == pytest.approx(1.0)
