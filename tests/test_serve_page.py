"""The web page of `genforge serve`, driven in a real browser: Playwright for Python with Debian's
chromium against the real app (uvicorn on a free loopback port, the tiny cvae + cgan runs and
detector of the `serve_runs` fixture).

One walk through the page, as a person would: sample a grid, reuse an image's seed, paint a mask
with the mouse and inpaint, drag a direction slider (and move one with the keyboard), drop an
image on the detector, and see a server error shown by the field that caused it. A second check
opens the page on a phone-sized touch screen. Nothing in the browser's console may be an error,
except the one failed request the error step asks for.

Screenshots for the docs are written only with GENFORGE_SCREENSHOTS=1 (so CI does not rewrite
them): docs/images/serve-page.png (the page after sampling), serve-inpaint.png, serve-detect.png
and serve-phone.png, from the walk on the tiny test runs. Their few training steps draw noise;
for pictures worth showing, name a trained run too and the page, inpaint and phone screenshots
come from it (a GAN: its inpainting runs as a job):

    GENFORGE_SCREENSHOTS=1 .venv/bin/python -m pytest -q tests/test_serve_page.py
    make demo && GENFORGE_SCREENSHOTS=1 GENFORGE_SCREENSHOT_RUN=runs/demo-cgan-fashion-mnist \
        .venv/bin/python -m pytest -q tests/test_serve_page.py
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
SHOTS = os.environ.get("GENFORGE_SCREENSHOTS") == "1"
SHOT_RUN = os.environ.get("GENFORGE_SCREENSHOT_RUN")  # a trained run for the page and inpaint screenshots
TIMEOUT_MS = 20_000  # per wait; the whole file runs in well under a minute

if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: CI installs it (apt-get install chromium) for the browser test")
    pytest.skip(f"the browser test needs Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install playwright)")
uvicorn = pytest.importorskip("uvicorn", reason="genforge serve needs uvicorn (pip install genforge[serve])")


@contextmanager
def running(app):
    """`app` served by uvicorn on a free loopback port in a background thread: its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()


def paint_on_first_test_image(page, start: tuple[float, float], move: tuple[float, float], steps: int) -> None:
    """Picks the first test image into slot A and paints one mouse stroke on the mask canvas, from
    `start` by `move` (fractions of the canvas's width and height)."""
    page.click("#test-load")
    page.wait_for_selector("#test-grid .cell")
    page.click("#test-grid .cell:first-child")
    page.wait_for_function("document.querySelector('#slot-a-image').src.startsWith('data:image/png')")
    page.locator("#mask-canvas").scroll_into_view_if_needed()  # the mouse acts in the viewport
    canvas = page.locator("#mask-canvas").bounding_box()
    x0, y0 = canvas["x"] + canvas["width"] * start[0], canvas["y"] + canvas["height"] * start[1]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + canvas["width"] * move[0], y0 + canvas["height"] * move[1], steps=steps)
    page.mouse.up()


@pytest.fixture(scope="module")
def registry(serve_runs):
    from genforge.serve.registry import Registry
    return Registry.load([serve_runs["cvae"], serve_runs["cgan"]], serve_runs["detector"])


@pytest.fixture(scope="module")
def server(registry):
    """The real app (no API key) serving the cvae, the cgan and the detector."""
    from genforge.serve.app import create_app
    from genforge.serve.config import ServeConfig
    with running(create_app(ServeConfig(), registry)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              headless=True)
        yield b
        b.close()


class Console:
    """The browser console's errors (and uncaught page errors), each with the step it happened in."""

    def __init__(self, page):
        self.step = "load"
        self.errors: list[tuple[str, str]] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append((self.step, m.text)))
        page.on("pageerror", lambda e: self.errors.append((self.step, f"uncaught: {e}")))

    def unexpected(self, allowed: dict[str, str]) -> list[tuple[str, str]]:
        """Errors other than those `allowed` ({step: regex of the message}) in their own step."""
        return [(s, t) for s, t in self.errors if not (s in allowed and re.search(allowed[s], t))]


def digit_png(path: Path, index: int = 0) -> Path:
    """A real MNIST test digit as a PNG file, to upload."""
    from PIL import Image

    from genforge.data import load_dataset
    images = load_dataset("mnist", "test").images[index]  # (1, 28, 28) uint8
    Image.fromarray(images[0].numpy()).save(path)
    return path


def edit_result(page) -> None:
    """Waits for an edit's result image; fails at once with the message if the page shows an error."""
    page.wait_for_function("document.querySelector('#edit-images img.edited') || "
                           "[...document.querySelectorAll('#edit .field-error, #edit .section-error')]"
                           ".some(e => e.textContent)")
    errors = [t for t in page.locator("#edit .field-error, #edit .section-error").all_inner_texts() if t]
    assert errors == [], f"the edit answered an error: {errors}"


