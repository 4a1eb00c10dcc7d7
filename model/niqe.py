"""NIQE (Mittal, Soundararajan & Bovik 2013, "Making a completely blind image quality analyzer").

A no-reference score: the distance between the natural-scene statistics of an image and those of
pristine photographs. LOWER IS BETTER (natural photos score about 3-5 here; blur, noise and blocking
raise it). Unlike PSNR it does not compare with an original, so it rewards plausible texture
that is not the original's: the point of a GAN.

The procedure is the published one (the authors' MATLAB `computequality.m`): luminance; MSCN
coefficients from a 7x7 Gaussian (sigma 7/6); per 96x96 patch, an asymmetric generalised Gaussian
fit to the coefficients and to their products with four neighbours (18 features), at full and half
resolution (MATLAB bicubic); the score is the Mahalanobis-like distance between a multivariate
Gaussian fitted to the image's patches and the pristine one. The pristine model was fitted by
`fit_pristine` on this project's training photos (`weights/niqe_pristine.safetensors`, whose metadata
records how), not the authors' 125 images, so absolute values differ from published NIQE tables;
differences between methods are what to read. Pure numpy: the service computes it without scipy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np

from model.imresize import imresize
from model.metrics import rgb_to_y

PATCH = 96  # the paper's block size
SHARPNESS_THRESHOLD = 0.75  # pristine fit keeps patches at least this sharp relative to the sharpest
PARAMS_FILE = Path(__file__).with_name("weights") / "niqe_pristine.safetensors"
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical and the two diagonal neighbours


def _gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    x = np.arange(size) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_replicate(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable correlation with edge replication (MATLAB `imfilter(..., 'replicate')`), same size."""
    half = window.size // 2
    padded = np.pad(image, half, mode="edge")
    rows = np.lib.stride_tricks.sliding_window_view(padded, window.size, axis=0) @ window
    return np.lib.stride_tricks.sliding_window_view(rows, window.size, axis=1) @ window


