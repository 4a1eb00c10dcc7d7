from collections.abc import Callable

import numpy as np
import pytest

from model.metrics import gradient_ratio, psnr_y, rgb_to_y, ssim_y
from model.synthetic import natural_like_image


def test_luma_of_white_and_black_is_bt601_range() -> None:
    assert rgb_to_y(np.array([[[255, 255, 255]]], np.uint8))[0, 0] == pytest.approx(235.0, abs=1e-3)
    assert rgb_to_y(np.array([[[0, 0, 0]]], np.uint8))[0, 0] == pytest.approx(16.0)


def test_luma_weighs_red_green_and_blue_by_bt601() -> None:
    primaries = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(rgb_to_y(primaries)[0], [16 + 65.481, 16 + 128.553, 16 + 24.966])


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


def test_psnr_with_no_crop_and_a_one_pixel_crop() -> None:
    hr = np.full((6, 6), 50, np.uint8)
    sr = hr.copy()
    sr[0, 0] = 80  # an error of 30 in one of 36 pixels, on the border
    assert psnr_y(sr, hr, crop_border=0) == pytest.approx(10 * np.log10(255**2 / (900 / 36)))
    sr[1, 1] = 70  # 20 in one of the 16 pixels a one-pixel crop keeps
    assert psnr_y(sr, hr, crop_border=1) == pytest.approx(10 * np.log10(255**2 / (400 / 16)))


@pytest.mark.parametrize("metric", [psnr_y, ssim_y])
def test_images_of_different_shapes_are_refused(metric: Callable[..., float]) -> None:
    with pytest.raises(ValueError, match=r"shapes differ: \(20, 20, 3\) vs \(20, 21, 3\)"):
        metric(natural_like_image(20, 20), natural_like_image(20, 21), 0)


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 written out window by window: an 11x11 Gaussian (sigma 1.5) over every position
    where it fits, K1 = 0.01, K2 = 0.03, L = 255."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mu_a, mu_b = (w * a).sum(), (w * b).sum()
            var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
            cov = (w * (a - mu_a) * (b - mu_b)).sum()
            numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
            values.append(numerator / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(values))


def test_ssim_matches_the_definition_window_by_window() -> None:
    hr = natural_like_image(24, 31)
    sr = np.clip(hr + np.random.default_rng(1).normal(0, 12, hr.shape), 0, 255).astype(np.uint8)
    expected = reference_ssim(rgb_to_y(sr)[2:-2, 2:-2], rgb_to_y(hr)[2:-2, 2:-2])
    assert ssim_y(sr, hr, 2) == pytest.approx(expected, rel=1e-9)
    dark = (hr // 8).astype(np.uint8)  # mostly the luminance term: the constants matter here
    assert ssim_y(dark, hr, 0) == pytest.approx(reference_ssim(rgb_to_y(dark), rgb_to_y(hr)), rel=1e-9)


def test_ssim_needs_one_whole_window_after_the_crop() -> None:
    hr = natural_like_image(15, 15)
    assert ssim_y(hr, hr, 2) == pytest.approx(1.0)  # exactly 11x11 left
    with pytest.raises(ValueError, match=r"at least 11x11 pixels after cropping, got \(11, 10\)"):
        ssim_y(hr[:, :14], hr[:, :14], 2)


def test_gradient_ratio_matches_the_definition_pixel_by_pixel() -> None:
    hr = natural_like_image(12, 9)
    sr = natural_like_image(12, 9, seed=3)

    def mean_gradient(image: np.ndarray) -> float:
        y = rgb_to_y(image)[1:-1, 1:-1]
        return float(np.mean([np.hypot(y[i, j + 1] - y[i, j], y[i + 1, j] - y[i, j])
                              for i in range(y.shape[0] - 1) for j in range(y.shape[1] - 1)]))

    assert gradient_ratio(sr, hr, 1) == pytest.approx(mean_gradient(sr) / mean_gradient(hr), rel=1e-12)
