"""The Users and Audit pages in headless Chromium against a real console
(python app.py, demo off): an admin creates a user, resets their password,
creates and revokes a token, filters the audit trail and downloads its CSV;
the new (non-admin) user sees the refusal. Screenshots of both pages, light
and dark, desktop and phone (docs/screenshots with OPS_UPDATE_SCREENSHOTS=1).
"""
from __future__ import annotations

import csv
import io
import json
import re
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import (PageWatch, running_console, screenshot_dir, sign_in_page,
                                    wait_js)

SHOT_VIEWPORTS = {"desktop": (1440, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def admin_console(tmp_path_factory, redis_url):
    env = {"OPS_DEMO": "false", "REDIS_URL": redis_url}
    with running_console(tmp_path_factory.mktemp("admin-console") / "instance", env) as base:
        yield base


def _status(url: str, token: str) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _toast(page, text: str) -> None:
    page.locator(".ops-toast", has_text=text).first.wait_for()


def _set_theme(page, theme: str) -> None:
    for _ in range(2):
        if page.evaluate("document.documentElement.getAttribute('data-bs-theme')") == theme:
            return
        page.locator("#shell-theme-toggle").click()
        page.wait_for_timeout(150)
    assert page.evaluate("document.documentElement.getAttribute('data-bs-theme')") == theme


def test_admin_manages_users_tokens_and_reads_the_audit(browser, admin_console,
                                                        tmp_path_factory):
    base = admin_console
    shots = screenshot_dir(tmp_path_factory)
    context, page, watch = sign_in_page(browser, base)
    try:
        page.goto(f"{base}/users")
        page.locator("#users-grid .ag-row", has_text="admin").first.wait_for()

        # A new user with a generated password, shown once.
        page.click("#users-new-open")
        page.fill("#users-new-username", "browser-bob")
        page.select_option("#users-new-role", "operator")
        page.click("#users-new-submit")
        first_password = page.locator("#users-new-secret-value").inner_text()
        assert len(first_password) >= 16
        assert page.locator("#users-new-secret button, #users-new-secret .ops-admin-copy"
                            ).count() >= 1
        _toast(page, "Created browser-bob (operator)")
        page.click("#users-new-close")
        bob_row = page.locator("#users-grid .ag-row", has_text="browser-bob")
        bob_row.wait_for()

        # Reset the password (generated again).
        bob_row.locator("[col-id='username']").click()
        page.locator("#users-selection", has_text="browser-bob").wait_for()
        page.click("#users-password-open")
        page.locator("#users-pw-who", has_text="browser-bob").wait_for()
        page.click("#users-pw-submit")
        password = page.locator("#users-pw-secret-value").inner_text()
        assert password and password != first_password
        _toast(page, "New password set for browser-bob")
        page.click("#users-pw-close")

        # A token for bob, shown once, that works; then revoked, it does not.
        page.click("#users-token-open")
        page.fill("#users-token-name", "browser ci")
        page.select_option("#users-token-expiry", "7")
        page.click("#users-token-submit")
        token = page.locator("#users-token-secret-value").inner_text()
        assert token.startswith("ops_")
        assert _status(f"{base}/api/auth/me", token) == 200
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / "users-token-created-light-desktop.png"),
                        animations="disabled")
        page.click("#users-token-close")
        token_row = page.locator("#users-tokens-grid .ag-row", has_text="browser ci")
        token_row.wait_for()
        assert token not in page.inner_text("#users-tokens-grid")
        token_row.locator("[col-id='name']").click()
        page.click("#users-revoke-open")
        page.locator(".modal.show .ops-confirm__message", has_text="cannot be undone"
                     ).wait_for()
        page.locator(".modal.show button", has_text="Revoke").click()
        _toast(page, "Revoked token")
        page.locator("#users-tokens-grid .ag-row", has_text="revoked").wait_for()
        assert _status(f"{base}/api/auth/me", token) == 401

        # The audit trail: filter to user changes, then download the CSV.
        page.goto(f"{base}/audit")
        page.locator("#audit-grid .ag-row").first.wait_for()
        page.select_option("#audit-action", "user_password")
        page.locator("#audit-info", has_text=re.compile(r"(^|\D)1 event\b")).wait_for()
        assert "user:browser-bob" in page.inner_text("#audit-grid")
        page.select_option("#audit-action", "__any__")
        page.fill("#audit-target", "browser-bob")
        page.keyboard.press("Enter")
        # "Any action" alone already lists user_create (with the admin's login,
        # which has no target): wait for the grid the target filter leaves.
        wait_js(page, "(() => { const rows = [...document.querySelectorAll("
                      "'#audit-grid .ag-center-cols-container .ag-row')];"
                      " return rows.some(r => r.querySelector(\"[col-id='action']\")"
                      "?.textContent === 'user_create')"
                      " && rows.every(r => r.querySelector(\"[col-id='target']\")"
                      "?.textContent.includes('browser-bob')); })()")
        with page.expect_download() as info:
            page.click("#audit-export")
        download = info.value
        assert download.suggested_filename.endswith(".csv")
        rows = list(csv.DictReader(io.StringIO(open(download.path()).read())))
        actions = {r["action"] for r in rows}
        assert {"user_create", "user_password", "token_create"} <= actions
        assert all("browser-bob" in r["target"] or "browser-bob" in r["details"]
                   for r in rows if r["action"] != "token_revoke")
        assert password not in json.dumps(rows) and token not in json.dumps(rows)
        _toast(page, "Exported the matching events")
        watch.assert_clean("admin pages")
    finally:
        context.close()

    # bob (an operator) signs in with the reset password and is refused.
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    bob = context.new_page()
    bob_watch = PageWatch(bob, base)
    try:
        bob.goto(f"{base}/login")
        bob.fill("#username", "browser-bob")
        bob.fill("#password", password)
        bob.click("#login-submit")
        bob.wait_for_url(f"{base}/")
        for path in ("/users", "/audit"):
            bob.goto(f"{base}{path}")
            card = bob.locator("#admin-required")
            card.wait_for()
            assert "needs the admin role" in card.inner_text()
            assert "signed in as operator" in card.inner_text()
            assert bob.locator("#users-grid, #audit-grid").count() == 0
        bob.screenshot(path=str(shots / "admin-refusal-light-desktop.png"),
                       animations="disabled")
        bob_watch.assert_clean("refusal")
    finally:
        context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("viewport", list(SHOT_VIEWPORTS))
def test_admin_pages_render_cleanly(browser, admin_console, theme, viewport,
                                    tmp_path_factory):
    base = admin_console
    context, page, watch = sign_in_page(browser, base)
    try:
        width, height = SHOT_VIEWPORTS[viewport]
        page.set_viewport_size({"width": width, "height": height})
        shots = screenshot_dir(tmp_path_factory)
        for key, ready in (("users", "#users-grid .ag-row"), ("audit", "#audit-grid .ag-row")):
            page.goto(f"{base}/{key}")
            page.locator(ready).first.wait_for()
            _set_theme(page, theme)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"/{key} scrolls sideways by {overflow}px at {width}px"
            page.wait_for_timeout(300)
            page.screenshot(path=str(shots / f"{key}-{theme}-{viewport}.png"),
                            full_page=True, animations="disabled")
            watch.assert_clean(f"/{key} ({theme}, {viewport})")
    finally:
        context.close()
