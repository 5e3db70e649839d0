"""A viewer's worst regular expressions against a running console (python
app.py, threaded HTTP server) and a log of long lines: the console keeps
answering /api/health within a second while they run, the searches answer,
and SIGTERM still stops it. With a backtracking engine `(.+)+QQQ` alone
held every thread (and the signal handler) for good."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ADMIN_PASSWORD, PG_URL, _reset_postgres
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
# (.+)+QQQ is the pattern that froze the console; the other is the slowest
# for RE2 found (its DFA gives up and the NFA runs at a few MB/s).
PATTERNS = [r"(.+)+QQQ", r"([ab]*a[ab]{15}){3}Q"]


def _get(url: str, token: str | None = None, timeout: float = 5.0):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def console(tmp_path, redis_url):
    """python app.py reading one 8 MB log of 1,000-character lines."""
    logs = tmp_path / "logs"
    logs.mkdir()
    rng = random.Random(7)
    with open(logs / "app.log", "w") as fh:
        for i in range(8_000):
            body = "".join(rng.choice("ab") for _ in range(1_000))
            fh.write(f"2026-11-26 12:00:{i % 60:02d},000 INFO shop.orders: {body}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPS_DATABASE_URL", "REDIS_URL", "OPS_REDIS_INSTANCES")}
    env.update({"OPS_INSTANCE_DIR": str(tmp_path / "instance"), "OPS_DEMO": "false",
                "OPS_ADMIN_PASSWORD": ADMIN_PASSWORD, "OPS_LOG_FILES": str(logs / "app.log"),
                "REDIS_URL": redis_url, "OPS_RATE_LIMIT_ENABLED": "false",
                "PYTHONUNBUFFERED": "1"})
    if PG_URL:
        _reset_postgres(PG_URL)
        env["OPS_DATABASE_URL"] = PG_URL
    out = open(tmp_path / "console.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if _get(f"{base}/api/health", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        if proc.poll() is not None or time.monotonic() >= deadline:
            pytest.fail("console did not start:\n" + (tmp_path / "console.log").read_text()[-3000:])
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)
        out.close()


def _token(base: str) -> str:
    req = urllib.request.Request(f"{base}/api/auth/token", method="POST",
                                 data=json.dumps({"username": "admin",
                                                  "password": ADMIN_PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["token"]


def _search(base: str, token: str, pattern: str, results: dict) -> None:
    query = urllib.parse.urlencode({"source": "app.log", "q": pattern, "regex": "true",
                                    "rotated": "false"})
    try:
        results[pattern] = _get(f"{base}/api/logs/filter?{query}", token, timeout=120)
    except OSError as exc:
        results[pattern] = (None, str(exc))


def test_the_worst_patterns_cannot_hold_the_console(console):
    base, proc = console
    token = _token(base)
    results: dict = {}
    searches = [threading.Thread(target=_search, args=(base, token, p, results), daemon=True)
                for p in PATTERNS]
    for thread in searches:
        thread.start()
    time.sleep(0.3)
    latencies, while_running = [], 0
    deadline = time.monotonic() + 90
    while any(t.is_alive() for t in searches) and time.monotonic() < deadline:
        running = any(t.is_alive() for t in searches)
        started = time.perf_counter()
        try:
            status, _ = _get(f"{base}/api/health", timeout=5)
        except OSError as exc:
            pytest.fail(f"/api/health did not answer while the patterns ran: {exc}")
        latencies.append(time.perf_counter() - started)
        assert status == 200
        while_running += running
        time.sleep(0.1)
    assert while_running >= 3, "the searches ended before health was measured"
    assert max(latencies) < 1.0, latencies          # the bound, generously met
    for thread in searches:
        thread.join(timeout=60)
    for pattern in PATTERNS:
        status, body = results[pattern]
        assert status == 200, (pattern, body)
        assert body["records"] == []                # no line has a Q
    # SIGTERM while the slow pattern runs: the console still stops
    slow = threading.Thread(target=_search, args=(base, token, PATTERNS[1], {}), daemon=True)
    slow.start()
    time.sleep(0.5)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the console ignored SIGTERM while a search ran")
