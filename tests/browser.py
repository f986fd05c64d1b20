"""Headless Chromium (the system's, driven by Playwright; no browser download) on the
`rtseg view` page, for tests/test_view.py and benchmarks/screenshot_viewer.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT_MS = 90_000  # a first overlay on a busy 2-core machine


@contextmanager
def chromium_page(width: int = 760, height: int = 620) -> Iterator[object]:
    """A Playwright page in headless Chromium; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def shown_seq(page, name: str) -> int | None:
    """The seq the page shows for camera `name` (None while it waits)."""
    text = page.locator(f'section[data-name="{name}"] [data-key="seq"]').inner_text()
    return int(text) if text.isdigit() else None


def wait_for_new_seq(page, name: str, after: int | None, timeout_ms: int = WAIT_MS) -> int:
    """Wait until the page shows a seq other than `after` and the overlay `<img>` has
    pixels; returns that seq."""
    page.wait_for_function(
        """([name, after]) => {
            const s = document.querySelector(`section[data-name="${name}"]`);
            const seq = s.querySelector('[data-key="seq"]').textContent;
            const img = s.querySelector('img.overlay');
            return /^[0-9]+$/.test(seq) && seq !== String(after) && img.naturalWidth > 0;
        }""", arg=[name, after], timeout=timeout_ms)
    return shown_seq(page, name)


def overlay_png(page, name: str) -> bytes:
    """A PNG screenshot of camera `name`'s overlay image as the browser shows it."""
    return page.locator(f'section[data-name="{name}"] img.overlay').screenshot()


def wait_for_other_overlay(page, name: str, before: bytes, timeout_s: float = 60.0) -> bytes:
    """Screenshot the overlay until it differs from `before` (the MJPEG moved on)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shot = overlay_png(page, name)
        if shot != before:
            return shot
        page.wait_for_timeout(100)  # let the browser paint the next part
    raise AssertionError(f"the overlay of {name} did not change within {timeout_s} s")
