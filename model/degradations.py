"""Real-world degradations (Wang et al. 2021, Real-ESRGAN): small pure functions, composed by `degrade`.

Every function takes a float batch (N, C, H, W) in [0, 1] on any device and its random draws from an
explicit `torch.Generator` on the CPU, so a seed fixes the result. Parameters are drawn per image where
that stays one batched operation (blur kernels, noise, JPEG quality, and the path: the two orders or the
web path, each a sub-batch) and per batch where it cannot (the resize factor and mode, as Real-ESRGAN
does).
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

RESIZE_MODES = ("area", "bilinear", "bicubic")


def uniform(rng: torch.Generator, low: float, high: float, n: int = 1) -> torch.Tensor:
    """`n` floats uniform in [low, high), from `rng` (CPU)."""
    return low + (high - low) * torch.rand(n, generator=rng, dtype=torch.float64)


def gaussian_kernels(
    size: int, sigma_x: torch.Tensor, sigma_y: torch.Tensor, theta: torch.Tensor
) -> torch.Tensor:
    """(N, size, size) normalised Gaussian kernels, each with standard deviations `sigma_x` along the axis
    rotated by `theta` (radians) and `sigma_y` across it; isotropic when the two are equal."""
    half = size // 2
    coords = torch.arange(-half, half + 1, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    u = cos * x + sin * y
    v = -sin * x + cos * y
    k = torch.exp(-0.5 * ((u / sigma_x[:, None, None]) ** 2 + (v / sigma_y[:, None, None]) ** 2))
    return (k / k.sum((1, 2), keepdim=True)).float()


def random_gaussian_kernels(
    n: int, rng: torch.Generator, sigma_range: tuple[float, float], anisotropic_prob: float
) -> torch.Tensor:
    """`n` random kernels: isotropic, or with probability `anisotropic_prob` anisotropic at a random angle.

    The side is odd and large enough for 3 standard deviations of the widest kernel (at most 21, as in
    Real-ESRGAN), so no kernel is truncated visibly.
    """
    sigma_x = uniform(rng, *sigma_range, n=n)
    sigma_y = torch.where(
        torch.rand(n, generator=rng) < anisotropic_prob, uniform(rng, *sigma_range, n=n), sigma_x
    )
    theta = uniform(rng, -math.pi, math.pi, n=n)
    half = min(math.ceil(3 * float(torch.maximum(sigma_x, sigma_y).max())), 10)
    return gaussian_kernels(2 * half + 1, sigma_x, sigma_y, theta)


def blur(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Each image convolved with its own (size, size) kernel, borders reflected; one grouped convolution.

    On images smaller than the kernel (a patch reduced hard by the first stage), the kernel is cut to
    what reflection padding allows and renormalised.
    """
    n, c, h, w = images.shape
    half = kernels.shape[-1] // 2
    if half >= min(h, w):
        cut = half - (min(h, w) - 1)
        kernels = kernels[:, cut:-cut, cut:-cut]
        kernels = kernels / kernels.sum((1, 2), keepdim=True)
        half = kernels.shape[-1] // 2
    padded = F.pad(images.reshape(1, n * c, h, w), (half, half, half, half), mode="reflect")
    weight = kernels.to(images).repeat_interleave(c, dim=0)[:, None]
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def resize(images: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Batch resized to `size` (H, W) by `mode` (area, bilinear or bicubic; antialiased when reducing)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"mode must be one of {RESIZE_MODES}, got {mode!r}")
    if mode == "area":
        return F.interpolate(images, size=size, mode="area")
    return F.interpolate(images, size=size, mode=mode, align_corners=False, antialias=True)


def random_resize_factor(
    rng: torch.Generator, scale_range: tuple[float, float], probs: tuple[float, float, float]
) -> float:
    """A factor above 1 (up), below 1 (down) or exactly 1 (keep) with probabilities `probs`."""
    choice = int(torch.multinomial(torch.tensor(probs), 1, generator=rng))
    if choice == 0:
        return float(uniform(rng, 1.0, scale_range[1]))
    if choice == 1:
        return float(uniform(rng, scale_range[0], 1.0))
    return 1.0


