"""Training data: HR images decoded once into memory, LR made once by MATLAB bicubic, random aligned patches.

Downscaling whole images (rather than each patch) gives every LR patch real context at its borders,
exactly like the evaluation protocol. The images then live, stacked, on the training device, and a
batch of patches is one gather there plus three masked flips: no per-patch Python and no host-to-device
copies, so the GPU never waits for data.

`RealWorldPairs` instead degrades each batch's HR patches afresh (model.degradations): a fixed LR per
image would let the network learn a few dozen noise and JPEG samples instead of the process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.degradations import DegradationConfig, degrade
from model.imresize import imresize

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def load_hr(path: Path, scale: int) -> np.ndarray:
    """An RGB uint8 image cropped to a multiple of `scale` (the evaluation protocol's HR)."""
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"))
    height, width = rgb.shape[:2]
    return np.ascontiguousarray(rgb[: height - height % scale, : width - width % scale])


class PatchSampler:
    """Random (LR, HR) patch pairs with flips and 90-degree rotations, made on `device`.

    Args:
        folders: folders of HR images.
        scale: upscale factor.
        patch_size: HR patch side; must be divisible by `scale`.
        device: where the images are kept and the patches made (the training device).
    """

    def __init__(
        self,
        folders: Sequence[str | Path],
        scale: int = 4,
        patch_size: int = 96,
        device: str | torch.device = "cpu",
    ) -> None:
        if patch_size % scale:
            raise ValueError(f"patch_size {patch_size} must be divisible by scale {scale}")
        self.scale, self.patch_size = scale, patch_size
        self.device = torch.device(device)
        pairs: list[tuple[np.ndarray, np.ndarray]] = []
        for folder in folders:
            for path in list_images(folder):
                hr = load_hr(path, scale)
                if min(hr.shape[:2]) >= patch_size:
                    # Portrait images are stored transposed: transposing is one of the augmentations
                    # anyway, and one orientation keeps the zero padding of the stack below small.
                    if hr.shape[0] > hr.shape[1]:
                        hr = np.ascontiguousarray(hr.transpose(1, 0, 2))
                    pairs.append((imresize(hr, 1 / scale), hr))
        if not pairs:
            raise ValueError(f"no image in {list(folders)} is at least {patch_size}px on each side")
        self.count = len(pairs)
        self.lr, self.lr_sizes = _stack([lr for lr, _ in pairs], self.device)
        self.hr, _ = _stack([hr for _, hr in pairs], self.device)
        logger.info(
            "loaded %d training images (%.0f MB of HR pixels on %s)",
            self.count,
            sum(hr.nbytes for _, hr in pairs) / 1e6,
            self.device,
        )

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` pairs as uint8 NHWC tensors on the device: LR (patch/scale)^2, HR patch^2.

        `generator` must live on the sampler's device.
        """
        lr_side, device = self.patch_size // self.scale, self.device
        image = torch.randint(self.count, (batch_size,), generator=generator, device=device)
        # A uniform top-left corner among the positions where the patch lies inside that image (never
        # in the stack's padding).
        room = self.lr_sizes[image] - lr_side + 1  # (batch, 2): positions per axis
        corner = (torch.rand(batch_size, 2, generator=generator, device=device) * room).long()
        lr_offsets = torch.arange(lr_side, device=device)
        hr_offsets = torch.arange(self.patch_size, device=device)
        lr = _gather(self.lr, image, corner[:, 0, None] + lr_offsets, corner[:, 1, None] + lr_offsets)
        hr_corner = corner * self.scale
        hr = _gather(self.hr, image, hr_corner[:, 0, None] + hr_offsets, hr_corner[:, 1, None] + hr_offsets)
        # Bicubic commutes with flips and transposes, so one dihedral transform on both stays a true pair.
        flip_v, flip_h, transpose = torch.randint(
            2, (3, batch_size, 1, 1, 1), generator=generator, device=device
        ).bool()
        return _dihedral(lr, flip_v, flip_h, transpose), _dihedral(hr, flip_v, flip_h, transpose)


class RealWorldPairs:
    """(degraded LR, clean HR) patch pairs: `sampler`'s HR patches through `model.degradations.degrade`.

    The same interface as PatchSampler. The degradation's random draws come from a CPU generator seeded
    from `generator`, so one seed fixes the patches and their degradations together.
    """

    def __init__(self, sampler: PatchSampler, config: DegradationConfig) -> None:
        self.sampler, self.config = sampler, config
        self.scale, self.patch_size, self.device = sampler.scale, sampler.patch_size, sampler.device

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` pairs as uint8 NHWC tensors on the sampler's device, as PatchSampler.sample."""
        _, hr = self.sampler.sample(batch_size, generator)
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        rng = torch.Generator().manual_seed(seed)
        lr = degrade(hr.permute(0, 3, 1, 2).float() / 255, self.scale, rng, self.config)
        return (lr * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous(), hr


def _stack(images: list[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of different sizes as one zero-padded (N, H, W, C) tensor, and their (N, 2) sizes."""
    height = max(image.shape[0] for image in images)
    width = max(image.shape[1] for image in images)
    stack = torch.zeros((len(images), height, width, 3), dtype=torch.uint8)
    for i, image in enumerate(images):
        stack.numpy()[i, : image.shape[0], : image.shape[1]] = image  # a view: no copy, no tensor wrapper
    sizes = torch.tensor([image.shape[:2] for image in images], dtype=torch.long)
    return stack.to(device), sizes.to(device)


def _gather(stack: torch.Tensor, image: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """stack[image[b], rows[b, i], cols[b, j]] for every b, i, j: (batch, len(rows), len(cols), C)."""
    return stack[image[:, None, None], rows[:, :, None], cols[:, None, :]]


def _dihedral(
    patches: torch.Tensor, flip_v: torch.Tensor, flip_h: torch.Tensor, transpose: torch.Tensor
) -> torch.Tensor:
    """Per-patch vertical flip, horizontal flip and transpose of square NHWC patches, by boolean masks."""
    patches = torch.where(flip_v, patches.flip(1), patches)
    patches = torch.where(flip_h, patches.flip(2), patches)
    return torch.where(transpose, patches.transpose(1, 2), patches)


def training_pairs(
    data: list[str],
    *,
    scale: int,
    patch_size: int,
    degradation: str = "bicubic",
    web_share: float = 0.5,
    device: str | torch.device = "cpu",
) -> PatchSampler | RealWorldPairs:
    """The (LR, HR) source of a training run on `degradation` (`model.train.TrainConfig`): clean bicubic
    pairs, or the real-world pipeline with `web_share` of the images on its web path."""
    if degradation not in ("bicubic", "realworld"):
        raise ValueError(f"degradation must be bicubic or realworld, got {degradation!r}")
    clean = PatchSampler(data, scale=scale, patch_size=patch_size, device=device)
    if degradation == "realworld":
        return RealWorldPairs(clean, DegradationConfig(simple_prob=web_share))
    return clean
