import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app import comparison
from model.metrics import psnr_y, ssim_y
from model.niqe import niqe
from model.synthetic import natural_like_image
from tests.api_helpers import assert_error, decode, png_bytes, running_client, upload

METHODS = ["nearest", "bilinear", "bicubic", "srresnet", "srgan", "srgan-real"]
TOO_SMALL_FOR_NIQE = (
    "NIQE needs two 96x96 patches inside the 4-pixel border crop, so at least 200x104 or 104x200 pixels; "
    "got 40x48"
)


def data_uri_image(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return decode(base64.b64decode(uri.split(",", 1)[1]))


async def test_json_scores_every_method_against_the_original(tiny_weights_dir: Path) -> None:
    image = natural_like_image(50, 43)  # cropped to 48x40, the multiple of 4 below it
    async with running_client(tiny_weights_dir) as client:
        response = await client.post("/compare", **upload(png_bytes(image)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scale"] == 4
    assert body["original_size"] == {"width": 40, "height": 48}
    assert body["input_size"] == {"width": 10, "height": 12}
    assert [m["name"] for m in body["methods"]] == METHODS
    original = image[:48, :40]
    for method in body["methods"]:
        upscaled = data_uri_image(method["image"])
        assert upscaled.shape == (48, 40, 3)
        # The scores are the protocol's (Y channel, a 4-pixel border crop) for the image returned.
        assert method["psnr"] == pytest.approx(psnr_y(upscaled, original, 4), abs=5e-4)
        assert method["ssim"] == pytest.approx(ssim_y(upscaled, original, 4), abs=5e-5)
    np.testing.assert_array_equal(data_uri_image(body["original"]), original)
    scores = {m["name"]: m["psnr"] for m in body["methods"]}
    assert scores["bicubic"] > scores["nearest"]
    # Under NIQE's two 96x96 patches: a 200 with null and the reason, for every image and the original.
    assert body["better"] == {"psnr": "higher", "ssim": "higher", "niqe": "lower"}
    assert (body["original_niqe"], body["original_niqe_unavailable"]) == (None, TOO_SMALL_FOR_NIQE)
    assert all((m["niqe"], m["niqe_unavailable"]) == (None, TOO_SMALL_FOR_NIQE) for m in body["methods"])


async def test_json_gives_each_method_and_the_original_its_niqe(tiny_weights_dir: Path) -> None:
    image = natural_like_image(112, 210)  # cropped to 112x208: two 96x96 patches inside the border crop
    async with running_client(tiny_weights_dir) as client:
        response = await client.post("/compare", **upload(png_bytes(image)))
    assert response.status_code == 200, response.text
    body = response.json()
    original = image[:, :208]
    assert body["original_niqe"] == round(niqe(original, crop_border=4), 3)
    assert body["original_niqe_unavailable"] is None
    assert [m["name"] for m in body["methods"]] == METHODS
    for method in body["methods"]:
        assert method["niqe"] == round(niqe(data_uri_image(method["image"]), crop_border=4), 3)
        assert method["niqe_unavailable"] is None
    assert "NIQE (no reference, lower is better) with the same crop" in body["protocol"]


def test_mosaic_captions_show_niqe_beside_psnr_and_ssim() -> None:
    plan = comparison.Plan(scale=4, models=(), labels=comparison.INTERPOLATION_LABELS)
    hr = natural_like_image(112, 208, seed=2)
    lr = comparison.degrade(hr, plan)
    result = comparison.assemble(plan, hr, lr, comparison.interpolate_all(lr, plan))
    bicubic = result.scores["bicubic"]
    assert bicubic.niqe == niqe(result.outputs["bicubic"], crop_border=4)
    assert comparison.captions(result) == [
        *(
            (label, f"{s.psnr:.2f} dB / SSIM {s.ssim:.4f}", f"NIQE {s.niqe:.2f} (lower is better)")
            for label, s in zip(("Nearest", "Bilinear", "Bicubic"), result.scores.values(), strict=True)
        ),
        ("Original", "reference for PSNR / SSIM", f"NIQE {niqe(hr, crop_border=4):.2f} (lower is better)"),
    ]
    with Image.open(io.BytesIO(comparison.render_mosaic(result))) as mosaic:
        assert mosaic.size == comparison.mosaic_size(112, 208, 4)
    small = comparison.assemble(plan, hr[:48, :40], lr[:12, :10],
                                {k: v[:48, :40] for k, v in result.outputs.items()})
    assert {caption[2] for caption in comparison.captions(small)} == {"NIQE n/a: too small or flat"}


async def test_image_output_is_one_labelled_mosaic(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir) as client:
        response = await client.post("/compare?output=image", **upload(png_bytes(natural_like_image(40, 40))))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as mosaic:
        assert mosaic.width > 3 * 40 and mosaic.height > 2 * 40  # 3 columns, 2 rows of panels and labels


async def test_too_small_and_bad_output(tiny_weights_dir: Path) -> None:
    async with running_client(tiny_weights_dir) as client:
        assert_error(
            await client.post("/compare", **upload(png_bytes(natural_like_image(19, 40)))), 422, "too_small"
        )
        assert_error(
            await client.post("/compare?output=pdf", **upload(png_bytes(natural_like_image(20, 20)))),
            422,
            "invalid_parameter",
        )
