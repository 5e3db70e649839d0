"""monitor() against real stores: what it records, several worker processes
adding up, and a store outage during traffic (requests still succeed, events
dropped and counted, recording resumes)."""
from __future__ import annotations

import os
import select
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask, abort
from sqlalchemy import create_engine, make_url, text

from dashapp import monitor
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def host_app(db_path: Path):
    app = Flask("host")
    engine = create_engine(f"sqlite:///{db_path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, name TEXT)"))

    @app.get("/items/<int:item_id>")
    def item(item_id):
        with engine.connect() as conn:
            conn.execute(text("SELECT name FROM item WHERE id IN (1, 2, :x)"), {"x": item_id})
        return {"id": item_id}

    @app.get("/boom")
    def boom():
        raise RuntimeError("exploded")

    @app.get("/missing")
    def missing():
        abort(404)

    @app.get("/handled")
    def handled():
        raise KeyError("customer 12")  # turned into a JSON 500 by the app's handler

    @app.get("/own-id")
    def own_id():
        return "ok", 200, {"X-Request-ID": "set-by-the-app"}

    @app.get("/soft")
    def soft():
        raise LookupError("not found, handled as a 200")

    @app.errorhandler(KeyError)
    def key_error(exc):
        return {"error": "internal"}, 500

    @app.errorhandler(LookupError)
    def lookup_error(exc):
        return {"items": []}, 200

    return app, engine


def rows(store_url: str, sql: str):
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).all()
    finally:
        engine.dispose()


def test_requests_and_sql_are_recorded(settings, tmp_path):
    app, engine = host_app(tmp_path / "host.db")
    mon = monitor(app, engine=engine, settings=settings)
    client = app.test_client()
    try:
        for i in range(3):
            assert client.get(f"/items/{i}").status_code == 200
        tagged = client.get("/items/7", headers={"X-Request-ID": "trace-42"})
        assert tagged.headers["X-Request-ID"] == "trace-42"
        bad = client.get("/items/8", headers={"X-Request-ID": "<script>"})
        assert bad.headers["X-Request-ID"] != "<script>"  # not echoed: replaced
        # One X-Request-ID per response, the recorded one, even when the app
        # set its own.
        assert len(bad.headers.getlist("X-Request-ID")) == 1
        assert client.get("/boom").status_code == 500
        assert client.get("/missing").status_code == 404
        assert client.get("/no/such/page").status_code == 404
        assert client.get("/handled").status_code == 500
        assert client.get("/soft").status_code == 200
        mon.flush()
        recorded = rows(settings.store_url, "SELECT endpoint, status, request_id, "
                        "exception_type FROM ops_request ORDER BY id")
        assert [r[0] for r in recorded] == ["/items/<int:item_id>"] * 5 + [
            "/boom", "/missing", "<no route>", "/handled", "/soft"]
        assert [r[1] for r in recorded] == [200] * 5 + [500, 404, 404, 500, 200]
        assert recorded[3][2] == "trace-42"
        assert recorded[5][3] == "RuntimeError" and recorded[6][3] is None
        # An app's own error handler does not hide the exception of a 5xx...
        assert recorded[8][3] == "KeyError"
        # ...and an exception handled into a success is not an error.
        assert recorded[9][3] is None
        queries = rows(settings.store_url, "SELECT fingerprint, sql, request_id, endpoint "
                       "FROM ops_query")
        assert len(queries) == 5 and len({q[0] for q in queries}) == 1
        assert queries[0][1] == "SELECT name FROM item WHERE id IN (?+)"
        assert "trace-42" in {q[2] for q in queries}
        assert {q[3] for q in queries} == {"/items/<int:item_id>"}
        # SQL outside a request (background work) has no request id.
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM item"))
        mon.flush()
        last = rows(settings.store_url, "SELECT request_id FROM ops_query ORDER BY id DESC")[0]
        assert last[0] is None
        process = rows(settings.store_url, "SELECT recorded_requests, recorded_queries, "
                       "dropped FROM ops_monitor_process")
        assert process == [(10, 6, 0)]
        # An app that sets X-Request-ID itself: its response still carries
        # one, the id the request was recorded under.
        own = client.get("/own-id")
        mon.flush()
        stored = rows(settings.store_url, "SELECT request_id FROM ops_request ORDER BY id DESC")
        assert own.headers.getlist("X-Request-ID") == [stored[0][0]]
    finally:
        mon.close()


def test_buffer_is_bounded_and_drops_are_counted(settings, tmp_path):
    app, engine = host_app(tmp_path / "host.db")
    # No send for an hour: the buffers can only fill.
    mon = monitor(app, engine=engine, settings=settings, buffer_size=25, interval=3600)
    client = app.test_client()
    for i in range(40):
        assert client.get(f"/items/{i}").status_code == 200
    assert mon.buffered == 50  # 25 of 40 requests + 25 of 40 statements
    assert mon.dropped == 30
    mon.close()
    # The count reaches the console with the batch that follows.
    assert rows(settings.store_url, "SELECT dropped FROM ops_monitor_process") == [(30,)]


# ----- a real outage ----------------------------------------------------------
class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; `down()` cuts every connection
    and refuses new ones, `up()` listens again on the same port."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = None
        self._listener = None
        self._conns: list[socket.socket] = []
        self._alive = False
        self.up()

    def up(self):
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port or 0))
        self.port = self._listener.getsockname()[1]
        self._listener.listen(50)
        self._alive = True
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def down(self):
        self._alive = False
        # Closing a listening socket does not wake a thread blocked in
        # accept() on it (the next connection would still be let through);
        # shutdown() does.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._conns.clear()

    def _accept(self, listener):
        while self._alive:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._conns += [client, server]
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.5)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except (OSError, ValueError):
            # cut() closed the sockets under this thread: select() on a
            # closed socket raises ValueError (its fileno is -1).
            return


