import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli.main import main
from model.evaluate import INTERPOLATIONS, evaluate_method, make_lr, niqe_score, score, to_gray
from model.metrics import rgb_to_y
from model.niqe import niqe
from model.synthetic import natural_like_image
from tests.conftest import SHARED_DATASETS

EVAL = SHARED_DATASETS / "eval"
EXTRA_KEYS = ("gradient_ratio", "niqe")  # beyond the six of the SPEC


def _need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"{folder} is not here; the literature-reproduction check needs it")
    return folder


@pytest.mark.parametrize(("dataset", "expected"), [("Set5", 28.42), ("Set14", 26.00)])
def test_bicubic_x4_reproduces_the_literature(dataset: str, expected: float) -> None:
    result = evaluate_method(INTERPOLATIONS["bicubic"], _need(EVAL / dataset), 4, "bicubic")
    assert result.psnr == pytest.approx(expected, abs=0.05)


def test_eval_cli_prints_the_spec_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_weights_dir: Path
) -> None:
    for i in range(2):
        Image.fromarray(natural_like_image(48, 40 + 4 * i, seed=i)).save(tmp_path / f"img{i}.png")
    weights = tiny_weights_dir / "srgan_x4.safetensors"
    assert (
        main(["eval", "--data", str(tmp_path), "--method", "bicubic", "--method", str(weights), "--json"])
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in rows] == ["bicubic", str(weights)]
    for row in rows:
        assert set(row) == {"dataset", "method", "scale", "n_images", "psnr", "ssim", *EXTRA_KEYS}
        assert row["dataset"] == tmp_path.name and row["n_images"] == 2 and row["scale"] == 4
        assert row["niqe"] is None  # 48 pixels high: under NIQE's two 96x96 patches
    assert rows[0]["psnr"] > rows[1]["psnr"]  # random tiny weights are worse than bicubic


def _bicubic_niqe(hr: np.ndarray) -> float:
    return niqe(INTERPOLATIONS["bicubic"](make_lr(hr, 4), 4), crop_border=4)


def test_eval_cli_json_and_table_give_the_mean_niqe_of_the_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = [natural_like_image(112, 208, seed=i) for i in range(2)]  # two 96x96 patches after the crop
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"img{i}.png")
    expected = (_bicubic_niqe(images[0]) + _bicubic_niqe(images[1])) / 2

    assert main(["eval", "--data", str(tmp_path), "--method", "bicubic", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["niqe"] == pytest.approx(expected, rel=1e-12)
    assert 0 < row["gradient_ratio"] < 1  # bicubic is blurrier than the original

    assert main(["eval", "--data", str(tmp_path), "--method", "bicubic"]) == 0
    header, legend, line = capsys.readouterr().out.splitlines()
    assert header.endswith("  NIQE (lower is better)") and "NIQE: naturalness without a reference" in legend
    assert "PSNR, SSIM: higher is better" in legend and "closer to 1.0 is better" in legend
    assert line.split()[-1] == f"{expected:.3f}"
    assert line.split()[:2] == [tmp_path.name, "bicubic"]


def test_score_carries_the_niqe_of_the_output_with_the_border_crop() -> None:
    hr = natural_like_image(120, 216, seed=5)
    sr = INTERPOLATIONS["bicubic"](make_lr(hr, 4), 4)
    result = score(sr, hr, 4)
    assert result.niqe == niqe(sr, crop_border=4) and result.niqe_unavailable is None
    assert result.niqe != niqe(sr)  # the border is cropped
    gray = score(sr, to_gray(hr), 4)  # a gray original: measured on the gray of the output, as PSNR is
    assert gray.niqe == niqe(to_gray(sr), crop_border=4)


def test_niqe_is_none_with_the_reason_for_an_image_under_two_patches() -> None:
    assert niqe_score(natural_like_image(104, 199), 4) == (
        None,
        "NIQE needs two 96x96 patches inside the 4-pixel border crop, so at least 200x104 or 104x200 "
        "pixels; got 199x104",
    )
    assert niqe_score(natural_like_image(200, 104), 4)[0] == niqe(natural_like_image(200, 104), crop_border=4)
    value, reason = niqe_score(np.full((200, 200, 3), 128, np.uint8), 4)
    assert value is None and reason is not None and "texture" in reason  # flat: no statistics


def test_a_folder_with_an_image_too_small_for_niqe_has_no_mean_niqe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Image.fromarray(natural_like_image(112, 208, seed=1)).save(tmp_path / "big.png")
    Image.fromarray(natural_like_image(48, 48, seed=2)).save(tmp_path / "small.png")
    result = evaluate_method(INTERPOLATIONS["bicubic"], tmp_path, 4, "bicubic")
    assert result.niqe is None and result.n_images == 2
    assert "bicubic on small.png: no NIQE: NIQE needs two 96x96 patches" in caplog.text


def test_the_protocol_crops_exactly_scale_pixels_at_every_border(tmp_path: Path) -> None:
    """Bicubic on Set5 barely moves with the border crop (28.44 dB uncropped), so a synthetic case pins it:
    an error in the 4 outermost rows and columns is not measured at x4, one in the fifth row is."""
    hr = natural_like_image(26, 24)  # cropped to 24x24 by the protocol
    Image.fromarray(hr).save(tmp_path / "hr.png")
    hr = hr[:24]
    outer, fifth = hr.copy(), hr.copy()
    for border in (slice(0, 4), slice(-4, None)):
        outer[border] = 255 - outer[border]
        outer[:, border] = 255 - outer[:, border]
    fifth[4, 4:20] = 255 - fifth[4, 4:20]

    def returning(sr: np.ndarray) -> Callable[[np.ndarray, int], np.ndarray]:
        return lambda lr, scale: sr

    unmeasured = evaluate_method(returning(outer), tmp_path, 4, "outer")
    assert (unmeasured.psnr, unmeasured.ssim, unmeasured.gradient_ratio) == (float("inf"), 1.0, 1.0)
    measured = evaluate_method(returning(fifth), tmp_path, 4, "fifth")
    y_error = rgb_to_y(fifth)[4, 4:20] - rgb_to_y(hr)[4, 4:20]
    mse = float(np.sum(y_error**2)) / (16 * 16)  # 16 pixels of row 4 differ in the 16x16 measured
    assert measured.psnr == pytest.approx(10 * np.log10(255**2 / mse))
    assert measured.ssim < 1.0
