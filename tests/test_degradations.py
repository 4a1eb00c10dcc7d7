"""The real-world degradation functions and the (degraded LR, clean HR) training pairs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import degradations as D
from model.data import PatchSampler, RealWorldPairs
from model.imresize import imresize
from model.synthetic import natural_like_image


def _natural(count: int, side: int = 96) -> torch.Tensor:
    """`count` natural-like images (detail at every scale, so blur shows after a x4 reduction), NCHW."""
    images = [natural_like_image(side, side, seed=seed) for seed in range(count)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def _photo(side: int = 96, seed: int = 0) -> torch.Tensor:
    """A smooth gradient with a fine (4-pixel period) texture, (1, 3, side, side) in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    base = np.stack([x, y, 0.5 * (x + y)], 0) * 0.6 + 0.2
    texture = 0.1 * np.sin(2 * np.pi * x * side / 4 + rng.uniform(0, 6))[None]
    return torch.from_numpy(np.clip(base + texture, 0, 1)).float()[None]


def test_gaussian_kernels_are_normalised_and_isotropic_when_sigmas_match() -> None:
    one = torch.tensor([1.5])
    k = D.gaussian_kernels(11, one, one, torch.tensor([0.7]))[0]
    assert k.sum().item() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(k, k.T)  # rotation does not matter for a circle
    torch.testing.assert_close(k, k.flip(0))


def test_anisotropic_kernel_is_elongated_along_its_angle() -> None:
    k = D.gaussian_kernels(21, torch.tensor([3.0]), torch.tensor([0.5]), torch.tensor([0.0]))[0]
    centre = 10
    assert k[centre, centre + 5] > 10 * k[centre + 5, centre]  # wide along x, narrow along y


def test_blur_keeps_a_flat_image_and_smooths_texture() -> None:
    flat = torch.full((2, 3, 32, 32), 0.4)
    kernels = D.random_gaussian_kernels(2, torch.Generator().manual_seed(0), (1.0, 2.0), 0.5)
    torch.testing.assert_close(D.blur(flat, kernels), flat)
    photo = _photo()
    blurred = D.blur(
        photo, D.gaussian_kernels(9, torch.tensor([2.0]), torch.tensor([2.0]), torch.tensor([0.0]))
    )
    assert blurred.diff(dim=-1).abs().mean() < 0.7 * photo.diff(dim=-1).abs().mean()


def test_gaussian_noise_has_the_requested_deviation_and_gray_noise_is_the_same_in_every_channel() -> None:
    images = torch.full((2, 3, 64, 64), 0.5)
    noisy = D.add_gaussian_noise(
        images, torch.tensor([0.05, 0.05]), torch.tensor([False, True]), torch.Generator().manual_seed(1)
    )
    noise = noisy - images
    assert noise.std().item() == pytest.approx(0.05, rel=0.1)
    torch.testing.assert_close(noise[1, 0], noise[1, 2])
    assert not torch.allclose(noise[0, 0], noise[0, 2])


def test_poisson_noise_grows_with_intensity() -> None:
    dark, bright = torch.full((1, 3, 64, 64), 0.05), torch.full((1, 3, 64, 64), 0.9)
    rng = torch.Generator().manual_seed(2)
    one, gray = torch.tensor([1.0]), torch.tensor([False])
    assert (D.add_poisson_noise(bright, one, gray, rng) - bright).std() > 2 * (
        D.add_poisson_noise(dark, one, gray, rng) - dark
    ).std()


