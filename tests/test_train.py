import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.data import PatchSampler, RealWorldPairs
from model.effnet_lite import EfficientNetLite0
from model.imresize import imresize
from model.synthetic import natural_like_image
from model.train import TrainConfig, Trainer
from model.weights import load_generator


def tiny_config(folder: Path, **overrides: object) -> TrainConfig:
    values = {
        "data": [str(folder)],
        "num_feat": 8,
        "num_block": 1,
        "batch_size": 2,
        "patch_size": 32,
        "iterations": 2,
        "log_every": 1,
        "checkpoint_every": 1,
        "device": "cpu",
        "val_data": str(folder),
        "val_every": 2,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_patches_are_aligned_pairs(image_folder: Path) -> None:
    sampler = PatchSampler([image_folder], scale=4, patch_size=32)
    lr, hr = sampler.sample(5, torch.Generator().manual_seed(0))
    assert lr.shape == (5, 8, 8, 3) and hr.shape == (5, 32, 32, 3) and lr.dtype == torch.uint8
    # Each LR patch is (close to) the bicubic reduction of its HR patch, also after the random flips
    # and transposes: compare it with the bicubic reduction of the HR patch it came with.
    for lr_patch, hr_patch in zip(lr.numpy(), hr.numpy(), strict=True):
        expected = imresize(hr_patch, 1 / 4).astype(float)
        assert np.abs(lr_patch.astype(float) - expected).mean() < 6


def test_patches_never_reach_into_the_padding_of_smaller_images(tmp_path: Path) -> None:
    # Images of different sizes and orientations share one zero-padded stack; every pixel here is >= 40,
    # so a zero in a patch would be padding.
    for i, (height, width) in enumerate([(36, 100), (120, 40), (48, 48)]):
        pixels = natural_like_image(height, width, seed=i) // 2 + 40
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / f"img{i}.png")
    sampler = PatchSampler([tmp_path], scale=4, patch_size=32)
    assert sampler.count == 3
    lr, hr = sampler.sample(400, torch.Generator().manual_seed(1))
    assert int(hr.min()) > 0 and int(lr.min()) > 0


def test_learning_rate_warms_up_then_anneals_by_iterations_or_by_the_time_limit(
    image_folder: Path, tmp_path: Path
) -> None:
    trainer = Trainer(tiny_config(image_folder, iterations=1000, lr=1e-3, warmup_iterations=10), tmp_path)
    assert trainer._lr_at(0) == pytest.approx(1e-4)  # 1/10 of the way up the ramp
    assert trainer._lr_at(9) == pytest.approx(1e-3, rel=1e-3)
    assert trainer._lr_at(500) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))  # cosine midpoint
    assert trainer._lr_at(1000) == pytest.approx(1e-5)  # the floor
    # With a time limit, the lr is the lower of the two schedules: at half the time it is the midpoint
    # even though few iterations were done, and at the limit it is the floor.
    timed = Trainer(tiny_config(image_folder, iterations=1000, lr=1e-3, time_limit_min=2.0), tmp_path)
    assert timed._lr_at(10, run_seconds=60) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))
    assert timed._lr_at(10, run_seconds=120) == pytest.approx(1e-5)
    assert timed._lr_at(750, run_seconds=1) == pytest.approx(trainer._lr_at(750))


def test_config_refuses_nonsense(image_folder: Path) -> None:
    with pytest.raises(ValueError, match="stage"):
        tiny_config(image_folder, stage="esrgan")
    with pytest.raises(ValueError, match="vgg_weights"):
        tiny_config(image_folder, stage="srgan", content_loss="vgg19")
    with pytest.raises(ValueError, match="data"):
        TrainConfig(data=[])
    with pytest.raises(ValueError, match="gan_loss"):
        tiny_config(image_folder, gan_loss="wgan")
    with pytest.raises(ValueError, match="degradation"):
        tiny_config(image_folder, degradation="jpeg")
    with pytest.raises(ValueError, match="ema_decay"):
        tiny_config(image_folder, ema_decay=1.0)


