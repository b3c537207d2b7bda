"""End to end in headless Chromium (Debian's ``chromium`` driven by Playwright's Python
package, no browser download): open the page, load the bundled shapes example, draw a box
with two clicks, ask, and see the answer and the mask overlay; bad input shows a message in
the page and the page goes on working. Screenshots are saved under the test's tmp dir and
``test-artifacts/serve/`` (gitignored); their paths are printed.

Needs ``scripts/ci-browser-setup.sh``; skipped, with the reason, only when chromium or
Playwright's package is absent.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "serve"
TIMEOUT_MS = 120_000

pytestmark = pytest.mark.slow


def _need_browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not installed ({CHROMIUM}); run scripts/ci-browser-setup.sh")
    return pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed; run scripts/ci-browser-setup.sh"
    )


@pytest.fixture(scope="module")
def page(server):
    sync_api = _need_browser()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        context = browser.new_context(viewport={"width": 1400, "height": 950})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server["url"], wait_until="load")
        page.wait_for_selector("#mimo-examples button")
        try:
            yield page
        finally:
            browser.close()


def _save(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)
    print(f"screenshot: {path} (copied to {ARTIFACTS / name})")
    return path


def _viewer_png(page) -> np.ndarray:
    """The viewer's current picture, as the browser received it."""
    src = page.get_attribute("#mimo-viewer img", "src")
    data = page.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _click_image(page, x: float, y: float, image_width: int) -> None:
    """Click image pixel (x, y) of an ``image_width``-wide image shown in the viewer."""
    page.wait_for_function(
        "() => { const i = document.querySelector('#mimo-viewer img'); return i && i.complete && i.naturalWidth > 0; }"
    )
    left, top, width, height, nat_w, nat_h = page.evaluate(
        """() => { const i = document.querySelector('#mimo-viewer img'); const r = i.getBoundingClientRect();
                   return [r.left, r.top, r.width, r.height, i.naturalWidth, i.naturalHeight]; }"""
    )
    r = min(width / nat_w, height / nat_h, 1)  # how Gradio maps a click to the image
    offset_x, offset_y = (width - nat_w * r) / 2, (height - nat_h * r) / 2
    scale = nat_w / image_width
    page.mouse.click(left + offset_x + (x + 0.5) * scale * r, top + offset_y + (y + 0.5) * scale * r)


def _upload(page, path: Path) -> None:
    """Upload ``path`` through the file box (cleared first when it holds a file)."""
    clear = page.locator("#mimo-upload button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
        page.wait_for_selector("#mimo-upload input[type=file]", state="attached")
    page.set_input_files("#mimo-upload input[type=file]", str(path))


def _status_has(page, text: str) -> None:
    page.wait_for_function(
        "t => document.querySelector('#mimo-status').innerText.includes(t)", arg=text, timeout=TIMEOUT_MS
    )


def test_example_box_question_answer_and_overlay(page, serve_model, tmp_path):
    page.locator("#mimo-examples button", has_text="Shapes").click()
    page.wait_for_function("() => document.querySelector('#mimo-info').innerText.includes('shapes.png')")
    page.wait_for_selector("#mimo-viewer img")
    _status_has(page, "no prompts")
    before = _viewer_png(page)
    assert before.shape[:2] == (768, 768)  # the 64 px example, enlarged for the screen

    x0, y0, x1, y1 = serve_model["boxes"]["square"]
    _click_image(page, x0, y0, 64)
    _status_has(page, "opposite corner")
    _click_image(page, x1, y1, 64)
    _status_has(page, "1 box")
    with_box = _viewer_png(page)
    yellow = (with_box[..., 0] > 200) & (with_box[..., 1] > 180) & (with_box[..., 2] < 60)
    ys, xs = np.nonzero(yellow)
    scale = 768 / 64
    assert abs(xs.min() / scale - x0) < 1.5 and abs(ys.max() / scale - (y1 + 1)) < 1.5  # box where clicked
    _save(page, tmp_path, "serve_box.png")

    page.fill("#mimo-question textarea", "What is in <region>?")
    page.click("#mimo-ask")
    page.wait_for_selector("#mimo-legend .mimo-answer")
    answer = page.inner_text("#mimo-legend .mimo-answer")
    assert "square" in answer  # the overfitted model names the boxed shape
    chat = page.inner_text("#mimo-chat")
    assert "What is in <region>?" in chat and "square" in chat
    # the grounded phrase is coloured like its mask, in the answer and the chat
    span = page.locator("#mimo-legend .mimo-seg").first
    color = span.evaluate("e => getComputedStyle(e).backgroundColor")
    assert color == "rgb(31, 119, 180)"
    assert page.locator("#mimo-chat .mimo-seg").count() >= 1
    after = _viewer_png(page)
    assert after.shape == before.shape
    changed = np.abs(after.astype(int) - before.astype(int)).sum(-1) > 30
    assert changed.mean() > 0.005, "no mask overlay drawn"
    blue = (after[..., 2].astype(int) - after[..., 0].astype(int)) > 60
    assert blue.sum() > 100  # the first mask's colour is blue
    assert page.locator("#mimo-downloads").inner_text().count("turn01") >= 2
    _save(page, tmp_path, "serve_answer.png")

    # toggling the mask off removes the overlay
    page.locator("#mimo-masks label").first.click()
    page.wait_for_selector("#mimo-legend li.mimo-hidden")
    hidden = _viewer_png(page)
    assert np.abs(hidden.astype(int) - before.astype(int)).max() < 40


def test_bad_input_shows_a_message_and_the_page_goes_on(page, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image\n")
    _upload(page, bad)
    page.wait_for_function(
        "() => document.querySelector('#mimo-error')?.innerText.includes('Cannot open this file')"
    )
    assert "not a readable image" in page.inner_text("#mimo-error")

    corrupt = tmp_path / "corrupt.dcm"
    corrupt.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")
    _upload(page, corrupt)
    page.wait_for_function("() => document.querySelector('#mimo-error')?.innerText.includes('corrupt.dcm')")

    page.locator("#mimo-examples button", has_text="CT").click()
    page.wait_for_function("() => document.querySelector('#mimo-info').innerText.includes('abdomen_ct')")
    page.wait_for_selector("#mimo-slice", state="visible")  # a volume: slices and CT windows
    page.wait_for_selector("#mimo-window", state="visible")
    page.locator("#mimo-window label", has_text="lung").click()
    page.wait_for_function("() => document.querySelector('#mimo-info').innerText.includes('lung')")

    page.fill("#mimo-question textarea", "   ")
    page.click("#mimo-ask")
    page.wait_for_function(
        "() => document.querySelector('#mimo-error')?.innerText.includes('Type a question')"
    )
    page.fill("#mimo-question textarea", "Segment the square.")
    page.click("#mimo-ask")
    page.wait_for_selector("#mimo-legend .mimo-answer")
    assert page.locator("#mimo-error").is_hidden()
    _save(page, tmp_path, "serve_ct_after_errors.png")
