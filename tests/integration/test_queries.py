"""The query analyzer end to end: a real host Flask app instrumented with
monitor(), its SQL in the real store, the console's /api/queries on top, and
EXPLAIN on the host's real database (SQLite; PostgreSQL when configured)."""
from __future__ import annotations

import sys
import time

import dash
import numpy as np
import pytest
from flask import Flask, request
from sqlalchemy import create_engine, event, text

from dashapp import create_app, monitor
from dashapp.services import queries as svc
from tests.helpers import token_for

N_ORDERS_PER_CUSTOMER = 12


def _schema(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE qa_customers (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text(
            "CREATE TABLE qa_orders (id INTEGER PRIMARY KEY, customer_id INTEGER, "
            "status VARCHAR(16), total INTEGER, note TEXT, channel TEXT, region TEXT, "
            "coupon TEXT, created TEXT)"))
        conn.execute(text("CREATE INDEX ix_qa_orders_customer ON qa_orders (customer_id)"))
        conn.execute(text("CREATE TABLE qa_items (id INTEGER PRIMARY KEY, "
                          "order_id INTEGER, sku TEXT)"))
        conn.execute(text("CREATE INDEX ix_qa_items_order ON qa_items (order_id)"))
        conn.execute(text("INSERT INTO qa_customers (id, name) VALUES (1, 'a'), (2, 'b')"))
        rows = [{"id": i, "c": 1 + i % 2, "s": ("paid", "new", "shipped")[i % 3], "t": i}
                for i in range(1, 3001)]
        conn.execute(text("INSERT INTO qa_orders (id, customer_id, status, total) "
                          "VALUES (:id, :c, :s, :t)"), rows)
        conn.execute(text("INSERT INTO qa_items (id, order_id, sku) VALUES (:i, :o, 'x')"),
                     [{"i": i, "o": i} for i in range(1, 3001)])
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE qa_orders"))


def build_host(url: str):
    """A host app with an N+1 endpoint, an unindexed filter, IN lists, a slow query."""
    app = Flask("qa_host")
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _functions(dbapi_conn, _record):
            dbapi_conn.create_function("sleep_ms", 1,
                                       lambda ms: time.sleep(ms / 1000) or ms)
    _schema(engine)

    @app.get("/customers/<int:cid>/orders")
    def customer_orders(cid):
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(text(
                "SELECT id FROM qa_orders WHERE customer_id = :c ORDER BY id LIMIT :n"),
                {"c": cid, "n": N_ORDERS_PER_CUSTOMER})]
            for oid in ids:  # N+1 on purpose
                conn.execute(text("SELECT sku FROM qa_items WHERE order_id = :o"),
                             {"o": oid}).all()
        return {"orders": len(ids)}

    @app.get("/orders")
    def orders():
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM qa_orders WHERE status = :s"),
                                {"s": request.args.get("status", "paid")}).all()
        return {"count": len(rows)}

    @app.get("/ids/<int:n>")
    def ids(n):
        with engine.connect() as conn:
            wanted = ", ".join(str(i) for i in range(1, n + 1))
            conn.execute(text(f"SELECT id FROM qa_orders WHERE id IN ({wanted})")).all()
        return {"n": n}

    @app.get("/twice")
    def twice():
        with engine.connect() as conn:
            for _ in range(3):
                conn.execute(text("SELECT name FROM qa_customers WHERE id = :i"),
                             {"i": 1}).all()
        return {}

    @app.get("/slow")
    def slow():
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.execute(text("SELECT sleep_ms(150)")).all()
            else:
                conn.execute(text("SELECT pg_sleep(0.15)")).all()
        return {}

    return app, engine


@pytest.fixture
def host(settings, tmp_path):
    app, engine = build_host(f"sqlite:///{tmp_path / 'host.db'}")
    mon = monitor(app, engine=engine, settings=settings)
    yield app, engine, mon
    mon.close()
    engine.dispose()


def _console(settings, url):
    console = create_app(settings.model_copy(update={"app_database_url": url}))
    return console.server


