"""SENTRY_DSN: errors of the console reach Sentry (a monitored host's do not: its own);
unset, nothing is sent. A real HTTP server plays Sentry's ingest endpoint,
and each case runs in its own process (sentry-sdk is process-global)."""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CONSOLE = """
from dashapp import create_app
from dashapp.config import load_settings
from dashapp.security.roles import public
import sentry_sdk
app = create_app(load_settings(instance_dir=INSTANCE, demo=False, scheduler=False,
                               admin_password="sentry-pass-1234"))
server = app.server

@public
def boom():
    raise RuntimeError("console-sentry-probe")

server.add_url_rule("/api/boom", "boom", boom)
resp = server.test_client().get("/api/boom")
assert resp.status_code == 500, resp.status_code
assert resp.get_json()["error"]["code"] == "internal_error"
sentry_sdk.flush(10)
server.extensions["ops"].close()
print("sentry", sentry_sdk.get_client().is_active())
print("done")
"""

HOST = """
from flask import Flask
from dashapp import monitor
from dashapp.config import load_settings
import sentry_sdk
host = Flask("host")

@host.get("/boom")
def boom():
    raise ValueError("host-sentry-probe")

mon = monitor(host, settings=load_settings(instance_dir=INSTANCE, demo=False))
assert host.test_client().get("/boom").status_code == 500
sentry_sdk.flush(10)
mon.close()
print("sentry", sentry_sdk.get_client().is_active())
print("done")
"""


class Sink(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        encoding = self.headers.get("Content-Encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":
            import brotli
            body = brotli.decompress(body)
        Sink.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def sentry_sink():
    Sink.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_port}/1", Sink.received
    server.shutdown()


def run(script: str, tmp_path, redis_url, store_url, dsn: str | None):
    env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    env.update(REDIS_URL=redis_url, OPS_DATABASE_URL=store_url, PYTHONPATH=str(ROOT))
    if dsn:
        env["SENTRY_DSN"] = dsn
    code = f"INSTANCE = {str(tmp_path / 'instance')!r}\n" + textwrap.dedent(script)
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-3000:]
    return proc.stdout


def test_console_errors_reach_sentry(tmp_path, redis_url, store_url, sentry_sink):
    dsn, received = sentry_sink
    assert "sentry True" in run(CONSOLE, tmp_path, redis_url, store_url, dsn)
    events = b"".join(received)
    assert b"console-sentry-probe" in events
    assert b'"ops.component":"console"' in events.replace(b" ", b"")
    assert b"sentry-pass-1234" not in events, "no secret leaves with an error"


def test_the_agent_leaves_the_hosts_sentry_alone(tmp_path, redis_url, store_url, sentry_sink):
    """A host's error reporting is its own: with SENTRY_DSN in its
    environment, instrumenting it neither starts Sentry nor sends to it
    (the agent reads no variable without the OPS_ prefix)."""
    dsn, received = sentry_sink
    assert "sentry False" in run(HOST, tmp_path, redis_url, store_url, dsn)
    assert b"host-sentry-probe" not in b"".join(received)


def test_nothing_is_sent_without_a_dsn(tmp_path, redis_url, store_url, sentry_sink):
    _dsn, received = sentry_sink
    assert "sentry False" in run(CONSOLE, tmp_path, redis_url, store_url, None)
    assert "sentry False" in run(HOST, tmp_path, redis_url, store_url, None)
    assert received == []
