"""Content losses for the SRGAN stage.

The paper's content loss is the distance between VGG19 phi_5,4 features of SR and HR. That needs
ImageNet weights, which this project cannot download at run time, so two options exist:

- `vgg19`: the paper's loss, given a local VGG19 weights file (torchvision's `vgg19-*.pth`, or a
  safetensors file with the same keys). Loaded with `weights_only=True`: nothing is unpickled.
- `dfeat`: feature matching on the discriminator's own activations (Salimans et al. 2016,
  pix2pixHD). It needs no download: the discriminator learns the features that tell real texture
  from generated texture, which is what the VGG loss is used for.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from model.discriminator import Discriminator

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
