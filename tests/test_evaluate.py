import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli.main import main
from model.evaluate import INTERPOLATIONS, evaluate_method
from model.metrics import rgb_to_y
from model.synthetic import natural_like_image
from tests.conftest import SHARED_DATASETS

EVAL = SHARED_DATASETS / "eval"


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
        assert set(row) == {"dataset", "method", "scale", "n_images", "psnr", "ssim"}
        assert row["dataset"] == tmp_path.name and row["n_images"] == 2 and row["scale"] == 4
    assert rows[0]["psnr"] > rows[1]["psnr"]  # random tiny weights are worse than bicubic


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
