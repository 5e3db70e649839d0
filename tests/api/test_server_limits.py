"""What the HTTP servers refuse before the console sees a request: the
development server under app.py and gunicorn (gunicorn.conf.py) both answer
in the JSON error shape, and no request the API accepts as valid is too long
for gunicorn's request-line limit."""
from __future__ import annotations

import json
import os
import re
import runpy
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_MAX_LINE = 8190  # gunicorn clamps larger limits to this


# ----- the longest valid URL ---------------------------------------------------
DATE_TIME = len("2026-12-07T16:46:26.123456+00:00")
NUMBER = 24  # a float within any documented maximum, e.g. 43199.99999999999
ENCODED = 3  # a character percent-encoded: %XX


def _pattern_width(pattern: str) -> int | None:
    """Longest string a pattern matches (None: unbounded)."""
    import re._parser as parser
    width = parser.parse(pattern).getwidth()[1]
    return None if width >= parser.MAXREPEAT else width


def value_length(schema: dict, where: str) -> int:
    """Longest text of a valid value, as it appears in a URL."""
    if "anyOf" in schema:
        return max(value_length(alt, where) for alt in schema["anyOf"])
    kind = schema.get("type")
    if kind == "null":
        return 0
    if "enum" in schema:
        return max(len(str(v)) for v in schema["enum"]) * ENCODED
    if kind == "boolean":
        return len("false")
    if kind == "integer":
        bounds = [schema.get(k) for k in ("maximum", "minimum", "exclusiveMaximum",
                                          "exclusiveMinimum") if schema.get(k) is not None]
        assert "maximum" in schema or "exclusiveMaximum" in schema, \
            f"{where}: an integer without a maximum"
        return max(len(str(int(b))) for b in bounds)
    if kind == "number":
        return NUMBER
    if kind == "string":
        if schema.get("format") == "date-time":
            return DATE_TIME * ENCODED
        bounds = [b for b in (schema.get("maxLength"),
                              _pattern_width(schema["pattern"]) if "pattern" in schema
                              else None) if b is not None]
        assert bounds, f"{where}: a string without maxLength"
        return min(bounds) * ENCODED
    if kind == "array":
        assert "maxItems" in schema, f"{where}: an array without maxItems"
        return schema["maxItems"] * (value_length(schema["items"], where) + len(where) + 2)
    raise AssertionError(f"{where}: cannot bound a {kind} parameter")


def longest_request_lines(spec: dict) -> list[tuple[int, str]]:
    """(length, "METHOD /path") of each operation's longest valid request
    line: every parameter present at its longest, every character of free
    text percent-encoded."""
    lines = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            target = path
            query = []
            for param in op.get("parameters", []):
                where = f"{method.upper()} {path} {param['name']}"
                size = value_length(param.get("schema", {}), where)
                if param["in"] == "path":
                    target = target.replace("{" + param["name"] + "}", "x" * size)
                elif param["in"] == "query":
                    query.append(f"{param['name']}={'x' * size}")
            url = target + ("?" + "&".join(query) if query else "")
            line = f"{method.upper()} {url} HTTP/1.1"
            lines.append((len(line), f"{method.upper()} {path}"))
    return sorted(lines, reverse=True)


def _gunicorn_limit() -> int:
    """limit_request_line as gunicorn.conf.py sets it (else gunicorn's default)."""
    return runpy.run_path(str(ROOT / "gunicorn.conf.py")).get("limit_request_line", 4094)


def test_the_longest_valid_url_fits_gunicorns_request_line_limit(app, client, viewer):
    limit = _gunicorn_limit()
    assert 0 < limit <= GUNICORN_MAX_LINE, "gunicorn would clamp it (or not bound it at all)"
    spec = client.get("/api/openapi.json", headers=viewer).get_json()
    lines = longest_request_lines(spec)
    assert len(lines) >= 90
    too_long = [(size, op) for size, op in lines if size > limit]
    assert not too_long, f"valid requests gunicorn ({limit}) would refuse: {too_long}"
    # The measure is not vacuous: the longest is a sizeable share of the limit.
    assert lines[0][0] > limit // 2, lines[:3]


# ----- the servers' own refusals -------------------------------------------------
def _console_env(tmp_path: Path, redis_url: str, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPS_")}
    env.update({
        "OPS_INSTANCE_DIR": str(tmp_path / "instance"),
        "OPS_DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}",
        "REDIS_URL": redis_url, "OPS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "SECRET_KEY": "server-limits-secret-key-0123456789",
        "OPS_DEMO": "false", "OPS_SCHEDULER": "false", "OPS_RATE_LIMIT_ENABLED": "false",
        "OPS_HOST": "127.0.0.1", "OPS_PORT": str(port), "OPS_WORKERS": "1",
        "OPS_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
    })
    return env


def _raw(port: int, payload: bytes) -> tuple[int, dict, bytes]:
    """Send raw bytes; (status, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(payload)
        except OSError:
            pass  # the server may answer and close before reading it all
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if length and len(body) >= int(length.group(1)):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:])}
    return status, headers, body


def _wait_for(port: int, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            status, _, _ = _raw(port, b"GET /api/health HTTP/1.1\r\nHost: x\r\n"
                                      b"Connection: close\r\n\r\n")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail("the server did not start")


def _assert_json_refusal(answer, status: int, code: str) -> None:
    got, headers, body = answer
    assert got == status, (got, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), (headers, body[:200])
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"], error


def _refusals(port: int, long_line: int, long_header: int) -> None:
    _assert_json_refusal(
        _raw(port, b"GET /api/health?q=" + b"a" * long_line + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        414, "uri_too_long")
    _assert_json_refusal(
        _raw(port, b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * long_header
             + b"\r\n\r\n"), 431, "request_header_fields_too_large")
    _assert_json_refusal(_raw(port, b"NONSENSE\r\n\r\n"), 400, "bad_request")
    # An ordinary request on the same server is answered by the console.
    status, headers, body = _raw(port, b"GET /api/health HTTP/1.1\r\nHost: x\r\n"
                                       b"Connection: close\r\n\r\n")
    assert status == 200 and json.loads(body)["status"] in ("ok", "degraded")


@pytest.fixture
def server_process():
    started = []

    def start(cmd, env, cwd):
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        started.append(proc)
        return proc
    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_development_server_refusals_are_json(tmp_path, redis_url, server_process):
    """python app.py: werkzeug's own 414 and 400 pages were HTML."""
    port = free_port()
    proc = server_process([sys.executable, str(ROOT / "app.py"), "--no-demo",
                           "--port", str(port)], _console_env(tmp_path, redis_url, port),
                          tmp_path)
    _wait_for(port, proc)
    _refusals(port, 70_000, 70_000)


def test_gunicorn_refusals_are_json(tmp_path, redis_url, server_process):
    """gunicorn with gunicorn.conf.py: its own 414 and 400 pages were HTML."""
    port = free_port()
    proc = server_process([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                           "--chdir", str(ROOT), "wsgi:server"],
                          _console_env(tmp_path, redis_url, port), tmp_path)
    _wait_for(port, proc)
    limit = _gunicorn_limit()
    _refusals(port, limit + 1, 8190 + 1)
    # The longest valid line is served, not refused by gunicorn.
    line = b"GET /api/health?q=" + b"a" * (limit - 40) + b" HTTP/1.1"
    assert len(line) <= limit
    status, _, _ = _raw(port, line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200
