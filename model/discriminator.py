"""The SRGAN discriminator, as in Ledig et al. 2017, Figure 4."""

from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    """VGG-style classifier of HR patches: real (logit > 0) or generated.

    Eight 3x3 convs, channels doubling 64 -> 512 and every second conv halving the resolution,
    LeakyReLU(0.2), BN after all but the first, then dense 1024 and dense 1. It returns logits
    (the sigmoid lives in the loss, which is numerically safer under AMP).

    Args:
        num_in_ch: input channels.
        num_feat: channels of the first conv (paper: 64).
        input_size: side of the square HR patches it judges; must be divisible by 16.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 96) -> None:
        super().__init__()
        if input_size % 16:
            raise ValueError(f"input_size must be divisible by 16, got {input_size}")
        widths = [
            num_feat,
            num_feat,
            num_feat * 2,
            num_feat * 2,
            num_feat * 4,
            num_feat * 4,
            num_feat * 8,
            num_feat * 8,
        ]
        layers: list[nn.Module] = []
        in_ch = num_in_ch
        for i, out_ch in enumerate(widths):
            stride = 2 if i % 2 else 1
            layers.append(nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        side = input_size // 16
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_ch * side * side, 1024),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(1024, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations after each LeakyReLU, for the feature-matching content loss."""
        maps = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                maps.append(x)
        return maps
