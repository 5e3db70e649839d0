"""Fuzz every operation of /api/openapi.json with Schemathesis, in-process.

Schemathesis reads the spec the console serves and, for each operation,
sends the documented examples, then valid inputs (positive) and invalid ones
(negative) that Hypothesis generates, as an admin and as a viewer. Every
answer must be a non-5xx whose status code, content type and body the spec
documents. New routes are fuzzed as soon as they are in the spec.

The app is a throwaway: a temp instance folder, a fresh store and a flushed
Redis database (the fixtures), so restores, config writes, cache clears and
job commands are harmless here. Rate limits are off so nothing is throttled.

Bounded and derandomized so CI is stable: OPS_FUZZ_EXAMPLES examples per
operation and generation mode as admin (default 6), a quarter of that as
viewer (whose writes stop at the 403); raise it locally to dig deeper, e.g.
OPS_FUZZ_EXAMPLES=100 pytest tests/api/test_fuzz.py.

Server-Sent Event streams (GET /api/logs/stream) are left out: a valid
request holds the stream open, so they are covered by the logs tests and by
test_stream_refuses_bad_input below.
"""
from __future__ import annotations

import logging
import os
import time
from collections import defaultdict

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from tests.conftest import ADMIN_PASSWORD
from tests.helpers import token_for

MAX_EXAMPLES = int(os.environ.get("OPS_FUZZ_EXAMPLES", "6"))
EXAMPLES = {"admin": MAX_EXAMPLES, "viewer": max(2, MAX_EXAMPLES // 4)}
# Wall-clock cap per operation and mode, so a slow route (password hashing,
# report rendering) cannot stretch the run: the examples run first, then
# generated inputs until the cap. Bounds the run's length, never its verdict.
OPERATION_SECONDS = float(os.environ.get("OPS_FUZZ_OPERATION_SECONDS", "2.5"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@pytest.fixture
def fuzz_app(tmp_path, redis_url, store_url, redis_client):
    """A throwaway console: temp instance, fresh store, flushed Redis db."""
    from dashapp import create_app
    from dashapp.config import load_settings
    settings = load_settings(
        instance_dir=tmp_path / "instance", database_url=store_url, redis_url=redis_url,
        demo=False, admin_password=ADMIN_PASSWORD, secret_key="fuzz-secret-key",
        scheduler=False, rate_limit_enabled=False,
    )
    dash_app = create_app(settings)
    yield dash_app.server
    dash_app.server.extensions["ops"].close()


def _headers(app, role: str) -> dict:
    client = app.test_client()
    if role == "admin":
        headers = token_for(client, app)
    else:
        headers = token_for(client, app, f"fuzz-{role}", "fuzz-pass-1234", role=role)
    # Uncompressed answers, so the checks read the bodies themselves.
    return {**headers, "Accept-Encoding": "identity"}


def _is_stream(operation) -> bool:
    return any("text/event-stream" in (resp.get("content") or {})
               for resp in operation.definition.raw.get("responses", {}).values())


class _OutOfTime(Exception):
    """This operation has had its share of the run."""


def _fuzz_operation(operation, mode, headers, examples: int) -> list[str]:
    """Run one operation in one generation mode; the distinct failures."""
    found: dict[str, str] = {}
    started = time.monotonic()

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(max_examples=examples, derandomize=True, deadline=None,
                         database=None, suppress_health_check=list(HealthCheck),
                         phases=[Phase.explicit, Phase.generate])
    def run(case):
        if time.monotonic() - started > OPERATION_SECONDS:
            raise _OutOfTime
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except BaseException as exc:  # noqa: BLE001 - schemathesis' failure group
            if isinstance(exc, KeyboardInterrupt):
                raise
            title = str(exc).strip().splitlines()
            key = next((line for line in title if line.startswith("- ")), title[0])
            found.setdefault(f"{key.strip()} [{response.status_code}]", str(exc)[:3000])

    try:
        run()
    except Unsatisfiable:
        pass  # nothing to make invalid (no parameters, no body)
    except _OutOfTime:
        pass
    return [f"{key}\n{detail}" for key, detail in found.items()]


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_api_fuzz_finds_no_server_error_and_matches_the_spec(fuzz_app, role):
    logging.disable(logging.CRITICAL)  # 4xx warnings would flood the report
    try:
        headers = _headers(fuzz_app, role)
        schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app,
                                                headers=headers)
        failures: dict[str, list[str]] = defaultdict(list)
        took: dict[str, float] = {}
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            if _is_stream(operation):
                continue
            label = f"{operation.method.upper()} {operation.path}"
            began = time.monotonic()
            for mode in MODES:
                failures[label] += [f"({mode.value}) {f}"
                                    for f in _fuzz_operation(operation, mode, headers,
                                                                EXAMPLES[role])]
            took[label] = time.monotonic() - began
    finally:
        logging.disable(logging.NOTSET)
    slowest = sorted(took.items(), key=lambda item: -item[1])[:5]
    print("slowest operations:", ", ".join(f"{label} {secs:.1f}s" for label, secs in slowest))
    assert operations >= 90, "the spec lost operations"
    report = [f"== {label}\n" + "\n".join(items)
              for label, items in sorted(failures.items()) if items]
    assert not report, (f"{len(report)} operations failed as {role}:\n\n"
                        + "\n\n".join(report))


def test_stream_refuses_bad_input(fuzz_app):
    """The stream left out above: bad values are a 400 naming the field,
    before any stream is opened."""
    client = fuzz_app.test_client()
    headers = _headers(fuzz_app, "viewer")
    for query, field in (({"backlog": "-1"}, "backlog"), ({"backlog": "many"}, "backlog"),
                         ({"source": "x" * 5000}, "source")):
        resp = client.get("/api/logs/stream", query_string=query, headers=headers)
        assert resp.status_code == 400, query
        assert resp.get_json()["error"]["fields"][0]["field"] == field


@pytest.mark.parametrize("url", [
    "/api/logs/tail?source=/etc/passwd",
    "/api/logs/tail?source=../../../../../../etc/passwd",
    "/api/logs/export?source=/etc/passwd&format=txt",
    "/api/logs/filter?source=%2Fetc%2Fpasswd",
    "/api/config/file/../../../../etc/passwd",
    "/api/config/file/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/config/file//etc/passwd",
    "/api/config/file/%2Fetc%2Fpasswd/history",
])
def test_paths_outside_the_instance_cannot_be_read(fuzz_app, url):
    client = fuzz_app.test_client()
    resp = client.get(url, headers=_headers(fuzz_app, "admin"))
    assert 400 <= resp.status_code < 500, (url, resp.status_code)
    assert "root:" not in resp.get_data(as_text=True)


def test_paths_outside_the_instance_cannot_be_written(fuzz_app, tmp_path):
    client = fuzz_app.test_client()
    headers = _headers(fuzz_app, "admin")
    target = tmp_path / "outside.json"
    for name in (f"..%2F..%2F..%2F{target.name}", f"/{target}", f"..%2F..%2F{target.name}"):
        resp = client.put(f"/api/config/file/{name}", headers=headers,
                          json={"content": "{}", "reason": "fuzz"})
        assert 400 <= resp.status_code < 500, (name, resp.status_code)
        resp = client.post(f"/api/config/file/{name}/rollback", headers=headers,
                           json={"version": "0" * 64, "reason": "fuzz"})
        assert 400 <= resp.status_code < 500, (name, resp.status_code)
    assert not target.exists()
    assert not (tmp_path.parent / target.name).exists()