@pytest.fixture
def console(host, settings, redis_client):
    _app, engine, _mon = host
    server = _console(settings, str(engine.url))
    yield server
    server.extensions["ops"].close()


@pytest.fixture
def api(console):
    client = console.test_client()
    return client, token_for(client, console)


def drive(host_app, mon):
    """Traffic: 3 N+1 requests, 2 filtered scans, IN lists of 1..5, repeats, slow."""
    client = host_app.test_client()
    rids = [client.get("/customers/1/orders").headers["X-Request-ID"] for _ in range(3)]
    for status in ("paid", "new"):
        client.get(f"/orders?status={status}")
    for n in range(1, 6):
        client.get(f"/ids/{n}")
    client.get("/twice")
    client.get("/slow")
    mon.flush()
    return rids


def test_n_plus_one_and_duplicates_are_named(host, api):
    app, _engine, mon = host
    rids = drive(app, mon)
    client, headers = api
    body = client.get("/api/queries/issues", headers=headers).get_json()
    n1 = body["n_plus_one"]
    assert len(n1) == 1, n1
    finding = n1[0]
    assert finding["endpoint"] == "/customers/<int:cid>/orders"
    assert finding["sql"] == "SELECT sku FROM qa_items WHERE order_id = ?"
    assert finding["max_per_request"] == N_ORDERS_PER_CUSTOMER
    assert finding["median_per_request"] == N_ORDERS_PER_CUSTOMER
    assert finding["requests"] == 3 and finding["example_request_id"] in rids
    dup = body["duplicates"]
    assert [(d["endpoint"], d["max_per_request"]) for d in dup] == [("/twice", 3)]
    assert "10" in body["definitions"]["n_plus_one"]


def test_stats_fold_fingerprints_and_p95_is_exact(host, api, settings):
    app, _engine, mon = host
    drive(app, mon)
    client, headers = api
    stats = client.get("/api/queries/stats?minutes=60", headers=headers).get_json()["stats"]
    in_rows = [s for s in stats if "WHERE id IN" in s["sql"]]
    assert len(in_rows) == 1  # IN lists of 1..5 values: one fingerprint
    row = in_rows[0]
    assert row["calls"] == 5 and row["sql"] == "SELECT id FROM qa_orders WHERE id IN (?+)"
    n1 = next(s for s in stats if "qa_items" in s["sql"])
    assert n1["calls"] == 3 * N_ORDERS_PER_CUSTOMER
    engine = create_engine(settings.store_url)
    with engine.connect() as conn:
        durations = [r[0] for r in conn.execute(text(
            "SELECT duration_ms FROM ops_query WHERE fingerprint = :f"), {"f": n1["fingerprint"]})]
    engine.dispose()
    assert n1["p95_ms"] == pytest.approx(np.percentile(durations, 95), abs=1e-3)
    assert n1["max_ms"] == pytest.approx(max(durations), abs=1e-3)
    assert n1["mean_ms"] == pytest.approx(sum(durations) / len(durations), abs=1e-3)
    assert set(row) >= {"fingerprint", "sql", "calls", "total_ms", "mean_ms", "p95_ms",
                        "max_ms", "rows"}


def test_slow_queries_over_the_threshold(host, api):
    app, _engine, mon = host
    drive(app, mon)
    client, headers = api
    body = client.get("/api/queries/slow?threshold_ms=120", headers=headers).get_json()
    assert body["threshold_ms"] == 120
    assert [q["sql"] for q in body["queries"]] == ["SELECT sleep_ms(?)"]
    assert body["queries"][0]["duration_ms"] >= 120
    default = client.get("/api/queries/slow", headers=headers).get_json()
    assert default["threshold_ms"] == 100.0  # OPS_SLOW_QUERY_MS default
    recent = client.get("/api/queries/recent?limit=5", headers=headers).get_json()["queries"]
    assert len(recent) == 5 and recent[0]["sql"] == "SELECT sleep_ms(?)"


