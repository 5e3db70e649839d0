"""The Profiler page in headless Chromium against a real console with the
demo app running (python app.py): start a short session from the page,
watch its live status, then read its hotspots, icicle chart, memory charts
and export links; no console errors, no sideways scrolling on a phone.

With OPS_PROFILER_SHOTS=<folder> it also saves light/dark, desktop/phone
screenshots there."""
from __future__ import annotations

import os
from pathlib import Path

from tests.browser.conftest import wait_js
from tests.browser.test_pages import _set_theme


def _wait_text(page, selector: str, text: str, timeout: float = 20_000) -> None:
    wait_js(page, 
        "([s, t]) => { const e = document.querySelector(s); return e && e.innerText.includes(t); }",
        arg=[selector, text], timeout=timeout)


def test_profile_a_session_from_the_page(signed_in, console):
    page, watch = signed_in
    page.goto(f"{console}/profiler")
    page.wait_for_selector("#profiler-status")
    _wait_text(page, "#profiler-status", "Idle")
    assert page.locator("#profiler-stop").is_disabled()

    page.fill("#profiler-duration", "3")
    page.click("#profiler-start")
    # Live status: the demo's process joins within about a second.
    _wait_text(page, "#profiler-status", "Running", timeout=10_000)
    assert page.locator("#profiler-start").is_disabled()
    assert not page.locator("#profiler-stop").is_disabled()

    # The duration ends it; the results replace the "results appear" note.
    _wait_text(page, "#profiler-status", "Idle", timeout=20_000)
    page.wait_for_selector("#profiler-hotspot-grid .ag-row", timeout=15_000)
    assert page.locator("#profiler-hotspot-grid .ag-row").count() > 0
    page.wait_for_selector("#profiler-icicle .main-svg")
    assert page.locator("#profiler-icicle g.slice").count() > 1
    page.wait_for_selector("#profiler-memory-size .main-svg")
    href = page.locator("#profiler-export-speedscope").get_attribute("href")
    assert href.endswith("/export?format=speedscope")

    # The export downloads with the browser's session (no token needed).
    with page.expect_download() as download:
        page.click("#profiler-export-csv")
    assert download.value.suggested_filename.endswith("-hotspots.csv")
    text = Path(download.value.path()).read_text()
    assert text.startswith("function,file,line,self_seconds")
    watch.assert_clean("profiler session")

    shots = os.environ.get("OPS_PROFILER_SHOTS")
    for theme in ("light", "dark"):
        for name, (width, height) in {"desktop": (1440, 900), "phone": (375, 812)}.items():
            page.set_viewport_size({"width": width, "height": height})
            _set_theme(page, theme)
            # Plotly redraws its figures for the new width after a debounce;
            # on a loaded machine that takes longer than a fixed pause.
            overflow = None
            for _ in range(25):
                page.wait_for_timeout(200)
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth")
                if overflow <= 1:
                    break
            assert overflow <= 1, f"scrolls sideways by {overflow}px at {width}px"
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=f"{shots}/profiler-{theme}-{name}.png", full_page=True,
                                animations="disabled")
    watch.assert_clean("profiler themes and widths")
