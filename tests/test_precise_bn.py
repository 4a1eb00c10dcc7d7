"""PreciseBN: BatchNorm statistics recomputed as a plain average over training batches."""

from pathlib import Path

import pytest
import torch
from torch import nn

from model.data import PatchSampler, RealWorldPairs, training_pairs
from model.generator import Generator
from model.precise_bn import main, with_precise_bn
from model.train import TrainConfig, Trainer
from model.weights import load_generator, save_generator
from tests.test_train import tiny_config


class FixedBatches:
    """A pair source that hands out its batches in turn, whatever the generator."""

    def __init__(self, batches: list[torch.Tensor]) -> None:
        self.batches, self.drawn, self.device = batches, 0, torch.device("cpu")

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.batches[self.drawn % len(self.batches)]
        self.drawn += 1
        assert batch.shape[0] == batch_size
        return batch, batch


def conv_bn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))


def test_the_statistics_are_the_plain_average_of_the_batches_statistics() -> None:
    model = conv_bn().eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(3)
    batches = [torch.randint(0, 256, (2, 5, 6, 3), generator=generator, dtype=torch.uint8) for _ in range(4)]
    # Batches of very different brightness: an exponential average would favour the last ones.
    batches = [(b // (4 - i)).to(torch.uint8) for i, b in enumerate(batches)]
    precise = with_precise_bn(model, FixedBatches(batches), batches=4, batch_size=2)
    conv = model[0]
    with torch.no_grad():
        features = [conv(b.permute(0, 3, 1, 2).float() / 255) for b in batches]
    expected_mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in features]).mean(0)
    expected_var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in features]).mean(0)
    assert isinstance(precise, nn.Sequential)
    norm = precise[1]
    assert isinstance(norm, nn.BatchNorm2d)
    torch.testing.assert_close(norm.running_mean, expected_mean)
    torch.testing.assert_close(norm.running_var, expected_var)
    assert not precise.training and norm.momentum == 0.1  # ready for inference, momentum as it was
    for key, value in model.state_dict().items():  # the input model is left alone
        assert torch.equal(value, original[key]), key


def test_the_same_seed_draws_the_same_batches(image_folder: Path) -> None:
    model = Generator(num_feat=8, num_block=1).eval()
    pairs = PatchSampler([str(image_folder)], scale=4, patch_size=32)
    first, again, other = (
        with_precise_bn(model, pairs, batches=3, batch_size=2, seed=seed).state_dict() for seed in (1, 1, 2)
    )
    key = "body.0.bn1.running_mean"
    assert torch.equal(first[key], again[key]) and not torch.equal(first[key], other[key])
    assert not torch.equal(first[key], model.state_dict()[key])


def test_real_world_pairs_draw_on_their_samplers_device(image_folder: Path) -> None:
    model = Generator(num_feat=8, num_block=1).eval()
    pairs = training_pairs([str(image_folder)], scale=4, patch_size=32, degradation="realworld")
    assert isinstance(pairs, RealWorldPairs) and pairs.device == pairs.sampler.device
    precise = with_precise_bn(model, pairs, batches=2, batch_size=2)
    key = "body.0.bn1.running_var"
    assert not torch.equal(precise.state_dict()[key], model.state_dict()[key])


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        with_precise_bn(conv_bn(), FixedBatches([]), batches=0, batch_size=2)
    with pytest.raises(ValueError, match="precise_bn_batches"):
        TrainConfig(data=["."], precise_bn_batches=-1)


def test_a_run_validates_and_ends_with_precise_statistics_and_says_so(image_folder: Path,
                                                                     tmp_path: Path) -> None:
    config = TrainConfig(data=[str(image_folder)], num_feat=8, num_block=1, batch_size=2, patch_size=32,
                         iterations=2, log_every=1000, checkpoint_every=1, device="cpu",
                         val_data=str(image_folder), val_every=1, precise_bn_batches=3)
    trainer = Trainer(config, tmp_path)
    trainer.run()
    exported, info = load_generator(tmp_path / "generator.safetensors")
    assert info.training["precise_bn_batches"] == 3
    expected = with_precise_bn(trainer.exported, trainer.training_pairs(), batches=3, batch_size=2)
    key = "body.0.bn1.running_var"
    assert torch.equal(exported.state_dict()[key], expected.state_dict()[key])
    assert not torch.equal(exported.state_dict()[key], trainer.exported.state_dict()[key])
    # The live network keeps its running statistics for training on.
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert torch.equal(state["generator"][key], trainer.generator.state_dict()[key])


