"""The Alerts page in headless Chromium against a real console (python
app.py, demo on: its shop database is the backup target, never backed up):
create a rule in the modal, see the right target field per kind, evaluate
now and see it fire with its webhook delivered to a real local server,
the overview's strip, a validation error in the form, disable and delete
with confirmation. Screenshots light/dark at desktop and phone width."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot_dir, sign_in_page

SECRET = "sig-4242-secret"
SHOTS = {"desktop": (1440, 900), "phone": (390, 844)}


@pytest.fixture
def webhook():
    """A local server that answers 200 and keeps what it received."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook?sig={SECRET}", received
    server.shutdown()
    server.server_close()


def _set_theme(page, theme: str) -> None:
    for _ in range(2):
        if page.evaluate("document.documentElement.getAttribute('data-bs-theme')") == theme:
            return
        page.locator("#shell-theme-toggle").click()
        page.wait_for_timeout(150)


def _toast(page, text: str) -> None:
    page.locator(".ops-toast", has_text=text).first.wait_for()


def test_create_evaluate_fire_and_delete(browser, console, webhook, tmp_path_factory):
    url, received = webhook
    context, page, watch = sign_in_page(browser, console)
    try:
        page.goto(f"{console}/alerts")
        page.wait_for_selector("#alerts-cards")
        assert "Nothing is firing" in page.inner_text("#alerts-firing")
        assert "No alert rules yet" in page.inner_text("#alerts-rules")

        # The modal: the target field follows the kind.
        page.click("#alerts-new")
        page.locator("#alerts-editor").wait_for(state="visible")
        page.fill("#alerts-form-name", "Backups are stale")
        page.select_option("#alerts-form-kind", "model_accuracy")
        page.locator("#alerts-form-target-label", has_text="Model name").wait_for()
        # The kind's default comparison and threshold come from a callback of
        # their own, which may answer after the label's: wait for them.
        expect(page.locator("#alerts-form-comparison")).to_have_value("<")
        page.select_option("#alerts-form-kind", "slow_queries")
        page.locator("#alerts-form-target-wrap").wait_for(state="hidden")
        page.select_option("#alerts-form-kind", "backup_age")
        page.locator("#alerts-form-target-label", has_text="Backup target").wait_for()
        assert page.inner_text("#alerts-form-unit") == "h"
        expect(page.locator("#alerts-form-threshold")).to_have_value("26")
        expect(page.locator("#alerts-form-comparison")).to_have_value(">")
        page.fill("#alerts-form-threshold", "30")
        page.fill("#alerts-form-for-minutes", "0")
        page.select_option("#alerts-form-severity", "critical")
        page.fill("#alerts-form-webhook", url)
        page.click("#alerts-save")
        _toast(page, "created")
        page.locator("#alerts-editor").wait_for(state="hidden")
        rule = page.locator("#alerts-rules-list .ops-alerts-rule", has_text="Backups are stale")
        rule.wait_for()
        assert "Backup age above 30 h" in rule.inner_text()
        assert SECRET not in page.content()  # shown masked: ?***

        # Evaluate now: no good backup of the demo shop, so it fires at once.
        page.click("#alerts-evaluate")
        _toast(page, "1 fired")
        item = page.locator("#alerts-firing-list .ops-alerts-item", has_text="Backups are stale")
        item.wait_for()
        assert "No successful backup of" in item.inner_text()
        assert page.inner_text("#alerts-card-firing .ops-metric__value").strip() == "1"
        page.locator("#alerts-deliveries-grid .ag-row", has_text="delivered").first.wait_for()
        assert [r["state"] for r in received] == ["firing"]
        assert received[0]["rule"]["name"] == "Backups are stale"
        assert SECRET not in page.content()

        # Editing keeps the rule's own threshold: the kind's default (26) only
        # fills a new rule.
        rule.locator("button", has_text="Edit").click()
        page.locator("#alerts-editor").wait_for(state="visible")
        expect(page.locator("#alerts-form-name")).to_have_value("Backups are stale")
        page.wait_for_timeout(500)  # let any kind-change callback land
        expect(page.locator("#alerts-form-threshold")).to_have_value("30")
        page.click("#alerts-cancel")
        page.locator("#alerts-editor").wait_for(state="hidden")

        # A refusal from the service shows in the form, naming the field.
        page.click("#alerts-new")
        page.locator("#alerts-editor").wait_for(state="visible")
        page.fill("#alerts-form-name", "Drifting")
        page.select_option("#alerts-form-kind", "model_drift")
        page.click("#alerts-save")
        page.locator("#alerts-form-error", has_text="target: is required").wait_for()
        page.click("#alerts-cancel")
        page.locator("#alerts-editor").wait_for(state="hidden")

        # Screenshots, light and dark, desktop and phone.
        shots = screenshot_dir(tmp_path_factory)
        for theme in ("light", "dark"):
            _set_theme(page, theme)
            for name, (width, height) in SHOTS.items():
                page.set_viewport_size({"width": width, "height": height})
                page.goto(f"{console}/alerts")
                page.wait_for_selector("#alerts-firing-list")
                overflow = page.evaluate("document.documentElement.scrollWidth"
                                         " - document.documentElement.clientWidth")
                assert overflow <= 1, f"/alerts scrolls sideways by {overflow}px at {width}px"
                page.wait_for_timeout(300)
                page.screenshot(path=str(shots / f"alerts-firing-{theme}-{name}.png"),
                                full_page=True, animations="disabled")
        _set_theme(page, "light")
        page.set_viewport_size({"width": 1440, "height": 900})

        # The overview says so too, with a link to the Alerts page.
        page.goto(f"{console}/")
        page.locator("#overview-alerts-count", has_text="1 alert firing").wait_for()
        assert "Backups are stale" in page.inner_text("#overview-alerts-firing")
        page.click("#overview-alerts-strip a[href='/alerts']")
        page.wait_for_url(f"{console}/alerts")
        page.wait_for_selector("#alerts-rules-list")

        # Disable: the alert is resolved; then delete, confirmed.
        rule = page.locator("#alerts-rules-list .ops-alerts-rule", has_text="Backups are stale")
        rule.get_by_role("button", name="Disable").click()
        _toast(page, "disabled")
        page.locator("#alerts-firing-list-none").wait_for()
        page.locator("#alerts-resolved-grid .ag-row", has_text="Backups are stale").wait_for()
        rule.get_by_role("button", name="Delete…").click()
        page.locator(".modal.show .ops-confirm__message", has_text="Backups are stale").wait_for()
        page.locator(".modal.show button", has_text="Delete rule").click()
        _toast(page, "deleted")
        page.locator("#alerts-rules-none").wait_for()
        # its alert stays in the history
        assert page.locator("#alerts-resolved-grid .ag-row",
                            has_text="Backups are stale").count() == 1
        watch.assert_clean("alerts page")
    finally:
        context.close()
