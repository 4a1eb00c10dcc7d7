"""Weights I/O: safetensors files that carry their own architecture, so loading needs no config.

Metadata keys (all strings, as safetensors requires):
  format        "srgan-generator/1"
  architecture  a key of `model.architectures.ARCHITECTURES`; files written before this key existed
                hold the SRGAN generator, so a missing key means "srgan-generator"
  arch          JSON of the architecture's constructor arguments
  scale         the upscale factor
  training      JSON summary of how the weights were made (free-form, shown by /v1/models)
Nothing is unpickled: safetensors holds raw tensors only.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from model.architectures import ARCHITECTURES, architecture_of

FORMAT = "srgan-generator/1"
LEGACY_ARCHITECTURE = "srgan-generator"


class WeightsError(ValueError):
    """A weights file that cannot be turned into a network; the message names the file and the fault."""


@dataclass(frozen=True)
class WeightsInfo:
    """What a weights file says about itself."""

    path: Path
    arch: dict[str, int]
    training: dict[str, Any] = field(default_factory=dict)
    architecture: str = LEGACY_ARCHITECTURE

    @property
    def scale(self) -> int:
        return self.arch["upscale"]


def save_generator(
    path: str | Path, model: nn.Module, arch: dict[str, int], training: dict[str, Any] | None = None
) -> None:
    """Write the network's state (BN unfolded, float32) with its architecture in the metadata.

    Written to a temporary name and renamed, so a crash never leaves a half-written file.
    """
    path = Path(path)
    architecture = architecture_of(model)
    unknown = set(arch) - _constructor_arguments(architecture)
    if unknown:
        raise ValueError(f"unknown architecture arguments: {sorted(unknown)}")
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "architecture": architecture,
        "arch": json.dumps(arch, sort_keys=True),
        "scale": str(model.upscale),
        "training": json.dumps(training or {}, sort_keys=True),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.chmod(0o644)  # weights are baked into images that run as another user
    tmp.replace(path)


def read_info(path: str | Path) -> tuple[WeightsInfo, dict[str, torch.Tensor]]:
    """Read metadata and tensors, validating the format; raises WeightsError with the reason."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a safetensors file ({exc})") from exc
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"{path}: metadata format is {metadata.get('format')!r}, expected {FORMAT!r}")
    architecture = metadata.get("architecture", LEGACY_ARCHITECTURE)
    if architecture not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise WeightsError(f"{path}: unknown architecture {architecture!r}; known: {known}")
    try:
        arch = json.loads(metadata["arch"])
        training = json.loads(metadata.get("training", "{}"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: metadata 'arch' missing or not JSON") from exc
    allowed = _constructor_arguments(architecture)
    if not isinstance(arch, dict) or set(arch) - allowed:
        raise WeightsError(f"{path}: arch {arch!r} has keys outside {tuple(sorted(allowed))}")
    return WeightsInfo(path=path, arch=arch, training=training, architecture=architecture), tensors


def load_generator(path: str | Path) -> tuple[nn.Module, WeightsInfo]:
    """Rebuild the network a weights file describes, in eval mode on the CPU, BN not yet folded."""
    info, tensors = read_info(path)
    try:
        model = ARCHITECTURES[info.architecture](**info.arch)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{info.path}: arch {info.arch} does not build a generator: {exc}") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{info.path}: keys do not match the architecture "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    wrong = [
        f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if tensors[k].shape != v.shape
    ]
    if wrong:
        raise WeightsError(
            f"{info.path}: tensor shapes do not match the architecture: {'; '.join(wrong[:3])}"
        )
    model.load_state_dict(tensors)
    return model.eval(), info


def _constructor_arguments(architecture: str) -> set[str]:
    parameters = inspect.signature(ARCHITECTURES[architecture]).parameters
    return {name for name in parameters if name != "self"}
