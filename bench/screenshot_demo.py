"""Screenshots of the demo page for the README: `docs/img/demo.png` (before/after) and `docs/img/compare.png`.

Starts `srgan serve` with real weights (the shipped ones by default), drives the system Chromium with
Playwright, and uploads a Set14 image: its ×4 bicubic reduction for the before/after view (so the model
restores a realistic low-resolution input), and a crop of the original for the comparison.

    python bench/screenshot_demo.py [--weights model/weights] [--image PATH] [--model srgan] [--out docs/img]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

from model.registry import REGISTRY

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = REPO.parent / "shared" / "datasets" / "eval" / "Set14" / "monarch.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def start_server(weights: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SRGAN_DEVICE": os.environ.get("SRGAN_DEVICE", "auto"),
           "SRGAN_WEIGHTS_DIR": str(weights), "SRGAN_API_KEYS": "", "SRGAN_REQUEST_TIMEOUT_S": "600"}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                                   cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"srgan serve did not become ready:\n{log.read_text()[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=REPO / "model" / "weights",
                        help="folder with the registered models' weights files")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="a high-resolution picture")
    parser.add_argument("--model", choices=REGISTRY.names(), default=REGISTRY.default.name)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--chromium", default=os.environ.get("SRGAN_TEST_CHROMIUM")
                        or shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    hr = Image.open(args.image).convert("RGB")
    width, height = hr.width // 4 * 4, hr.height // 4 * 4
    lr = hr.crop((0, 0, width, height)).resize((width // 4, height // 4), Image.Resampling.BICUBIC)
    side = min(hr.width, hr.height, 240)
    left, top = (hr.width - side) // 2, (hr.height - side) // 2
    detail = hr.crop((left, top, left + side, top + side))
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        lr_path = Path(tmp) / f"{args.image.stem}.png"
        detail_path = Path(tmp) / f"{args.image.stem}_detail.png"
        lr.save(lr_path)
        detail.save(detail_path)
        process, base = start_server(args.weights, Path(tmp) / "serve.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
                page.set_default_timeout(600_000)
                page.emulate_media(color_scheme="light", reduced_motion="reduce")
                page.goto(f"{base}/")
                page.wait_for_selector("#ready.ok")

                page.set_input_files("#file", lr_path)
                page.check(f"input[name=model][value={args.model}]")
                page.click("#btn-upscale")
                page.wait_for_selector("#upscale-result:not([hidden])")
                page.evaluate("window.scrollTo(0, 0)")
                page.locator("#upscale-result").screenshot(path=str(args.out / "demo.png"))

                page.set_input_files("#file", detail_path)
                page.click("#btn-compare")
                page.wait_for_selector("#compare-result:not([hidden]) .panel")
                page.locator("#compare-result").screenshot(path=str(args.out / "compare.png"))
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"wrote {args.out / 'demo.png'} and {args.out / 'compare.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
