"""What a request may hold at its peak, estimated from its header before anything is decoded.

A request holds its upload, then its decoded pixels, then the model's output, and its largest
temporaries come and go in between; the estimate is the largest of those stages, each counted as a
sum of the arrays it holds, times MARGIN. The per-pixel terms name the arrays; their sizes follow the
code in `app.imaging`, `model.tiling` and `app.comparison`, and `bench/memory_cost.py` measures them
against this estimate for each kind of image (docs/BENCHMARKS.md, "Memory per request"):

- upload: the multipart body and the image bytes cut from it, and the reduced copy of a PNG.
- decode: Pillow's buffer (4 bytes a pixel for RGB and RGBA), its mode conversion, the array taken
  from it and the premultiplied copy: 12 + 8 bytes per decoded byte of a pixel, which bounds them all.
- engine: the decoded image, its copy for the device, the mirror-padded copy (whole tiles plus
  context) and the output.
- finish and encode: the output, the upscaled alpha and its bicubic transient, the un-premultiplied
  colour, the channels stacked for the encoder, Pillow's copy (4 bytes a pixel) and the encoded body
  (as large as the raw pixels for an incompressible image, twice while it is joined); WebP's encoder
  adds its own ARGB and YUV planes.
- /compare: the original, its reduction, every method's output, the MATLAB resize's weights (a dense
  matrix per short axis, a band of taps and a gathered slice per long one), the float64 temporaries of
  resizing and scoring, NIQE's (its half-size luminance is another MATLAB resize), and the JSON's data
  URIs or the mosaic. One image is scored at a time.
"""

from __future__ import annotations

import math
from typing import Literal

from app.comparison import mosaic_size
from app.imaging.header import ImageHeader
from model.evaluate import niqe_patches
from model.imresize import axis_scratch_bytes
from model.niqe import PATCH as NIQE_PATCH
from model.tiling import TileGrid

MIB = 1 << 20
# Per request whatever its size: Python objects, codec state, one strip of float temporaries
# (`app.imaging.pixels.STRIP_PIXELS`), one step of the PNG check's inflate.
BASE_BYTES = 16 * MIB
# Allocator rounding and what the per-pixel terms do not name; measured peaks stay below the estimate
# without it (bench/memory_cost.py), this is the safety share on top.
MARGIN = 1.15
# libwebp's own planes while encoding: ARGB, YUV 4:2:0 and its analysis buffers.
WEBP_ENCODER_BYTES_PER_PIXEL = 20
# Pillow holds RGB, RGBA and LA images at 4 bytes a pixel.
PILLOW_BYTES_PER_PIXEL = 4
# float64 values per pixel alive at once while MATLAB-resizing to the original's size (data, two
# products, round, clip: four RGB arrays) and while scoring against it (Y planes, SSIM's statistics).
RESIZE_FLOATS_PER_PIXEL = 12
SCORE_FLOATS_PER_PIXEL = 12
# float64 values per pixel alive at once in NIQE (the RGB copy and sums that make its luminance, then
# the MSCN filter's padded copy, passes and statistics), besides its half-size resize's matrices.
NIQE_FLOATS_PER_PIXEL = 6
# base64 is 4/3 of the PNG it encodes; the data URIs, the JSON text and its bytes each hold them.
JSON_COPIES = 3


def upload_bytes(body_bytes: int) -> int:
    """Reading a multipart body of `body_bytes`: the body as received and the image bytes cut from it."""
    return BASE_BYTES + 2 * body_bytes


def upscale_bytes(header: ImageHeader, *, upload_bytes: int, scale: int, fmt: str, tile: int,
                  pad: int) -> int:
    """The peak of an /upscale request for an image with `header`, `upload_bytes` long, output as `fmt`."""
    pixels, b, alpha = header.pixels, header.sample_bytes, header.alpha
    out_pixels = pixels * scale * scale
    decoded = pixels * (3 + alpha) * b
    output = out_pixels * 3 * b
    decode = 2 * upload_bytes + pixels * (12 + 8 * (3 + alpha) * b)
    engine = upload_bytes + decoded + 3 * b * pixels + _padded_bytes(header, tile, pad) + output
    out_channels = 3 + (alpha and fmt != "jpeg")
    out_sample = b if fmt == "png" else 1
    per_out_pixel = (
        alpha * (2 * b + 3 * b + out_channels * b)  # upscaled alpha (+ transient), colour, stacked channels
        + (b == 2 and fmt != "png") * out_channels  # rounded to 8 bits for JPEG and WebP
        + PILLOW_BYTES_PER_PIXEL
        + 2 * out_channels * out_sample  # the encoded body, and its copy while joined
        + (fmt == "webp") * WEBP_ENCODER_BYTES_PER_PIXEL
    )
    finish = upload_bytes + decoded + output + out_pixels * per_out_pixel
    return BASE_BYTES + math.ceil(MARGIN * max(decode, engine, finish))


