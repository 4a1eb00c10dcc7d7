"""Precise BatchNorm statistics (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", PreciseBN): a
network's BN running mean and variance recomputed as a plain average over many training batches.

In training, BN normalises each batch with that batch's own statistics; at inference it uses running
statistics, which PyTorch keeps as an exponential average with momentum 0.1: in effect the last ten or
so batches. At the CPU's batch of 8 x 64² patches those ten batches are a noisy sample, and the moving
average of the weights (`TrainConfig.ema_decay`) copies them as they are. So the exported generator's
output changed from one checkpoint to the next even when its weights hardly did (MODEL_CARD.md,
`srgan_x4`). The plain average over a few hundred batches of the training size does not: two seeds
agree within a hundredth of a dB.

    python -m model.precise_bn IN.safetensors OUT.safetensors --data DIR --batch-size 8 --patch-size 64
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from model.data import training_pairs
from model.weights import load_generator, save_generator

DEFAULT_BATCHES = 200
DEFAULT_SEED = 1


class PairSource(Protocol):
    """PatchSampler or RealWorldPairs: uint8 NHWC (LR, HR) patch pairs, drawn with a generator on
    `device`."""

    device: torch.device

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of `model`, in module order."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def with_precise_bn(
    model: nn.Module, pairs: PairSource, *, batches: int, batch_size: int, seed: int = DEFAULT_SEED
) -> nn.Module:
    """A copy of `model`, in eval mode, whose BatchNorm running statistics are the average over `batches`
    batches of `batch_size` LR patches drawn from `pairs` with `seed` (the same seed, the same batches).
    The batch size should be the training one: BN normalised by statistics of batches that size."""
    if batches < 1 or batch_size < 1:
        raise ValueError(f"batches and batch_size must be positive, got {batches}, {batch_size}")
    out = copy.deepcopy(model)
    norms = batch_norms(out)
    if not norms:
        return out.eval()
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # PyTorch's cumulative average: every batch weighs the same
    out.train()
    device = next(out.parameters()).device
    rng = torch.Generator(device=pairs.device).manual_seed(seed)
    for _ in range(batches):
        lr, _ = pairs.sample(batch_size, rng)
        out(lr.to(device).permute(0, 3, 1, 2).float().div_(255))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return out.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m model.precise_bn",
        description="Recompute a generator's BatchNorm statistics over training batches (PreciseBN).",
    )
    parser.add_argument("weights", type=Path, help="the generator to recompute")
    parser.add_argument("out", type=Path, help="where to write the result")
    parser.add_argument("--data", action="append", required=True, help="training image folder (repeatable)")
    parser.add_argument("--batches", type=int, default=DEFAULT_BATCHES)
    parser.add_argument("--batch-size", type=int, required=True, help="the run's training batch size")
    parser.add_argument("--patch-size", type=int, required=True, help="the run's HR patch side")
    parser.add_argument("--degradation", choices=("bicubic", "realworld"), default="bicubic")
    parser.add_argument("--web-share", type=float, default=0.5, help="realworld only, as in training")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    model, info = load_generator(args.weights)
    pairs = training_pairs(args.data, scale=info.scale, patch_size=args.patch_size,
                           degradation=args.degradation, web_share=args.web_share)
    precise = with_precise_bn(model, pairs, batches=args.batches, batch_size=args.batch_size, seed=args.seed)
    recorded = {"batches": args.batches, "batch_size": args.batch_size, "patch_size": args.patch_size,
                "seed": args.seed, "data": [Path(d).name for d in args.data]}
    save_generator(args.out, precise, info.arch, {**info.training, "precise_bn": recorded})
    print(f"{args.out}: BatchNorm statistics over {args.batches} batches of {args.batch_size}")


if __name__ == "__main__":
    main()
