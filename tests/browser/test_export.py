"""Export in the top bar, in headless Chromium against a real console with
the demo running: the API metrics page exported as a ZIP and as one HTML
report holds the grid's rows as the user filtered them, a real PNG of every
chart on the page and a cover naming the page, range and filters."""
from __future__ import annotations

import base64
import csv
import io
import re
import zipfile

import pytest

from tests.browser.conftest import VIEWPORTS, screenshot_dir, wait_js
from tests.browser.test_pages import _set_theme

PNG = b"\x89PNG\r\n\x1a\n"


def _ready(page, console: str) -> None:
    """/endpoints with the demo's endpoints in the grid and its charts drawn."""
    page.goto(f"{console}/endpoints")
    page.wait_for_selector("#endpoints-table .ag-row", timeout=30000)
    wait_js(page, "document.querySelectorAll("
                    "'#shell-content .js-plotly-plot .main-svg').length >= 3")


def _grid_endpoints(page) -> set[str]:
    return set(page.locator("#endpoints-table .ag-row [col-id='endpoint']").all_inner_texts())


def _download(page, fmt: str) -> bytes:
    with page.expect_download(timeout=120000) as info:
        page.click("#shell-export")
        page.click(f"#shell-export-menu [data-format={fmt}]")
    with open(info.value.path(), "rb") as fh:
        return fh.read()


def test_export_endpoints_as_zip_and_html(signed_in, console):
    page, watch = signed_in
    _ready(page, console)
    # filter the grid the way a user does: only the order endpoints
    page.locator("#shell-content input[type=search]").first.fill("orders")
    wait_js(page, "[...document.querySelectorAll('#endpoints-table .ag-row "
                    "[col-id=endpoint]')].every(c => c.textContent.includes('orders'))", 10)
    shown = _grid_endpoints(page)
    assert shown and all("orders" in e for e in shown)
    charts = page.locator("#shell-content .js-plotly-plot").count()

    data = _download(page, "zip")
    zf = zipfile.ZipFile(io.BytesIO(data))
    names = zf.namelist()
    cover = zf.read("cover.txt").decode()
    assert "Ops Console report: API metrics" in cover
    assert "Time range:  1 h" in cover and "By:          admin" in cover
    assert "Search rows in Endpoints: orders" in cover
    pngs = [n for n in names if n.startswith("charts/")]
    assert len(pngs) == charts == 3
    assert all(zf.read(n).startswith(PNG) for n in pngs)
    rows = list(csv.DictReader(io.StringIO(
        zf.read("tables/01-endpoints.csv").decode("utf-8-sig"))))
    # the grid's visible rows, not the whole table
    assert {r["Endpoint"] for r in rows} == shown
    assert all(int(r["Requests"]) > 0 for r in rows)
    assert "tables/02-recent-errors.csv" in names

    # a toast says it is ready; the button is usable again
    page.wait_for_selector(".ops-toast", timeout=5000)
    assert "api-metrics-" in page.inner_text(".ops-toasts")
    assert page.locator("#shell-export").is_enabled()

    report = _download(page, "html").decode()
    assert "<h1>API metrics</h1>" in report and "<script" not in report.lower()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', report)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(PNG) for i in images)
    for endpoint in shown:
        assert f"<td>{endpoint.replace('<', '&lt;').replace('>', '&gt;')}</td>" in report
    watch.assert_clean("/endpoints export")


def test_export_overview_html(signed_in, console):
    page, watch = signed_in
    page.goto(f"{console}/")
    page.wait_for_selector("#overview-cards")
    wait_js(page, "document.querySelectorAll("
                    "'#shell-content .js-plotly-plot .main-svg').length >= 1")
    report = _download(page, "html").decode()
    assert "<h1>Overview</h1>" in report
    assert len(re.findall(r'src="data:image/png;base64,', report)) == page.locator(
        "#shell-content .js-plotly-plot").count()
    watch.assert_clean("/ export")


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_export_menu(signed_in, console, tmp_path_factory, theme, viewport):
    """The menu opens from the top bar at every width, closes with Escape
    and on an outside click; a screenshot of it open for the README."""
    page, watch = signed_in
    width, height = VIEWPORTS[viewport]
    page.set_viewport_size({"width": width, "height": height})
    _ready(page, console)
    _set_theme(page, theme)
    menu = page.locator("#shell-export-menu")
    assert not menu.is_visible()
    page.click("#shell-export")
    assert menu.is_visible()
    assert page.get_attribute("#shell-export", "aria-expanded") == "true"
    box = menu.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px"
    assert page.evaluate("document.activeElement.dataset.format") == "zip"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.format") == "html"
    page.wait_for_timeout(200)
    page.screenshot(path=str(screenshot_dir(tmp_path_factory)
                             / f"export-menu-{theme}-{viewport}.png"), animations="disabled")
    page.keyboard.press("Escape")
    assert not menu.is_visible()
    assert page.evaluate("document.activeElement.id") == "shell-export"
    page.click("#shell-export")
    page.mouse.click(width // 2, height - 4)   # anywhere outside the menu
    assert not menu.is_visible()
    watch.assert_clean(f"export menu ({theme}, {viewport})")
