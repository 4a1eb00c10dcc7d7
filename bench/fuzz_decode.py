"""Time-boxed fuzzing of the decode path: mutated PNG/JPEG/WebP bytes into `app.imaging.decode.decode_image`.

The service's promise is "never a 500 for bad input": whatever the bytes, `decode_image` returns a
well-formed `DecodedImage` or raises a `ServiceError` subclass (BadImage, UnsupportedFormat, TooLarge).
Hypothesis picks a valid seed file (8/16-bit, grey, palette + tRNS, RGBA, APNG, EXIF-rotated and
progressive JPEG, lossy/lossless WebP, all made in code) and applies byte mutations: flips, random runs,
insertions, deletions, truncation, and 32-bit "interesting values" (0, 1, 2^31-1, ...) written over
length and dimension fields; for PNG it then optionally repairs the chunk CRCs so mutations reach past
the CRC check into the decoders. Any other exception is a finding; its minimal input is written to
`--findings` (outside the repository).

    python -m bench.fuzz_decode --seconds 120
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.errors import ServiceError
from app.imaging.decode import decode_image
from app.imaging.image import DecodedImage
from app.imaging.png16 import write_png16
from bench.serving import (
    emit,
)
from model.synthetic import natural_like_image

MAX_PIXELS = 1 << 20  # keeps every decode fast; the pixel-limit check itself is one of the paths fuzzed
INTERESTING_U32 = (0, 1, 2, 0x7F, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def seeds() -> dict[str, bytes]:
    """Small valid files covering the decoder's branches."""
    rgb = Image.fromarray(natural_like_image(12, 16, seed=4))
    rgba = Image.fromarray(np.dstack([natural_like_image(12, 16, seed=5), np.full((12, 16), 200, np.uint8)]))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise
    deep = natural_like_image(8, 10, seed=6).astype(np.uint16) * 257
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return {
        "png_rgb": _save(rgb, "PNG"),
        "png_rgba": _save(rgba, "PNG"),
        "png_grey": _save(rgb.convert("L"), "PNG"),
        "png_palette_trns": _save(palette, "PNG", transparency=0),
        "png_16bit_rgb": write_png16(deep, None),
        "png_16bit_grey": write_png16(deep[..., :1], None),
        "apng": _save(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "jpeg": _save(rgb, "JPEG", quality=80),
        "jpeg_progressive_exif": _save(rgb, "JPEG", quality=70, progressive=True, exif=exif.tobytes()),
        "jpeg_cmyk": _save(rgb.convert("CMYK"), "JPEG"),
        "webp_lossy": _save(rgb, "WEBP", quality=60),
        "webp_lossless_alpha": _save(rgba, "WEBP", lossless=True),
    }


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC that lies wholly inside `data` (a mutated length may misalign them)."""
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        length = struct.unpack(">I", out[pos : pos + 4])[0]
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(out[pos + 4 : end]) & 0xFFFFFFFF)
        pos = end + 4
    return bytes(out)


@st.composite
def mutated(draw: st.DrawFn, corpus: dict[str, bytes]) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(corpus)))
    data = bytearray(corpus[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("flip", "run", "insert", "delete", "truncate", "u32", "u16")))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "run":
            run = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(run)] = run
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "u32":
            data[at : at + 4] = struct.pack(">I", draw(st.sampled_from(INTERESTING_U32)))
        elif kind == "u16":
            data[at : at + 2] = struct.pack(">H", draw(st.sampled_from((0, 1, 0x7FFF, 0xFFFF))))
    if name.startswith(("png", "apng")) and draw(st.booleans()):
        return name, fix_png_crcs(bytes(data))
    return name, bytes(data)


def check(image: DecodedImage) -> None:
    """What a successful decode must hand the model."""
    rgb = image.rgb
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype in (np.uint8, np.uint16), (rgb.shape, rgb.dtype)
    assert rgb.flags.c_contiguous and rgb.shape[0] * rgb.shape[1] <= MAX_PIXELS
    assert image.alpha is None or image.alpha.shape == rgb.shape[:2]


def fuzz(seconds: float, findings: Path, batch: int) -> dict[str, Any]:
    corpus = seeds()
    outcomes: Counter[str] = Counter()
    found: dict[str, str] = {}
    slowest: dict[str, Any] = {"seconds": 0.0, "seed": ""}
    last_bad: list[tuple[str, bytes, BaseException]] = []

    @settings(
        max_examples=batch,
        deadline=None,
        database=None,
        derandomize=False,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @given(mutated(corpus))
    def one(case: tuple[str, bytes]) -> None:
        name, data = case
        started = time.perf_counter()
        try:
            check(decode_image(data, max_pixels=MAX_PIXELS))
            outcomes["ok"] += 1
        except ServiceError as exc:
            outcomes[type(exc).__name__] += 1
        except BaseException as exc:
            outcomes["UNEXPECTED"] += 1
            last_bad.append((name, data, exc))
            raise
        finally:
            elapsed = time.perf_counter() - started
            if elapsed > slowest["seconds"]:
                slowest.update(seconds=elapsed, seed=name)

    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        try:
            one()
        except Exception:
            name, data, exc = last_bad[-1]  # the shrunk example is the last one that failed
            key = f"{type(exc).__name__}: {str(exc)[:120]}"
            if key not in found:
                findings.mkdir(parents=True, exist_ok=True)
                path = findings / f"{name}-{len(found)}.bin"
                path.write_bytes(data)
                found[key] = str(path)
    return {
        "seconds": seconds,
        "hypothesis_rounds": rounds,
        "inputs": sum(outcomes.values()),
        "outcomes": dict(outcomes.most_common()),
        "slowest_decode_s": slowest["seconds"],
        "slowest_seed": slowest["seed"],
        "findings": found,
        "seeds": {k: len(v) for k, v in corpus.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time box (default 60)")
    parser.add_argument("--batch", type=int, default=300, help="examples per hypothesis round")
    parser.add_argument(
        "--findings",
        type=Path,
        default=Path("/tmp/srgan-fuzz-findings"),
        help="where failing inputs are written (default %(default)s)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = fuzz(args.seconds, args.findings, args.batch)
    emit(result, args.json)
    return 1 if result["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
