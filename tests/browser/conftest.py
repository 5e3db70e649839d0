"""A real console (python app.py, demo on) and headless Debian Chromium.

The console runs as a subprocess exactly as a user starts it; Playwright drives
/usr/bin/chromium (never a downloaded browser). Every page records console
errors, failed requests and requests to any host other than 127.0.0.1.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import ADMIN_PASSWORD, PG_URL, _reset_postgres, missing_service

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def console(tmp_path_factory, redis_url):
    """Start `python app.py` with the demo on; yield its base URL."""
    port, demo_port = free_port(), free_port()
    instance = tmp_path_factory.mktemp("browser-instance")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPS_DATABASE_URL", "REDIS_URL", "OPS_DEMO")}
    env.update({"OPS_INSTANCE_DIR": str(instance), "OPS_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "OPS_DEMO_PORT": str(demo_port), "OPS_DEMO_RPS": "4",
                "PYTHONUNBUFFERED": "1"})
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = redis_url
    if PG_URL:
        _reset_postgres(PG_URL)
        env["OPS_DATABASE_URL"] = PG_URL
    log = open(instance / "console.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
    if proc.poll() is not None:
        log.close()
        pytest.fail("console did not start:\n" + (instance / "console.log").read_text()[-3000:])
    # Let the demo traffic put some figures on the overview.
    time.sleep(4)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


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
