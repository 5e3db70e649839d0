"""The Ingest keys page in headless Chromium against a real console
(python app.py, demo off): an admin creates a key, sees it and its OPS_DSN
line once, the key sends a batch, the admin revokes it through the
confirmation and the key is refused; a viewer is refused the page. Screenshots
light and dark, desktop and phone (docs/screenshots with OPS_UPDATE_SCREENSHOTS=1).
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ops_agent import protocol

from tests.browser.conftest import (PageWatch, running_console, screenshot_dir, sign_in_page,
                                    wait_js)
from tests.conftest import ADMIN_PASSWORD

SHOT_VIEWPORTS = {"desktop": (1440, 900), "phone": (375, 812)}
VIEWER_PASSWORD = "viewer-pass-1234"


@pytest.fixture(scope="module")
def keys_console(tmp_path_factory, redis_url):
    env = {"OPS_DEMO": "false", "REDIS_URL": redis_url}
    with running_console(tmp_path_factory.mktemp("keys-console") / "instance", env) as base:
        yield base


def _send(base: str, key: str, app: str) -> int:
    """POST one empty batch for `app` with `key`, as an agent does; the status."""
    req = urllib.request.Request(
        f"{base}{protocol.INGEST_PATH}", method="POST",
        data=protocol.encode({"v": protocol.VERSION, "app": app, "events": {}}),
        headers={"Content-Encoding": "gzip", "Content-Type": protocol.CONTENT_TYPE,
                 protocol.KEY_HEADER: key})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _set_theme(page, theme: str) -> None:
    for _ in range(2):
        if page.evaluate("document.documentElement.getAttribute('data-bs-theme')") == theme:
            return
        page.locator("#shell-theme-toggle").click()
        page.wait_for_timeout(150)
    assert page.evaluate("document.documentElement.getAttribute('data-bs-theme')") == theme


def _shots(tmp_path_factory) -> Path:
    """OPS_SHOTS_DIR when set (to look at them), else the suite's folder."""
    folder = os.environ.get("OPS_SHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder)
    return screenshot_dir(tmp_path_factory)


def _post_json(url: str, body: dict, headers: dict | None = None) -> dict:
    req = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _create_viewer(base: str) -> None:
    """A viewer account, made through /api/users with an admin token."""
    token = _post_json(f"{base}/api/auth/token",
                       {"username": "admin", "password": ADMIN_PASSWORD})["token"]
    _post_json(f"{base}/api/users", {"username": "browser-vic", "role": "viewer",
                                     "password": VIEWER_PASSWORD},
               {"Authorization": f"Bearer {token}"})


def test_admin_creates_sees_once_and_revokes_a_key(browser, keys_console, tmp_path_factory):
    base = keys_console
    shots = _shots(tmp_path_factory)
    context, page, watch = sign_in_page(browser, base)
    try:
        # The sidebar lists the page among the administration pages.
        admin_nav = page.locator("nav[aria-label='Administration']")
        admin_nav.locator("a", has_text="Ingest keys").click()
        page.wait_for_url(f"{base}/admin/ingest-keys")
        page.locator("#ingest-keys-grid").wait_for()

        # A bad name is refused with a sentence, nothing is created.
        page.click("#ingest-keys-new-open")
        page.fill("#ingest-keys-new-app", "not a name")
        page.click("#ingest-keys-new-submit")
        page.locator("#ingest-keys-new-error", has_text="application name must be").wait_for()
        assert page.locator("#ingest-keys-secret").count() == 0

        # A good one: the key and the whole OPS_DSN line, once, with copy buttons.
        page.fill("#ingest-keys-new-app", "browser-shop")
        page.fill("#ingest-keys-new-note", "browser test")
        page.click("#ingest-keys-new-submit")
        key = page.locator("#ingest-keys-secret-value").inner_text()
        dsn_line = page.locator("#ingest-keys-secret-dsn").inner_text()
        assert key.startswith("opsik_")
        assert dsn_line.startswith("OPS_DSN=http://") and f"{key}@" in dsn_line
        assert dsn_line.endswith("/browser-shop")
        assert page.locator("#ingest-keys-secret .ops-admin-copy").count() == 2
        assert "You will not see this key again" in page.inner_text("#ingest-keys-secret")
        assert page.locator("#ingest-keys-new-submit").is_disabled()
        page.locator(".ops-toast", has_text="Created ingest key").first.wait_for()
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / "ingest-keys-created-light-desktop.png"),
                        animations="disabled")
        assert _send(base, key, "browser-shop") == 200

        # Closed, the key is gone from the page for good; the grid shows its prefix.
        page.click("#ingest-keys-new-close")
        row = page.locator("#ingest-keys-grid .ag-row", has_text="browser-shop")
        row.wait_for()
        wait_js(page, "!document.querySelector('#ingest-keys-secret')")
        assert key not in page.content()
        assert key[:12] in row.inner_text() and "browser test" in row.inner_text()
        assert "active" in row.inner_text()
        page.click("#ingest-keys-new-open")
        assert page.locator("#ingest-keys-secret").count() == 0
        page.click("#ingest-keys-new-close")

        # Revoke, through the confirmation; the key is refused afterwards.
        row.locator("[col-id='app']").click()
        page.locator("#ingest-keys-selection", has_text=key[:12]).wait_for()
        page.click("#ingest-keys-revoke-open")
        message = page.locator(".modal.show .ops-confirm__message")
        message.filter(has_text="cannot be undone").wait_for()
        assert "browser-shop" in message.inner_text()
        page.locator(".modal.show button", has_text="Revoke").click()
        page.locator(".ops-toast", has_text="Revoked ingest key").first.wait_for()
        page.locator("#ingest-keys-grid .ag-row", has_text="revoked").wait_for()
        assert page.locator("#ingest-keys-revoke-open").is_disabled()
        assert _send(base, key, "browser-shop") == 401
        watch.assert_clean("ingest keys page")
        _create_viewer(base)
    finally:
        context.close()

    # A viewer gets the refusal card and no data, and no sidebar entry.
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    vic = context.new_page()
    vic_watch = PageWatch(vic, base)
    try:
        vic.goto(f"{base}/login")
        vic.fill("#username", "browser-vic")
        vic.fill("#password", VIEWER_PASSWORD)
        vic.click("#login-submit")
        vic.wait_for_url(f"{base}/")
        assert vic.locator("nav a", has_text="Ingest keys").count() == 0
        vic.goto(f"{base}/admin/ingest-keys")
        card = vic.locator("#admin-required")
        card.wait_for()
        assert "needs the admin role" in card.inner_text()
        assert "signed in as viewer" in card.inner_text()
        assert vic.locator("#ingest-keys-grid, #ingest-keys-new-open").count() == 0
        assert "browser-shop" not in vic.content()
        vic_watch.assert_clean("refusal")
    finally:
        context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("viewport", list(SHOT_VIEWPORTS))
