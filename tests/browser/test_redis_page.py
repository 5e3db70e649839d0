"""The Redis server page in headless Chromium against a real console (demo
on) that watches two Redis servers: the default one and "other", a
redis-server of this module's own with a known keyspace and slowlog. The page
shows every section, switches instance through the URL, kills a client and
resets the slowlog through typed/confirmed dialogs, and shows an outage and
its recovery. With OPS_UPDATE_SCREENSHOTS=1 it saves docs/screenshots/redis-*.
"""
from __future__ import annotations

import os
import re

import pytest
import redis as redis_lib

from tests.browser.conftest import VIEWPORTS, free_port, running_console, screenshot_dir, wait_js
from tests.conftest import PrivateRedis

N_INVENTORY = 120


@pytest.fixture(scope="module")
def other_redis(tmp_path_factory):
    """The second watched server, with known keys and a few slowlog entries."""
    server = PrivateRedis(tmp_path_factory.mktemp("other-redis"))
    server.start()
    seed(server)
    yield server
    server.stop()


def seed(server: PrivateRedis) -> None:
    client = redis_lib.Redis.from_url(server.url)
    client.mset({f"inventory:sku:{i}": "x" * (i % 50) for i in range(N_INVENTORY)})
    client.rpush("jobs:pending", *range(2000))
    client.config_set("slowlog-log-slower-than", 0)
    client.get("inventory:sku:1")
    client.config_set("slowlog-log-slower-than", 10_000)
    client.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory, redis_url, other_redis):
    """The console with the demo on and the second server as "other"."""
    env = {"OPS_DEMO_PORT": str(free_port()), "OPS_DEMO_RPS": "4",
           "OPS_REDIS_INSTANCES": f"other={other_redis.url}"}
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = redis_url
    with running_console(tmp_path_factory.mktemp("redis-console"), env) as base:
        yield base


def _wait_loaded(page) -> None:
    page.wait_for_selector("#redis-cards .ops-metric", timeout=15000)
    page.wait_for_selector("#redis-keys-sample-note", timeout=15000)
    page.wait_for_selector("#redis-namespaces .ag-row", timeout=15000)


def _set_theme(page, theme: str) -> None:
    for _ in range(2):
        if page.evaluate("document.documentElement.getAttribute('data-bs-theme')") == theme:
            return
        page.locator("#shell-theme-toggle").click()
        page.wait_for_timeout(150)
    assert page.evaluate("document.documentElement.getAttribute('data-bs-theme')") == theme


def _toast(page, text: str) -> str:
    """The toast that says `text` (earlier toasts may still be on screen)."""
    toast = page.locator(".ops-toast .toast-body", has_text=text).last
    toast.wait_for(timeout=10000)
    return toast.inner_text()


def test_redis_page_shows_every_section(signed_in, console):
    page, watch = signed_in
    page.goto(f"{console}/redis")
    page.wait_for_selector(".ops-page-title")
    assert page.locator(".ops-page-title").first.inner_text() == "Redis server"
    _wait_loaded(page)
    assert page.locator("#redis-cards .ops-metric").count() == 8
    assert page.inner_text("#redis-card-server .ops-metric__value").startswith("Redis ")
    # Plotly draws a graph after its data arrives (its bundle loads on first
    # use), so each chart is waited for rather than counted at once.
    for chart in ("#redis-memory-chart", "#redis-keys-bar", "#redis-keys-treemap"):
        page.locator(f"{chart} .main-svg").first.wait_for(timeout=15000)
    note = page.inner_text("#redis-keys-sample-note")
    assert re.search(r"(Exact|Estimated): ", note) and "keys" in note
    # The demo's cache keys are in the default Redis.
    assert page.locator("#redis-namespaces .ag-row").count() >= 1
    clients = page.inner_text("#redis-clients")
    assert "this console" in clients
    page.locator("#redis-clients .ag-row").first.wait_for()
    assert page.locator("#redis-slowlog").count() == 1
    page.locator("#redis-commands .ag-row").first.wait_for()
    advice = page.locator("#redis-advice .ops-redis-advice, #redis-advice-none")
    advice.first.wait_for()
    # The instance switcher names the servers, never their URLs.
    options = page.locator("#redis-instance option:not([hidden])").all_inner_texts()
    assert options == ["default", "other"]
    assert "redis://" not in page.content()
    watch.assert_clean("/redis")


