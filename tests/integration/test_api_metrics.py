"""API metrics against a real instrumented host app.

A small Flask host is instrumented with `dashapp.monitor()` on the same store
as the console; the tests make its requests themselves (timing each one and
keeping its X-Request-ID), flush the monitor, then read the console's REST
API and page callbacks. Percentiles are checked for exact equality with
numpy's default (linear) method over the durations stored in the database.
"""
from __future__ import annotations

import sys
import time
from urllib.parse import quote

import dash
import numpy as np
import pytest
from flask import Flask, abort
from sqlalchemy import create_engine, select, text

from dashapp import monitor
from dashapp.services import api_metrics as svc
from dashapp.store import Store
from dashapp.store.models import RequestLog
from tests.helpers import token_for

SLEEP_S = 0.03
N_FAST, N_SLOW, N_BOOM, N_MISSING, N_NOROUTE = 20, 6, 4, 5, 3
UNREACHABLE_PG = "postgresql+psycopg://nobody@127.0.0.1:1/x"


def make_host(tmp_path):
    """A host app with known behaviour and its own (monitored) database."""
    host = Flask("host_app")
    host.logger.disabled = True  # /boom's traceback is expected
    engine = create_engine(f"sqlite:///{tmp_path / 'host.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text("INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')"))

    @host.get("/fast")
    def fast():
        return "ok"

    @host.get("/slow")
    def slow():
        time.sleep(SLEEP_S)
        return "slow"

    @host.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    @host.get("/missing/<int:item_id>")
    def missing(item_id: int):
        abort(404)

    @host.get("/items/<int:item_id>")
    def item(item_id: int):
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM items")).scalar()
            conn.execute(text("SELECT name FROM items WHERE id = :id"), {"id": item_id}).all()
            conn.execute(text("SELECT id FROM items ORDER BY id DESC LIMIT 2")).all()
        return "item"

    return host, engine


@pytest.fixture
def host(tmp_path, settings, app):
    """(host test client, Monitor, calls); `calls` maps request id -> (path, wall ms)."""
    flask_host, engine = make_host(tmp_path)
    mon = monitor(flask_host, engine=engine, settings=settings)
    client = flask_host.test_client()
    calls: dict[str, tuple[str, float]] = {}

    def get(path: str) -> str:
        started = time.perf_counter()
        resp = client.get(path)
        wall_ms = (time.perf_counter() - started) * 1000
        rid = resp.headers["X-Request-ID"]
        calls[rid] = (path, wall_ms, resp.status_code)
        return rid

    yield get, mon, calls
    mon.close()
    engine.dispose()


def traffic(get):
    for _ in range(N_FAST):
        get("/fast")
    for _ in range(N_SLOW):
        get("/slow")
    for _ in range(N_BOOM):
        get("/boom")
    for i in range(N_MISSING):
        get(f"/missing/{i}")
    for _ in range(N_NOROUTE):
        get("/no/such/page")


def stored(settings) -> dict[tuple[str, str], list]:
    """Rows as the store holds them, read independently of the service."""
    engine = create_engine(settings.store_url)
    with engine.connect() as conn:
        rows = conn.execute(select(RequestLog.endpoint, RequestLog.method,
                                   RequestLog.duration_ms, RequestLog.request_id,
                                   RequestLog.status)).all()
    engine.dispose()
    out: dict[tuple[str, str], list] = {}
    for r in rows:
        out.setdefault((r.endpoint, r.method), []).append(r)
    return out


def numpy_percentiles(values):
    """numpy's linear percentiles, to the last few bits: PostgreSQL computes
    the same definition (percentile_cont) in its own order of operations."""
    p50, p95, p99 = np.percentile(np.array(values, dtype=float), [50, 95, 99])
    return pytest.approx({"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)},
                         rel=1e-12)


def page_module():
    """The page module Dash loaded (importing it again would register twice)."""
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == "/endpoints")]


# ------------------------------------------------------------------ REST

