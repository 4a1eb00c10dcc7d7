"""Time to decode a 16-bit RGB PNG with `decode_image`, in this checkout or another one (`--repo`).

The PNG is written by libpng (imagecodecs) with its adaptive row filters, Paeth among them, the costly
case for a per-pixel decoder; the median of `--repeat` decodes is reported.

    python -m bench.decode_png16 --side 1024
    python -m bench.decode_png16 --side 1024 --repo /tmp/before
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import imagecodecs
import numpy as np

from bench.serving import REPO, emit, machine
from model.synthetic import natural_like_image

# Run in the checkout under test, so that its own decode_image is timed.
_TIMER = """
import json, statistics, sys, time
from app.imaging.decode import decode_image
data = open(sys.argv[1], "rb").read()
times = []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    decode_image(data, max_pixels=1 << 30)
    times.append(time.perf_counter() - started)
print(json.dumps({"median_s": statistics.median(times), "min_s": min(times)}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    deep = natural_like_image(args.side, args.side, 7).astype(np.uint16) * 257
    deep += np.random.default_rng(7).integers(0, 256, deep.shape, dtype=np.uint16)  # real 16-bit detail
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "deep.png"
        source.write_bytes(bytes(imagecodecs.png_encode(deep)))
        done = subprocess.run([sys.executable, "-c", _TIMER, str(source), str(args.repeat)], cwd=args.repo,
                              capture_output=True, text=True, check=True)
        size = source.stat().st_size
    emit({"machine": machine(), "repo": str(args.repo), "image": f"{args.side}x{args.side} RGB 16-bit PNG, "
          f"{size // 1024} KiB", **json.loads(done.stdout)}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
