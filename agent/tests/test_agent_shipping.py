"""Requests and SQL: recorded on the host, shipped to the console within a
second or two, stamped with the application, release and process; SQL
values never leave the host."""
from __future__ import annotations

import os
import socket

import pytest
from flask import abort, request
from sqlalchemy import create_engine, text

import ops_agent
from ops_agent import protocol


def _routes(engine=None):
    def routes(app):
        @app.route("/items/<int:item_id>")
        def item(item_id):
            if engine is not None:
                with engine.connect() as conn:
                    name = conn.execute(
                        text("SELECT name FROM items WHERE id = :id AND name != 'hidden-1'"),
                        {"id": item_id}).scalar()
                return {"id": item_id, "name": name}
            return {"id": item_id}

        @app.route("/missing")
        def missing():
            abort(404)

        @app.route("/boom")
        def boom():
            raise RuntimeError("kaput")

        @app.route("/bad-sql")
        def bad_sql():
            inlined = "secret-" + request.args["q"]  # a value, inlined into the text
            with engine.connect() as conn:
                conn.execute(text(f"SELECT nope FROM items WHERE name = '{inlined}'"))
            return "unreachable"

        @app.route("/duplicate", methods=["POST"])
        def duplicate():
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO items (id, name) VALUES (:id, :name)"),
                             {"id": 1, "name": request.form["name"]})
            return "unreachable"
    return routes


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text("INSERT INTO items (id, name) VALUES (1, 'teapot')"))
    yield engine
    engine.dispose()


def test_requests_arrive_within_two_seconds_with_app_release_and_process(console, make_app):
    app, mon = make_app(routes=_routes())
    client = app.test_client()
    responses = [client.get(f"/items/{i}") for i in range(3)] + [client.get("/missing"),
                                                                 client.post("/items/1")]
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 405]
    # the shipper's own thread, on its own, once a second: no flush()
    records = console.wait_for(lambda: len(console.events("requests")) >= 5 and
                               console.events("requests"), timeout=2.5)
    batch = next(b for b in console.accepted() if b["events"].get("requests"))
    assert (batch["app"], batch["release"]) == ("shop", "1.4.2")
    assert batch["process"] == f"{socket.gethostname()}:{os.getpid()}"
    assert batch["v"] == protocol.VERSION and batch["agent"] == ops_agent.__version__
    assert console.attempts[0].headers["x-ops-key"] == "test-key-123"
    rows = {r[5]: r for r in records}
    for response, (endpoint, method, status) in zip(responses, [
            ("/items/<int:item_id>", "GET", 200)] * 3 + [
            ("/missing", "GET", 404), ("<no route>", "POST", 405)]):
        rid = response.headers["X-Request-ID"]
        epoch, rule, verb, code, ms, _rid, exc_type, exc_message = rows[rid]
        assert (rule, verb, code) == (endpoint, method, status)
        assert ms >= 0 and exc_type is None and exc_message is None
    assert len({r.headers["X-Request-ID"] for r in responses}) == 5


def test_unmatched_url_and_unhandled_error(console, make_app):
    app, mon = make_app(routes=_routes())
    client = app.test_client()
    assert client.get("/no/such/page").status_code == 404
    boom = client.get("/boom")
    assert boom.status_code == 500 and boom.headers.get("X-Request-ID")
    assert mon.flush() is True
    rows = {r[1]: r for r in console.events("requests")}
    assert rows["<no route>"][3] == 404
    assert rows["/boom"][3:4] == [500]
    assert rows["/boom"][5] == boom.headers["X-Request-ID"]
    assert rows["/boom"][6:] == ["RuntimeError", "kaput"]


def test_sql_is_shipped_with_its_request_and_without_values(console, make_app, engine):
    app, mon = make_app(routes=_routes(engine), engine=engine)
    response = app.test_client().get("/items/1")
    assert response.get_json() == {"id": 1, "name": "teapot"}
    queries = console.wait_for(lambda: console.events("queries"), timeout=2.5)
    (epoch, fp, sql, ms, rows, rid, endpoint, error), = queries
    assert sql == "SELECT name FROM items WHERE id = ? AND name != ?"
    assert fp and isinstance(fp, str)
    assert rid == response.headers["X-Request-ID"] and endpoint == "/items/<int:item_id>"
    assert error is None and ms >= 0
    raw = "".join(a.raw for a in console.attempts)
    assert "hidden-1" not in raw and "teapot" not in raw


