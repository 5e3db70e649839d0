"""A real console (python app.py, demo on) and headless Debian Chromium.

The console runs as a subprocess exactly as a user starts it; Playwright drives
/usr/bin/chromium (never a downloaded browser). Every page records console
errors, failed requests and requests to any host other than 127.0.0.1.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import ADMIN_PASSWORD, PG_URL, _reset_postgres, missing_service
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
PUBLIC_NAME = "ops-console.test"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage",
                 # A non-localhost name for the console: some libraries behave
                 # differently on localhost (Swagger UI skips its validator).
                 f"--host-resolver-rules=MAP {PUBLIC_NAME} 127.0.0.1"]
VIEWPORTS = {"desktop": (1440, 900), "tablet": (768, 1024), "phone": (375, 812)}


@contextmanager
def running_console(instance: Path, env_extra: dict[str, str]):
    """`python app.py` as a user starts it, with the instance folder and the
    given variables (the store is PostgreSQL when TEST_POSTGRES_URL is set);
    yields its base URL once /api/health answers, stops it (SIGTERM) after."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPS_DATABASE_URL", "REDIS_URL", "OPS_DEMO", "OPS_REDIS_INSTANCES")}
    env.update({"OPS_INSTANCE_DIR": str(instance), "OPS_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "PYTHONUNBUFFERED": "1", **env_extra})
    if PG_URL:
        _reset_postgres(PG_URL)
        env["OPS_DATABASE_URL"] = PG_URL
    instance.mkdir(parents=True, exist_ok=True)
    log_path = instance / "console.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/api/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            proc.kill()
        if proc.poll() is not None:
            pytest.fail("console did not start:\n" + log_path.read_text()[-3000:])
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory, redis_url):
    """The console with the demo on; yields its base URL."""
    env = {"OPS_DEMO_PORT": str(free_port()), "OPS_DEMO_RPS": "4"}
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = redis_url
    with running_console(tmp_path_factory.mktemp("browser-instance"), env) as base:
        # Let the demo traffic put some figures on the overview.
        time.sleep(4)
        yield base


def screenshot_dir(tmp_path_factory, name: str = "screenshots") -> Path:
    """docs/screenshots with OPS_UPDATE_SCREENSHOTS=1 (for the README), else
    a temporary folder."""
    if os.environ.get("OPS_UPDATE_SCREENSHOTS") == "1":
        folder = ROOT / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp(name)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        missing_service(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_js(page, expression: str, arg=None, timeout: float = 30000) -> None:
    """Wait until the JavaScript `expression` (or function of `arg`) is truthy.

    Playwright's wait_for_function polls through an eval that the console's
    Content-Security-Policy (no 'unsafe-eval') refuses, so this polls with
    page.evaluate, which the policy does not cover."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        value = page.evaluate(expression, arg) if arg is not None else \
            page.evaluate(expression)
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout / 1000:g} s: {expression}")
        page.wait_for_timeout(100)


def click_until(target, shows, tries: int = 3, each: float = 10000) -> None:
    """Click `target` until the locator `shows` is visible.

    A live grid re-draws its rows while it refreshes; a click that lands on a
    row in the middle of that re-draw is lost, and a user would click again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    for attempt in range(tries):
        target.click()
        try:
            shows.wait_for(timeout=each)
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise


class PageWatch:
    """What went wrong in the browser while a test drove a page."""

    def __init__(self, page, base: str):
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.failed: list[str] = []
        host = urlparse(base).hostname
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

        def on_request(req):
            parsed = urlparse(req.url)
            if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname != host:
                self.outside.append(req.url)
        page.on("request", on_request)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} {r.failure}"))

    def assert_clean(self, where: str) -> None:
        assert self.outside == [], f"{where}: requests to outside hosts: {self.outside}"
        assert self.errors == [], f"{where}: browser errors: {self.errors}"
        self.errors.clear()


def sign_in_page(browser, base: str):
    """A new browser context signed in as admin at `base`: (context, page, watch)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    watch = PageWatch(page, base)
    page.goto(f"{base}/login")
    page.fill("#username", "admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{base}/")
    return context, page, watch


@pytest.fixture
def signed_in(browser, console):
    """A new browser context signed in as admin; yields (page, watch)."""
    context, page, watch = sign_in_page(browser, console)
    yield page, watch
    context.close()