def test_detail_lists_the_requests_that_ran_it(host, api):
    app, _engine, mon = host
    rids = drive(app, mon)
    client, headers = api
    stats = client.get("/api/queries/stats", headers=headers).get_json()["stats"]
    n1 = next(s for s in stats if "qa_items" in s["sql"])
    body = client.get(f"/api/queries/{n1['last_id']}", headers=headers).get_json()
    assert body["sql"] == n1["sql"]
    assert {r["request_id"] for r in body["requests"]} == set(rids)
    assert all(r["times_run"] == N_ORDERS_PER_CUSTOMER and r["status"] == 200
               and r["endpoint"] == "/customers/<int:cid>/orders" for r in body["requests"])
    assert client.get("/api/queries/999999", headers=headers).status_code == 404


def test_explain_on_sqlite_gives_a_tree_and_suggestions(host, api):
    client, headers = api
    resp = client.post("/api/queries/explain", headers=headers,
                       json={"sql": "SELECT * FROM qa_orders WHERE status = 'paid';"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["dialect"] == "sqlite" and body["analyze"] is False
    scan = body["plan"][0]
    assert scan["relation"] == "qa_orders" and scan["full_scan"] and scan["expensive"]
    kinds = {s["kind"]: s for s in body["suggestions"]}
    assert kinds["missing_index"]["sql"] == \
        "CREATE INDEX ix_qa_orders_status ON qa_orders (status);"
    assert kinds["select_star"]["evidence"]["columns"] == 9
    assert all(s["why"] and "evidence" in s for s in body["suggestions"])
    # an indexed filter is not a full scan and gets no index suggestion
    body = client.post("/api/queries/explain", headers=headers, json={
        "sql": "SELECT id FROM qa_orders WHERE customer_id = 1 LIMIT 5"}).get_json()
    assert not body["plan"][0]["full_scan"] and body["suggestions"] == []
    like = client.post("/api/queries/explain", headers=headers, json={
        "sql": "SELECT id FROM qa_orders WHERE note LIKE '%abc%' LIMIT 10"}).get_json()
    assert [s["kind"] for s in like["suggestions"]] == ["leading_wildcard"]


@pytest.mark.parametrize("sql, why", [
    ("DELETE FROM qa_orders", "not DELETE"),
    ("SELECT 1; DELETE FROM qa_orders", "several statements"),
    ("DROP TABLE qa_orders", "not DROP"),
    ("WITH x AS (DELETE FROM qa_orders RETURNING id) SELECT * FROM x", "DELETE is refused"),
    ("SELECT * INTO t2 FROM qa_orders", "INTO"),
    ("PRAGMA writable_schema=ON", "not PRAGMA"),
])
def test_unsafe_sql_is_refused_with_the_reason(host, api, sql, why):
    _app, engine, _mon = host
    client, headers = api
    resp = client.post("/api/queries/explain", headers=headers, json={"sql": sql})
    assert resp.status_code == 400
    err = resp.get_json()["error"]
    assert err["code"] == "unsafe_sql" and why in err["message"], err
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM qa_orders")).scalar() == 3000


def test_explain_analyze_admin_only_and_changes_nothing(host, api, console):
    _app, engine, _mon = host
    client, headers = api
    viewer = token_for(client, console, "vera", "viewer-pass-1", role="viewer")
    body = {"sql": "SELECT count(*) FROM qa_orders WHERE status = 'paid'", "analyze": True}
    resp = client.post("/api/queries/explain", headers=viewer, json=body)
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "forbidden"
    # a viewer may EXPLAIN without ANALYZE
    assert client.post("/api/queries/explain", headers=viewer,
                       json={"sql": body["sql"]}).status_code == 200
    resp = client.post("/api/queries/explain", headers=headers, json=body)
    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()
    assert out["analyze"] is True and out["execution_ms"] is not None and out["rows"] == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM qa_orders")).scalar() == 3000
    events = client.get("/api/audit?action=explain_analyze", headers=headers).get_json()
    outcomes = sorted(e["outcome"] for e in events.get("events", events.get("items", [])))
    assert outcomes == ["denied", "success"], events


def test_index_suggestion_appears_and_disappears_after_create_index(host, api):
    app, engine, mon = host
    drive(app, mon)
    client, headers = api
    stats = client.get("/api/queries/stats", headers=headers).get_json()["stats"]
    scan = next(s for s in stats if "WHERE status = ?" in s["sql"])
    resp = client.get(f"/api/queries/optimize/{scan['last_id']}", headers=headers)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    index = [s for s in body["suggestions"] if s["kind"] == "missing_index"]
    assert [s["sql"] for s in index] == ["CREATE INDEX ix_qa_orders_status ON qa_orders (status);"]
    assert "select_star" in {s["kind"] for s in body["suggestions"]}
    n1 = next(s for s in stats if "qa_items" in s["sql"])
    n1_body = client.get(f"/api/queries/optimize/{n1['last_id']}", headers=headers).get_json()
    plus = [s for s in n1_body["suggestions"] if s["kind"] == "n_plus_one"]
    assert plus and plus[0]["evidence"]["endpoint"] == "/customers/<int:cid>/orders"
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_status ON qa_orders (status)"))
    body = client.get(f"/api/queries/optimize/{scan['last_id']}", headers=headers).get_json()
    assert "missing_index" not in {s["kind"] for s in body["suggestions"]}


def test_anonymous_is_401_and_missing_database_is_409(settings, redis_client):
    server = create_app(settings).server  # demo off, no OPS_APP_DATABASE_URL
    try:
        client = server.test_client()
        for path in ("/api/queries/recent", "/api/queries/stats", "/api/queries/issues",
                     "/api/queries/slow", "/api/queries/1", "/api/queries/optimize/1"):
            assert client.get(path).status_code == 401, path
        assert client.post("/api/queries/explain", json={"sql": "SELECT 1"}).status_code == 401
        resp = client.post("/api/queries/explain", headers=token_for(client, server),
                           json={"sql": "SELECT 1"})
        assert resp.status_code == 409
        assert "OPS_APP_DATABASE_URL" in resp.get_json()["error"]["message"]
    finally:
        server.extensions["ops"].close()


def test_store_failure_is_503_and_the_page_shows_a_card(console, api):
    """The store failing under the analyzer's queries (here: its ops_query table
    is gone) -> 503 with the error shape, and the page shows a card."""
    client, headers = api
    store = console.extensions["ops"].store
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ops_query RENAME TO ops_query_away"))
    try:
        for path in ("/api/queries/stats", "/api/queries/recent", "/api/queries/issues",
                     "/api/queries/slow", "/api/queries/1"):
            resp = client.get(path, headers=headers)
            assert resp.status_code == 503, path
            assert resp.get_json()["error"]["code"] == "store_unavailable"
        with console.test_request_context("/queries"):
            table, _issues = _page().render(60)
        assert "is unavailable" in str(table)
    finally:
        with store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE ops_query_away RENAME TO ops_query"))


def _page():
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == "/queries")]