def compare_bytes(header: ImageHeader, *, upload_bytes: int, plan_models: int, scale: int, tile: int,
                  pad: int, output: Literal["json", "image"]) -> int:
    """The peak of a /compare request: `plan_models` models restore the x`scale` reduction of the image,
    answered as JSON with data URIs or as the `image` mosaic."""
    height, width = header.height - header.height % scale, header.width - header.width % scale
    pixels, b, alpha = height * width, header.sample_bytes, header.alpha
    low_h, low_w = height // scale, width // scale
    low = TileGrid(max(low_h, 1), max(low_w, 1), tile, pad)
    held = (
        2 * upload_bytes
        + header.pixels * (3 + alpha) * b  # the decoded upload
        + 3 * pixels + 3 * low_h * low_w  # the original and its reduction, 8-bit RGB
        + (3 + plan_models) * 3 * pixels  # every method's output
        + plan_models * _padded_bytes_of(low, 1)
    )
    matrices = max(  # the reduction's and the bicubic baseline's
        resize_scratch_bytes((height, width), (low_h, low_w), 1 / scale, 3),
        resize_scratch_bytes((low_h, low_w), (height, width), scale, 3),
    )
    methods = 3 + plan_models
    transient = max(
        header.pixels * (12 + 8 * (3 + alpha) * b),  # decoding
        matrices + 8 * RESIZE_FLOATS_PER_PIXEL * pixels,
        8 * SCORE_FLOATS_PER_PIXEL * pixels,
        niqe_bytes(height, width, scale),
        render_bytes(height, width, methods, output),
    )
    return BASE_BYTES + math.ceil(MARGIN * (held + transient))


def render_bytes(height: int, width: int, methods: int, output: Literal["json", "image"]) -> int:
    """/compare's answer: every method's, the original's and the input's PNG data URIs in the JSON, or the
    labelled mosaic of the methods and the original (Pillow's copy) and its PNG."""
    if output == "json":
        return JSON_COPIES * (methods + 2) * 4 * height * width
    return math.prod(mosaic_size(height, width, methods + 1)) * (PILLOW_BYTES_PER_PIXEL + 2 * 3)


def niqe_bytes(height: int, width: int, crop_border: int) -> int:
    """NIQE's peak for one height x width image: float64 temporaries over the image inside the border crop,
    and the weights of the resize that halves its whole 96x96 patches; none when it has under two
    patches."""
    rows, cols = niqe_patches(height, width, crop_border)
    if rows * cols < 2:
        return 0
    patch_h, patch_w = rows * NIQE_PATCH, cols * NIQE_PATCH
    matrices = resize_scratch_bytes((patch_h, patch_w), (-(-patch_h // 2), -(-patch_w // 2)), 0.5, 1)
    return matrices + 8 * NIQE_FLOATS_PER_PIXEL * (height - 2 * crop_border) * (width - 2 * crop_border)


def resize_scratch_bytes(size: tuple[int, int], out: tuple[int, int], scale: float, channels: int) -> int:
    """The MATLAB resize's own memory for an image of `size` (H, W) to `out`: its rows' weights, then its
    columns' (model.imresize.axis_scratch_bytes), counted as if both were held at once."""
    return axis_scratch_bytes(size[0], out[0], scale, size[1] * channels) + axis_scratch_bytes(
        size[1], out[1], scale, out[0] * channels
    )


def _padded_bytes(header: ImageHeader, tile: int, pad: int) -> int:
    return _padded_bytes_of(TileGrid(header.height, header.width, tile, pad), header.sample_bytes)


def _padded_bytes_of(grid: TileGrid, sample_bytes: int) -> int:
    """The engine's mirror-padded copy of an image: whole tiles plus context, RGB."""
    return (grid.rows * grid.tile + 2 * grid.pad) * (grid.cols * grid.tile + 2 * grid.pad) * 3 * sample_bytes


def largest_upscale_bytes(max_pixels: int, *, max_upload_bytes: int, scale: int, tile: int, pad: int) -> int:
    """The most an /upscale request within the limits may cost: a square of `max_pixels`, 16-bit RGBA,
    a full upload, PNG out."""
    side = math.isqrt(max_pixels)
    header = ImageHeader("png", side, side, alpha=True, sample_bytes=2)
    return upscale_bytes(header, upload_bytes=max_upload_bytes, scale=scale, fmt="png", tile=tile, pad=pad)
