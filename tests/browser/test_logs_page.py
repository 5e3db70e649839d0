"""The Logs page in headless Chromium against a real console (python app.py,
demo off) reading a log file the test writes: the live stream over
EventSource, a new line arriving, markup shown as text, search with
highlighted matches, pause, the request id link, export, the phone layout."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from tests.browser.conftest import running_console, sign_in_page, wait_js

START = datetime.now(timezone.utc) - timedelta(minutes=5)


def _line(s, level, msg, name="orders"):
    """A line `s` seconds after START (within the page's 1 h histogram window)."""
    stamp = (START + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S,000")
    return f"{stamp} {level} shop.{name}: {msg}\n"


@pytest.fixture(scope="module")
def logs_console(tmp_path_factory, redis_url):
    folder = tmp_path_factory.mktemp("logs-console")
    logs = folder / "logs"
    logs.mkdir()
    path = logs / "app.log"
    path.write_text("".join(_line(i, "INFO", f"order {i} placed") for i in range(30))
                    + _line(30, "ERROR", "payment timeout request_id=abc123")
                    + _line(31, "WARNING", "<img src=x onerror=alert(1)> looks odd"))
    env = {"OPS_DEMO": "false", "REDIS_URL": redis_url, "OPS_LOG_FILES": f"{logs}/*.log",
           "OPS_LOG_DIRS": str(logs)}
    with running_console(folder / "instance", env) as base:
        yield base, path


def _append(path, text):
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def _rows(page):
    return page.locator("#logs-view .ops-log-row")


def test_live_stream_search_pause_link_and_export(browser, logs_console):
    base, path = logs_console
    context, page, watch = sign_in_page(browser, base)
    streams = []
    page.on("request", lambda r: streams.append(r.resource_type)
            if "/api/logs/stream" in r.url else None)
    try:
        page.goto(f"{base}/logs")
        wait_js(page, "document.querySelectorAll('#logs-view .ops-log-row')"
                               ".length >= 32")
        assert "eventsource" in streams                      # SSE, not polling
        assert re.match(r"Live · \d+ lines", page.inner_text("#logs-live-status"))
        # a log line is text, never markup
        odd = _rows(page).filter(has_text="looks odd")
        assert odd.count() == 1 and odd.locator("img").count() == 0
        assert "<img src=x" in odd.inner_text()
        # a time logged with ",000" milliseconds reads as one, not "…:34+00:"
        shown = (START + timedelta(seconds=31)).strftime("%Y-%m-%d %H:%M:%S.000")
        assert odd.locator(".ops-log-time").inner_text() == shown
        # a new line reaches the open page
        _append(path, _line(40, "ERROR", "card declined just now"))
        page.wait_for_selector("#logs-view .ops-log-row--ERROR >> text=card declined just now")

        # search: only matching lines, matches highlighted
        page.fill("#logs-search", "declined|timeout")
        page.check("#logs-regex input")
        page.press("#logs-search", "Enter")
        wait_js(page, 
            "(() => { const r = document.querySelectorAll('#logs-view .ops-log-row');"
            " return r.length === 2 && [...r].every(x => x.querySelector('mark')); })()")
        marks = page.locator("#logs-view mark").all_inner_texts()
        assert sorted(marks) == ["declined", "timeout"]

        # pause holds new lines back; resuming shows them
        page.check("#logs-paused input")
        _append(path, _line(41, "ERROR", "declined while paused"))
        wait_js(page, "document.getElementById('logs-live-status')"
                               ".textContent.includes('1 new')")
        assert _rows(page).filter(has_text="declined while paused").count() == 0
        page.uncheck("#logs-paused input")
        page.wait_for_selector("#logs-view >> text=declined while paused")

        # export the filtered records as TXT
        with page.expect_download() as info:
            page.click("#logs-export-txt")
        text = open(info.value.path(), encoding="utf-8").read()
        assert [ln.split(": ", 1)[1] for ln in text.splitlines()] == [
            "payment timeout request_id=abc123", "card declined just now",
            "declined while paused"]

        # the level histogram drew
        page.wait_for_selector("#logs-histogram .bars path", state="attached")

        # the request id opens that request's metrics and SQL
        link = page.locator("#logs-view a.ops-log-req").first
        assert link.get_attribute("href") == "/endpoints?request=abc123"
        link.click()
        page.wait_for_url(f"{base}/endpoints?request=abc123")
        page.wait_for_selector("#endpoints-request-sql >> text=abc123")
        watch.assert_clean("logs page")
    finally:
        context.close()


def test_phone_width_and_a_refused_source(browser, logs_console):
    base, _path = logs_console
    context, page, watch = sign_in_page(browser, base)
    try:
        page.set_viewport_size({"width": 375, "height": 812})
        page.goto(f"{base}/logs?source=../../etc/passwd")
        page.wait_for_selector("#logs-view .ops-log-row")   # falls back to the first file
        assert "root:" not in page.inner_text("#logs-view")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page scrolls sideways at phone width ({width}px)"
        watch.assert_clean("logs page (phone)")
    finally:
        context.close()


def test_highlights_come_from_the_server_not_the_browsers_regexp(browser, logs_console):
    """`x|(\\w+\\s?)+$` is linear for RE2 but backtracks exponentially in the
    browser's RegExp on a line ending in a long word and a `!`: the page shows
    the line with its match highlighted, and stays responsive. `(?i)` is
    Python/RE2 syntax the browser's RegExp refuses: highlighted all the same."""
    base, path = logs_console
    _append(path, _line(60, "WARNING", "x " + "a" * 40 + "!")
            + _line(61, "WARNING", "Stock LOW for sku-9"))
    context, page, watch = sign_in_page(browser, base)
    try:
        page.goto(f"{base}/logs")
        page.wait_for_selector("#logs-view >> text=Stock LOW for sku-9")
        page.check("#logs-regex input")
        page.fill("#logs-search", r"x|(\w+\s?)+$")
        page.press("#logs-search", "Enter")
        # (locator waits: their timeout holds even if the tab hangs)
        marked = _rows(page).filter(has_text="aaaa!").locator("mark")
        marked.first.wait_for(timeout=20000)
        assert marked.all_inner_texts() == ["x"]
        page.fill("#logs-search", r"(?i)stock low", timeout=5000)   # the tab still answers
        page.press("#logs-search", "Enter", timeout=5000)
        page.locator("#logs-view mark").filter(
            has_text=re.compile(r"^Stock LOW$")).first.wait_for(timeout=20000)
        watch.assert_clean("logs page (server-side highlights)")
    finally:
        context.close()


def test_search_filters_as_you_type(browser, logs_console):
    """The page says "filtered as you type": typing, with no Enter and no
    leaving the field, filters the stream once typing pauses."""
    base, path = logs_console
    _append(path, _line(70, "INFO", "typed-filter-target reached"))
    context, page, watch = sign_in_page(browser, base)
    try:
        page.goto(f"{base}/logs")
        page.wait_for_selector("#logs-view >> text=typed-filter-target reached")
        page.locator("#logs-search").press_sequentially("typed-filter", delay=30)
        wait_js(page, "(() => { const r = document.querySelectorAll('#logs-view .ops-log-row');"
                      " return r.length === 1 && r[0].textContent.includes("
                      "'typed-filter-target'); })()")
        assert page.evaluate("document.activeElement.id") == "logs-search"
        watch.assert_clean("logs page (filter as you type)")
    finally:
        context.close()