def test_page_callbacks_render_table_detail_and_issues(host, console):
    app, _engine, mon = host
    drive(app, mon)
    page = _page()
    with console.test_request_context("/queries"):
        table, issues_panel = page.render(60)
        text_table = str(table)
        assert "qa_items" in text_table and "WHERE id IN (?+)" in text_table
        assert "/customers/&lt;int:cid&gt;/orders" in str(issues_panel) or \
            "/customers/<int:cid>/orders" in str(issues_panel)
        stats = svc.stats(console.extensions["ops"].store, 60)
        scan = next(s for s in stats if "WHERE status = ?" in s["sql"])
        is_open, title, body = page.open_detail({"rowId": str(scan["last_id"])})
        rendered = str(body)
        assert is_open and "CREATE INDEX ix_qa_orders_status" in rendered
        assert "SCAN qa_orders" in rendered


def test_page_says_plainly_when_there_is_no_data(console):
    page = _page()
    with console.test_request_context("/queries"):
        table, issues_panel = page.render(60)
    assert "No SQL recorded" in str(table)
    assert "No N+1" in str(issues_panel)


# ------------------------------------------------------------- PostgreSQL

@pytest.fixture
def pg_host(pg_url, settings):
    app, engine = build_host(pg_url)
    mon = monitor(app, engine=engine, settings=settings)
    yield app, engine, mon
    mon.close()
    engine.dispose()


