"""NIQE: lower for a clean photo than for the same photo blurred or noisy; deterministic; honest errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from model import niqe as N
from model.synthetic import natural_like_image

SET5 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "eval" / "Set5"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photograph where the shared data is present, else a synthetic natural-like image."""
    path = SET5 / "baby.png"
    if path.is_file():
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))[:288, :288]
    return natural_like_image(288, 288, seed=3)


def test_blur_and_noise_raise_niqe(photo: np.ndarray) -> None:
    clean = N.niqe(photo)
    blurred = np.asarray(Image.fromarray(photo).filter(ImageFilter.GaussianBlur(2.0)))
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 12, photo.shape), 0, 255)
    assert clean < N.niqe(blurred)
    assert clean < N.niqe(noisy)


def test_niqe_is_deterministic_and_accepts_gray(photo: np.ndarray) -> None:
    assert N.niqe(photo) == N.niqe(photo.copy())
    gray = N.niqe(photo.mean(axis=2) * 219 / 255 + 16)  # roughly the Y channel, as a 2-D array
    assert math.isfinite(gray) and gray > 0


def test_small_or_flat_images_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="96x96"):
        N.niqe(np.zeros((64, 300, 3), np.uint8))
    with pytest.raises(ValueError, match="two"):
        N.niqe(np.full((200, 200, 3), 128, np.uint8))  # flat: no patch has statistics


def test_aggd_fit_recovers_the_shape_of_a_gaussian_and_of_a_laplacian() -> None:
    rng = np.random.default_rng(1)
    alpha, left, right = N.aggd_fit(rng.normal(0, 2, 200_000))
    assert alpha == pytest.approx(2.0, abs=0.05)
    assert left == pytest.approx(right, rel=0.02)
    assert N.aggd_fit(rng.laplace(0, 1, 200_000))[0] == pytest.approx(1.0, abs=0.05)


def test_fit_pristine_keeps_the_sharp_patches_and_writes_a_loadable_model(tmp_path: Path) -> None:
    images = []
    for seed in range(3):
        image = natural_like_image(192, 288, seed=seed)
        # The left column of patches blurred: too soft to count as pristine.
        image[:, :96] = np.asarray(Image.fromarray(image[:, :96]).filter(ImageFilter.GaussianBlur(4)))
        images.append(image)
    mu, cov, n_patches = N.fit_pristine(images)
    assert mu.shape == (36,) and cov.shape == (36, 36)
    assert n_patches == 3 * 4  # of 6 patches per image, the 2 blurred ones are dropped
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    out = tmp_path / "params.safetensors"
    N.main([str(tmp_path), "--out", str(out)])
    written_mu, written_cov = N.pristine_model(out)
    np.testing.assert_allclose(written_mu, mu)
    np.testing.assert_allclose(written_cov, cov)


def test_shipped_pristine_model_is_well_formed() -> None:
    mu, cov = N.pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > -1e-9)
