import pytest
import torch

from model.discriminator import Discriminator
from model.generator import Generator, count_parameters
from tests.conftest import tiny_generator


def test_paper_configuration_has_1_55_million_parameters() -> None:
    assert count_parameters(Generator()) == pytest.approx(1.55e6, rel=0.005)


@pytest.mark.parametrize("upscale", [2, 4, 8])
def test_output_is_upscale_times_larger(upscale: int) -> None:
    model = Generator(num_feat=8, num_block=1, upscale=upscale).eval()
    assert model(torch.rand(2, 3, 5, 7)).shape == (2, 3, 5 * upscale, 7 * upscale)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="upscale"):
        Generator(upscale=3)
    with pytest.raises(ValueError, match="num_feat"):
        Generator(num_feat=0)


def test_folding_batchnorm_keeps_the_output() -> None:
    model = tiny_generator(0)
    x = torch.rand(1, 3, 12, 12)
    before = model(x)
    after = model.fold_batchnorm()(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_folding_needs_eval_mode() -> None:
    with pytest.raises(RuntimeError, match="eval"):
        Generator(num_feat=8, num_block=1).train().fold_batchnorm()


def test_discriminator_gives_one_logit_per_patch_and_its_feature_maps() -> None:
    model = Discriminator(num_feat=8, input_size=32)
    x = torch.rand(3, 3, 32, 32)
    assert model(x).shape == (3, 1)
    assert len(model.feature_maps(x)) == 8
    with pytest.raises(ValueError, match="divisible by 16"):
        Discriminator(input_size=40)
