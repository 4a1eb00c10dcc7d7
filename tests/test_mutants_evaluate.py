"""The evaluation where mutation testing (scripts/mutation, docs/TESTING.md) found it unpinned: the
interpolation baselines, how evaluation files are read and cropped, gray images, and the generator's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.evaluate import (
    INTERPOLATIONS,
    evaluate_generator,
    generator_method,
    load_eval_image,
    make_lr,
    niqe_patches,
    score,
    to_gray,
)
from model.synthetic import natural_like_image
from tests.conftest import tiny_generator


def test_nearest_and_bilinear_are_pillows_at_the_scale_asked() -> None:
    lr = natural_like_image(6, 5)
    np.testing.assert_array_equal(INTERPOLATIONS["nearest"](lr, 3), lr.repeat(3, axis=0).repeat(3, axis=1))
    bilinear = np.asarray(Image.fromarray(lr).resize((10, 12), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(INTERPOLATIONS["bilinear"](lr, 2), bilinear)


@pytest.mark.parametrize(("mode", "shape"), [
    ("L", (6, 9)), ("I;16", (6, 9)), ("1", (6, 9)),
    ("RGB", (6, 9, 3)), ("RGBA", (6, 9, 3)), ("P", (6, 9, 3))])
def test_evaluation_files_are_gray_or_rgb_bytes_cropped_to_the_scale(
        tmp_path: Path, mode: str, shape: tuple[int, ...]) -> None:
    """A 7 x 11 file at x3 is measured on its top-left 6 x 9; gray modes stay one channel."""
    path = tmp_path / "image.png"
    Image.fromarray(natural_like_image(7, 11)).convert(mode).save(path)
    loaded = load_eval_image(path, 3)
    assert (loaded.shape, loaded.dtype) == (shape, np.uint8)
    with Image.open(path) as img:
        whole = np.asarray(img.convert("L" if len(shape) == 2 else "RGB"))
    np.testing.assert_array_equal(loaded, whole[:6, :9])


def test_gray_is_pillows_luma() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    np.testing.assert_array_equal(to_gray(rgb), [[76, 150, 29, 18]])


def test_a_gray_image_is_degraded_as_rgb_and_scored_on_the_gray_of_the_output() -> None:
    hr = natural_like_image(48, 40)[..., 0]
    np.testing.assert_array_equal(make_lr(hr, 4), make_lr(np.repeat(hr[..., None], 3, axis=2), 4))
    exact = score(np.repeat(hr[..., None], 3, axis=2), hr, 4)  # an output whose gray is the HR itself
    assert (exact.psnr, exact.ssim) == (float("inf"), 1.0)


def test_a_generator_is_named_in_its_results_and_in_a_wrong_scale(tmp_path: Path) -> None:
    Image.fromarray(natural_like_image(32, 32)).save(tmp_path / "a.png")
    model = tiny_generator(0)
    assert evaluate_generator(model, tmp_path, 4).method == "generator"
    with pytest.raises(ValueError) as wrong:
        generator_method(model)(natural_like_image(4, 4), 2)
    assert str(wrong.value) == "generator upscales x4, not x2"
    with pytest.raises(ValueError) as named:
        evaluate_generator(model, tmp_path, 2, name="tiny")
    assert str(named.value) == "tiny upscales x4, not x2"


def test_niqe_counts_whole_patches_inside_the_border_crop() -> None:
    """96 x 96 patches inside a 4-pixel crop: 104 rows hold one, 100 none, 114 still one; never negative."""
    assert niqe_patches(104, 200, 4) == (1, 2)
    assert niqe_patches(100, 300, 4) == (0, 3)
    assert niqe_patches(114, 7, 4) == (1, 0)
    assert all(isinstance(n, int) for n in niqe_patches(114, 7, 4))


def test_a_network_without_an_integer_scale_is_named() -> None:
    model = tiny_generator(0)
    model.upscale = "4"  # type: ignore[assignment]
    with pytest.raises(TypeError) as wrong:
        generator_method(model)(natural_like_image(4, 4), 4)
    assert str(wrong.value) == "generator: the network's `upscale` is '4', not an integer"
