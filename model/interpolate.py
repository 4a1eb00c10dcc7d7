"""Network interpolation (Wang et al., ESRGAN, 2018): blend a PSNR-oriented generator with an adversarially
trained one of the same architecture, weight by weight, to choose a point on the perception-distortion
trade-off without training again.

    theta = (1 - alpha) * theta_psnr + alpha * theta_gan

alpha = 0 is the PSNR model, alpha = 1 the GAN. Both must be fine-tunings of one network (the GAN stage
starts from the PSNR model's weights), or the blend of unrelated weights is noise. Batch-norm running
statistics are blended the same way; the step counter is the GAN's.

    python -m model.interpolate PSNR.safetensors GAN.safetensors --alpha 0.8 --out blend.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from model.weights import WeightsError, WeightsInfo, load_generator, save_generator


def interpolate(
    psnr_path: str | Path, gan_path: str | Path, alpha: float
) -> tuple[torch.nn.Module, WeightsInfo]:
    """The blended generator and what its file records: the GAN's architecture and training summary, plus
    the blend."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    psnr_model, psnr_info = load_generator(psnr_path)
    gan_model, gan_info = load_generator(gan_path)
    if (psnr_info.architecture, psnr_info.arch) != (gan_info.architecture, gan_info.arch):
        raise WeightsError(
            f"{gan_info.path}: architecture {gan_info.architecture} {gan_info.arch} differs from "
            f"{psnr_info.path}'s {psnr_info.architecture} {psnr_info.arch}: they cannot be blended"
        )
    psnr_state = psnr_model.state_dict()
    blended = {
        key: gan if not gan.is_floating_point() else torch.lerp(psnr_state[key], gan, alpha)
        for key, gan in gan_model.state_dict().items()
    }
    gan_model.load_state_dict(blended)
    blend = {
        "alpha": alpha,
        "psnr_model": psnr_info.path.name,
        "psnr_training": psnr_info.training,
        "gan_model": gan_info.path.name,
    }
    return gan_model, dataclasses.replace(gan_info, training={**gan_info.training, "interpolation": blend})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model.interpolate", description=__doc__.split("\n")[0])
    parser.add_argument("psnr", help="the PSNR-oriented generator (alpha = 0)")
    parser.add_argument("gan", help="the adversarially trained generator (alpha = 1)")
    parser.add_argument("--alpha", type=float, required=True, help="the GAN's share, in [0, 1]")
    parser.add_argument("--out", required=True, help="the blended weights file to write")
    args = parser.parse_args(argv)
    model, info = interpolate(args.psnr, args.gan, args.alpha)
    save_generator(args.out, model, info.arch, info.training)


if __name__ == "__main__":
    main()
