"""The SRGAN generator (SRResNet), as in Ledig et al. 2017, Figure 4."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class ResidualBlock(nn.Module):
    """conv-BN-PReLU-conv-BN with an identity skip.

    Args:
        num_feat: channels in and out.
    """

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.bn1: nn.Module = nn.BatchNorm2d(num_feat)
        self.act = nn.PReLU(num_feat)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.bn2: nn.Module = nn.BatchNorm2d(num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class Generator(nn.Module):
    """SRGAN generator: 9x9 head, residual body with a global skip, PixelShuffle upsamplers, 9x9 tail.

    Input and output are RGB in [0, 1], NCHW; the output is `upscale` times larger and is not clamped
    (callers clamp when they quantise).

    Args:
        num_in_ch: input channels.
        num_out_ch: output channels.
        num_feat: feature channels of the body (paper: 64).
        num_block: residual blocks in the body (paper: 16).
        upscale: 2, 4 or 8; one conv -> PixelShuffle(2) -> PReLU stage per factor of two.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        upscale: int = 4,
    ) -> None:
        super().__init__()
        if upscale not in (2, 4, 8):
            raise ValueError(f"upscale must be 2, 4 or 8, got {upscale}")
        if num_feat < 1 or num_block < 1:
            raise ValueError(f"num_feat and num_block must be positive, got {num_feat}, {num_block}")
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 9, padding=4)
        self.act_first = nn.PReLU(num_feat)
        self.body = nn.Sequential(*(ResidualBlock(num_feat) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.bn_body: nn.Module = nn.BatchNorm2d(num_feat)
        self.upsample = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(num_feat, num_feat * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(num_feat)
                )
                for _ in range(int(math.log2(upscale)))
            )
        )
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.act_first(self.conv_first(x))
        out = self.bn_body(self.conv_body(self.body(feat))) + feat
        return self.conv_last(self.upsample(out))

    @torch.no_grad()
    def fold_batchnorm(self) -> Generator:
        """Fold every BatchNorm into the conv before it, in place, for inference.

        Folding removes a memory pass per BN (and makes the network independent of batch
        composition). Only valid in eval mode: it bakes the running statistics in.
        """
        if self.training:
            raise RuntimeError("fold_batchnorm() needs eval mode: call .eval() first")
        for block in self.body:
            assert isinstance(block, ResidualBlock)
            if isinstance(block.bn1, nn.BatchNorm2d) and isinstance(block.bn2, nn.BatchNorm2d):
                block.conv1 = fuse_conv_bn_eval(block.conv1, block.bn1)
                block.conv2 = fuse_conv_bn_eval(block.conv2, block.bn2)
                block.bn1, block.bn2 = nn.Identity(), nn.Identity()
        if isinstance(self.bn_body, nn.BatchNorm2d):
            self.conv_body = fuse_conv_bn_eval(self.conv_body, self.bn_body)
            self.bn_body = nn.Identity()
        return self


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