def test_endpoint_summary_counts_errors_and_exact_percentiles(app, client, host, settings):
    get, mon, calls = host
    traffic(get)
    mon.flush()
    resp = client.get("/api/metrics/endpoints?minutes=60", headers=token_for(client, app))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["minutes"] == 60
    rows = {(r["endpoint"], r["method"]): r for r in body["endpoints"]}
    assert set(rows) == {("/fast", "GET"), ("/slow", "GET"), ("/boom", "GET"),
                         ("/missing/<int:item_id>", "GET"), ("<no route>", "GET")}
    expected = {"/fast": (N_FAST, 0, 0), "/slow": (N_SLOW, 0, 0), "/boom": (N_BOOM, N_BOOM, 0),
                "/missing/<int:item_id>": (N_MISSING, 0, N_MISSING),
                "<no route>": (N_NOROUTE, 0, N_NOROUTE)}
    for endpoint, (count, errors, client_errors) in expected.items():
        row = rows[(endpoint, "GET")]
        assert (row["count"], row["errors"], row["client_errors"]) == \
            (count, errors, client_errors), endpoint
        assert row["error_rate"] == errors / count
    # Busiest first.
    assert body["endpoints"][0]["endpoint"] == "/fast"

    db = stored(settings)
    for key, row in rows.items():
        durations = [r.duration_ms for r in db[key]]
        assert {k: row[k] for k in ("p50_ms", "p95_ms", "p99_ms")} == numpy_percentiles(durations)
        assert row["max_ms"] == max(durations)
        assert row["mean_ms"] == pytest.approx(float(np.mean(durations)), rel=1e-9)
    # The server-side durations fit inside the times the test measured itself.
    for r in (r for rs in db.values() for r in rs):
        path, wall_ms, status = calls[r.request_id]
        assert r.duration_ms <= wall_ms and r.status == status
    slow = rows[("/slow", "GET")]
    assert slow["p50_ms"] >= SLEEP_S * 1000
    assert slow["p50_ms"] > rows[("/fast", "GET")]["p99_ms"]
    assert rows[("/slow", "GET")]["health"] == "ok"
    assert rows[("/boom", "GET")]["health"] == "error"


def test_window_excludes_older_requests(app, client, host, settings):
    get, mon, _calls = host
    get("/fast")
    mon.flush()
    engine = create_engine(settings.store_url)
    with engine.begin() as conn:  # pretend the request is 2 hours old
        conn.execute(RequestLog.__table__.update().values(
            time=svc._now(None) - svc.timedelta(hours=2)))
    engine.dispose()
    headers = token_for(client, app)
    assert client.get("/api/metrics/endpoints?minutes=60", headers=headers) \
        .get_json()["endpoints"] == []
    rows = client.get("/api/metrics/endpoints?minutes=180", headers=headers) \
        .get_json()["endpoints"]
    assert [(r["endpoint"], r["count"]) for r in rows] == [("/fast", 1)]


def test_endpoint_detail_series_status_split_and_slowest(app, client, host, settings):
    get, mon, calls = host
    traffic(get)
    mon.flush()
    headers = token_for(client, app)
    resp = client.get("/api/metrics/endpoint?name=" + quote("/slow") + "&minutes=15",
                      headers=headers)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["count"] == N_SLOW and body["bucket_seconds"] == 60
    assert sum(p["count"] for p in body["series"]) == N_SLOW
    assert len(body["series"]) in (15, 16)  # every minute of the window
    assert body["status_codes"] == [{"status": 200, "count": N_SLOW}]
    durations = [r.duration_ms for r in stored(settings)[("/slow", "GET")]]
    assert {k: body[k] for k in ("p50_ms", "p95_ms", "p99_ms")} == numpy_percentiles(durations)
    slowest = body["slowest"]
    assert [s["duration_ms"] for s in slowest] == sorted(durations, reverse=True)
    assert all(calls[s["request_id"]][0] == "/slow" for s in slowest)

    # The path form (rule without its leading slash, URL-encoded) agrees.
    rule = "/missing/<int:item_id>"
    by_query = client.get(f"/api/metrics/endpoint?name={quote(rule)}", headers=headers).get_json()
    by_path = client.get(f"/api/metrics/endpoint/{quote(rule[1:])}", headers=headers)
    assert by_path.status_code == 200
    assert by_path.get_json()["count"] == by_query["count"] == N_MISSING
    assert by_query["status_codes"] == [{"status": 404, "count": N_MISSING}]
    assert by_query["errors"] == 0 and by_query["client_errors"] == N_MISSING
    boom = client.get("/api/metrics/endpoint?name=/boom&method=get", headers=headers).get_json()
    assert boom["errors"] == N_BOOM and boom["error_rate"] == 1.0
    assert sum(p["errors"] for p in boom["series"]) == N_BOOM
    assert {s["exception_type"] for s in boom["slowest"]} == {"RuntimeError"}
    # A method the endpoint never served: known endpoint, empty window.
    post = client.get("/api/metrics/endpoint?name=/boom&method=POST", headers=headers).get_json()
    assert post["count"] == 0 and post["p95_ms"] is None
    missing = client.get("/api/metrics/endpoint?name=/never", headers=headers)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"


