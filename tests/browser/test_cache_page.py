"""The Cache page in headless Chromium against a real console (python app.py)
whose Redis the test fills itself: stats, a key search paged by scrolling and
Load more, the key drawer, a dry-run-then-confirmed clear, switching to a
second Redis instance, and that instance going down and coming back."""
from __future__ import annotations

import json
import time

import pytest
import redis as redis_lib
from ops_agent.cache import keys as layout

from tests.browser.conftest import running_console, sign_in_page, wait_js
from tests.conftest import PrivateRedis

N_ITEMS = 260
N_TMP = 30


def _seed(r: redis_lib.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(N_ITEMS):
        pipe.set(f"shop:item:{i}", json.dumps({"id": i, "name": f"item {i}"}), ex=3600)
    for i in range(N_TMP):
        pipe.set(f"tmp:{i}", i)
    pipe.hset("shop:cart:1", mapping={"sku-1": 2, "sku-2": 1})
    pipe.rpush("shop:queue", *[f"job {i}" for i in range(5)])
    pipe.sadd(layout.namespaces_key("cache"), "products")
    pipe.hset(layout.stats_key("cache", "products"), mapping={"hits": 80, "misses": 20})
    for i in range(12):
        key = layout.entry_key("cache", "products", f"{i:032x}")
        pipe.set(key, json.dumps({"product": i}), ex=600)
        pipe.zadd(layout.index_key("cache", "products"), {key: time.time() + 600})
    pipe.hset(layout.warmers_key("cache"), "products", json.dumps(
        {"description": "Best sellers", "every": 300, "process": "web-1",
         "registered_at": "2026-11-26T10:00:00+00:00"}))
    pipe.execute()


@pytest.fixture(scope="module")
def cache_console(tmp_path_factory, redis_url):
    """`python app.py` (demo off) on the test Redis, plus a second instance
    ("second", a redis-server of this module) that the test can stop.
    Yields (base URL, default client, second server)."""
    folder = tmp_path_factory.mktemp("cache-console")
    second = PrivateRedis(folder)
    second.start()
    default = redis_lib.Redis.from_url(redis_url)
    default.flushdb()
    _seed(default)
    other = redis_lib.Redis.from_url(second.url)
    other.set("second:only", "here")
    other.close()
    env = {"OPS_DEMO": "false", "REDIS_URL": redis_url,
           "OPS_REDIS_INSTANCES": f"second={second.url}"}
    try:
        with running_console(folder / "instance", env) as base:
            yield base, default, second
    finally:
        default.close()
        second.stop()


def _info(page) -> str:
    return page.inner_text("#cache-keys-info")


def _wait_info(page, text: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = _info(page)
        if text in info:
            return info
        page.wait_for_timeout(200)
    raise AssertionError(f"{text!r} never appeared; the info line says {_info(page)!r}")


def _tab(page, label: str) -> None:
    page.locator("#cache-tabs .nav-link", has_text=label).click()


def test_cache_page_search_page_inspect_and_clear(browser, cache_console):
    base, redis_client, _second = cache_console
    context, page, watch = sign_in_page(browser, base)
    try:
        page.goto(f"{base}/cache")
        page.wait_for_selector("#cache-cards")
        # Stats: the namespace, its hit rate, its warmer.
        assert page.locator("#cache-card-hit-rate .ops-metric__value").inner_text() \
            .startswith("80")
        page.wait_for_selector("#cache-ns-grid .ag-row[row-id='products']")
        page.locator("#cache-warmers button", has_text="Warm now").click()
        page.locator(".ops-toast", has_text="Warm run of products requested").wait_for()
        request = json.loads(redis_client.lindex(layout.warm_requests_key("cache"), 0))
        assert request["namespace"] == "products" and request["requested_by"] == "admin"

        # A namespace's drawer: its figures, then "Browse keys" lists its entries.
        page.locator("#cache-ns-grid .ag-row[row-id='products'] [col-id='namespace']").click()
        page.wait_for_selector("#cache-ns-name")
        assert page.inner_text("#cache-ns-name") == "products"
        page.click("#cache-ns-browse")
        _wait_info(page, "all 12 matching keys loaded")
        assert page.input_value("#cache-pattern") == "cache:products:*"

        # Keys: search by pattern; the first page, then scroll for the next.
        page.fill("#cache-pattern", "shop:item:*")
        page.press("#cache-pattern", "Enter")
        first = _wait_info(page, "shop:item:*")
        assert "more to scan" in first, first
        loaded = int(first.split("·")[1].split()[0].replace(",", ""))
        assert 100 <= loaded < N_ITEMS
        page.locator("#cache-keys-grid .ag-body-viewport").evaluate(
            "el => { el.scrollTop = el.scrollHeight; }")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and f"{loaded} loaded" in _info(page):
            page.wait_for_timeout(200)
        assert f"{loaded} loaded" not in _info(page), "scrolling to the end loaded nothing"
        for _ in range(20):
            if "more to scan" not in _info(page):
                break
            page.click("#cache-keys-more")
            page.wait_for_timeout(400)
        assert f"all {N_ITEMS} matching keys loaded" in _info(page)
        names = page.locator("#cache-keys-grid .ag-row [col-id='display']").all_inner_texts()
        assert names and all(n.startswith("shop:item:") for n in names)

        # The type filter.
        page.fill("#cache-pattern", "shop:*")
        page.select_option("#cache-type", "hash")
        # The info line names the pattern and type searched: waiting for just
        # "all 1 matching key loaded" would pass on the previous search's line.
        _wait_info(page, "shop:* of type hash · all 1 matching key loaded")
        assert page.locator("#cache-keys-grid .ag-row [col-id='display']") \
            .all_inner_texts() == ["shop:cart:1"]

        # The key drawer.
        page.locator("#cache-keys-grid .ag-row [col-id='display']").first.click()
        page.wait_for_selector("#cache-key-name")
        assert page.inner_text("#cache-key-name") == "shop:cart:1"
        items = page.inner_text("#cache-key-items")
        assert "sku-1" in items and "sku-2" in items
        page.locator("#cache-key-drawer .btn-close").click()
        page.select_option("#cache-type", "string")
        page.fill("#cache-pattern", "shop:item:7")
        page.press("#cache-pattern", "Enter")
        _wait_info(page, "shop:item:7 of type string · all 1 matching key loaded")
        page.locator("#cache-keys-grid .ag-row[row-index='0'] [col-id='display']",
                     has_text="shop:item:7").click()
        page.wait_for_selector("#cache-key-text")
        wait_js(page, 
            "document.querySelector('#cache-key-name').innerText === 'shop:item:7'")
        assert json.loads(page.inner_text("#cache-key-text")) == {"id": 7, "name": "item 7"}
        assert "JSON" in page.inner_text("#cache-key-format")
        page.fill("#cache-key-ttl", "120")
        page.click("#cache-key-ttl-set")
        page.locator(".ops-toast", has_text="expires in 2 min").wait_for()
        assert 100 < redis_client.ttl("shop:item:7") <= 120
        page.locator("#cache-key-drawer .btn-close").click()

        # A list, its items, and deleting it after the confirmation.
        page.select_option("#cache-type", "list")
        page.fill("#cache-pattern", "shop:*")
        page.press("#cache-pattern", "Enter")
        _wait_info(page, "shop:* of type list · all 1 matching key loaded")
        page.locator("#cache-keys-grid .ag-row [col-id='display']").first.click()
        wait_js(page, 
            "document.querySelector('#cache-key-name')?.innerText === 'shop:queue'")
        assert "job 4" in page.inner_text("#cache-key-items")
        page.click("#cache-key-delete-open")
        dialog = page.locator(".modal.show", has_text="Delete this key?")
        dialog.wait_for()
        assert "shop:queue" in dialog.inner_text()
        dialog.locator("button", has_text="Delete key").click()
        page.locator(".ops-toast", has_text="Deleted shop:queue").wait_for()
        assert not redis_client.exists("shop:queue")
        page.wait_for_selector("#cache-keys-grid .ag-row", state="detached")

        # Clear by pattern: the dry-run count, then the typed confirmation.
        page.select_option("#cache-type", "all")
        page.fill("#cache-pattern", "tmp:*")
        page.press("#cache-pattern", "Enter")
        _wait_info(page, f"all {N_TMP} matching keys loaded")
        page.click("#cache-clear-open")
        page.wait_for_selector("#cache-clear-pattern")
        assert page.input_value("#cache-clear-pattern") == "tmp:*"
        assert page.locator("#cache-clear-go").is_disabled()
        page.click("#cache-clear-count")
        page.wait_for_selector("#cache-clear-count-text")
        assert f"{N_TMP} keys match" in page.inner_text("#cache-clear-count-text")
        assert redis_client.exists(*[f"tmp:{i}" for i in range(N_TMP)]) == N_TMP
        page.click("#cache-clear-go")
        dialog = page.locator(".modal.show", has_text="Delete the matching keys?")
        dialog.wait_for()
        confirm = dialog.locator("button", has_text="Delete keys")
        assert confirm.is_disabled()
        dialog.locator("input").fill("delete")
        assert confirm.is_enabled()
        confirm.click()
        page.locator(".ops-toast", has_text=f"Deleted {N_TMP} keys matching tmp:*").wait_for()
        _wait_info(page, "all 0 matching keys loaded")
        assert redis_client.exists(*[f"tmp:{i}" for i in range(N_TMP)]) == 0
        assert redis_client.exists(*[f"shop:item:{i}" for i in range(N_ITEMS)]) == N_ITEMS
        watch.assert_clean("cache page: search, drawer, clear")
    finally:
        context.close()


def test_switching_instance_and_an_outage(browser, cache_console):
    base, _redis_client, second = cache_console
    context, page, watch = sign_in_page(browser, base)
    try:
        page.goto(f"{base}/cache")
        page.wait_for_selector("#cache-cards")
        page.select_option("#cache-instance-picker", "second")
        page.wait_for_url(f"{base}/cache?instance=second")
        page.wait_for_selector("#cache-ns-none")      # no @cached data there
        _tab(page, "Keys")
        _wait_info(page, "all 1 matching key loaded")
        assert page.locator("#cache-keys-grid .ag-row [col-id='display']") \
            .all_inner_texts() == ["second:only"]
        options = page.locator("#cache-instance-picker option").all_inner_texts()
        assert [o for o in options if o] == ["default", "second"]   # names, never URLs
        assert "redis://" not in page.content()

        second.stop()
        page.wait_for_selector("#cache-status .ops-alert-card", timeout=15000)
        assert "Redis (second) is unavailable" in page.inner_text("#cache-status")
        second.start()
        page.wait_for_selector("#cache-status .ops-alert-card", state="detached",
                               timeout=15000)
        _tab(page, "Stats")
        page.wait_for_selector("#cache-cards")
        watch.assert_clean("cache page: instance switch and outage")
    finally:
        context.close()
