"""Click through every page in headless Chromium, light and dark, at desktop,
tablet and phone width. Fails on any browser error or any request to a host
other than the console's. With OPS_UPDATE_SCREENSHOTS=1 the overview and the
cache page are saved to docs/screenshots/ for the README.
"""
from __future__ import annotations

import os

import pytest

from dashapp.modules import ADMIN_MODULES, MODULES
from tests.browser.conftest import (PUBLIC_NAME, VIEWPORTS, PageWatch, screenshot_dir,
                                    sign_in_page, wait_js)
from tests.conftest import ADMIN_PASSWORD

SCREENSHOT_PAGES = {"overview", "cache", "endpoints", "queries", "redis", "jobs", "backups",
                    "config", "models", "logs", "profiler", "alerts"}


def _set_theme(page, theme: str) -> None:
    """Use the real toggle until the page is in `theme`."""
    for _ in range(2):
        if page.evaluate("document.documentElement.getAttribute('data-bs-theme')") == theme:
            return
        toggle = page.locator("#shell-theme-toggle")
        toggle.click()
        page.wait_for_timeout(150)
    assert page.evaluate("document.documentElement.getAttribute('data-bs-theme')") == theme


def test_sign_in_page_rejects_wrong_password(browser, console):
    context = browser.new_context()
    page = context.new_page()
    watch = PageWatch(page, console)
    page.goto(f"{console}/cache")
    assert "/login" in page.url
    page.fill("#username", "admin")
    page.fill("#password", "wrong-password")
    page.click("#login-submit")
    assert "Wrong username or password" in page.locator("#login-error").inner_text()
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{console}/cache")  # back where the user was going
    page.wait_for_selector(".ops-page-title")
    # The 401 of the failed attempt is the only "error" the browser may log.
    watch.errors = [e for e in watch.errors if "401" not in e]
    watch.assert_clean("sign-in")
    context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page_renders_cleanly(signed_in, console, theme, viewport, tmp_path_factory):
    page, watch = signed_in
    width, height = VIEWPORTS[viewport]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{console}/")
    page.wait_for_selector("#overview-cards")
    _set_theme(page, theme)
    shots = screenshot_dir(tmp_path_factory)
    if os.environ.get("OPS_UPDATE_SCREENSHOTS") == "1":
        # Let the demo's traffic chart gather a few minutes' worth of points.
        page.wait_for_timeout(20000)
    for module in MODULES + ADMIN_MODULES:
        page.goto(f"{console}{module.path}")
        page.wait_for_selector(".ops-page-title")
        title = page.locator(".ops-page-title").first.inner_text()
        assert title == module.title, (module.path, title)
        # The theme survives navigation and reloads (kept in localStorage).
        assert page.evaluate(
            "document.documentElement.getAttribute('data-bs-theme')") == theme
        if not module.built:
            assert f"{module.title} is not built yet" in page.inner_text(".ops-empty")
        # No horizontal scrolling at any width.
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{module.path} scrolls sideways by {overflow}px at {width}px"
        if module.key in SCREENSHOT_PAGES and viewport != "tablet":
            page.wait_for_timeout(300)
            page.screenshot(path=str(shots / f"{module.key}-{theme}-{viewport}.png"),
                            full_page=True, animations="disabled")
        watch.assert_clean(f"{module.path} ({theme}, {viewport})")


def test_overview_shows_live_demo_figures(signed_in, console):
    """The demo is instrumented: its requests and SQL reach the overview."""
    page, watch = signed_in
    page.goto(f"{console}/")
    value = page.locator('[id*="overview-card"][id*="endpoints"] .ops-metric__value')
    statements = page.locator('[id*="overview-card"][id*="queries"] .ops-metric__value')
    for _ in range(40):  # the demo's first requests are flushed within seconds
        if value.count() and value.inner_text() not in ("0", "—", "0.0"):
            break
        page.wait_for_timeout(500)
    first = float(value.inner_text())
    first_sql = int(statements.inner_text().replace(",", ""))
    assert first > 0 and first_sql > 0
    # One refresh (every 5 s) later more statements have been recorded.
    page.wait_for_timeout(6500)
    assert int(statements.inner_text().replace(",", "")) > first_sql
    watch.assert_clean("overview refresh")


def test_sidebar_on_phone_opens_and_navigates(signed_in, console):
    page, watch = signed_in
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{console}/")
    page.wait_for_selector("#overview-cards")
    sidebar = page.locator("#shell-sidebar")
    link = sidebar.locator("a[href='/jobs']")
    assert not link.is_visible()  # hidden behind the hamburger
    page.click("#shell-nav-open")
    link.wait_for(state="visible")
    link.click()
    page.wait_for_url(f"{console}/jobs")
    # The URL changes before the new page's layout replaces the old one.
    page.locator(".ops-page-title", has_text="Background jobs").wait_for()
    watch.assert_clean("phone navigation")


def test_dark_mode_rethemes_charts(signed_in, console):
    """The toggle re-themes a drawn chart, and the chart redrawn by the next
    refresh keeps the dark template."""
    from dashapp.ui.theme import register_templates
    import plotly.io as pio
    register_templates()
    expected = {t: pio.templates[f"ops_{t}"].layout.paper_bgcolor for t in ("light", "dark")}
    page, watch = signed_in
    page.goto(f"{console}/")
    page.wait_for_selector("#overview-traffic .main-svg")
    _set_theme(page, "light")
    js = "document.querySelector('#overview-traffic .js-plotly-plot')._fullLayout.paper_bgcolor"

    def colour_becomes(theme):
        wait_js(page, f"{js} === '{expected[theme]}'", timeout=5000)
        return True
    assert colour_becomes("light")
    _set_theme(page, "dark")
    assert colour_becomes("dark")
    page.wait_for_timeout(6000)  # the 5 s refresh redraws the chart from the server
    assert page.evaluate(js) == expected["dark"]
    _set_theme(page, "light")
    assert colour_becomes("light")
    watch.assert_clean("theme")


def test_api_docs_work_offline(browser, console):
    """The interactive API docs load from vendored files and list the routes,
    also when the console is reached by a real host name (Swagger UI would
    send the spec to its online validator)."""
    base = console.replace("127.0.0.1", PUBLIC_NAME)
    context, page, watch = sign_in_page(browser, base)
    page.goto(f"{base}/api/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/health" in p for p in paths)
    assert any("/api/overview" in p for p in paths)
    page.wait_for_timeout(1000)
    watch.assert_clean("/api/docs")
    context.close()
