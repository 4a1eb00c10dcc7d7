"""Which JPEG encoder runs: nvJPEG (torchvision on a CUDA device) when it is usable, libjpeg-turbo
(Pillow) otherwise and for every image nvJPEG cannot write as asked."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image, features

from app.imaging import encode
from app.imaging.image import DecodedImage
from model.synthetic import natural_like_image


@pytest.fixture(autouse=True)
def fresh_choice() -> Iterator[None]:
    """The encoder is chosen once per process: forget the choice around each test."""
    choose = encode.device_jpeg_encoder
    choose.cache_clear()
    yield
    choose.cache_clear()


def decoded(pixels: np.ndarray, *, grayscale: bool = False, icc_profile: bytes | None = None) -> DecodedImage:
    return DecodedImage(pixels, None, grayscale, icc_profile, "png")


def test_pillow_encodes_jpeg_with_libjpeg_turbo() -> None:
    assert features.check_feature("libjpeg_turbo"), "Pillow without libjpeg-turbo is several times slower"


def test_without_a_cuda_device_jpeg_is_encoded_on_the_cpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device; the GPU section of bench/gpu covers nvJPEG")
    assert encode.device_jpeg_encoder() is None
    data = encode.encode_image(decoded(natural_like_image(24, 32)), "jpeg", quality=80)
    assert Image.open(io.BytesIO(data)).format == "JPEG"


def test_a_cuda_device_without_torchvision_falls_back_to_the_cpu(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.imaging.encode")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # an import of it raises ImportError
    monkeypatch.setitem(sys.modules, "torchvision.io", None)
    assert encode.device_jpeg_encoder() is None
    assert "torchvision is not usable" in caplog.text


def test_the_gpu_encoder_takes_only_colour_jpeg_without_an_icc_profile(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[tuple[int, ...], int]] = []

    def on_gpu(pixels: np.ndarray, quality: int) -> bytes:
        sent.append((pixels.shape, quality))
        return b"\xff\xd8gpu"

    monkeypatch.setattr(encode, "device_jpeg_encoder", lambda: on_gpu)
    colour = natural_like_image(8, 12)
    assert encode.encode_image(decoded(colour), "jpeg", quality=77) == b"\xff\xd8gpu"
    assert sent == [((8, 12, 3), 77)]
    rgb_profile = bytes(16) + b"RGB " + bytes(108)
    for image, fmt in ((decoded(colour), "png"), (decoded(colour), "webp"),
                       (decoded(colour, icc_profile=rgb_profile), "jpeg"),
                       (decoded(colour, grayscale=True), "jpeg")):
        data = encode.encode_image(image, fmt, quality=77)
        assert Image.open(io.BytesIO(data)).format == fmt.upper()
    assert len(sent) == 1, "an image nvJPEG cannot write as asked went to the GPU"
