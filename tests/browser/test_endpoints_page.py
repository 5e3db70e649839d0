"""The API metrics page in headless Chromium against a real console whose
instrumented demo sends real requests: the endpoints appear, a click opens an
endpoint's detail, a click on a slow request shows the SQL it ran."""
from __future__ import annotations

import time

# Demo endpoints that run SQL on every request (no cache in front).
SQL_ENDPOINTS = ["GET /orders", "GET /customers/<int:customer_id>/orders", "GET /search",
                 "POST /orders"]


def _row(page, row_id: str):
    return page.locator(f'#endpoints-table .ag-row[row-id="{row_id}"]').first


def test_endpoints_page_detail_and_sql(signed_in, console):
    page, watch = signed_in
    page.goto(f"{console}/endpoints")
    page.wait_for_selector(".ops-page-title")
    assert page.locator(".ops-page-title").first.inner_text() == "API metrics"

    # The demo's requests show up within ~15 s (flushed each second, page
    # refreshed every 10 s).
    deadline = time.monotonic() + 25
    target = None
    while time.monotonic() < deadline and target is None:
        target = next((rid for rid in SQL_ENDPOINTS if _row(page, rid).count()), None)
        if target is None:
            page.wait_for_timeout(1000)
    assert target is not None, "no demo endpoint that runs SQL appeared on the page"
    cells = page.locator("#endpoints-table .ag-row [col-id='endpoint']").all_inner_texts()
    assert len(cells) >= 2
    requests_card = page.locator("#endpoints-card-requests .ops-metric__value").inner_text()
    assert int(requests_card.replace(",", "")) > 0

    # Click the endpoint: its detail opens with its chart and slowest requests.
    _row(page, target).locator("[col-id='endpoint']").click()
    page.wait_for_selector("#endpoints-detail-name")
    method, endpoint = target.split(" ", 1)
    assert endpoint in page.inner_text("#endpoints-detail-name")
    page.locator("#endpoints-detail-chart .main-svg").first.wait_for()
    assert page.locator("#endpoints-status-split").count() == 1
    page.wait_for_selector("#endpoints-slow .ag-row")

    # Click the slowest request: the SQL it ran, in order, with durations.
    page.locator("#endpoints-slow .ag-row [col-id='request_id']").first.click()
    page.wait_for_selector("#endpoints-sql-list li", timeout=10000)
    listing = page.inner_text("#endpoints-sql-list")
    assert "SELECT" in listing.upper() and " ms" in listing
    watch.assert_clean("/endpoints detail and SQL")


def test_endpoints_page_range_picker(signed_in, console):
    page, watch = signed_in
    page.goto(f"{console}/endpoints")
    page.wait_for_selector("#endpoints-table .ag-row", timeout=25000)
    page.locator("label", has_text="15 min").click()
    page.wait_for_timeout(1500)
    assert page.locator("#endpoints-table .ag-row").count() > 0
    page.locator("label", has_text="7 d").click()
    page.wait_for_timeout(1500)
    assert page.locator("#endpoints-table .ag-row").count() > 0
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1
    watch.assert_clean("/endpoints range picker")
