import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.metrics import psnr_y, ssim_y
from model.synthetic import natural_like_image
from tests.api_helpers import assert_error, decode, png_bytes, running_client, upload

METHODS = ["nearest", "bilinear", "bicubic", "srresnet", "srgan"]


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
