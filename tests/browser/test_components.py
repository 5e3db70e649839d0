"""The shared components (dashapp/ui/components.py) driven by a user in
headless Chromium: grid sorting, search, CSV export and HTML safety; the
chart's PNG download; modal, typed confirm dialog and toasts; dark mode.

The components are shown by a small standalone app (components_app.py)
served from a thread of the test process: the product's assets, index
template and shell, but no sign-in, pages, Redis or database. Every test
fails on a browser console error or a request to another host.
"""
from __future__ import annotations

import csv
import io
import re
import threading
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from tests.browser import components_app as capp
from tests.browser.conftest import PageWatch, wait_js

OUTSIDE = re.compile(r"^(https?|wss?)://(?!127\.0\.0\.1[:/])")
GRID = f"#{capp.GRID}"
CHART = f"#{capp.CHART}"
FIRST_ID = f"{GRID} .ag-center-cols-container .ag-row[row-index='0'] .ag-cell[col-id='id']"
PAGING = f"{GRID} .ag-paging-row-summary-panel"
OPEN_MODAL = ".modal.show"
CHART_BG = f"document.querySelector('{CHART} .js-plotly-plot')._fullLayout.paper_bgcolor"
GRID_BG = f"getComputedStyle(document.querySelector('{GRID} .ag-root-wrapper')).backgroundColor"


@pytest.fixture(scope="module")
def gallery():
    """components_app served on a free port from a thread; yields its URL."""
    app = capp.build_app()
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="components-app", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


class Gallery:
    """A fresh browser page on the gallery, with its watchers."""

    def __init__(self, browser, base: str):
        self.context = browser.new_context(viewport={"width": 1440, "height": 900},
                                           color_scheme="light", accept_downloads=True)
        # nothing may leave the machine, even when a test fails to stop it
        # (PageWatch still records the attempt)
        self.context.route(OUTSIDE, lambda route: route.abort())
        self.page = self.context.new_page()
        self.watch = PageWatch(self.page, base)
        self.dialogs: list[str] = []

        def on_dialog(dialog):
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()
        self.page.on("dialog", on_dialog)
        self.requests: list[str] = []
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.page.goto(base + "/")
        self.page.wait_for_selector(f"{GRID} .ag-row")
        self.page.wait_for_selector(f"{CHART} .main-svg")

    def fetched(self, path: str) -> list[str]:
        """Requests the page made for `path` on any host."""
        return [u for u in self.requests if urlparse(u).path == path]

    def first_id(self) -> str:
        return self.page.inner_text(FIRST_ID)

    def theme(self) -> str:
        return self.page.evaluate("document.documentElement.getAttribute('data-bs-theme')")


@pytest.fixture
def gallery_page(browser, gallery):
    g = Gallery(browser, gallery)
    yield g
    g.context.close()


def _read_csv(download) -> list[list[str]]:
    with open(download.path(), encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(io.StringIO(fh.read())))


def _rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[i:i + 2], 16) for i in (0, 2, 4)))


# ------------------------------------------------------------------ page

def test_page_renders_metric_card_and_every_component(gallery_page):
    page = gallery_page.page
    card = page.locator(f"#{capp.METRIC}")
    assert card.locator(".ops-metric__value").inner_text() == "1,284"
    assert card.locator(".ops-metric__status").inner_text() == "OK"
    assert "+4.2%" in card.locator(".ops-metric__delta").inner_text()
    assert page.inner_text(".ops-datagrid__count") == f"{capp.N_ROWS} rows in total"
    expect(page.locator(PAGING)).to_contain_text(f"of {capp.N_ROWS}")
    assert gallery_page.first_id() == "1"
    # no modal or toast is showing until asked for
    assert page.locator(OPEN_MODAL).count() == 0
    assert page.locator("#shell-toasts .toast").count() == 0
    gallery_page.watch.assert_clean("gallery load")


# ------------------------------------------------------------------ grid

def test_grid_header_click_sorts_rows(gallery_page):
    page = gallery_page.page
    fastest = min(capp.ROWS, key=lambda r: r["latency_ms"])
    slowest = max(capp.ROWS, key=lambda r: r["latency_ms"])
    assert fastest["id"] != 1 and slowest["id"] != 1  # a sort must move rows
    assert gallery_page.first_id() == "1"
    header = page.locator(f"{GRID} .ag-header-cell[col-id='latency_ms'] .ag-header-cell-label")
    header.click()
    expect(page.locator(FIRST_ID)).to_have_text(str(fastest["id"]))
    first_latency = page.inner_text(
        f"{GRID} .ag-center-cols-container .ag-row[row-index='0'] .ag-cell[col-id='latency_ms']")
    assert float(first_latency) == fastest["latency_ms"]
    header.click()
    expect(page.locator(FIRST_ID)).to_have_text(str(slowest["id"]))
    header.click()  # third click: back to the original order
    expect(page.locator(FIRST_ID)).to_have_text("1")
    gallery_page.watch.assert_clean("grid sort")