@pytest.fixture
def pg_api(pg_host, settings, redis_client, pg_url):
    server = _console(settings, pg_url)
    client = server.test_client()
    yield client, token_for(client, server), server
    server.extensions["ops"].close()
    from dashapp.services.explain import dispose_engines
    dispose_engines()


def test_postgres_explain_tree_has_costs_and_highlights(pg_api):
    client, headers, _server = pg_api
    resp = client.post("/api/queries/explain", headers=headers, json={
        "sql": "SELECT o.id, c.name FROM qa_orders o JOIN qa_customers c "
               "ON c.id = o.customer_id WHERE o.status = 'paid'"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    root = body["plan"][0]
    assert body["dialect"] == "postgresql" and root["cost"] > 0 and root["rows"] > 0

    def walk(node):
        yield node
        for child in node["children"]:
            yield from walk(child)
    nodes = list(walk(root))
    seq = [n for n in nodes if n["node_type"] == "Seq Scan" and n["relation"] == "qa_orders"]
    assert seq and seq[0]["expensive"] and "Filter" in seq[0]["detail"]
    assert any("qa_orders" in e for e in body["expensive"])
    assert "ix_qa_orders_status" in str(body["suggestions"])


def test_postgres_analyze_rolls_back_and_refuses_writes(pg_api, pg_host):
    client, headers, server = pg_api
    _app, engine, _mon = pg_host
    viewer = token_for(client, server, "vera", "viewer-pass-1", role="viewer")
    body = {"sql": "SELECT count(*) FROM qa_orders", "analyze": True}
    assert client.post("/api/queries/explain", headers=viewer, json=body).status_code == 403
    resp = client.post("/api/queries/explain", headers=headers, json=body)
    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()
    assert out["analyze"] and out["plan"][0]["actual_rows"] == 1 and out["execution_ms"] >= 0
    for sql in ("SELECT nextval('qa_seq')", "SELECT pg_sleep(10)",
                "SELECT 1; UPDATE qa_orders SET total = 0",
                "SELECT * FROM qa_orders FOR UPDATE", "SELECT $$;$$"):
        resp = client.post("/api/queries/explain", headers=headers,
                           json={"sql": sql, "analyze": True})
        assert resp.status_code == 400, sql
    with engine.connect() as conn:
        assert conn.execute(text("SELECT sum(total) FROM qa_orders")).scalar() == \
            sum(range(1, 3001))


def test_postgres_index_suggestion_for_a_stored_query(pg_api, pg_host):
    client, headers, _server = pg_api
    app, engine, mon = pg_host
    drive(app, mon)
    stats = client.get("/api/queries/stats", headers=headers).get_json()["stats"]
    scan = next(s for s in stats if "WHERE status = %(s)s" in s["sql"]
                or "WHERE status = ?" in s["sql"])
    body = client.get(f"/api/queries/optimize/{scan['last_id']}", headers=headers).get_json()
    assert body["plan"] and body["plan"]["plan"][0]["node_type"] == "Seq Scan", body
    assert "missing_index" in {s["kind"] for s in body["suggestions"]}
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_status ON qa_orders (status)"))
    body = client.get(f"/api/queries/optimize/{scan['last_id']}", headers=headers).get_json()
    assert "missing_index" not in {s["kind"] for s in body["suggestions"]}
    issues = client.get("/api/queries/issues", headers=headers).get_json()
    assert issues["n_plus_one"][0]["endpoint"] == "/customers/<int:cid>/orders"


def test_live_refresh_replaces_rows_not_the_grid(host, console):
    app, _engine, mon = host
    page = _page()
    with console.test_request_context("/queries"):
        status, rows, style, _issues = page.refresh(60, 1)
        assert rows == [] and style == {"display": "none"}
        assert "No SQL recorded" in str(status)
        drive(app, mon)
        status, rows, style, _issues = page.refresh(60, 2)
    assert status is None and style == {}
    assert any("qa_items" in r["sql"] for r in rows)
