import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from model.generator import Generator
from model.weights import WeightsError, load_generator, read_info, save_generator
from tests.conftest import TINY_ARCH, tiny_generator


def test_round_trip_rebuilds_the_same_network(tmp_path: Path) -> None:
    model = tiny_generator(3)
    path = tmp_path / "g.safetensors"
    save_generator(path, model, TINY_ARCH, {"stage": "srresnet", "iterations": 7})
    loaded, info = load_generator(path)
    assert info.arch == TINY_ARCH and info.scale == 4 and info.training["iterations"] == 7
    x = torch.rand(1, 3, 9, 9)
    torch.testing.assert_close(loaded(x), model(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such weights file"):
        load_generator(tmp_path / "absent.safetensors")


def test_not_a_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "pickle.safetensors"
    path.write_bytes(b"\x80\x04\x95 this is a pickle, not safetensors")
    with pytest.raises(WeightsError, match="not a safetensors file"):
        load_generator(path)


def test_wrong_format_metadata(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"format": "something-else"})
    with pytest.raises(WeightsError, match="metadata format"):
        read_info(path)


def test_missing_arch_metadata(tmp_path: Path) -> None:
    path = tmp_path / "noarch.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"format": "srgan-generator/1"})
    with pytest.raises(WeightsError, match="arch"):
        read_info(path)


def _rewrite(path: Path, tensors: dict[str, torch.Tensor], arch: dict[str, int]) -> None:
    save_file(tensors, str(path), metadata={"format": "srgan-generator/1", "arch": json.dumps(arch)})


def test_missing_keys(tmp_path: Path) -> None:
    state = tiny_generator(0).state_dict()
    del state["conv_last.weight"]
    _rewrite(tmp_path / "w.safetensors", state, TINY_ARCH)
    with pytest.raises(WeightsError, match=r"missing.*conv_last\.weight"):
        load_generator(tmp_path / "w.safetensors")


def test_wrong_shapes(tmp_path: Path) -> None:
    state = Generator(num_feat=16, num_block=1).state_dict()
    _rewrite(tmp_path / "w.safetensors", state, TINY_ARCH)  # says 8 features, holds 16
    with pytest.raises(WeightsError, match="shapes do not match"):
        load_generator(tmp_path / "w.safetensors")


def test_arch_that_builds_nothing(tmp_path: Path) -> None:
    _rewrite(tmp_path / "w.safetensors", {"x": torch.zeros(1)}, {**TINY_ARCH, "upscale": 3})
    with pytest.raises(WeightsError, match="does not build a generator"):
        load_generator(tmp_path / "w.safetensors")


def test_unknown_arch_keys(tmp_path: Path) -> None:
    _rewrite(tmp_path / "w.safetensors", {"x": torch.zeros(1)}, {**TINY_ARCH, "dropout": 1})
    with pytest.raises(WeightsError, match="keys outside"):
        load_generator(tmp_path / "w.safetensors")