def test_grid_quick_search_filters_rows(gallery_page):
    page = gallery_page.page
    search = page.locator(".ops-datagrid__search input[type='search']")
    search.fill("billing")
    expected = sum(r["service"] == "billing" for r in capp.ROWS)
    expect(page.locator(PAGING)).to_contain_text(f"of {expected}")
    services = page.locator(
        f"{GRID} .ag-center-cols-container .ag-cell[col-id='service']").all_inner_texts()
    assert services and set(services) == {"billing"}
    search.fill("note 150")  # matches one row, by another column
    expect(page.locator(PAGING)).to_contain_text("of 1")
    assert gallery_page.first_id() == "150"
    search.fill("")
    expect(page.locator(PAGING)).to_contain_text(f"of {capp.N_ROWS}")
    gallery_page.watch.assert_clean("grid search")


def test_grid_shows_html_as_literal_text(gallery_page):
    page = gallery_page.page
    cell = page.locator(f"{GRID} .ag-row[row-index='0'] .ag-cell[col-id='note']")
    expect(cell).to_have_text(capp.XSS_TEXT)  # as HTML it would have no text
    assert page.locator(f"{GRID} img").count() == 0
    assert page.locator("img[src='x']").count() == 0
    # an injected <img src=x> would have fetched /x and run alert() on its error
    assert gallery_page.fetched("/x") == []
    assert gallery_page.dialogs == []
    gallery_page.watch.assert_clean("grid html")


def test_grid_csv_export_has_every_filtered_row_and_no_formulas(gallery_page):
    page = gallery_page.page
    export = page.locator(".ops-datagrid__toolbar button:has-text('Export CSV')")
    with page.expect_download() as info:
        export.click()
    download = info.value
    assert download.suggested_filename == capp.CSV_FILENAME
    rows = _read_csv(download)
    assert rows[0] == ["Id", "Service", "Latency ms", "Note"]
    body = rows[1:]
    assert len(body) == capp.N_ROWS  # every page, not just the 25 shown
    by_id = {int(r[0]): r for r in body}
    assert set(by_id) == {r["id"] for r in capp.ROWS}
    assert by_id[2][3] == "'" + capp.FORMULA_TEXT  # neutralised for spreadsheets
    assert by_id[1][3] == capp.XSS_TEXT  # text exported as is
    assert float(by_id[3][2]) == capp.ROWS[2]["latency_ms"]  # full precision
    assert not any(cell.startswith(("=", "+", "@")) for row in body for cell in row)

    # with a search and a sort: exactly the rows the user sees, in that order
    page.fill(".ops-datagrid__search input[type='search']", "billing")
    expected = sorted((r for r in capp.ROWS if r["service"] == "billing"),
                      key=lambda r: r["latency_ms"])
    expect(page.locator(PAGING)).to_contain_text(f"of {len(expected)}")
    page.click(f"{GRID} .ag-header-cell[col-id='latency_ms'] .ag-header-cell-label")
    expect(page.locator(FIRST_ID)).to_have_text(str(expected[0]["id"]))
    with page.expect_download() as info:
        export.click()
    body = _read_csv(info.value)[1:]
    assert [int(r[0]) for r in body] == [r["id"] for r in expected]
    assert {r[1] for r in body} == {"billing"}
    gallery_page.watch.assert_clean("grid export")


# ----------------------------------------------------------------- chart

def test_chart_modebar_downloads_png(gallery_page):
    page = gallery_page.page
    page.hover(f"{CHART} .main-svg")
    button = page.locator(f"{CHART} .modebar-btn[data-title='Download plot as a PNG' i]")
    button.wait_for(state="visible")
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == f"{capp.CHART}.png"
    with open(download.path(), "rb") as fh:
        data = fh.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000  # a drawn chart, not an empty image
    assert page.locator(f"{CHART} .modebar-btn[data-title*='plotly' i]").count() == 0
    gallery_page.watch.assert_clean("chart png")


def test_chart_modebar_cannot_send_data_to_another_host(gallery_page):
    """The console is self-contained: no chart button uploads its data."""
    page = gallery_page.page
    page.hover(f"{CHART} .main-svg")
    page.locator(f"{CHART} .modebar-btn[data-title='Download plot as a PNG' i]").wait_for()
    titles = page.locator(f"{CHART} .modebar-btn").evaluate_all(
        "els => els.map(e => e.getAttribute('data-title'))")
    assert "Zoom" in titles  # the modebar is there
    share = [t for t in titles if t and ("share" in t.lower() or "cloud" in t.lower()
                                         or "chart studio" in t.lower())]
    assert share == [], f"the chart's modebar offers {share}"
    gallery_page.watch.assert_clean("chart share")


