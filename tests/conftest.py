"""Shared fixtures: tiny generators saved as real weights files (images: `model.synthetic`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from model.generator import Generator
from model.registry import REGISTRY
from model.synthetic import natural_like_image
from model.weights import save_generator

TINY_ARCH = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "upscale": 4}
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _drop_srgan_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("SRGAN_")]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def _no_srgan_settings_from_the_shell() -> Iterator[None]:
    """Settings read SRGAN_* variables, and module- and session-scoped fixtures build apps too: the shell's
    variables are gone before the first fixture runs (SRGAN_API_KEYS in the shell made route tests fail)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _drop_srgan_variables(monkeypatch)
        yield


@pytest.fixture(autouse=True)
def clean_srgan_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with no SRGAN_* variable, whatever ran before it."""
    _drop_srgan_variables(monkeypatch)


def tiny_generator(seed: int, scale: int = 4) -> Generator:
    """A small random generator whose BN statistics are not the identity, so folding is exercised."""
    torch.manual_seed(seed)
    model = Generator(**{**TINY_ARCH, "upscale": scale})
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder laid out like model/weights/: a different tiny generator per registered model."""
    folder = tmp_path_factory.mktemp("weights")
    for seed, spec in enumerate(REGISTRY):
        save_generator(
            folder / spec.weights_file,
            tiny_generator(seed, spec.scale),
            {**TINY_ARCH, "upscale": spec.scale},
            {"stage": spec.name, "note": "random weights for tests"},
        )
    return folder


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small natural-like training photos of different sizes, for the training tests."""
    folder = tmp_path_factory.mktemp("hr")
    for i in range(3):
        Image.fromarray(natural_like_image(40 + 4 * i, 48, seed=i)).save(folder / f"img{i}.png")
    return folder
