"""The model registry: every model the service, the CLI and the evaluation know, in one table.

Adding a model is one `ModelSpec` in `REGISTRY` plus its weights file in `model/weights/` (written by
`model.weights.save_generator`, which records the architecture in the file). Every registered model is
required: the service refuses to start, naming the file, when one is missing from the weights folder,
so that no replica silently serves fewer models than the others.

Tests and embedders build their own registry (`REGISTRY.with_model(...)`, or `ModelRegistry([...])`)
and pass it to `create_app(settings, registry=...)` or `app.cli.main.main(argv, registry=...)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from model.architectures import ARCHITECTURES
from model.inference import Upscaler
from model.weights import WeightsError

PACKAGED_WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ModelSpec:
    """One servable model.

    Args:
        name: the API and CLI name (`model=`, `--model`, `--method`).
        label: the display name (demo page, comparison mosaic).
        architecture: a key of `model.architectures.ARCHITECTURES`; the weights file must record it.
        scale: the upscale factor; the weights file must build a network of this scale.
        weights_file: file name inside the weights folder.
        context_pad: recommended low-resolution context per tile side, so that tiled output matches
            whole-image output (the default of SRGAN_TILE_PAD and `--tile-pad`).
        description: one line for users (demo page, /v1/models).
    """

    name: str
    label: str
    architecture: str
    scale: int
    weights_file: str
    context_pad: int
    description: str

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"model {self.name!r}: unknown architecture {self.architecture!r}; "
                             f"known: {', '.join(ARCHITECTURES)}")
        if self.scale < 1 or self.context_pad < 0:
            raise ValueError(f"model {self.name!r}: scale must be >= 1 and context_pad >= 0")


class ModelRegistry:
    """Models by name, in a fixed order, with a default."""

    def __init__(self, specs: Iterable[ModelSpec], default: str) -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"model {spec.name!r} is registered twice")
            self._specs[spec.name] = spec
        if default not in self._specs:
            raise ValueError(f"the default model {default!r} is not registered")
        self.default = self._specs[default]

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __getitem__(self, name: str) -> ModelSpec:
        if name not in self._specs:
            raise KeyError(f"unknown model {name!r}; registered: {', '.join(self._specs)}")
        return self._specs[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def with_model(self, spec: ModelSpec, *, default: str | None = None) -> ModelRegistry:
        """A new registry with `spec` added (this one is left as it is)."""
        return ModelRegistry([*self, spec], default or self.default.name)

    def weights_path(self, name: str, weights_dir: Path | None = None) -> Path:
        """Where `name`'s weights are: in `weights_dir`, or the weights shipped in the package."""
        return (weights_dir or PACKAGED_WEIGHTS_DIR) / self[name].weights_file

    def load(self, name: str, weights_dir: Path | None, device: torch.device, dtype: torch.dtype) -> Upscaler:
        """The model resident on `device`; WeightsError when the file does not hold what the entry says."""
        spec = self[name]
        path = self.weights_path(name, weights_dir)
        upscaler = Upscaler.from_file(name, path, device, dtype)
        assert upscaler.info is not None
        if (upscaler.info.architecture, upscaler.scale) != (spec.architecture, spec.scale):
            raise WeightsError(f"{path}: holds a x{upscaler.scale} {upscaler.info.architecture}, but the "
                               f"registry says model {name!r} is a x{spec.scale} {spec.architecture}")
        return upscaler


REGISTRY = ModelRegistry(
    [
        ModelSpec("srresnet", "SRResNet", "srgan-generator", 4, "srresnet_x4.safetensors", 12,
                  "Faithful and smoother; highest PSNR."),
        ModelSpec("srgan", "SRGAN", "srgan-generator", 4, "srgan_x4.safetensors", 12,
                  "Sharp, photo-like texture (adversarial training)."),
        ModelSpec("srgan-real", "SRGAN-real", "srgan-generator", 4, "srgan_real_x4.safetensors", 12,
                  "For real photos: removes JPEG blocks, noise and blur while it upscales."),
    ],
    default="srgan-real",
)
