"""The Jobs page in headless Chromium against a real console (python app.py,
demo off) and a host process (tests/integration/jobs_host.py) recording its
scheduler's runs in the same store: counts, the running job's progress bar,
a failed run's traceback in the detail modal, a confirmed retry, and a
confirmed cancel of the running job."""
from __future__ import annotations

import time

import pytest

from tests.browser.conftest import click_until, running_console, sign_in_page
from tests.conftest import PG_URL
from tests.integration.jobs_host import running_host


@pytest.fixture(scope="module")
def jobs_console(tmp_path_factory, redis_url):
    """(base URL) of a console whose store a jobs host process writes to."""
    folder = tmp_path_factory.mktemp("jobs-console")
    instance = folder / "instance"
    env = {"OPS_DEMO": "false", "REDIS_URL": redis_url}
    with running_console(instance, env) as base:
        store = PG_URL or f"sqlite:///{instance / 'ops.db'}"
        with running_host(store, instance):
            time.sleep(2)  # its first runs: the slow one running, the flaky one failed
            yield base


def _confirm(page) -> None:
    dialog = page.locator(".modal.show .ops-confirm__message")
    dialog.wait_for()
    page.locator(".modal.show button", has_text="Yes, do it").click()


def test_jobs_page_progress_traceback_retry_and_cancel(browser, jobs_console):
    base = jobs_console
    context, page, watch = sign_in_page(browser, base)
    try:
        page.goto(f"{base}/jobs")
        page.wait_for_selector("#jobs-cards")
        # The running job with its progress bar, and the counts.
        running = page.locator("#jobs-running-list .ops-jobs-run", has_text="Slow host job")
        running.wait_for()
        bar = running.locator(".progress-bar")
        first = float(bar.get_attribute("aria-valuenow"))
        assert 0 <= first < 100
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                float(bar.get_attribute("aria-valuenow")) <= first:
            page.wait_for_timeout(300)  # the live refresh moves it on
        assert float(bar.get_attribute("aria-valuenow")) > first
        assert page.inner_text("#jobs-card-running .ops-metric__value").strip() == "1"
        assert "Host report" in page.inner_text("#jobs-schedule-list")

        # The failed run's traceback in the detail modal.
        page.click("#jobs-refresh-now")
        failed_row = page.locator("#jobs-history-grid .ag-row",
                                  has=page.locator(".ops-jobs-cell--failed"))
        failed_row.first.wait_for()
        click_until(failed_row.first.locator("[col-id='name']"),
                    page.locator("#jobs-detail-traceback"))
        trace = page.inner_text("#jobs-detail-traceback")
        assert "RuntimeError: first call fails" in trace and "host_flaky" in trace
        assert '"token": "***"' in page.inner_text("#jobs-detail-args")

        # Retry, confirmed: a new attempt that succeeds with the real token.
        page.click("#jobs-detail-retry")
        _confirm(page)
        page.locator(".ops-toast", has_text="Retry started").wait_for()
        facts = page.locator("#jobs-detail-facts")
        facts.get_by_text("(retry of run").wait_for()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "succeeded" not in facts.inner_text():
            page.wait_for_timeout(300)  # the open modal follows the new run live
        assert "succeeded" in facts.inner_text()
        assert "called with the real token" in facts.inner_text()
        page.keyboard.press("Escape")
        page.locator("#jobs-detail").wait_for(state="hidden")

        # Cancel the running job from the running list, confirmed.
        running.locator("button", has_text="Cancel").click()
        _confirm(page)
        page.locator(".ops-toast", has_text="Asked the run to stop").wait_for()
        page.locator("#jobs-running-none").wait_for(timeout=15000)
        page.click("#jobs-refresh-now")
        cancelled = page.locator("#jobs-history-grid .ag-row",
                                 has=page.locator(".ops-jobs-cell--cancelled"))
        cancelled.first.wait_for()
        assert "stopped at step" in cancelled.first.inner_text()
        watch.assert_clean("jobs page")
    finally:
        context.close()