def random_mode(rng: torch.Generator) -> str:
    return RESIZE_MODES[int(torch.randint(len(RESIZE_MODES), (1,), generator=rng))]


def _noise_like(images: torch.Tensor, gray: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
    """Per-image choice between colour noise (`draw` as is) and gray noise (its first channel everywhere)."""
    return torch.where(gray.to(images.device)[:, None, None, None], draw[:, :1].expand_as(draw), draw)


def add_gaussian_noise(
    images: torch.Tensor, sigma: torch.Tensor, gray: torch.Tensor, rng: torch.Generator
) -> torch.Tensor:
    """Additive white Gaussian noise, standard deviation `sigma[i]` (in [0, 1] units) for image i; gray
    noise (the same in every channel) where `gray[i]`. Not clipped: the caller clips once at the end."""
    draw = torch.randn(images.shape, generator=rng).to(images.device)
    return images + _noise_like(images, gray, draw) * sigma.to(images)[:, None, None, None]


def add_poisson_noise(
    images: torch.Tensor, scale: torch.Tensor, gray: torch.Tensor, rng: torch.Generator
) -> torch.Tensor:
    """Shot noise: Poisson counts at 10^2.5 photons per unit intensity, its deviation from the image
    scaled by `scale[i]` (Real-ESRGAN's model); gray noise from the mean intensity where `gray[i]`."""
    photons = 10**2.5
    clean = images.clamp(0, 1).cpu().double()
    source = torch.where(gray[:, None, None, None], clean.mean(1, keepdim=True).expand_as(clean), clean)
    noise = torch.poisson(source * photons, generator=rng) / photons - source
    return images + (noise.float().to(images.device) * scale.to(images)[:, None, None, None])


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Clipped to [0, 1] and rounded to 8 bits, as every image on disk is."""
    return (images.clamp(0, 1) * 255).round() / 255


def jpeg(images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Each image encoded and decoded as JPEG (Pillow's libjpeg, 4:2:0 chroma) at `quality[i]`."""
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(pixels)
    for i, (image, q) in enumerate(zip(pixels, quality.tolist(), strict=True)):
        if not 1 <= q <= 95:
            raise ValueError(f"JPEG quality must be in [1, 95], got {q}")
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(q))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(images.device, images.dtype) / 255


def random_jpeg_quality(n: int, rng: torch.Generator, quality_range: tuple[int, int]) -> torch.Tensor:
    """`n` integer qualities uniform in the closed range."""
    return torch.randint(quality_range[0], quality_range[1] + 1, (n,), generator=rng)


@dataclass(frozen=True)
class StageConfig:
    """One order of degradation: blur, resize, noise, JPEG.

    The defaults are the first order used for `srgan-real`: Real-ESRGAN's steps with milder blur and
    noise (Real-ESRGAN: sigma 0.2-3, resize 0.15-1.5, noise sigma 1-30 and Poisson 0.05-3 on every
    image). Its ranges target old, heavily degraded photos, and a network trained on them smooths
    everything; a web JPEG is mostly compression on a resized photo. MODEL_CARD.md has the measurement.
    """

    blur_prob: float = 1.0
    blur_sigma: tuple[float, float] = (0.2, 2.0)  # in pixels of the image the stage blurs
    anisotropic_prob: float = 0.5
    resize_range: tuple[float, float] = (0.3, 1.5)
    resize_probs: tuple[float, float, float] = (0.2, 0.5, 0.3)  # up, down, keep
    noise_prob: float = 0.6  # per image: the others get no noise in this stage
    gaussian_noise_prob: float = 0.5  # per batch; otherwise Poisson
    noise_sigma: tuple[float, float] = (1 / 255, 15 / 255)
    poisson_scale: tuple[float, float] = (0.05, 1.5)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)


