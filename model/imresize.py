"""MATLAB-compatible bicubic imresize, the resampler the SR literature's numbers are measured with.

MATLAB's imresize differs from Pillow/OpenCV bicubic in three ways that move PSNR by tenths of a dB:
the Keys kernel with a = -0.5, an antialiasing kernel widened by 1/scale when shrinking, and
symmetric (mirror) border handling. Each axis is a weighted sum of a few input pixels per output pixel:
a matrix product with a precomputed dense weight matrix while that matrix is small, otherwise a sum over
the band of taps (an elongated image's dense matrix would be out x in float64: 512 MiB for a 16384-pixel
side).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel, a = -0.5."""
    absx = np.abs(x)
    absx2, absx3 = absx**2, absx**3
    return (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) + (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * (
        (absx > 1) & (absx <= 2)
    )


# Axes whose dense matrix is up to this size are resized by a matrix product with it, cached (evaluation
# resizes many images of a few sizes, and BLAS beats a gather for square images); longer ones, which an
# elongated image makes, by the band of taps, built per call.
CACHED_MATRIX_BYTES = 4 << 20


def _kernel_width(scale: float, antialias: bool) -> float:
    """Keys' kernel spans 4 input pixels; widened by 1/scale when shrinking with antialiasing."""
    return 4.0 / scale if scale < 1 and antialias else 4.0


def _taps(scale: float, antialias: bool) -> int:
    return math.ceil(_kernel_width(scale, antialias)) + 2


def resize_taps(
    in_len: int, out_len: int, scale: float, antialias: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(columns, weights), both (out_len, taps): output pixel i of one axis is the sum over t of
    weights[i, t] x input[columns[i, t]], as MATLAB computes it (columns mirrored at the borders)."""
    shrink = scale < 1 and antialias
    kernel_width = _kernel_width(scale, antialias)
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centre in input coordinates (1-based)
    left = np.floor(u - kernel_width / 2)
    taps = _taps(scale, antialias)
    indices = left[:, None] + np.arange(taps)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(scale * distance) if shrink else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    columns = mirror[(indices.astype(np.int64) - 1) % (2 * in_len)]
    return columns, weights


def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The dense (out_len, in_len) float64 matrix that resizes one axis as MATLAB does."""
    if not uses_band(in_len, out_len):
        return _cached_resize_matrix(in_len, out_len, scale, antialias)
    return _resize_matrix(in_len, out_len, scale, antialias)


@lru_cache(maxsize=64)
def _cached_resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    return _resize_matrix(in_len, out_len, scale, antialias)


def _resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    columns, weights = resize_taps(in_len, out_len, scale, antialias)
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), columns.shape[1]), columns.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def uses_band(in_len: int, out_len: int) -> bool:
    """Whether one axis of these lengths is resized by its band of taps rather than a dense matrix."""
    return 8 * in_len * out_len > CACHED_MATRIX_BYTES


def axis_scratch_bytes(in_len: int, out_len: int, scale: float, other: int, antialias: bool = True) -> int:
    """What resizing one axis holds besides its float64 input and output, `other` values per position along
    the axis: the dense matrix, or the band (columns and weights) and one gathered slice of the output."""
    if not uses_band(in_len, out_len):
        return 8 * in_len * out_len
    return 16 * out_len * _taps(scale, antialias) + 8 * out_len * other


def _resize_axis0(data: np.ndarray, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    """float64 `data` resized along its first axis."""
    in_len = data.shape[0]
    if not uses_band(in_len, out_len):
        return np.tensordot(resize_matrix(in_len, out_len, scale, antialias), data, axes=(1, 0))
    columns, weights = resize_taps(in_len, out_len, scale, antialias)
    out = np.zeros((out_len, *data.shape[1:]))
    broadcast = (slice(None),) + (None,) * (data.ndim - 1)
    for tap in range(columns.shape[1]):
        gathered = np.take(data, columns[:, tap], axis=0)
        gathered *= weights[:, tap][broadcast]
        out += gathered
        del gathered  # one slice alive at a time: the band's memory is the output's, not out x in
    return out


def imresize(image: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """Resize an H x W (x C) image by `scale` with MATLAB's bicubic.

    Output size is ceil(H * scale) x ceil(W * scale). uint8 input gives uint8 output (rounded and
    clipped, like MATLAB); float input gives float64 output, unclipped.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    height, width = image.shape[:2]
    out_h, out_w = math.ceil(height * scale), math.ceil(width * scale)
    out = _resize_axis0(image.astype(np.float64), out_h, scale, antialias)
    out = np.moveaxis(_resize_axis0(np.moveaxis(out, 1, 0), out_w, scale, antialias), 0, 1)
    if image.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out