def test_jpeg_round_trips_through_libjpeg_at_the_requested_quality() -> None:
    photo = _photo(64)
    low, high = D.jpeg(photo, torch.tensor([30])), D.jpeg(photo, torch.tensor([95]))
    assert (low - photo).abs().mean() > (high - photo).abs().mean()
    pixels = (photo[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=30)
    expected = np.asarray(Image.open(buffer).convert("RGB"))
    np.testing.assert_array_equal((low[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), expected)
    with pytest.raises(ValueError, match="quality"):
        D.jpeg(photo, torch.tensor([0]))


def test_random_jpeg_quality_stays_in_the_closed_range() -> None:
    q = D.random_jpeg_quality(5000, torch.Generator().manual_seed(3), (30, 95))
    assert q.min().item() == 30 and q.max().item() == 95


def test_degrade_shape_range_determinism_and_difference_from_bicubic() -> None:
    hr = _natural(4)
    config = D.DegradationConfig()
    a = D.degrade(hr, 4, torch.Generator().manual_seed(7), config)
    b = D.degrade(hr, 4, torch.Generator().manual_seed(7), config)
    c = D.degrade(hr, 4, torch.Generator().manual_seed(8), config)
    assert a.shape == (4, 3, 24, 24)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a * 255, (a * 255).round())  # 8-bit values, as on disk
    bicubic = np.stack([imresize(img.permute(1, 2, 0).numpy() * 255, 1 / 4) for img in hr]) / 255
    difference = np.abs(a.permute(0, 2, 3, 1).numpy() - bicubic).mean()
    assert difference > 2 / 255


def test_realworld_pairs_keep_the_clean_hr_and_degrade_the_lr(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    sampler = PatchSampler([tmp_path], scale=4, patch_size=48)
    pairs = RealWorldPairs(sampler, D.DegradationConfig())
    lr, hr = pairs.sample(3, torch.Generator().manual_seed(0))
    clean_lr, clean_hr = sampler.sample(3, torch.Generator().manual_seed(0))
    assert lr.shape == (3, 12, 12, 3) and lr.dtype == torch.uint8
    torch.testing.assert_close(hr, clean_hr)  # the same patches: only the LR is degraded
    assert not torch.equal(lr, clean_lr)
    again, _ = pairs.sample(3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(lr, again)


@pytest.mark.parametrize("simple_prob", [0.0, 1.0])
def test_switched_off_steps_leave_only_a_resize_and_a_light_jpeg(simple_prob: float) -> None:
    hr = torch.cat([_photo(96, seed) for seed in range(2)])
    quiet = D.StageConfig(blur_prob=0.0, resize_probs=(0.0, 0.0, 1.0), noise_prob=0.0, jpeg_range=(95, 95))
    config = D.DegradationConfig(first=quiet, second=quiet, second_prob=0.0, simple_prob=simple_prob)
    lr = D.degrade(hr, 4, torch.Generator().manual_seed(0), config)
    bicubic = np.stack([imresize(img.permute(1, 2, 0).numpy() * 255, 1 / 4) for img in hr]) / 255
    assert np.abs(lr.permute(0, 2, 3, 1).numpy() - bicubic).mean() < 2 / 255


def test_the_simple_path_compresses_but_does_not_blur() -> None:
    hr = _natural(4)
    config = D.DegradationConfig(simple_prob=1.0)
    lr = D.degrade(hr, 4, torch.Generator().manual_seed(5), config)
    bicubic = np.stack([imresize(img.permute(1, 2, 0).numpy() * 255, 1 / 4) for img in hr]) / 255
    # Close to the plain reduction (JPEG and noise only), unlike the two orders' blurred and resized LR.
    simple_error = np.abs(lr.permute(0, 2, 3, 1).numpy() - bicubic).mean()
    full = D.degrade(hr, 4, torch.Generator().manual_seed(5), D.DegradationConfig(simple_prob=0.0))
    assert simple_error < np.abs(full.permute(0, 2, 3, 1).numpy() - bicubic).mean()


def test_the_path_is_drawn_per_image_so_every_batch_mixes_both() -> None:
    """BatchNorm normalises a training batch by its own statistics: a batch of one path only would train
    the network on statistics that inference, with one set, never has."""
    hr = _natural(16)
    web = D.StageConfig(blur_prob=0.0, noise_prob=0.0, jpeg_range=(95, 95))
    heavy = D.StageConfig(blur_prob=1.0, blur_sigma=(8.0, 8.0), anisotropic_prob=0.0,
                          resize_probs=(0.0, 0.0, 1.0), noise_prob=0.0, jpeg_range=(95, 95))
    config = D.DegradationConfig(first=heavy, second=web, second_prob=0.0, simple_prob=0.5)
    lr = D.degrade(hr, 4, torch.Generator().manual_seed(0), config).numpy()
    bicubic = np.stack([imresize(img.permute(1, 2, 0).numpy(), 1 / 4) for img in hr]).transpose(0, 3, 1, 2)

    def detail(images: np.ndarray) -> np.ndarray:
        return np.abs(np.diff(images, axis=-1)).mean(axis=(1, 2, 3))

    kept = detail(lr) / detail(bicubic)  # the share of the reduction's detail each image kept
    web_path = kept > (kept.max() + kept.min()) / 2
    assert web_path.sum() >= 3 and (~web_path).sum() >= 3, kept  # one batch holds both paths
    gap = kept[web_path].min() - kept[~web_path].max()
    spread = max(np.ptp(kept[web_path]), np.ptp(kept[~web_path]))
    assert spread < gap / 4, kept  # two distinct groups: each image took one path whole