def test_switch_instance_kill_a_client_and_reset_the_slowlog(signed_in, console,
                                                             other_redis):
    page, watch = signed_in
    victim = redis_lib.Redis.from_url(other_redis.url, single_connection_client=True)
    victim.client_setname("browser-victim")
    victim_id = int(victim.client_info()["id"])
    try:
        page.goto(f"{console}/redis")
        _wait_loaded(page)
        page.select_option("#redis-instance", "other")
        page.wait_for_url(re.compile(r".*/redis\?instance=other$"))
        page.wait_for_selector('#redis-namespaces .ag-row[row-id="inventory"]', timeout=15000)
        assert page.input_value("#redis-instance") == "other"
        keys_cell = page.locator('#redis-namespaces .ag-row[row-id="inventory"] [col-id="keys"]')
        assert keys_cell.inner_text() == f"{N_INVENTORY:,}"
        assert "Exact" in page.inner_text("#redis-keys-sample-note")
        assert page.locator("#redis-bigkeys .ag-row[row-id='jobs:pending']").count() == 1
        page.wait_for_selector("#redis-slowlog .ag-row")
        assert "Slow commands were logged" in page.inner_text("#redis-advice")

        # Kill: select the victim's row, confirm by typing the word.
        row = page.locator(f'#redis-clients .ag-row[row-id="{victim_id}"]').first
        row.locator("[col-id='addr']").click()
        kill = page.locator("#redis-kill-open")
        wait_js(page, "!document.querySelector('#redis-kill-open').disabled")
        assert f"client {victim_id}" in page.inner_text("#redis-kill-selected")
        kill.click()
        dialog = page.locator(".modal.show")
        dialog.wait_for()
        assert "browser-victim" in dialog.inner_text()
        confirm = dialog.get_by_role("button", name="Kill client")
        assert confirm.is_disabled()
        dialog.locator("input[type=text]").fill("kill")
        confirm.click()
        assert "(127.0.0.1:" in _toast(page, f"Killed client {victim_id}")
        ids = {int(c["id"]) for c in redis_lib.Redis.from_url(other_redis.url).client_list()}
        assert victim_id not in ids
        page.wait_for_selector(f'#redis-clients .ag-row[row-id="{victim_id}"]',
                               state="detached")

        # Reset the slowlog, confirmed.
        page.locator("#redis-slowlog-reset-open").click()
        dialog = page.locator(".modal.show")
        dialog.wait_for()
        dialog.get_by_role("button", name="Reset slowlog").click()
        assert "entries removed" in _toast(page, "Slowlog reset")
        page.wait_for_selector("#redis-slowlog .ag-row", state="detached")
        assert "0 entries" in page.inner_text("#redis-slowlog-summary")
        watch.assert_clean("/redis instance switch, kill, reset")
    finally:
        victim.close()


def test_outage_shows_a_card_and_recovers(signed_in, console, other_redis):
    page, watch = signed_in
    page.goto(f"{console}/redis?instance=other")
    _wait_loaded(page)
    other_redis.stop()
    try:
        card = page.locator(".ops-alert-card", has_text="Redis (other) is unavailable")
        card.wait_for(timeout=20000)
        assert not page.locator("#redis-main").is_visible()
    finally:
        other_redis.start()
        seed(other_redis)
    page.wait_for_selector("#redis-cards .ops-metric", timeout=20000)
    assert page.locator(".ops-alert-card").count() == 0
    page.wait_for_selector('#redis-namespaces .ag-row[row-id="inventory"]', timeout=15000)
    watch.assert_clean("/redis outage and recovery")


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_redis_page_in_every_theme_and_width(signed_in, console, theme, viewport,
                                             tmp_path_factory):
    page, watch = signed_in
    width, height = VIEWPORTS[viewport]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{console}/redis")
    _wait_loaded(page)
    _set_theme(page, theme)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"/redis scrolls sideways by {overflow}px at {width}px"
    if viewport != "tablet":
        page.wait_for_timeout(500)
        page.screenshot(path=str(screenshot_dir(tmp_path_factory, "redis-screenshots") / f"redis-{theme}-{viewport}.png"),
                        full_page=True, animations="disabled")
    watch.assert_clean(f"/redis ({theme}, {viewport})")
