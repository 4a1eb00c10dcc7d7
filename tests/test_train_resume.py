"""Resuming a training run restores everything it trains, and the time limit stops a run with a checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from model import train
from model.train import TrainConfig, Trainer
from model.weights import load_generator


def tiny(folder: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {"data": [str(folder)], "num_feat": 8, "num_block": 1, "batch_size": 2,
                                 "patch_size": 32, "iterations": 1, "log_every": 1000,
                                 "checkpoint_every": 1000, "device": "cpu"} | overrides
    return TrainConfig(**values)  # type: ignore[arg-type]


def assert_same_state(restored: dict[str, object], saved: dict[str, object]) -> None:
    """Equal nested state dicts: every tensor bit for bit, every other value equal."""
    assert restored.keys() == saved.keys()
    for key, value in saved.items():
        if isinstance(value, dict):
            assert_same_state(restored[key], value)  # type: ignore[arg-type]
        elif isinstance(value, torch.Tensor):
            assert torch.equal(restored[key], value), key  # type: ignore[arg-type]
        else:
            assert restored[key] == value, key


@pytest.mark.parametrize("stage", ["srresnet", "srgan"])
def test_resume_restores_the_networks_and_their_optimisers(image_folder: Path, tmp_path: Path,
                                                           stage: str) -> None:
    first = Trainer(tiny(image_folder, stage=stage), tmp_path)
    untrained = {k: v.clone() for k, v in first.generator.state_dict().items()}
    first.run()
    trained = first.generator.state_dict()
    assert any(not torch.equal(untrained[k], trained[k]) for k in trained), "a step changed nothing"

    resumed = Trainer(tiny(image_folder, stage=stage, iterations=2), tmp_path)
    assert resumed.iteration == 1
    assert_same_state(resumed.generator.state_dict(), trained)
    assert_same_state(resumed.g_opt.state_dict(), first.g_opt.state_dict())
    if stage == "srgan":
        assert first.discriminator is not None and first.d_opt is not None
        assert resumed.discriminator is not None and resumed.d_opt is not None
        assert_same_state(resumed.discriminator.state_dict(), first.discriminator.state_dict())
        assert_same_state(resumed.d_opt.state_dict(), first.d_opt.state_dict())
    resumed.run()
    assert resumed.iteration == 2
    _, info = load_generator(tmp_path / "generator.safetensors")
    assert info.training["iterations"] == 2


def test_the_time_limit_stops_the_run_with_a_checkpoint(image_folder: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    # Training's clock advances a second each time it is read: a 0.1-minute limit passes within a few
    # iterations of the 50 asked for, however fast or slow this machine is.
    ticks = iter(range(1_000_000))
    monkeypatch.setattr(train, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    caplog.set_level(logging.INFO, logger="model.train")
    trainer = Trainer(tiny(image_folder, iterations=50, time_limit_min=0.1), tmp_path)
    trainer.run()
    assert 1 <= trainer.iteration < 50
    assert f"time limit of 0.1 min reached at iteration {trainer.iteration}" in caplog.text
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)
    assert checkpoint["iteration"] == trainer.iteration  # checkpoint_every is 1000: this is the stop's
    _, info = load_generator(tmp_path / "generator.safetensors")
    assert info.training["iterations"] == trainer.iteration


def test_the_average_follows_the_generator_by_its_decay_and_is_what_is_exported(image_folder: Path,
                                                                                 tmp_path: Path) -> None:
    trainer = Trainer(tiny(image_folder, ema_decay=0.75), tmp_path)
    assert trainer.ema is not None
    before = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    trainer.run()
    after = trainer.generator.state_dict()
    parameters = {name for name, _ in trainer.generator.named_parameters()}
    for key, average in trainer.ema.state_dict().items():
        if key in parameters:  # one step from identical weights: ema = 0.75 * before + 0.25 * after
            assert torch.allclose(average, 0.75 * before[key] + 0.25 * after[key], atol=1e-7), key
        else:  # batch-norm statistics are the live generator's
            assert torch.equal(average, after[key]), key
    exported = load_generator(tmp_path / "generator.safetensors")[0].state_dict()
    average = trainer.ema.state_dict()
    for key in parameters:  # the average's weights (its batch-norm statistics recomputed: test_precise_bn)
        assert torch.equal(exported[key], average[key]), key
    assert any(not torch.equal(exported[key], after[key]) for key in parameters), "raw weights exported"


def test_resume_restores_the_average_and_an_average_switched_on_later_starts_from_the_weights(
        image_folder: Path, tmp_path: Path) -> None:
    with_average = Trainer(tiny(image_folder, ema_decay=0.5), tmp_path / "a")
    with_average.run()
    assert with_average.ema is not None
    resumed = Trainer(tiny(image_folder, ema_decay=0.5, iterations=2), tmp_path / "a")
    assert resumed.ema is not None
    assert_same_state(resumed.ema.state_dict(), with_average.ema.state_dict())

    Trainer(tiny(image_folder), tmp_path / "b").run()
    switched_on = Trainer(tiny(image_folder, ema_decay=0.5, iterations=2), tmp_path / "b")
    assert switched_on.config.ema_decay == 0.5
    assert switched_on.ema is not None
    assert_same_state(switched_on.ema.state_dict(), switched_on.generator.state_dict())


def test_a_run_started_from_a_checkpoint_keeps_its_networks_and_takes_a_new_recipe(
        image_folder: Path, tmp_path: Path) -> None:
    parent = Trainer(tiny(image_folder, stage="srgan", ema_decay=0.5, iterations=2), tmp_path / "parent")
    parent.run()
    assert parent.ema is not None and parent.discriminator is not None
    checkpoint = str(tmp_path / "parent" / "last.pt")

    child = Trainer(tiny(image_folder, stage="srgan", ema_decay=0.9, adversarial_weight=1e-2,
                         init_checkpoint=checkpoint), tmp_path / "child")
    assert child.iteration == 0
    assert child.config.adversarial_weight == 1e-2 and child.config.ema_decay == 0.9
    assert_same_state(child.generator.state_dict(), parent.generator.state_dict())
    assert child.ema is not None and child.discriminator is not None
    assert_same_state(child.ema.state_dict(), parent.ema.state_dict())
    assert_same_state(child.discriminator.state_dict(), parent.discriminator.state_dict())
    assert child.g_opt.state_dict()["state"] == {}, "the optimiser's moments were carried over"
    child.run()
    _, info = load_generator(tmp_path / "child" / "generator.safetensors")
    assert info.training["iterations"] == 1 and info.training["started_from"] == "parent/last.pt"

    # A discriminator built for another patch side cannot take the parent's: it starts afresh.
    other_side = Trainer(tiny(image_folder, stage="srgan", patch_size=48, init_checkpoint=checkpoint),
                         tmp_path / "other")
    assert other_side.discriminator is not None
    fresh = other_side.discriminator.state_dict()
    assert not torch.equal(fresh["features.0.weight"], parent.discriminator.state_dict()["features.0.weight"])


def test_init_and_init_checkpoint_are_exclusive(image_folder: Path) -> None:
    with pytest.raises(ValueError, match="exclusive"):
        tiny(image_folder, init="a.safetensors", init_checkpoint="b/last.pt")