# ------------------------------------------------------ modal & confirm

def test_modal_opens_and_closes(gallery_page):
    page = gallery_page.page
    assert page.locator(OPEN_MODAL).count() == 0
    page.click(f"#{capp.MODAL_OPEN}")
    dialog = page.locator(OPEN_MODAL)
    expect(dialog).to_be_visible()
    expect(dialog.locator(".modal-title")).to_have_text("Key details")
    dialog.locator(f"#{capp.MODAL_CLOSE}").click()
    expect(page.locator(".modal")).to_have_count(0)
    # and again, closed with the header's X this time
    page.click(f"#{capp.MODAL_OPEN}")
    expect(dialog).to_be_visible()
    dialog.locator(".btn-close").click()
    expect(page.locator(".modal")).to_have_count(0)
    gallery_page.watch.assert_clean("modal")


def test_confirm_dialog_needs_typed_word_and_runs_action_once(gallery_page):
    page = gallery_page.page
    count = page.locator(f"#{capp.DELETED_COUNT}")
    dialog = page.locator(OPEN_MODAL)
    typed = dialog.locator(".ops-confirm__typed input")
    confirm = dialog.get_by_role("button", name="Delete", exact=True)
    cancel = dialog.get_by_role("button", name="Cancel", exact=True)

    page.click(f"#{capp.CONFIRM_OPEN}")
    expect(dialog.locator(".modal-title")).to_contain_text("Delete everything?")
    expect(confirm).to_be_disabled()
    confirm.click(force=True)  # a disabled button does nothing
    expect(dialog).to_be_visible()
    # every step flips the state, so each one waits for the callback to run
    for text, enabled in [("DELETE", True), ("delete", False), ("DELETE", True),
                          ("DELET", False), ("DELETE", True), ("DELETEX", False),
                          ("DELETE", True)]:
        typed.fill(text)
        if enabled:
            expect(confirm).to_be_enabled()
        else:
            expect(confirm).to_be_disabled()

    # Cancel closes without running the action
    cancel.click()
    expect(page.locator(".modal")).to_have_count(0)
    assert count.inner_text() == "0"

    # reopening starts from an empty box and a disabled button
    page.click(f"#{capp.CONFIRM_OPEN}")
    expect(typed).to_be_visible()
    expect(typed).to_have_value("")
    expect(confirm).to_be_disabled()
    typed.fill("DELETE")
    expect(confirm).to_be_enabled()
    confirm.click()
    expect(page.locator(".modal")).to_have_count(0)
    expect(count).to_have_text("1")
    page.wait_for_timeout(300)  # a second (duplicate) run would show up by now
    assert count.inner_text() == "1"  # the cancel above did not run it either
    gallery_page.watch.assert_clean("confirm dialog")


# ----------------------------------------------------------------- toast

def test_toast_from_server_callback_shows_markup_as_text(gallery_page):
    page = gallery_page.page
    page.click(f"#{capp.TOAST_BUTTON}")
    toast = page.locator("#shell-toasts .ops-toast")
    expect(toast).to_have_count(1)
    expect(toast).to_be_visible()
    expect(toast.locator(".toast-body")).to_have_text(capp.TOAST_TEXT)
    expect(toast.locator(".toast-header")).to_contain_text("Notice")
    assert toast.locator(".toast-body *").count() == 0  # no <b>, no <img>
    assert page.locator("img[src='x']").count() == 0
    assert gallery_page.fetched("/x") == []
    assert gallery_page.dialogs == []
    gallery_page.watch.assert_clean("toast")


# ----------------------------------------------------------------- theme

def test_dark_mode_rethemes_chart_and_grid(gallery_page):
    from dashapp.ui.theme import PALETTES, register_templates
    import plotly.io as pio
    register_templates()
    paper = {t: pio.templates[f"ops_{t}"].layout.paper_bgcolor for t in ("light", "dark")}
    assert paper["light"] != paper["dark"]
    page = gallery_page.page
    assert gallery_page.theme() == "light"
    wait_js(page, f"{CHART_BG} === '{paper['light']}'")
    grid_light = page.evaluate(GRID_BG)
    assert grid_light == _rgb(PALETTES["light"]["surface"])

    page.click("#shell-theme-toggle")
    wait_js(page, f"{CHART_BG} === '{paper['dark']}'")
    wait_js(page, f"{GRID_BG} !== '{grid_light}'")
    assert gallery_page.theme() == "dark"
    assert page.evaluate(GRID_BG) == _rgb(PALETTES["dark"]["surface"])

    page.click("#shell-theme-toggle")
    wait_js(page, f"{CHART_BG} === '{paper['light']}'")
    wait_js(page, f"{GRID_BG} === '{grid_light}'")
    gallery_page.watch.assert_clean("theme")
