"""Network interpolation blends two generators of one architecture weight by weight."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.interpolate import interpolate, main
from model.weights import WeightsError, load_generator, save_generator
from tests.conftest import TINY_ARCH, tiny_generator


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path]:
    psnr, gan = tmp_path / "psnr.safetensors", tmp_path / "gan.safetensors"
    save_generator(psnr, tiny_generator(1), TINY_ARCH, {"stage": "srresnet"})
    save_generator(gan, tiny_generator(2), TINY_ARCH, {"stage": "srgan", "iterations": 7})
    return psnr, gan


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
def test_every_weight_is_the_blend_of_the_two(pair: tuple[Path, Path], alpha: float) -> None:
    psnr = load_generator(pair[0])[0].state_dict()
    gan = load_generator(pair[1])[0].state_dict()
    blended = interpolate(*pair, alpha)[0].state_dict()
    assert blended.keys() == gan.keys()
    for key, value in blended.items():
        if value.is_floating_point():
            assert torch.allclose(value, (1 - alpha) * psnr[key] + alpha * gan[key], atol=1e-6), key
        else:
            assert torch.equal(value, gan[key]), key


def test_the_written_file_records_the_blend_and_loads_as_a_generator(pair: tuple[Path, Path],
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "blend.safetensors"
    main([str(pair[0]), str(pair[1]), "--alpha", "0.8", "--out", str(out)])
    model, info = load_generator(out)
    assert info.arch == TINY_ARCH
    assert info.training["stage"] == "srgan" and info.training["iterations"] == 7
    assert info.training["interpolation"] == {
        "alpha": 0.8,
        "psnr_model": "psnr.safetensors",
        "psnr_training": {"stage": "srresnet"},
        "gan_model": "gan.safetensors",
    }
    expected = interpolate(*pair, 0.8)[0].state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_different_architectures_or_an_alpha_outside_0_1_are_refused(pair: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    x2 = tmp_path / "x2.safetensors"
    save_generator(x2, tiny_generator(3, scale=2), {**TINY_ARCH, "upscale": 2})
    with pytest.raises(WeightsError, match="cannot be blended"):
        interpolate(pair[0], x2, 0.5)
    with pytest.raises(ValueError, match="alpha must be in"):
        interpolate(*pair, 1.5)