def mscn(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients of a [0, 255] luminance image, and the local
    deviation they were divided by (its mean is a patch's sharpness)."""
    window = _gaussian_window()
    mu = _filter_replicate(image, window)
    sigma = np.sqrt(np.abs(_filter_replicate(image * image, window) - mu * mu))
    return (image - mu) / (sigma + 1), sigma


@lru_cache(maxsize=1)
def _shape_table() -> tuple[np.ndarray, np.ndarray]:
    """Candidate AGGD shapes 0.2..10 (step 0.001, as the reference) and their moment ratio
    Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)); log-gamma keeps it finite for small shapes."""
    shapes = np.arange(0.2, 10.0005, 0.001)
    lg = np.vectorize(math.lgamma)
    ratio = np.exp(2 * lg(2 / shapes) - lg(1 / shapes) - lg(3 / shapes))
    return shapes, ratio


def aggd_fit(values: np.ndarray) -> tuple[float, float, float]:
    """Moment-matching fit of an asymmetric generalised Gaussian: (shape, left scale, right scale)."""
    values = values.ravel()
    left, right = values[values < 0], values[values > 0]
    left_std = math.sqrt(float(np.mean(left**2))) if left.size else 0.0
    right_std = math.sqrt(float(np.mean(right**2))) if right.size else 0.0
    mean_sq = float(np.mean(values**2))
    if left_std == 0 or right_std == 0 or mean_sq == 0:
        return math.nan, math.nan, math.nan  # a flat patch: no statistics, dropped by the caller
    gamma_hat = left_std / right_std
    r_hat = float(np.mean(np.abs(values))) ** 2 / mean_sq
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    shapes, ratio = _shape_table()
    alpha = float(shapes[np.argmin((ratio - r_norm) ** 2)])
    factor = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, left_std * factor, right_std * factor


def patch_features(coefficients: np.ndarray) -> np.ndarray:
    """The 18 NIQE features of one patch of MSCN coefficients."""
    alpha, left, right = aggd_fit(coefficients)
    features = [alpha, (left + right) / 2]
    for dy, dx in _SHIFTS:
        pair = coefficients * np.roll(coefficients, (dy, dx), axis=(0, 1))  # MATLAB circshift
        alpha, left, right = aggd_fit(pair)
        mean = (right - left) * math.gamma(2 / alpha) / math.gamma(1 / alpha) if alpha == alpha else math.nan
        features += [alpha, mean, left, right]
    return np.array(features)


def image_features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(patches, 36) features at two scales and (patches,) sharpness for an RGB or gray [0, 255] image.

    The image is cropped to whole 96x96 patches; patches are in row-major order.
    """
    luma = rgb_to_y(image) if image.ndim == 3 else image.astype(np.float64)
    rows, cols = luma.shape[0] // PATCH, luma.shape[1] // PATCH
    if rows * cols == 0:
        raise ValueError(f"NIQE needs at least {PATCH}x{PATCH} pixels, got {luma.shape[1]}x{luma.shape[0]}")
    luma = luma[: rows * PATCH, : cols * PATCH]
    per_scale, sharpness = [], np.empty(0)
    for scale in (1, 2):
        coefficients, sigma = mscn(luma)
        side = PATCH // scale
        blocks = coefficients.reshape(rows, side, cols, side).swapaxes(1, 2).reshape(-1, side, side)
        per_scale.append(np.stack([patch_features(b) for b in blocks]))
        if scale == 1:
            sharpness = sigma.reshape(rows, side, cols, side).mean(axis=(1, 3)).ravel()
        luma = imresize(luma, 0.5)
    return np.concatenate(per_scale, axis=1), sharpness


def fit_pristine(images: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """The pristine model: mean (36,), covariance (36, 36) and count of the features of the sharpest
    patches of `images` (at least SHARPNESS_THRESHOLD times as sharp as the image's sharpest), as in
    the paper."""
    kept = []
    for image in images:
        features, sharpness = image_features(image)
        keep = sharpness > SHARPNESS_THRESHOLD * sharpness.max()
        kept.append(features[keep])
    features = np.concatenate(kept)
    features = features[np.isfinite(features).all(axis=1)]
    return features.mean(axis=0), np.cov(features, rowvar=False), int(features.shape[0])


@lru_cache(maxsize=1)
def pristine_model(path: Path = PARAMS_FILE) -> tuple[np.ndarray, np.ndarray]:
    """The pristine mean (36,) and covariance (36, 36) stored in `path` (default: the shipped file)."""
    from safetensors.numpy import load_file

    params = load_file(str(path))
    return params["mu"], params["cov"]


def niqe(image: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of an H x W x 3 RGB (or H x W gray) image in [0, 255]; lower is better.

    Needs at least two 96x96 patches after cropping `crop_border` pixels from each side (the
    image's own covariance needs two samples); raises ValueError otherwise.
    """
    if crop_border:
        image = image[crop_border:-crop_border, crop_border:-crop_border]
    features, _ = image_features(image)
    features = features[np.isfinite(features).all(axis=1)]
    if features.shape[0] < 2:
        raise ValueError(
            f"NIQE needs at least two {PATCH}x{PATCH} patches with texture, got {features.shape[0]}"
        )
    mu_p, cov_p = pristine_model()
    diff = mu_p - features.mean(axis=0)
    pooled = (cov_p + np.cov(features, rowvar=False)) / 2
    return float(math.sqrt(max(float(diff @ np.linalg.pinv(pooled) @ diff), 0.0)))


def main(argv: list[str] | None = None) -> None:
    """`python -m model.niqe DIR...`: refit the pristine model on the photos in DIR and rewrite
    weights/niqe_pristine.safetensors (the shipped file was made from the project's training folder)."""
    import argparse
    from datetime import UTC, datetime

    from PIL import Image

    from model.data import list_images

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folders", nargs="+", help="folders of pristine photographs")
    parser.add_argument("--out", default=str(PARAMS_FILE))
    args = parser.parse_args(argv)
    paths = [p for folder in args.folders for p in list_images(folder)]

    def photos() -> Iterable[np.ndarray]:
        for path in paths:
            with Image.open(path) as img:
                yield np.asarray(img.convert("RGB"))

    from safetensors.numpy import save_file

    mu, cov, n_patches = fit_pristine(photos())
    provenance = {
        "procedure": "Mittal et al. 2013: 96x96 patches, sharpness > 0.75 x max, 36 features, two scales",
        "luminance": "ITU-R BT.601 Y in [16, 235]",
        "images": len(paths),
        "patches": n_patches,
        "folders": [Path(f).name for f in args.folders],
        "fitted": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    save_file({"mu": mu, "cov": cov}, args.out, metadata={"niqe": json.dumps(provenance, sort_keys=True)})
    Path(args.out).chmod(0o644)  # shipped inside images that run as another user
    print(f"{args.out}: {n_patches} patches from {len(paths)} images")


if __name__ == "__main__":
    main()
