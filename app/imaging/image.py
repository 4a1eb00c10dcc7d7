"""The decoded image the model works on, the output formats, and joining the model's output back to it."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from app.imaging import pixels

logger = logging.getLogger(__name__)

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
PILLOW_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".webp": "webp"}
# Larger ICC profiles are dropped (with a log line): display and camera RGB profiles are a few kilobytes,
# the largest LUT-based ones a few hundred, and a profile is copied into every output.
MAX_ICC_PROFILE_BYTES = 1 << 20


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """Pixels ready for the model, plus what is needed to encode them back like the input."""

    rgb: np.ndarray  # H x W x 3, uint8 or uint16, C-contiguous; premultiplied by alpha when alpha is not None
    alpha: np.ndarray | None  # H x W, same dtype as rgb
    grayscale: bool  # written back as L / LA / 16-bit grey where the output format allows
    icc_profile: bytes | None
    source_format: str  # "png" | "jpeg" | "webp"

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def finish_upscale(decoded: DecodedImage, sr_rgb: np.ndarray, scale: int) -> DecodedImage:
    """Combine the model's output with the rest of `decoded`: alpha upscaled bicubically, grey flag and ICC
    profile kept. `sr_rgb` is the model's H*scale x W*scale x 3 output for `decoded.rgb`, same dtype.

    The result stays premultiplied; colour above its alpha (model overshoot) is clipped to the alpha, in
    place in `sr_rgb` when it is writeable (an x4 output is the largest array a request holds).
    """
    expected = (decoded.height * scale, decoded.width * scale, 3)
    if sr_rgb.shape != expected or sr_rgb.dtype != decoded.rgb.dtype:
        raise ValueError(
            f"model output is {sr_rgb.shape} {sr_rgb.dtype}, expected {expected} {decoded.rgb.dtype}"
        )
    if decoded.alpha is None:
        return replace(decoded, rgb=np.ascontiguousarray(sr_rgb))
    alpha = pixels.upscale_alpha(decoded.alpha, scale)
    clipped = np.minimum(sr_rgb, alpha[..., None], out=sr_rgb if sr_rgb.flags.writeable else None)
    return replace(decoded, rgb=np.ascontiguousarray(clipped), alpha=alpha)


def guess_format_from_name(path: str | os.PathLike[str]) -> str | None:
    """The format a file name's suffix stands for ("png", "jpeg", "webp"), or None for any other suffix."""
    return _SUFFIX_FORMATS.get(Path(path).suffix.lower())


def icc_for(icc_profile: bytes | None, channels: int) -> bytes | None:
    """The profile if its colour space (ICC header bytes 16-19) is the one of pixels with `channels` and
    it is at most MAX_ICC_PROFILE_BYTES long."""
    if icc_profile is not None and len(icc_profile) > MAX_ICC_PROFILE_BYTES:
        logger.info("dropped an ICC profile of %d bytes (the limit is %d)", len(icc_profile),
                    MAX_ICC_PROFILE_BYTES)
        return None
    wanted = b"GRAY" if channels <= 2 else b"RGB "
    return icc_profile if icc_profile is not None and icc_profile[16:20] == wanted else None
