"""End to end: a host process with the agent, a console process, real HTTP.

The host is instrumented as the README says (OPS_DSN and one line); the
console is `python app.py`. What an operator would see: the host's
requests, SQL (the failing statement too), log records, with application
and release; a console restarted under traffic loses only what was sent
while it was down, and says how much; a revoked key stops the agent's
batches without disturbing the host; a batch in a format the console does
not read is refused with a code that says so.
"""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import ADMIN_PASSWORD, PG_URL, _reset_postgres
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
HOST = Path(__file__).with_name("agent_host.py")
APP = "e2e-shop"


def _call(url: str, *, method: str = "GET", body: dict | None = None,
          token: str | None = None, raw: bytes | None = None,
          headers: dict | None = None, timeout: float = 10.0):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {}),
        **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class Console:
    """`python app.py --no-demo` on a fixed port, stoppable and restartable
    on the same instance folder and store."""

    def __init__(self, instance: Path):
        self.instance = instance
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("OPS_DATABASE_URL", "OPS_DEMO", "OPS_DSN")}
        self.env.update({"OPS_INSTANCE_DIR": str(instance), "OPS_ADMIN_PASSWORD": ADMIN_PASSWORD,
                         "PYTHONUNBUFFERED": "1", "OPS_RATE_LIMIT_ENABLED": "0"})
        if PG_URL:
            _reset_postgres(PG_URL)
            self.env["OPS_DATABASE_URL"] = PG_URL
        instance.mkdir(parents=True, exist_ok=True)

    @property
    def store_url(self) -> str:
        return PG_URL or f"sqlite:///{self.instance / 'ops.db'}"

    def start(self) -> None:
        log = open(self.instance / "console.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--no-demo", "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if _call(f"{self.url}/api/health", timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        pytest.fail("console did not start:\n"
                    + (self.instance / "console.log").read_text()[-3000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def admin_token(self) -> str:
        status, body = _call(f"{self.url}/api/auth/token", method="POST",
                             body={"username": "admin", "password": ADMIN_PASSWORD})
        assert status == 200, body
        return body["token"]


def _wait(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def console(tmp_path):
    c = Console(tmp_path / "console")
    c.start()
    yield c
    c.stop()


@pytest.fixture
def host_factory(tmp_path):
    procs = []

    def start(dsn: str, release: str = "2.0.1"):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPS_")}
        env.update({"OPS_DSN": dsn, "OPS_RELEASE": release, "PYTHONUNBUFFERED": "1"})
        log = open(tmp_path / "host.log", "w")
        proc = subprocess.Popen([sys.executable, str(HOST), str(port), str(tmp_path / "host.db")],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        _wait(lambda: _ok(f"{base}/items/0"), 30, "the host to serve")
        return base, tmp_path / "host.log"

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _scalar(store_url: str, sql: str, **params):
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def test_host_and_console_over_http_through_a_restart_and_a_revoked_key(console, host_factory):
    token = console.admin_token()
    status, created = _call(f"{console.url}/api/ingest-keys", method="POST", token=token,
                            body={"app": APP, "note": "e2e"})
    assert status == 201, created
    assert created["dsn"] == f"http://{created['key']}@127.0.0.1:{console.port}/{APP}"
    base, host_log = host_factory(created["dsn"])
    store = console.store_url

    for i in range(1, 21):
        assert _get(f"{base}/items/{i}") == 200
    assert _get(f"{base}/broken") == 500

    # Requests, with the application and release the agent named.
    _wait(lambda: (_scalar(store, "SELECT count(*) FROM ops_request WHERE app = :a "
                                  "AND release = '2.0.1'", a=APP) or 0) >= 22,
          40, "the host's requests in the console")
    # The statement behind the 500, with its error type, and no values.
    failed = _wait(lambda: _scalar(store, "SELECT sql FROM ops_query WHERE app = :a AND "
                                          "error_type IS NOT NULL", a=APP), 20,
                   "the failing statement")
    assert "no_such_table" in failed and "7" not in failed
    # Log records, tied to their request.
    assert _scalar(store, "SELECT count(*) FROM ops_log_record WHERE app = :a AND "
                          "message LIKE 'item % served' AND request_id IS NOT NULL",
                   a=APP) >= 20
    assert _scalar(store, "SELECT count(*) FROM ops_monitor_process WHERE app = :a",
                   a=APP) == 1

    # The console goes away under traffic: the host goes on answering.
    console.stop()
    for i in range(100, 140):
        assert _get(f"{base}/items/{i}") == 200
    time.sleep(1.5)  # at least one batch attempt meets the closed port
    console.start()
    for i in range(200, 210):
        assert _get(f"{base}/items/{i}") == 200
    _wait(lambda: _scalar(store, "SELECT count(*) FROM ops_request WHERE app = :a AND "
                                 "endpoint = '/items/<int:item_id>' AND request_id IN "
                                 "(SELECT request_id FROM ops_log_record WHERE "
                                 "message = 'item 209 served')", a=APP), 40,
          "requests after the restart")
    # What was lost while it was down is counted and reported.
    dropped = _wait(lambda: _scalar(store, "SELECT dropped FROM ops_monitor_process "
                                           "WHERE app = :a", a=APP), 20, "the drop count")
    assert dropped >= 40
    log = host_log.read_text()
    assert log.count("events are dropped and counted") == 1, log
    assert log.count("console reachable again") == 1, log

    # A revoked key: the host keeps serving; the agent says so once.
    status, _ = _call(f"{console.url}/api/ingest-keys/{created['id']}", method="DELETE",
                      token=token)
    assert status == 200
    for i in range(300, 320):
        assert _get(f"{base}/items/{i}") == 200
    _wait(lambda: "invalid_ingest_key" in host_log.read_text()
          or "wrong or revoked" in host_log.read_text(), 20, "the revoked-key warning")
    time.sleep(2.5)
    assert host_log.read_text().count("wrong or revoked") == 1
    assert not _scalar(store, "SELECT count(*) FROM ops_log_record WHERE app = :a AND "
                              "message = 'item 319 served'", a=APP)


def test_console_refuses_a_batch_format_it_does_not_read(console):
    token = console.admin_token()
    status, created = _call(f"{console.url}/api/ingest-keys", method="POST", token=token,
                            body={"app": APP})
    assert status == 201
    headers = {"X-Ops-Key": created["key"], "Content-Encoding": "gzip"}
    old = gzip.compress(json.dumps({"v": 0, "app": APP, "events": {"requests": []}}).encode())
    status, body = _call(f"{console.url}/api/ingest", method="POST", raw=old, headers=headers)
    assert status == 400 and body["error"]["code"] == "unsupported_format", body
    current = gzip.compress(json.dumps({"v": 1, "app": APP, "process": "p:1",
                                        "events": {}}).encode())
    status, body = _call(f"{console.url}/api/ingest", method="POST", raw=current,
                         headers=headers)
    assert status == 200 and body == {"accepted": 0, "commands": []}, body
    other = gzip.compress(json.dumps({"v": 1, "app": "someone-else", "events": {}}).encode())
    status, body = _call(f"{console.url}/api/ingest", method="POST", raw=other,
                         headers=headers)
    assert status == 403 and body["error"]["code"] == "wrong_app"
    status, body = _call(f"{console.url}/api/ingest", method="POST", raw=current,
                         headers={**headers, "X-Ops-Key": "opsik_wrong"})
    assert status == 401 and body["error"]["code"] == "invalid_ingest_key"
