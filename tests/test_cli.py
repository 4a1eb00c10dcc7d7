import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli.main import main
from model.synthetic import natural_like_image


@pytest.fixture
def weights_env(tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRGAN_WEIGHTS_DIR", str(tiny_weights_dir))


def test_upscale_a_folder_of_mixed_files_keeps_modes(tmp_path: Path, weights_env: None) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rgb = natural_like_image(9, 11)
    Image.fromarray(rgb).save(src / "photo.jpg", quality=95)
    Image.fromarray(rgb[..., 0]).save(src / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full((9, 11), 200, np.uint8)])).save(src / "alpha.webp", lossless=True)
    Image.fromarray(rgb).convert("P").save(src / "palette.png")
    (src / "notes.txt").write_text("not an image, and not picked up")
    out = tmp_path / "out"
    args = ["upscale", str(src), "-o", str(out), "--device", "cpu", "--tile", "8", "--tile-pad", "2"]
    assert main(args) == 0
    expected = {"photo_x4.jpg": "RGB", "gray_x4.png": "L", "alpha_x4.webp": "RGBA", "palette_x4.png": "RGB"}
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for name, mode in expected.items():
        with Image.open(out / name) as img:
            assert img.size == (44, 36) and img.mode == mode, name


def test_upscale_single_file_with_format_and_bad_file(
    tmp_path: Path, weights_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "a.png"
    Image.fromarray(natural_like_image(5, 6)).save(good)
    bad = tmp_path / "b.png"
    bad.write_bytes(b"garbage")
    out = tmp_path / "out"
    assert main(["upscale", str(good), str(bad), "-o", str(out), "--format", "webp", "--device", "cpu"]) == 1
    assert [p.name for p in out.iterdir()] == ["a_x4.webp"]
    assert "b.png" in capsys.readouterr().err
    single = tmp_path / "single.jpg"
    assert main(["upscale", str(good), "-o", str(single), "--device", "cpu"]) == 0
    with Image.open(single) as img:
        assert img.format == "JPEG" and img.size == (24, 20)


def test_compare_writes_the_mosaic_and_prints_scores(
    tmp_path: Path, weights_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "gt.png"
    Image.fromarray(natural_like_image(40, 44)).save(image)
    mosaic = tmp_path / "cmp.png"
    assert main(["compare", str(image), "-o", str(mosaic), "--json", "--device", "cpu"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in body["methods"]] == [
        "nearest", "bilinear", "bicubic", "srresnet", "srgan", "srgan-real"
    ]
    assert all("image" not in m for m in body["methods"])
    assert body["better"]["niqe"] == "lower"
    assert all(m["niqe"] is None and "96x96" in m["niqe_unavailable"] for m in body["methods"])  # 40 high
    with Image.open(mosaic) as img:
        assert img.width > 3 * 44


def test_compare_too_small_is_a_clear_error(
    tmp_path: Path, weights_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "tiny.png"
    Image.fromarray(natural_like_image(8, 8)).save(image)
    assert main(["compare", str(image), "-o", str(tmp_path / "x.png"), "--device", "cpu"]) == 1
    assert "at least 20x20" in capsys.readouterr().err