def test_recent_errors_list_exceptions_for_5xx_only(app, client, host):
    get, mon, calls = host
    traffic(get)
    mon.flush()
    headers = token_for(client, app)
    errors = client.get("/api/metrics/errors?minutes=60", headers=headers).get_json()["errors"]
    assert len(errors) == N_BOOM + N_MISSING + N_NOROUTE
    assert [e["time"] for e in errors] == sorted((e["time"] for e in errors), reverse=True)
    for e in errors:
        assert calls[e["request_id"]][2] == e["status"]
        if e["status"] >= 500:
            assert (e["endpoint"], e["exception_type"], e["exception_message"]) == \
                ("/boom", "RuntimeError", "kaboom")
        else:
            assert e["exception_type"] is None and e["status"] == 404
    server = client.get("/api/metrics/errors?kind=server&limit=2", headers=headers).get_json()
    assert [e["status"] for e in server["errors"]] == [500, 500]


def test_performance_totals_match_the_series(app, client, host, settings):
    get, mon, _calls = host
    traffic(get)
    mon.flush()
    body = client.get("/api/metrics/performance?minutes=60",
                      headers=token_for(client, app)).get_json()
    total = N_FAST + N_SLOW + N_BOOM + N_MISSING + N_NOROUTE
    assert body["count"] == total and body["errors"] == N_BOOM
    assert body["client_errors"] == N_MISSING + N_NOROUTE
    assert body["error_rate"] == N_BOOM / total
    assert sum(p["count"] for p in body["series"]) == total
    assert sum(p["errors"] for p in body["series"]) == N_BOOM
    assert len(body["series"]) <= svc.MAX_POINTS + 1
    every = [r.duration_ms for rs in stored(settings).values() for r in rs]
    assert {k: body[k] for k in ("p50_ms", "p95_ms", "p99_ms")} == numpy_percentiles(every)
    fine = client.get("/api/metrics/performance?minutes=15&bucket=10",
                      headers=token_for(client, app)).get_json()
    assert fine["bucket_seconds"] == 10 and sum(p["count"] for p in fine["series"]) == total


def test_request_sql_in_order(app, client, host):
    get, mon, calls = host
    rid = get("/items/2")
    get("/fast")
    mon.flush()
    body = client.get(f"/api/metrics/request/{rid}/sql", headers=token_for(client, app)).get_json()
    assert body["request"]["endpoint"] == "/items/<int:item_id>"
    assert body["count"] == 3
    sqls = [q["sql"] for q in body["queries"]]
    assert "count(*)" in sqls[0] and "WHERE id" in sqls[1] and "DESC" in sqls[2]
    assert [q["position"] for q in body["queries"]] == [1, 2, 3]
    assert body["total_ms"] == pytest.approx(sum(q["duration_ms"] for q in body["queries"]))
    assert body["total_ms"] <= calls[rid][1]
    none = client.get("/api/metrics/request/unknown-id/sql",
                      headers=token_for(client, app)).get_json()
    assert none["request"] is None and none["queries"] == []


def test_monitor_health_counts_what_was_recorded(app, host):
    get, mon, _calls = host
    for _ in range(5):
        get("/fast")
    mon.flush()
    health = svc.monitor_health(app.extensions["ops"].store)
    mine = [p for p in health["processes"] if p["process"] == mon.process]
    assert mine and mine[0]["recorded_requests"] == 5 and mine[0]["alive"]
    assert health["dropped"] == 0


# --------------------------------------------------------- access, input

ROUTES = ["/api/metrics/endpoints", "/api/metrics/endpoint?name=/x",
          "/api/metrics/endpoint/x", "/api/metrics/errors", "/api/metrics/performance",
          "/api/metrics/request/abc/sql"]


def test_routes_need_a_viewer(app, client):
    for url in ROUTES:
        resp = client.get(url)
        assert resp.status_code == 401, url
        assert resp.get_json()["error"]["code"]
    headers = token_for(client, app, "vera", "viewer-pass-1", role="viewer")
    for url in ROUTES:
        assert client.get(url, headers=headers).status_code in (200, 404), url


