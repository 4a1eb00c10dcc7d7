"""The model registry: one entry plus a weights file adds a model to the service, the CLI and /v1/models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli.main import main
from model.registry import REGISTRY, ModelRegistry, ModelSpec
from model.synthetic import natural_like_image
from model.tiling import upscale_tiled
from model.weights import WeightsError, save_generator
from tests.api_helpers import TEST_SETTINGS, decode, png_bytes, running_client, upload
from tests.conftest import TINY_ARCH, tiny_generator

TINY_X2 = ModelSpec("tiny-x2", "Tiny x2", "srgan-generator", 2, "tiny_x2.safetensors", 3, "A test model.")


@pytest.fixture
def with_x2(tiny_weights_dir: Path, tmp_path: Path) -> tuple[ModelRegistry, Path]:
    """The shipped registry plus a tiny x2 model, and a weights folder holding all of their files."""
    folder = tmp_path / "weights"
    shutil.copytree(tiny_weights_dir, folder)
    save_generator(folder / TINY_X2.weights_file, tiny_generator(7, 2), {**TINY_ARCH, "upscale": 2})
    return REGISTRY.with_model(TINY_X2), folder


async def test_a_registered_x2_model_is_served_and_listed(with_x2: tuple[ModelRegistry, Path]) -> None:
    registry, folder = with_x2
    image = natural_like_image(21, 34)
    async with running_client(folder, registry) as client:
        models = {m["name"]: m for m in (await client.get("/v1/models")).json()["models"]}
        response = await client.post("/upscale?model=tiny-x2", **upload(png_bytes(image)))
    assert set(models) == {*REGISTRY.names(), "tiny-x2"}
    assert models["tiny-x2"]["scale"] == 2 and models["tiny-x2"]["label"] == "Tiny x2"
    assert [name for name, m in models.items() if m["default"]] == [REGISTRY.default.name]
    assert response.status_code == 200, response.text
    assert response.headers["x-model"] == "tiny-x2" and response.headers["x-output-size"] == "68x42"
    upscaler = registry.load("tiny-x2", folder, torch.device("cpu"), torch.float32)
    tile, pad = TEST_SETTINGS["tile"], TEST_SETTINGS["tile_pad"]
    expected = upscale_tiled(image, upscaler, scale=2, tile=tile, pad=pad)
    np.testing.assert_array_equal(decode(response.content), expected)


async def test_compare_runs_the_models_of_the_default_scale(with_x2: tuple[ModelRegistry, Path]) -> None:
    registry, folder = with_x2
    async with running_client(folder, registry) as client:
        response = await client.post("/compare", **upload(png_bytes(natural_like_image(40, 40))))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scale"] == REGISTRY.default.scale
    assert [m["name"] for m in body["methods"]] == ["nearest", "bilinear", "bicubic", *REGISTRY.names()]


def test_the_cli_upscales_with_a_registered_x2_model(
    with_x2: tuple[ModelRegistry, Path], tmp_path: Path
) -> None:
    registry, folder = with_x2
    Image.fromarray(natural_like_image(9, 11)).save(tmp_path / "in.png")
    out = tmp_path / "out"
    args = ["upscale", str(tmp_path / "in.png"), "-o", str(out), "--model", "tiny-x2", "--device", "cpu",
            "--weights-dir", str(folder)]
    assert main(args, registry) == 0
    with Image.open(out / "in_x2.png") as result:
        assert result.size == (22, 18)


async def test_every_registered_model_is_required(tiny_weights_dir: Path) -> None:
    registry = REGISTRY.with_model(TINY_X2)
    with pytest.raises(WeightsError, match=r"tiny_x2\.safetensors: no such weights file"):
        async with running_client(tiny_weights_dir, registry):
            pass


async def test_a_weights_file_of_another_scale_than_its_entry_is_refused(
    with_x2: tuple[ModelRegistry, Path],
) -> None:
    _, folder = with_x2
    x4 = ModelSpec("tiny-x4", "Tiny", "srgan-generator", 4, TINY_X2.weights_file, 3, "-")
    registry = REGISTRY.with_model(x4)
    with pytest.raises(WeightsError, match=r"holds a x2 srgan-generator, but the registry says .* x4"):
        async with running_client(folder, registry):
            pass


def test_bad_entries_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'esrgan'"):
        ModelSpec("e", "E", "esrgan", 4, "e.safetensors", 0, "-")
    with pytest.raises(ValueError, match="'srgan' is registered twice"):
        REGISTRY.with_model(REGISTRY["srgan"])
    with pytest.raises(ValueError, match="default model 'absent'"):
        ModelRegistry(REGISTRY, default="absent")
    with pytest.raises(KeyError, match="unknown model 'absent'"):
        REGISTRY["absent"]
