"""Image quality metrics as the SR literature computes them: PSNR and SSIM on the Y channel.

All functions take H x W x 3 RGB arrays with values in [0, 255] (uint8 or float), or H x W
grayscale arrays, and crop `crop_border` pixels from every side before measuring.
"""

from __future__ import annotations

import numpy as np


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB image in [0, 255]; returns float64 in [16, 235]. Gray passes through."""
    data = image.astype(np.float64)
    if data.ndim == 2:
        return data
    return 16.0 + (65.481 * data[..., 0] + 128.553 * data[..., 1] + 24.966 * data[..., 2]) / 255.0


def _crop(image: np.ndarray, crop_border: int) -> np.ndarray:
    if crop_border == 0:
        return image
    return image[crop_border:-crop_border, crop_border:-crop_border]


def psnr_y(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> float:
    """PSNR in dB of the Y channels, peak 255; inf for identical images."""
    if sr.shape != hr.shape:
        raise ValueError(f"shapes differ: {sr.shape} vs {hr.shape}")
    diff = _crop(rgb_to_y(sr), crop_border) - _crop(rgb_to_y(hr), crop_border)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation with a symmetric 1-D window along both axes."""
    size = window.size
    rows = np.lib.stride_tricks.sliding_window_view(image, size, axis=0) @ window
    return np.lib.stride_tricks.sliding_window_view(rows, size, axis=1) @ window


def ssim_y(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> float:
    """SSIM (Wang et al. 2004) of the Y channels: Gaussian 11x11, sigma 1.5, in [-1, 1], 1 if identical."""
    if sr.shape != hr.shape:
        raise ValueError(f"shapes differ: {sr.shape} vs {hr.shape}")
    x = _crop(rgb_to_y(sr), crop_border)
    y = _crop(rgb_to_y(hr), crop_border)
    if min(x.shape) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {x.shape}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    w = _gaussian_window()
    mu_x, mu_y = _filter_valid(x, w), _filter_valid(y, w)
    sigma_x = _filter_valid(x * x, w) - mu_x**2
    sigma_y = _filter_valid(y * y, w) - mu_y**2
    sigma_xy = _filter_valid(x * y, w) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2)
    )
    return float(ssim_map.mean())


def gradient_ratio(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> float:
    """Mean gradient magnitude of SR over that of HR, on Y: < 1 means smoother than ground truth.

    A crude measure of restored texture: interpolation and PSNR-trained networks score well below 1.
    """

    def mean_grad(img: np.ndarray) -> float:
        y = _crop(rgb_to_y(img), crop_border)
        gy, gx = np.diff(y, axis=0)[:, :-1], np.diff(y, axis=1)[:-1, :]
        return float(np.mean(np.hypot(gx, gy)))

    return mean_grad(sr) / mean_grad(hr)