def test_ingest_keys_page_renders_cleanly(browser, keys_console, theme, viewport,
                                          tmp_path_factory):
    base = keys_console
    shots = _shots(tmp_path_factory)
    context, page, watch = sign_in_page(browser, base)
    try:
        width, height = SHOT_VIEWPORTS[viewport]
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{base}/admin/ingest-keys")
        page.locator("#ingest-keys-grid").wait_for()
        _set_theme(page, theme)
        if not page.locator("#ingest-keys-grid .ag-row", has_text="shots-app").count():
            page.click("#ingest-keys-new-open")
            page.fill("#ingest-keys-new-app", "shots-app")
            page.fill("#ingest-keys-new-note", "screenshots")
            page.click("#ingest-keys-new-submit")
            page.locator("#ingest-keys-secret").wait_for()
            page.click("#ingest-keys-new-close")
        page.locator("#ingest-keys-grid .ag-row", has_text="shots-app").first.wait_for()
        # Every cell drawn (the grid fills new rows' cells a frame later).
        wait_js(page, "[...document.querySelectorAll('#ingest-keys-grid "
                      ".ag-center-cols-container [col-id=\"last_used\"]')]"
                      ".every(c => c.textContent.trim())")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"scrolls sideways by {overflow}px at {width}px"
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / f"ingest-keys-{theme}-{viewport}.png"),
                        full_page=True, animations="disabled")
        # The form with a key shown once, and the revoke confirmation.
        page.click("#ingest-keys-new-open")
        page.fill("#ingest-keys-new-app", "shots-app")
        page.click("#ingest-keys-new-submit")
        page.locator("#ingest-keys-secret").wait_for()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"the new key scrolls sideways by {overflow}px at {width}px"
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / f"ingest-keys-new-{theme}-{viewport}.png"),
                        animations="disabled")
        page.click("#ingest-keys-new-close")
        page.locator("#ingest-keys-grid .ag-row", has_text="active").first \
            .locator("[col-id='app']").click()
        page.click("#ingest-keys-revoke-open")
        page.locator(".modal.show .ops-confirm__message").wait_for()
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / f"ingest-keys-revoke-{theme}-{viewport}.png"),
                        animations="disabled")
        page.locator(".modal.show button", has_text="Cancel").click()
        watch.assert_clean(f"ingest keys ({theme}, {viewport})")
    finally:
        context.close()