@pytest.mark.parametrize("url", [
    "/api/metrics/endpoints?minutes=0",
    "/api/metrics/endpoints?minutes=43201",
    "/api/metrics/endpoints?minutes=soon",
    "/api/metrics/endpoint",                     # name is required
    "/api/metrics/endpoint?name=/x&method=G%20ET",
    "/api/metrics/endpoint?name=/x&slow_limit=0",
    "/api/metrics/errors?limit=0",
    "/api/metrics/errors?kind=weird",
    "/api/metrics/performance?minutes=43200&bucket=60",  # 43,200 points
    "/api/metrics/request/bad%20id/sql",
])
def test_bad_parameters_are_400(app, client, url):
    resp = client.get(url, headers=token_for(client, app))
    assert resp.status_code == 400, (url, resp.get_json())
    assert resp.get_json()["error"]["code"] == "invalid_request"


def test_store_down_is_503(app, client):
    headers = token_for(client, app)
    ops = app.extensions["ops"]
    # The token was checked against the real store; only the metrics
    # service now reads an unreachable one.
    good, ops.store = ops.store, Store(UNREACHABLE_PG)
    try:
        for url in ROUTES:
            resp = client.get(url, headers=headers)
            assert resp.status_code == 503, url
            assert resp.get_json()["error"]["code"] == "store_unavailable"
    finally:
        ops.store.close()
        ops.store = good


# ------------------------------------------------------------------ page

def test_page_shows_endpoints_detail_and_sql(app, host):
    get, mon, calls = host
    traffic(get)
    rid = get("/items/1")
    mon.flush()
    page = page_module()
    with app.test_request_context("/endpoints"):
        status, cards, style, rows, latency, volume, rate, errors = page.render(60)
    assert status is None and style == {}
    by_key = {(r["method"], r["endpoint"]): r for r in rows}
    assert by_key[("GET", "/fast")]["count"] == N_FAST
    assert by_key[("GET", "/boom")]["health_label"] == "Failing"
    assert by_key[("GET", "/slow")]["health_label"] == "OK"
    total = N_FAST + N_SLOW + N_BOOM + N_MISSING + N_NOROUTE + 1
    assert sum(sum(y for y in trace.y) for trace in volume.data) == total
    assert [t.name for t in latency.data] == ["p50", "p95", "p99"]
    assert "Error rate" in str(cards) and "Dropped events" in str(cards)
    assert {e["exception_type"] for e in errors if e["status"] == 500} == {"RuntimeError"}

    # A click on the endpoint row opens its detail with its slowest requests.
    with app.test_request_context("/endpoints"):
        is_open, summary, figure, split, slow, sql = page.open_detail(
            {"rowId": "GET /items/<int:item_id>", "colId": "endpoint"}, 60)
    assert is_open is True and "/items/<int:item_id>" in str(summary)
    assert [s["request_id"] for s in slow] == [rid]
    assert "200" in str(split)
    # A click on the slow request shows its SQL, in order.
    with app.test_request_context("/endpoints"):
        listing = str(page.show_sql({"rowId": rid}))
    assert listing.index("count(*)") < listing.index("WHERE id") < listing.index("DESC")
    assert "3 statements" in listing


def test_page_with_no_requests_says_so(app):
    page = page_module()
    with app.test_request_context("/endpoints"):
        status, cards, style, rows, *_ = page.render(15)
    assert "No requests recorded in this window" in str(status)
    assert rows == [] and style == {"display": "none"}


def test_page_with_the_store_down_shows_an_unavailable_card(app):
    page = page_module()
    ops = app.extensions["ops"]
    good, ops.store = ops.store, Store(UNREACHABLE_PG)
    try:
        with app.test_request_context("/endpoints"):
            status, cards, style, rows, *_ = page.render(60)
            detail = page.open_detail({"rowId": "GET /fast"}, 60)
            sql = page.show_sql({"rowId": "abc"})
        assert "store is unavailable" in str(status)
        assert style == {"display": "none"} and rows == []
        assert "store is unavailable" in str(detail[1])
        assert "store is unavailable" in str(sql)
        assert "Traceback" not in str(status)
    finally:
        ops.store.close()
        ops.store = good