def test_a_failing_statement_is_shipped_with_its_error_type(console, make_app, engine):
    app, mon = make_app(routes=_routes(engine), engine=engine)
    client = app.test_client()
    failed = client.get("/bad-sql?q=literal-7")
    assert failed.status_code == 500
    dup = client.post("/duplicate", data={"name": "private-name-42"})
    assert dup.status_code == 500
    assert mon.flush() is True
    errors = {q[2]: q for q in console.events("queries") if q[7]}
    bad = errors["SELECT nope FROM items WHERE name = ?"]
    assert bad[7] == "OperationalError" and bad[5] == failed.headers["X-Request-ID"]
    insert = errors["INSERT INTO items (id, name) VALUES (?+)"]
    assert insert[7] == "IntegrityError" and insert[5] == dup.headers["X-Request-ID"]
    requests = {r[5]: r for r in console.events("requests")}
    assert requests[failed.headers["X-Request-ID"]][6] == "OperationalError"
    assert requests[dup.headers["X-Request-ID"]][6] == "IntegrityError"
    # the exception's message keeps the statement, not the values
    assert "INSERT INTO items" in requests[dup.headers["X-Request-ID"]][7]
    # nor in the batches at all (the log record of the 500 has the traceback)
    assert any("Exception on /bad-sql" in rec[4] for rec in console.events("logs"))
    raw = "".join(a.raw for a in console.attempts)
    assert "secret-literal-7" not in raw and "private-name-42" not in raw


def test_monitor_twice_is_one_monitor(console, make_app, engine):
    app, mon = make_app(routes=_routes(engine))
    again = ops_agent.monitor(app, dsn=console.dsn(), engine=engine)
    assert again is mon
    assert ops_agent.monitor(app, dsn=console.dsn(), engine=engine) is mon
    response = app.test_client().get("/items/1")
    assert mon.flush() is True
    rid = response.headers["X-Request-ID"]
    assert [r[5] for r in console.events("requests")] == [rid]
    assert [q[5] for q in console.events("queries")] == [rid]  # engine watched once


def test_monitor_again_after_close_counts_once(console, make_app, monitors, engine):
    app, mon = make_app(routes=_routes(engine), engine=engine)
    mon.close()
    again = ops_agent.monitor(app, dsn=console.dsn(), engine=engine)
    monitors.append(again)
    assert again is not mon and again.enabled
    response = app.test_client().get("/items/1", headers={"X-Request-ID": "abc-123"})
    assert response.headers.getlist("X-Request-ID") == ["abc-123"]
    assert again.flush() is True
    assert [r[5] for r in console.events("requests")] == ["abc-123"]
    assert [q[5] for q in console.events("queries")] == ["abc-123"]


def test_request_id_header(console, make_app, app_logger):
    def routes(app):
        @app.route("/")
        def index():
            app_logger.warning("handling")
            return "ok"

        @app.route("/own-id")
        def own_id():
            return "ok", 200, {"X-Request-ID": "set-by-the-app"}

    app, mon = make_app(routes=routes)
    client = app.test_client()
    kept = client.get("/", headers={"X-Request-ID": "lb-7f3a.9:x_1"})
    assert kept.headers["X-Request-ID"] == "lb-7f3a.9:x_1"
    for bad in ("has spaces", "x" * 65, "<script>"):
        replaced = client.get("/", headers={"X-Request-ID": bad})
        assert replaced.headers["X-Request-ID"] != bad
    made = client.get("/").headers["X-Request-ID"]
    assert made and made != kept.headers["X-Request-ID"]
    own = client.get("/own-id")
    assert len(own.headers.getlist("X-Request-ID")) == 1
    assert mon.flush() is True
    ids = [r[5] for r in console.events("requests")]
    assert ids[0] == "lb-7f3a.9:x_1" and ids[4] == made
    assert ids[5] == own.headers["X-Request-ID"]
    # the log record of each request carries the id its response has
    assert [rec[5] for rec in console.events("logs")][:5] == ids[:5]


def test_close_ships_what_is_buffered(console, make_app, monitors):
    app, mon = make_app(routes=_routes(), interval=60.0)
    app.test_client().get("/items/5")
    assert console.events("requests") == []
    mon.close()
    assert [r[1] for r in console.events("requests")] == ["/items/<int:item_id>"]
    assert not mon.shipper._thread.is_alive()