@contextmanager
def outage_controls(store_url: str, tmp_path: Path):
    """(store url to give the monitor, cut(), restore()) for this backend."""
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        holder = {}

        def cut():  # another process-like writer holds the database locked
            conn = sqlite3.connect(url.database, timeout=1, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            holder["conn"] = conn

        def restore():
            holder.pop("conn").execute("ROLLBACK")
        yield store_url, cut, restore
        return
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    try:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False), proxy.down, proxy.up
    finally:
        proxy.down()


def test_store_outage_during_traffic(settings, tmp_path):
    with outage_controls(settings.store_url, tmp_path) as (url, cut, restore):
        s = settings.model_copy(update={"database_url": url})
        from dashapp.store import Store
        Store(s.store_url).upgrade()
        app, engine = host_app(tmp_path / "host.db")
        mon = monitor(app, engine=engine, settings=s, buffer_size=200, interval=0.2)
        client = app.test_client()
        try:
            for i in range(20):
                assert client.get(f"/items/{i}").status_code == 200
            mon.flush()
            assert mon.recorded_requests == 20 and mon.dropped == 0

            cut()
            started = time.monotonic()
            for i in range(300):  # more than the buffer holds
                assert client.get(f"/items/{i}").status_code == 200
            elapsed = time.monotonic() - started
            # Dropped and counted, not queued without bound: by the buffer's
            # bound, or with a batch the store refused (its busy timeout is 5 s).
            deadline = time.monotonic() + 15
            while mon.dropped == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert mon.dropped > 0, mon.stats()
            assert mon.buffered <= 2 * mon.buffer_size  # requests and statements
            restore()

            dropped_during = mon.dropped
            for i in range(10):
                assert client.get(f"/items/{i}").status_code == 200
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                mon.flush()
                if mon.recorded_requests >= 30:
                    break
                time.sleep(0.2)
            assert mon.recorded_requests >= 30  # recording resumed
            # 300 requests during the outage never waited on the store.
            assert elapsed < 30
            stored = rows(settings.store_url, "SELECT dropped FROM ops_monitor_process")
            assert stored and stored[0][0] >= dropped_during
        finally:
            mon.close()


# ----- several worker processes -------------------------------------------------
ITEM_RULE = "/items/<int:item_id>"


def test_gunicorn_with_three_workers_adds_up(settings, tmp_path):
    port = free_port()
    env = {**os.environ, "OPS_INSTANCE_DIR": str(settings.instance_dir),
           "OPS_DATABASE_URL": settings.store_url, "REDIS_URL": settings.redis_url,
           "HOST_DATABASE_URL": f"sqlite:///{tmp_path / 'host.db'}",
           "PYTHONPATH": str(ROOT)}
    from dashapp.services.ingest import ingest
    from dashapp.store import Store
    Store(settings.store_url).upgrade()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "3", "--bind", f"127.0.0.1:{port}",
         "--chdir", str(ROOT), "tests.integration.host_app:app"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # A poll that times out may still be served later: poll a
                # route the figures below leave out (no route: a 404).
                urllib.request.urlopen(f"{base}/ready", timeout=2).read()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("gunicorn did not start")
                time.sleep(0.2)
        total = 0
        errors = []

        def hammer(n):
            for i in range(n):
                try:
                    urllib.request.urlopen(f"{base}/items/{i}", timeout=10).read()
                except OSError as exc:
                    errors.append(exc)
        threads = [threading.Thread(target=hammer, args=(50,)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total += 300
        assert errors == []
        deadline = time.monotonic() + 20
        count = 0
        console_store = Store(settings.store_url)
        while time.monotonic() < deadline:
            # What the console's scheduler does every 2 s: expand the batches.
            ingest(console_store)
            count = rows(settings.store_url, "SELECT count(*) FROM ops_request "
                         f"WHERE endpoint = '{ITEM_RULE}'")[0][0]
            if count >= total:
                break
            time.sleep(0.3)
        assert count == total
        per_process = rows(settings.store_url,
                           "SELECT process, count(*) FROM ops_request "
                           f"WHERE endpoint = '{ITEM_RULE}' GROUP BY process")
        assert len(per_process) >= 2  # several workers wrote, into one store
        assert sum(n for _, n in per_process) == total
        queries = rows(settings.store_url, "SELECT count(*) FROM ops_query "
                       "WHERE request_id IS NOT NULL")[0][0]
        assert queries == total
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_insert_returning_rows_are_unknown_not_zero(settings, tmp_path):
    """sqlite3 counts an INSERT ... RETURNING's rows only as they are
    fetched, after SQLAlchemy's hook has run: the statement is recorded with
    its rows unknown (shown blank), never as "0 rows"; a plain insert keeps
    its count."""
    engine = create_engine(f"sqlite:///{tmp_path / 'returning.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)"))
    app = Flask("returning_host")

    @app.post("/items")
    def add():
        with engine.begin() as conn:
            ids = conn.execute(text("INSERT INTO item (name) VALUES ('a'), ('b') "
                                    "RETURNING id")).scalars().all()
            conn.execute(text("INSERT INTO item (name) VALUES ('c')"))
        return {"ids": ids}

    mon = monitor(app, engine=engine, settings=settings)
    try:
        assert app.test_client().post("/items").get_json() == {"ids": [1, 2]}
        mon.flush()
        recorded = rows(settings.store_url, "SELECT sql, rows FROM ops_query ORDER BY id")
        assert [r[1] for r in recorded] == [None, 1]
        assert "RETURNING" in recorded[0][0]
    finally:
        mon.close()
        engine.dispose()
