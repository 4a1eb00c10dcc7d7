"""Network architectures a weights file may name, so that loading one needs no code per model.

An architecture is an `nn.Module` class built from the JSON keyword arguments stored in the weights
file, with an integer `upscale` attribute (its scale factor). `fold_batchnorm()`, where the class has
it, is called before inference.
"""

from __future__ import annotations

from torch import nn

from model.generator import Generator

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "srgan-generator": Generator,  # SRResNet, the generator of Ledig et al. 2017 (Figure 4)
}


def architecture_of(module: nn.Module) -> str:
    """The registered name of `module`'s class; ValueError for a class not in ARCHITECTURES."""
    for name, cls in ARCHITECTURES.items():
        if type(module) is cls:
            return name
    raise ValueError(f"{type(module).__name__} is not a registered architecture ({', '.join(ARCHITECTURES)})")