@dataclass(frozen=True)
class DegradationConfig:
    """The two stages; the second's resize is relative to the final LR size, as in Real-ESRGAN.

    The second order runs on a `second_prob` share of batches (Real-ESRGAN: all); the final resize to
    the LR size and JPEG always do. A `simple_prob` share of the images skips both orders instead: one
    resize to the LR size, the second order's noise, and JPEG, which is how most web images are made
    (a photo reduced and compressed), and which the two orders, with their random blur kernels,
    rarely produce.
    """

    first: StageConfig = StageConfig()
    second: StageConfig = StageConfig(
        blur_prob=0.5,
        blur_sigma=(0.2, 1.0),
        resize_range=(0.5, 1.2),
        resize_probs=(0.3, 0.4, 0.3),
        noise_prob=0.4,
        noise_sigma=(1 / 255, 10 / 255),
        poisson_scale=(0.05, 1.0),
    )
    second_prob: float = 0.5
    simple_prob: float = 0.5


def degrade_stage(
    images: torch.Tensor,
    stage: StageConfig,
    size: tuple[int, int],
    rng: torch.Generator,
    jpeg_last: bool = True,
) -> torch.Tensor:
    """One order: blur (with probability), resize to `size`, noise, then JPEG."""
    n = images.shape[0]
    if float(torch.rand(1, generator=rng)) < stage.blur_prob:
        images = blur(images, random_gaussian_kernels(n, rng, stage.blur_sigma, stage.anisotropic_prob))
    images = resize(images, size, random_mode(rng))
    gray = torch.rand(n, generator=rng) < stage.gray_noise_prob
    noisy = (torch.rand(n, generator=rng) < stage.noise_prob).float()
    if float(torch.rand(1, generator=rng)) < stage.gaussian_noise_prob:
        images = add_gaussian_noise(images, uniform(rng, *stage.noise_sigma, n=n).float() * noisy, gray, rng)
    else:
        images = add_poisson_noise(images, uniform(rng, *stage.poisson_scale, n=n).float() * noisy, gray, rng)
    images = images.clamp(0, 1)
    if jpeg_last:
        images = jpeg(images, random_jpeg_quality(n, rng, stage.jpeg_range))
    return images


def degrade(hr: torch.Tensor, scale: int, rng: torch.Generator, config: DegradationConfig) -> torch.Tensor:
    """LR batch (H/scale, W/scale), 8-bit values, made from HR `hr` by two orders of degradation, or
    (a `simple_prob` share of the images) by one resize, noise and JPEG: the web path.

    The path is drawn per image, so every batch mixes both. BatchNorm normalises a training batch by that
    batch's own statistics; with the path drawn per batch, each path was normalised by its own in
    training, and at inference, with one set of statistics, the network matched neither (MODEL_CARD.md,
    `srgan_real_x4`).
    """
    h, w = hr.shape[-2:]
    target = (h // scale, w // scale)
    web = (torch.rand(hr.shape[0], generator=rng) < config.simple_prob).to(hr.device)
    out = torch.empty((hr.shape[0], hr.shape[1], *target), dtype=hr.dtype, device=hr.device)
    if web.any():
        stage = dataclasses.replace(config.second, blur_prob=0.0)
        out[web] = quantize(degrade_stage(hr[web], stage, target, rng))
    if not web.all():
        out[~web] = _two_orders(hr[~web], target, rng, config)
    return out


def _two_orders(
    hr: torch.Tensor, target: tuple[int, int], rng: torch.Generator, config: DegradationConfig
) -> torch.Tensor:
    """Real-ESRGAN's two orders. The final resize to the LR size and the last JPEG come in a random order,
    as in Real-ESRGAN: JPEG applied before a reduction leaves softened blocks, after it sharp ones; both
    occur in the wild."""
    h, w = hr.shape[-2:]
    factor = random_resize_factor(rng, config.first.resize_range, config.first.resize_probs)
    out = degrade_stage(hr, config.first, (max(round(h * factor), 1), max(round(w * factor), 1)), rng)
    if float(torch.rand(1, generator=rng)) < config.second_prob:
        factor = random_resize_factor(rng, config.second.resize_range, config.second.resize_probs)
        size = (max(round(target[0] * factor), 1), max(round(target[1] * factor), 1))
        out = degrade_stage(out, config.second, size, rng, jpeg_last=False)
    quality = random_jpeg_quality(hr.shape[0], rng, config.second.jpeg_range)
    if float(torch.rand(1, generator=rng)) < 0.5:
        out = jpeg(resize(out, target, random_mode(rng)), quality)
    else:
        out = resize(jpeg(out, quality), target, random_mode(rng))
    return quantize(out)
