"""The demo page at GET /, driven in a real headless Chromium against a real `srgan serve` with tiny weights.

Needs the `playwright` Python package and a Chromium binary (no browser download: Debian's `chromium`
package, or the path in SRGAN_TEST_CHROMIUM). A missing one fails the test with the install line:
it never skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from model.synthetic import natural_like_image
from tests.api_helpers import png_bytes
from tests.live_server import live_server

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
METHODS = ("nearest", "bilinear", "bicubic", "srresnet", "srgan", "srgan-real")
TIMEOUT_MS = 60_000  # two shared CPUs: the first request also pays for compilation and warm caches


def find_chromium() -> str:
    chosen = os.environ.get("SRGAN_TEST_CHROMIUM")
    if chosen and not Path(chosen).is_file():
        pytest.fail(f"SRGAN_TEST_CHROMIUM={chosen} is not a file", pytrace=False)
    candidates = [chosen, "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
                  shutil.which("google-chrome")]
    for path in candidates:
        if path and Path(path).is_file():
            return path
    pytest.fail("no Chromium for the demo-page browser test: install it with `apt-get install -y chromium` "
                "(Debian/Ubuntu) or point SRGAN_TEST_CHROMIUM at a Chrome/Chromium binary", pytrace=False)


@pytest.fixture(scope="module")
def server(tiny_weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`srgan serve` on a free port with the tiny weights; yields its base URL once it is ready."""
    with live_server(tiny_weights_dir, tmp_path_factory.mktemp("serve"), api_keys="") as running:
        yield running.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the demo-page browser test needs Playwright: `pip install playwright` "
                    "(no `playwright install`: it drives the system Chromium)", pytrace=False)
    executable = find_chromium()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    """A fresh page on the demo; fails the test on any script error or any request that leaves the server."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    def on_request(request: Any) -> None:
        if not request.url.startswith((server, "data:", "blob:")):
            problems.append(f"external request: {request.url}")  # the page must work offline: no CDN

    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", on_console)
    page.on("request", on_request)
    page.goto(f"{server}/")
    page.wait_for_selector("#ready.ok")
    yield page
    context.close()
    # Chrome logs every 4xx/5xx response; the error test provokes those on purpose.
    unexpected = [p for p in problems if not re.search(r"status of (400|413|503)\b", p)]
    assert not unexpected, unexpected


def choose_file(page: Any, name: str, data: bytes, mime: str = "image/png") -> None:
    page.set_input_files("#file", files=[{"name": name, "mimeType": mime, "buffer": data}])


def test_upscale_shows_a_x4_result_with_a_keyboard_slider_and_a_download(page: Any) -> None:
    choose_file(page, "scene.png", png_bytes(natural_like_image(40, 48, seed=3)))
    page.wait_for_function("document.getElementById('file-meta').textContent.includes('192×160')")
    page.check("input[name=model][value=srresnet]")
    page.evaluate("""() => {
        window.progressSeen = [];
        const bar = document.getElementById('progress'), text = document.getElementById('progress-text');
        const record = () => window.progressSeen.push([bar.hasAttribute('value'), text.textContent]);
        new MutationObserver(record).observe(document.getElementById('progress-card'),
                                             {subtree: true, childList: true, attributes: true});
    }""")
    page.click("#btn-upscale")
    page.wait_for_selector("#upscale-result:not([hidden])")
    seen = page.evaluate("window.progressSeen")
    assert any(determinate and text.startswith("Uploading") for determinate, text in seen), seen
    assert any(not determinate and "on the server" in text for determinate, text in seen), seen

    size = page.eval_on_selector("#after-img", "img => [img.naturalWidth, img.naturalHeight]")
    assert size == [192, 160]
    assert page.eval_on_selector("#before-img", "img => img.naturalWidth") == 48
    assert page.text_content("#after-tag") == "SRResNet ×4"
    assert "192×160" in page.text_content("#ur-meta")
    download = page.locator("#download")
    assert download.get_attribute("href").startswith("blob:")
    assert download.get_attribute("download") == "scene_x4_srresnet.png"
    assert page.evaluate("document.getElementById('progress-card').hidden")

    handle = page.locator("#handle")
    handle.focus()
    page.keyboard.press("ArrowLeft")
    assert handle.get_attribute("aria-valuenow") == "49"
    page.keyboard.press("Shift+ArrowRight")
    assert handle.get_attribute("aria-valuenow") == "59"
    page.keyboard.press("End")
    assert handle.get_attribute("aria-valuenow") == "100"

    fit_width = page.eval_on_selector("#after-img", "img => img.getBoundingClientRect().width")
    page.focus("#ba-stage")
    page.keyboard.press("+")
    zoomed = page.eval_on_selector_all("#ba-stage img", """imgs => imgs.map(i =>
        [i.getBoundingClientRect().width, i.classList.contains('pixelated')])""")
    assert zoomed[0][0] == pytest.approx(zoomed[1][0])
    assert zoomed[1][0] == pytest.approx(1.5 * fit_width, rel=0.01)
    assert zoomed[0][1], "the input must be enlarged with nearest neighbour (image-rendering: pixelated)"


def test_compare_shows_every_method_and_the_original_with_scores_and_a_shared_zoom(page: Any) -> None:
    choose_file(page, "scene.png", png_bytes(natural_like_image(40, 48, seed=4)))
    page.click("#btn-compare")
    page.wait_for_selector("#compare-result:not([hidden]) .panel")

    names = page.eval_on_selector_all("#cmp-grid .panel", "panels => panels.map(p => p.dataset.method)")
    assert names == [*METHODS, "original"]
    for name in METHODS:
        panel = page.locator(f'.panel[data-method="{name}"]')
        psnr = float(panel.locator(".psnr b").text_content())
        ssim = float(panel.locator(".ssim b").text_content())
        assert 0 < psnr < 100 and -1 <= ssim <= 1
        assert panel.locator("img").evaluate("img => [img.naturalWidth, img.naturalHeight]") == [48, 40]
    assert page.locator(".badge", has_text="best PSNR").count() >= 1
    # 40 pixels high: under NIQE's two 96x96 patches, each panel says n/a and, on hover, why.
    for name in (*METHODS, "original"):
        niqe = page.locator(f'.panel[data-method="{name}"] .niqe')
        assert niqe.locator("b").text_content() == "n/a"
        assert niqe.get_attribute("title").startswith("NIQE needs two 96x96 patches")
    assert page.locator(".badge", has_text="best NIQE").count() == 0

    box = page.locator('.panel[data-method="srgan"] .viewport').bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.3)
    page.mouse.wheel(0, -400)
    page.wait_for_function("document.querySelector('#cmp-grid .viewport').classList.contains('zoomed')")
    geometry = page.eval_on_selector_all("#cmp-grid .viewport img", """imgs => imgs.map(i =>
        [i.style.width, i.style.left, i.style.top])""")
    assert len(geometry) == len(METHODS) + 1 and all(g == geometry[0] for g in geometry), geometry
    assert float(geometry[0][0].removesuffix("px")) > box["width"] * 1.5


def test_compare_shows_each_niqe_labelled_lower_is_better(page: Any) -> None:
    choose_file(page, "scene.png", png_bytes(natural_like_image(112, 208, seed=4)))  # two NIQE patches
    with page.expect_response(lambda r: "/compare" in r.url) as compared:
        page.click("#btn-compare")
    body = compared.value.json()
    page.wait_for_selector("#compare-result:not([hidden]) .panel")

    assert "NIQE measures how natural an image looks" in page.text_content("#cmp-legend")
    assert "lower is better" in page.text_content("#cmp-legend")
    shown = {name: (m["niqe"], page.locator(f'.panel[data-method="{name}"] .niqe'))
             for name, m in ((m["name"], m) for m in body["methods"])}
    shown["original"] = (body["original_niqe"], page.locator('.panel[data-method="original"] .niqe'))
    for name, (value, niqe) in shown.items():
        assert isinstance(value, float), name
        assert niqe.locator("b").text_content() == f"{value:.2f}"
        assert niqe.get_attribute("title") == "NIQE: lower is better"
        assert niqe.text_content().endswith("(lower is better)")  # read out by screen readers
    lowest = min(body["methods"], key=lambda m: m["niqe"])["name"]
    badged = page.locator(".panel", has=page.locator(".badge", has_text="best NIQE"))
    assert badged.count() == 1 and badged.get_attribute("data-method") == lowest
    assert "lower is better" in page.text_content(".explain dl")


def test_errors_are_explained(page: Any) -> None:
    choose_file(page, "notes.png", b"these are my notes, not a picture\n" * 20)
    page.click("#btn-upscale")
    page.wait_for_selector("#error:not([hidden])")
    assert "not an image" in page.text_content("#error-title")
    assert "PNG, JPEG or WebP" in page.text_content("#error-message")
    assert page.get_attribute("#error", "role") == "alert"

    overloaded = json.dumps({"error": {"code": "queue_full", "message": "the queue is full"}})
    page.route("**/upscale*", lambda route: route.fulfill(
        status=503, body=overloaded, headers={"Content-Type": "application/json", "Retry-After": "7"}))
    choose_file(page, "scene.png", png_bytes(natural_like_image(24, 24)))
    page.click("#btn-upscale")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error-title") == "The service is busy"
    assert "try again in 7 s" in page.text_content("#error-message")
    assert page.is_disabled("#retry")

    too_large = json.dumps({"error": {"code": "too_large", "message": "4000x4000 is over 16 megapixels"}})
    page.unroute("**/upscale*")
    page.route("**/upscale*", lambda route: route.fulfill(
        status=413, body=too_large, headers={"Content-Type": "application/json"}))
    page.click("#btn-upscale")
    page.wait_for_function("document.getElementById('error-title').textContent === 'The image is too large'")
    assert "16 megapixels" in page.text_content("#error-detail")


def test_with_keys_the_page_asks_for_one_and_sends_it(
    browser: Any, tiny_weights_dir: Path, tmp_path: Path
) -> None:
    with live_server(tiny_weights_dir, tmp_path, api_keys="demo-key") as server:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{server.url}/")  # the page itself is open
        page.wait_for_function("document.getElementById('ready').textContent === 'Ready · enter the API key'")
        assert page.evaluate("document.getElementById('key-box').open")
        assert page.locator("input[name=model]").count() == 0  # the model list needs the key
        page.fill("#api-key", "demo-key")
        page.locator("#api-key").blur()
        page.wait_for_selector("input[name=model][value=srresnet]")
        # SRGAN_DTYPE=auto is bfloat16 on a CPU with bfloat16 arithmetic, float32 on others: the page
        # shows what the server reports, fetched with the key it was given.
        models = httpx.get(f"{server.url}/v1/models", headers={"X-API-Key": "demo-key"}).json()["models"]
        assert page.text_content("#ready") == f"Ready · cpu · {models[0]['dtype']}"
        choose_file(page, "scene.png", png_bytes(natural_like_image(16, 16)))
        page.click("#btn-upscale")
        page.wait_for_selector("#upscale-result:not([hidden])")
        assert page.eval_on_selector("#after-img", "img => img.naturalWidth") == 64
        context.close()
