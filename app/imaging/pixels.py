"""Array operations behind the image codec: alpha, grey, bit depth and EXIF orientation.

Every function takes and returns integer arrays (uint8 or uint16, H x W or H x W x C) and keeps the dtype,
so the same code serves 8-bit and 16-bit images. Nothing here knows about file formats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image

# Per-pixel arithmetic runs over strips of about this many pixels, so its float temporaries are a few
# megabytes instead of several times the image (an x4 output is the largest array a request holds).
STRIP_PIXELS = 1 << 18
# Rec. 601 luma, the weights Pillow uses for RGB -> L, so a grey image that went through RGB comes back exact.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# EXIF orientation -> the array operation that shows the image upright (as ImageOps.exif_transpose does).
_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a),
}


def max_value(dtype: np.dtype) -> int:
    """The value that means 'full' (opaque, white) for an integer dtype: 255 or 65535."""
    return int(np.iinfo(dtype).max)


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round float values into the range of `dtype` and cast, C-contiguous."""
    return np.ascontiguousarray(np.rint(np.clip(values, 0, max_value(dtype))).astype(dtype))


def _strips(height: int, width: int) -> Iterator[slice]:
    """Row ranges of about STRIP_PIXELS pixels covering `height` rows of `width` pixels."""
    step = max(1, STRIP_PIXELS // max(width, 1))
    for top in range(0, height, step):
        yield slice(top, top + step)


def premultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Scale colour by alpha, so that fully transparent pixels are black and add nothing when the model
    mixes neighbours: this is what keeps dark (or any background) fringes off upscaled edges."""
    out = np.empty_like(rgb)
    for rows in _strips(*alpha.shape):
        weight = alpha[rows].astype(np.float32) / max_value(alpha.dtype)
        out[rows] = _to_dtype(rgb[rows] * weight[..., None], rgb.dtype)
    return out


def unpremultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Undo `premultiply`. Where alpha is 0 the colour is undefined and comes out black; a colour above its
    alpha (model overshoot) is clipped to full intensity."""
    out = np.empty_like(rgb)
    for rows in _strips(*alpha.shape):
        weight = alpha[rows].astype(np.float32)[..., None]
        straight = np.zeros(rgb[rows].shape, dtype=np.float32)
        np.divide(rgb[rows].astype(np.float32) * max_value(rgb.dtype), weight, out=straight, where=weight > 0)
        out[rows] = _to_dtype(straight, rgb.dtype)
    return out


def composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten premultiplied colour onto white: out = colour + (1 - alpha) * white."""
    full = max_value(rgb.dtype)
    out = np.empty_like(rgb)
    for rows in _strips(*alpha.shape):
        flat = rgb[rows].astype(np.int32) + (full - alpha[rows].astype(np.int32))[..., None]
        out[rows] = np.minimum(flat, full)
    return out


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscaling of an alpha plane (Pillow L or I;16, so 16-bit alpha keeps its precision)."""
    height, width = alpha.shape
    resized = Image.fromarray(alpha).resize((width * scale, height * scale), Image.Resampling.BICUBIC)
    return np.array(resized, dtype=alpha.dtype)


def luma(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 -> H x W grey, for grey images whose colour channels drifted apart in the model."""
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for rows in _strips(*rgb.shape[:2]):
        out[rows] = _to_dtype(rgb[rows] @ _LUMA_WEIGHTS, rgb.dtype)
    return out


def to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit with rounding (65535 / 257 = 255); 8-bit arrays pass through."""
    if values.dtype == np.uint8:
        return values
    out = np.empty(values.shape, np.uint8)
    for rows in _strips(values.shape[0], values[0].size if len(values) else 1):
        out[rows] = (values[rows].astype(np.uint32) + 128) // 257
    return out


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to H x W x C pixels; unknown values mean 'already upright'."""
    transform = _UPRIGHT.get(orientation)
    return pixels if transform is None else np.ascontiguousarray(transform(pixels))