def test_srresnet_then_srgan_stage_resumable(image_folder: Path, tmp_path: Path) -> None:
    first = tmp_path / "srresnet"
    Trainer(tiny_config(image_folder), first).run()
    _, info = load_generator(first / "generator.safetensors")
    assert info.training["stage"] == "srresnet" and info.training["iterations"] == 2
    assert info.training["best_val_psnr"] is not None

    # Resuming extends the same run: it starts from the checkpoint's iteration, not from zero.
    resumed = Trainer(tiny_config(image_folder, iterations=3), first)
    assert resumed.iteration == 2
    resumed.run()
    assert torch.load(first / "last.pt", weights_only=True)["iteration"] == 3

    second = tmp_path / "srgan"
    gan = Trainer(tiny_config(image_folder, stage="srgan", init=str(first / "generator.safetensors")), second)
    torch.testing.assert_close(
        gan.generator.state_dict()["conv_first.weight"],
        load_generator(first / "generator.safetensors")[0].state_dict()["conv_first.weight"],
    )
    gan.run()
    _, gan_info = load_generator(second / "generator.safetensors")
    assert gan_info.training["stage"] == "srgan" and gan_info.training["content_loss"] == "dfeat"
    state = torch.load(second / "last.pt", weights_only=True)
    assert "discriminator" in state and "d_opt" in state


def test_sigterm_stops_a_training_run_with_a_checkpoint(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    log = tmp_path / "train.log"
    command = [sys.executable, "-m", "app.cli", "train", "--data", str(image_folder), "--out", str(out),
               "--stage", "srresnet", "--num-feat", "8", "--num-block", "1", "--batch-size", "2",
               "--patch-size", "32", "--iterations", "1000000", "--checkpoint-every", "1000000",
               "--log-every", "1", "--device", "cpu"]
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while "srresnet it " not in log.read_text():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "training did not start"
                time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        finally:
            process.kill()
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["iteration"] >= 1, log.read_text()
    _, info = load_generator(out / "generator.safetensors")
    assert info.training["iterations"] == state["iteration"]
    assert "interrupted at iteration" in log.read_text()


def test_realworld_pixel_stage_then_gan_with_the_effnet_perceptual_loss(
    image_folder: Path, tmp_path: Path
) -> None:
    first = tmp_path / "real-pixel"
    Trainer(tiny_config(image_folder, degradation="realworld"), first).run()
    _, info = load_generator(first / "generator.safetensors")
    assert info.training["degradation"] == "realworld" and info.training["iterations"] == 2
    assert info.training["web_share"] == 0.5

    # Random weights of the real architecture stand in for the packaged ImageNet file.
    effnet = tmp_path / "lite0.pth"
    torch.save(EfficientNetLite0().state_dict(), effnet)
    second = tmp_path / "real-gan"
    config = tiny_config(
        image_folder,
        stage="srgan",
        degradation="realworld",
        init=str(first / "generator.safetensors"),
        content_loss="effnet",
        effnet_weights=str(effnet),
        gan_loss="ragan",
        grid_weight=1.0,
    )
    gan = Trainer(config, second)
    before = gan.generator.state_dict()["conv_first.weight"].clone()
    gan.run()
    assert not torch.equal(before, gan.generator.state_dict()["conv_first.weight"])
    _, gan_info = load_generator(second / "generator.safetensors")
    assert gan_info.training["content_loss"] == "effnet" and gan_info.training["gan_loss"] == "ragan"


@pytest.mark.parametrize("web_share", [0.0, 0.75, 1.0])
def test_web_share_sets_the_share_of_web_style_batches(
    image_folder: Path, tmp_path: Path, web_share: float
) -> None:
    trainer = Trainer(tiny_config(image_folder, degradation="realworld", web_share=web_share), tmp_path)
    pairs = trainer.training_pairs()
    assert isinstance(pairs, RealWorldPairs) and pairs.config.simple_prob == web_share
    clean = Trainer(tiny_config(image_folder, web_share=web_share), tmp_path).training_pairs()
    assert isinstance(clean, PatchSampler)  # bicubic pairs: the share does not apply


@pytest.mark.parametrize("web_share", [-0.1, 1.5])
def test_web_share_outside_zero_to_one_is_refused(image_folder: Path, web_share: float) -> None:
    with pytest.raises(ValueError, match="web_share"):
        tiny_config(image_folder, degradation="realworld", web_share=web_share)


def test_srgan_train_runs_without_the_image_codecs(image_folder: Path, tmp_path: Path) -> None:
    # scripts/gpu-train runs `app.cli train` on a GPU box that has torch but not the service's codecs:
    # with imagecodecs unimportable, the command still trains and exports its generator.
    argv = ["train", "--stage", "srresnet", "--data", str(image_folder), "--out", str(tmp_path),
            "--iterations", "1", "--num-feat", "8", "--num-block", "1", "--batch-size", "2",
            "--patch-size", "32", "--device", "cpu"]
    script = (
        "import sys; sys.modules['imagecodecs'] = None\n"
        "from app.cli.main import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    _, info = load_generator(tmp_path / "generator.safetensors")
    assert info.training["iterations"] == 1
