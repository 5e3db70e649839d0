"""The Backups page in headless Chromium against a real console (python
app.py) with the demo on, whose shop database is the default backup target:
create a backup from the page, see it listed, open it, restore it through
the dialog that demands the typed target name, and edit the schedule."""
from __future__ import annotations

import json
import urllib.request

from tests.browser.conftest import sign_in_page, wait_js


def _api(page, base: str, path: str) -> dict:
    """GET an API route with the page's session cookie."""
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    request = urllib.request.Request(f"{base}{path}", headers={"Cookie": cookies})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def test_create_list_restore_with_typed_name_and_schedule(browser, console):
    context, page, watch = sign_in_page(browser, console)
    try:
        page.goto(f"{console}/backups")
        page.wait_for_selector("#backups-card-shop")
        assert "never" in page.inner_text("#backups-card-shop")

        # Create a backup from the page, with a reason.
        page.click("#backups-create-open")
        page.wait_for_selector("#backups-create-note")
        page.fill("#backups-create-note", "before the browser test")
        page.click("#backups-create-go")
        page.locator(".ops-toast", has_text="of shop created").wait_for(timeout=30000)
        page.wait_for_selector("#backups-create-modal", state="hidden")
        row = page.locator("#backups-grid .ag-row", has_text="before the browser test")
        row.wait_for()
        assert "succeeded" in row.inner_text() and "manual" in row.inner_text()
        made = _api(page, console, "/api/backup/list")["backups"][0]
        assert made["note"] == "before the browser test" and made["created_by"] == "admin"
        wait_js(page, 
            "!document.querySelector('#backups-card-shop').innerText.includes('never')")

        # Open it; the restore dialog will not restore until the name is typed.
        row.locator("[col-id='target']").click()
        page.wait_for_selector("#backups-detail-title")
        assert page.inner_text("#backups-detail-title") == f"Backup #{made['id']}"
        assert page.get_attribute("#backups-download", "href") == \
            f"/api/backup/{made['id']}/download"
        page.click("#backups-restore-open")
        dialog = page.locator(".modal.show", has_text="Restore shop?")
        dialog.wait_for()
        confirm = dialog.locator("button", has_text="Restore")
        assert confirm.is_disabled()
        dialog.locator("input").fill("sho")
        assert confirm.is_disabled()
        dialog.locator("input").fill("shop")
        assert confirm.is_enabled()
        confirm.click()
        page.locator(".ops-toast", has_text="was restored from backup").wait_for(timeout=30000)
        restores = _api(page, console, "/api/backup/restores")["restores"]
        assert restores[0]["status"] == "succeeded" and restores[0]["backup_id"] == made["id"]
        assert restores[0]["safety_backup_id"]
        page.wait_for_selector("#backups-restores-grid .ag-row")
        page.locator("#backups-drawer .btn-close").click()

        # The schedule editor: a bad expression is explained, a good one shows runs.
        page.fill("#backups-sched-cron", "61 * * * *")
        page.wait_for_selector("#backups-cron-error")
        assert "61" in page.inner_text("#backups-cron-error")
        page.fill("#backups-sched-cron", "15 4 * * *")
        wait_js(page, 
            "document.querySelector('#backups-next-runs')?.innerText.includes('04:15 UTC')")
        page.click("#backups-sched-save")
        page.locator(".ops-toast", has_text="Schedule of shop saved").wait_for()
        page.wait_for_selector("#backups-schedules-table")
        assert "15 4 * * *" in page.inner_text("#backups-schedules-table")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1
        watch.assert_clean("backups page")
    finally:
        context.close()