def image_src(page, selector: str) -> str:
    return page.eval_on_selector(selector, "img => img.getAttribute('src') || ''")


def png_pixels(src: str) -> bytes:
    """The decoded pixels of a data: URL's PNG."""
    import base64
    import io

    from PIL import Image
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
        return im.tobytes()


def test_page_samples_edits_traverses_and_detects(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    console = Console(page)
    page.goto(server + "/")

    # the model picker lists the runs; the cvae's facts show; its sections are offered
    page.wait_for_selector("#model option[value=cvae]", state="attached")
    page.select_option("#model", "cvae")
    info = page.inner_text("#model-info")
    assert "cvae" in info and "28×28" in info and "10 classes" in info
    assert page.is_visible("#edit") and page.is_visible("#detect") and page.is_visible("#label")
    assert page.is_hidden("#search-steps")  # an autoencoder inverts by its encoder: no latent search

    # sample: 12 images, seeds 40..51, each its own request gathered by the server
    console.step = "sample"
    page.fill("#seed", "40")
    page.fill("#count", "12")
    page.fill("#temperature", "1")
    page.click("#sample-button")
    page.wait_for_function("document.querySelectorAll('#grid .cell img').length === 12")
    assert page.eval_on_selector_all("#grid .cell", "cells => cells.map(c => c.dataset.seed)") == \
        [str(s) for s in range(40, 52)]
    if SHOTS and not SHOT_RUN:
        page.screenshot(path=str(DOCS_IMAGES / "serve-page.png"), full_page=True)

    # clicking image 5 makes its seed the field's: the grid sampled from it starts with that image
    fifth = image_src(page, "#grid .cell:nth-child(6) img")
    page.click("#grid .cell:nth-child(6)")
    assert page.input_value("#seed") == "45"
    page.click("#sample-button")
    page.wait_for_function("document.querySelectorAll('#grid .cell[data-seed]').length === 12 && "
                           "document.querySelector('#grid .cell').dataset.seed === '45'")
    # the same pixels (each signed PNG holds its own creation time, so not the same bytes)
    assert png_pixels(image_src(page, "#grid .cell:first-child img")) == png_pixels(fifth), \
        "the clicked image's seed did not reproduce it"

    # directions: the sliders start from the grid's first image; dragging one with the mouse changes it
    console.step = "directions"
    page.wait_for_selector("#sliders input[type=range]")
    page.wait_for_function("document.querySelector('#traverse-caption').textContent.startsWith('seed 45') && "
                           "!document.querySelector('#traverse-image').hasAttribute('aria-busy')")
    before = image_src(page, "#traverse-image")
    assert before.startswith("blob:")
    page.locator("#direction-0").scroll_into_view_if_needed()
    box = page.locator("#direction-0").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    assert float(page.input_value("#direction-0")) > 2
    page.wait_for_function(f"document.querySelector('#traverse-image').getAttribute('src') !== '{before}'")
    # ... and the keyboard moves a slider too
    after_drag = page.locator("#traverse-image").get_attribute("src")
    page.focus("#direction-1")
    page.keyboard.press("ArrowRight")
    assert page.input_value("#direction-1") == "0.1"
    page.wait_for_function(f"document.querySelector('#traverse-image').getAttribute('src') !== '{after_drag}'")
    page.wait_for_function("document.querySelector('#traverse-image').alt.includes('d2 +0.1')")

    # edit: pick a test image into slot A, paint a mask with the mouse, inpaint
    console.step = "inpaint"
    paint_on_first_test_image(page, start=(0.3, 0.35), move=(0.4, 0.3), steps=10)
    painted = page.evaluate("""() => {
        const c = document.querySelector('#mask-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 150 && d[i + 1] < 120) n++;
        return n / (c.width * c.height);
    }""")
    assert painted > 0.02, f"the stroke painted {painted:.1%} of the canvas"
    page.click("#op-inpaint")
    edit_result(page)
    assert image_src(page, "#edit-images img.edited").startswith("data:image/png;base64,")
    assert page.inner_text("#edit .section-error") == ""
    assert page.get_attribute("#edit-result", "data-op") == "inpaint"
    assert page.locator("#edit-images .hole").count() == 1  # the input with its hole, between before and after
    if SHOTS and not SHOT_RUN:
        page.locator("#edit").screenshot(path=str(DOCS_IMAGES / "serve-inpaint.png"))

    # swap class: the class chosen in the select; interpolate A -> B: an animated strip of frames
    page.select_option("#swap-to", "3")
    page.click("#op-swap")
    page.wait_for_function("document.querySelector('#edit-result').dataset.op === 'swap-class'")
    edit_result(page)
    page.check("#slot-b")
    page.click("#test-grid .cell:nth-child(2)")
    page.wait_for_function("document.querySelector('#slot-b-image').src.startsWith('data:image/png')")
    page.fill("#interp-steps", "6")
    page.click("#op-interpolate")
    page.wait_for_function("document.querySelector('#edit-result').dataset.op === 'interpolate'")
    assert page.locator("#player-strip img").count() == 6
    page.focus("#player-frame")  # stepping through the frames by hand pauses the animation
    page.keyboard.press("Home")
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    assert page.get_attribute("#player-toggle", "aria-pressed") == "false"
    assert page.get_attribute("#player-image", "src") == page.get_attribute("#player-strip img:nth-child(5)", "src")

    # detect: an uploaded digit gets a probability, a verdict and a heatmap
    console.step = "detect"
    page.set_input_files("#detect-files", str(digit_png(tmp_path / "digit.png")))
    page.wait_for_selector("#detect-results .card")
    probability = page.inner_text("#detect-results .probability")
    value = float(re.search(r"([\d.]+)%", probability).group(1))
    assert 0 <= value <= 100
    assert page.locator("#detect-results .card img").count() == 2  # the upload and its heatmap
    assert page.inner_text("#detect-results .card h3") == "digit.png"
    # ... and images dropped on the drop zone are judged too
    dropped = [base64.b64encode(digit_png(tmp_path / f"drop{i}.png", i + 1).read_bytes()).decode() for i in range(2)]
    page.evaluate("""(files) => {
        const transfer = new DataTransfer();
        files.forEach((b64, i) => transfer.items.add(new File([Uint8Array.from(atob(b64), c => c.charCodeAt(0))],
                                                              `dropped-${i}.png`, {type: 'image/png'})));
        const zone = document.querySelector('#drop');
        for (const type of ['dragenter', 'dragover', 'drop'])
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", dropped)
    page.wait_for_function("document.querySelectorAll('#detect-results .card').length === 2")
    assert page.locator("#detect-results .card h3").all_inner_texts() == ["dropped-0.png", "dropped-1.png"]
    if SHOTS:
        page.locator("#detect").screenshot(path=str(DOCS_IMAGES / "serve-detect.png"))

    # an error from the server is shown by the field that caused it, not as an alert
    console.step = "bad-temperature"
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.fill("#count", "1")
    page.fill("#temperature", "0")
    page.click("#sample-button")
    error = page.locator('#sample [data-error-for="temperature"]')
    error.wait_for(state="visible")
    assert "greater than 0" in error.inner_text()  # the server's 422 message, by the field it named
    assert page.get_attribute("#temperature", "aria-invalid") == "true"
    assert page.inner_text("#sample .section-error") == ""
    assert dialogs == [], "errors are shown on the page, never as an alert"

    # a GAN edits by latent search: a job with a progress bar, and its Cancel button stops it
    console.step = "job"
    page.select_option("#model", "cgan")
    page.wait_for_function("document.querySelector('#model-info').textContent.startsWith('cgan')")
    assert page.is_visible("#search-steps")  # latent search's steps: shown for a GAN only
    page.click("#test-load")
    page.wait_for_selector("#test-grid .cell")
    page.click("#test-grid .cell:nth-child(2)")
    page.fill("#box", "7,7,21,21")  # the keyboard's way to mark the mask
    page.fill("#search-steps", "1000")
    page.click("#op-inpaint")
    page.wait_for_function("document.querySelector('#job-progress').value > 0 || "
                           "[...document.querySelectorAll('#edit .field-error, #edit .section-error')]"
                           ".some(e => e.textContent)")
    assert [t for t in page.locator("#edit .field-error, #edit .section-error").all_inner_texts() if t] == []
    page.click("#job-cancel")
    page.wait_for_function("document.querySelector('#edit-status').textContent === 'inpaint cancelled'")
    assert page.is_hidden("#job") and page.is_enabled("#op-inpaint")
    assert page.inner_text("#edit .section-error") == ""

    # the only console errors: the browser's note of the refused request in the error step
    assert console.unexpected({"bad-temperature": r"status of 422"}) == []
    page.close()


def test_page_fits_a_phone_and_paints_by_touch(server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    console = Console(page)
    page.goto(server + "/")
    page.wait_for_selector("#model option[value=cvae]", state="attached")
    page.select_option("#model", "cvae")
    page.fill("#seed", "7")
    page.fill("#count", "8")
    page.tap("#sample-button")
    page.wait_for_function("document.querySelectorAll('#grid .cell img').length === 8")
    if SHOTS and not SHOT_RUN:
        page.screenshot(path=str(DOCS_IMAGES / "serve-phone.png"))
    # one column: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    canvas = page.locator("#mask-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box["width"] <= 390
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    centre = page.evaluate("""() => {
        const c = document.querySelector('#mask-canvas');
        const d = c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data;
        return [d[0], d[1], d[2]];
    }""")
    assert centre[0] > 150 and centre[1] < 120, f"a tap did not paint the mask: {centre}"
    assert console.unexpected({}) == []
    context.close()


def test_page_asks_for_the_api_key_and_keeps_it_in_the_tab(registry, browser):
    from genforge.serve.app import create_app
    from genforge.serve.config import ServeConfig
    key = "page-test-key-0123456789"
    with running(create_app(ServeConfig(api_key=key), registry)) as url:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        console = Console(page)
        page.goto(url + "/")
        page.wait_for_selector("#auth:not([hidden])")  # /v1/models answered 401: the key field shows
        assert page.evaluate("document.activeElement.id") == "api-key"
        console.step = "wrong-key"
        page.fill("#api-key", "not-the-key-but-long-enough")
        page.click("#auth-form button")
        page.wait_for_function("document.querySelector('#auth [data-error-for=api_key]').textContent"
                               ".includes('refused')")
        assert page.is_visible("#auth")
        console.step = "key"
        page.fill("#api-key", key)
        page.click("#auth-form button")
        page.wait_for_selector("#model option[value=cvae]", state="attached")
        page.wait_for_selector("#auth", state="hidden")
        assert page.evaluate("[sessionStorage.getItem('genforge-api-key'), localStorage.length]") == [key, 0]
        # the key goes with every call: a sample answers
        page.fill("#seed", "3")
        page.fill("#count", "2")
        page.click("#sample-button")
        page.wait_for_function("document.querySelectorAll('#grid .cell img').length === 2")
        assert console.unexpected({"load": r"status of 401", "wrong-key": r"status of 401"}) == []
        page.close()


@pytest.mark.skipif(not (SHOTS and SHOT_RUN), reason="screenshots of a trained run: set GENFORGE_SCREENSHOTS=1 "
                    "and GENFORGE_SCREENSHOT_RUN=RUN_DIR")
def test_page_screenshots_of_a_trained_run(browser):
    """docs/images/serve-page.png, serve-inpaint.png and serve-phone.png from a trained run."""
    from genforge.serve.app import create_app
    from genforge.serve.config import ServeConfig
    from genforge.serve.registry import Registry
    registry = Registry.load([SHOT_RUN])
    name = registry.names[0]
    with running(create_app(ServeConfig(), registry)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(120_000)  # a GAN's inpainting: a latent search on the CPU
        console = Console(page)
        page.goto(url + "/")
        page.wait_for_selector(f"#model option[value='{name}']", state="attached")
        page.fill("#seed", "1")
        page.fill("#count", "32")
        page.click("#sample-button")
        page.wait_for_function("document.querySelectorAll('#grid .cell img').length === 32")
        page.click("#grid .cell:nth-child(3)")
        if "directions" in registry.capabilities(name):
            page.wait_for_selector("#sliders input[type=range]")
            page.focus("#direction-0")
            for _ in range(15):
                page.keyboard.press("ArrowRight")
            page.wait_for_function("document.querySelector('#traverse-image').alt.includes('d1 +1.5') && "
                                   "!document.querySelector('#traverse-image').hasAttribute('aria-busy')")
        page.screenshot(path=str(DOCS_IMAGES / "serve-page.png"), full_page=True)
        paint_on_first_test_image(page, start=(0.25, 0.3), move=(0.5, 0.35), steps=12)
        page.click("#op-inpaint")
        edit_result(page)
        page.locator("#edit").screenshot(path=str(DOCS_IMAGES / "serve-inpaint.png"))
        assert console.unexpected({}) == []
        page.close()
        context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
        phone = context.new_page()
        phone.goto(url + "/")
        phone.wait_for_selector(f"#model option[value='{name}']", state="attached")
        phone.fill("#seed", "1")
        phone.fill("#count", "16")
        phone.tap("#sample-button")
        phone.wait_for_function("document.querySelectorAll('#grid .cell img').length === 16")
        phone.screenshot(path=str(DOCS_IMAGES / "serve-phone.png"))
        context.close()
