import json
from pathlib import Path

import pytest
from PIL import Image

from app.cli.main import main
from model.evaluate import INTERPOLATIONS, evaluate_method
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