def test_an_export_before_the_end_keeps_the_running_statistics(image_folder: Path, tmp_path: Path) -> None:
    config = TrainConfig(data=[str(image_folder)], num_feat=8, num_block=1, batch_size=2, patch_size=32,
                         iterations=3, log_every=1000, checkpoint_every=1, device="cpu",
                         precise_bn_batches=3)
    trainer = Trainer(config, tmp_path)
    trainer.iteration = 1
    trainer._checkpoint()
    exported, info = load_generator(tmp_path / "generator.safetensors")
    assert info.training["precise_bn_batches"] == 0
    key = "body.0.bn1.running_mean"
    assert torch.equal(exported.state_dict()[key], trainer.exported.state_dict()[key])


def test_the_command_recomputes_a_weights_file(image_folder: Path, tmp_path: Path) -> None:
    model = Generator(num_feat=8, num_block=1).eval()
    source = tmp_path / "in.safetensors"
    save_generator(source, model, {"num_feat": 8, "num_block": 1, "upscale": 4}, {"stage": "srgan"})
    out = tmp_path / "out.safetensors"
    main([str(source), str(out), "--data", str(image_folder), "--batches", "3", "--batch-size", "2",
          "--patch-size", "32"])
    result, info = load_generator(out)
    assert info.training["stage"] == "srgan"
    assert info.training["precise_bn"] == {"batches": 3, "batch_size": 2, "patch_size": 32, "seed": 1,
                                           "data": [image_folder.name]}
    expected = with_precise_bn(model, PatchSampler([str(image_folder)], scale=4, patch_size=32), batches=3,
                               batch_size=2)
    for key, value in expected.state_dict().items():
        assert torch.equal(result.state_dict()[key], value), key


def frozen_config(folder: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {"iterations": 3, "val_every": 3, "precise_bn_batches": 3, "freeze_bn": True,
                                 "lr": 1e-2}
    return tiny_config(folder, **values | overrides)


@pytest.mark.parametrize("stage", ["srresnet", "srgan"])
def test_frozen_statistics_are_recomputed_once_and_held_while_the_weights_train(
    image_folder: Path, tmp_path: Path, stage: str
) -> None:
    start = Generator(num_feat=8, num_block=1).eval()
    init = tmp_path / "init.safetensors"
    save_generator(init, start, {"num_feat": 8, "num_block": 1, "upscale": 4}, {"stage": "srresnet"})
    config = frozen_config(image_folder, init=str(init), stage=stage, ema_decay=0.9)
    trainer = Trainer(config, tmp_path / "run")
    expected = with_precise_bn(start, trainer.training_pairs(), batches=3, batch_size=2).state_dict()
    trainer.run()
    exported, info = load_generator(tmp_path / "run" / "generator.safetensors")
    assert info.training["freeze_bn"] is True and info.training["precise_bn_batches"] == 0
    for model in (trainer.generator.state_dict(), trainer.exported.state_dict(), exported.state_dict()):
        for key in ("body.0.bn1.running_mean", "body.0.bn2.running_var"):
            torch.testing.assert_close(model[key], expected[key])
            assert not torch.equal(model[key], start.state_dict()[key])
    # BatchNorm's own weights and the convolutions trained.
    for key in ("body.0.bn1.weight", "body.0.conv1.weight"):
        assert not torch.equal(trainer.generator.state_dict()[key], start.state_dict()[key])
    norms = [m for m in trainer.generator.modules() if isinstance(m, nn.BatchNorm2d)]
    assert trainer.generator.training and norms and not any(norm.training for norm in norms)


def test_a_resumed_frozen_run_keeps_its_statistics(image_folder: Path, tmp_path: Path) -> None:
    Trainer(frozen_config(image_folder, iterations=1, val_data=None), tmp_path).run()
    frozen = torch.load(tmp_path / "last.pt", weights_only=True)["generator"]["body.0.bn1.running_mean"]
    resumed = Trainer(frozen_config(image_folder, iterations=2, val_data=None), tmp_path)
    torch.testing.assert_close(resumed.generator.state_dict()["body.0.bn1.running_mean"], frozen)
    resumed.run()
    torch.testing.assert_close(resumed.generator.state_dict()["body.0.bn1.running_mean"], frozen)


def test_freezing_needs_batches_to_recompute_over() -> None:
    with pytest.raises(ValueError, match="freeze_bn"):
        TrainConfig(data=["."], freeze_bn=True, precise_bn_batches=0)
