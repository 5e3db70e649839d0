"""The SQL queries page in headless Chromium against the real console + demo:
the table lists the demo's statements, a click opens the SQL and its plan."""
from __future__ import annotations


def test_table_lists_demo_queries_and_detail_shows_sql_and_plan(signed_in, console):
    page, watch = signed_in
    page.goto(f"{console}/queries")
    page.wait_for_selector(".ops-page-title")
    # The demo's traffic has run for a few seconds: its SQL is in the table.
    page.wait_for_selector("#queries-table .ag-row", timeout=20000)
    cells = page.locator("#queries-table .ag-row [col-id='sql']").all_inner_texts()
    assert any("products" in c or "orders" in c for c in cells), cells
    # Open the first SELECT: full SQL, and a plan tree from the demo's database.
    row = page.locator("#queries-table .ag-row", has_text="SELECT").first
    row.locator("[col-id='sql']").click()
    page.wait_for_selector("#queries-detail-sql", timeout=20000)
    sql = page.locator("#queries-detail-sql").inner_text()
    assert sql.startswith("SELECT")
    page.wait_for_selector("#queries-plan .ops-plan__node", timeout=20000)
    assert page.locator("#queries-plan .ops-plan__label").count() >= 1
    watch.assert_clean("queries page")
