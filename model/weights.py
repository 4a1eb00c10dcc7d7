"""Weights I/O: safetensors files that carry their own architecture, so loading needs no config.

Metadata keys (all strings, as safetensors requires):
  format    "srgan-generator/1"
  arch      JSON of the Generator's constructor arguments
  scale     the upscale factor
  training  JSON summary of how the weights were made (free-form, shown by /v1/models)
Nothing is unpickled: safetensors holds raw tensors only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from model.generator import Generator

FORMAT = "srgan-generator/1"
ARCH_KEYS = ("num_in_ch", "num_out_ch", "num_feat", "num_block", "upscale")


class WeightsError(ValueError):
    """A weights file that cannot be turned into a generator; the message names the file and the fault."""


@dataclass(frozen=True)
class WeightsInfo:
    """What a weights file says about itself."""

    path: Path
    arch: dict[str, int]
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> int:
        return self.arch["upscale"]


def save_generator(
    path: str | Path, model: Generator, arch: dict[str, int], training: dict[str, Any] | None = None
) -> None:
    """Write the generator's state (BN unfolded, float32) with its architecture in the metadata.

    Written to a temporary name and renamed, so a crash never leaves a half-written file.
    """
    path = Path(path)
    unknown = set(arch) - set(ARCH_KEYS)
    if unknown:
        raise ValueError(f"unknown architecture arguments: {sorted(unknown)}")
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "arch": json.dumps(arch, sort_keys=True),
        "scale": str(arch.get("upscale", 4)),
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
    try:
        arch = json.loads(metadata["arch"])
        training = json.loads(metadata.get("training", "{}"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: metadata 'arch' missing or not JSON") from exc
    if not isinstance(arch, dict) or set(arch) - set(ARCH_KEYS):
        raise WeightsError(f"{path}: arch {arch!r} has keys outside {ARCH_KEYS}")
    return WeightsInfo(path=path, arch=arch, training=training), tensors


def load_generator(path: str | Path) -> tuple[Generator, WeightsInfo]:
    """Rebuild the generator a weights file describes, in eval mode on the CPU, BN not yet folded."""
    info, tensors = read_info(path)
    try:
        model = Generator(**info.arch)
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
