"""Outages under traffic (issue 7): Redis stopped and restarted, the store
unreachable for a whole minute. Real servers only: a redis-server of the
test's own (stopped and started again), PostgreSQL behind a TCP proxy the
test closes, SQLite held locked by another connection.

What a user would notice, and what is asserted:
- the host application never fails a request because of an outage;
- the console says what is down while it is down (health, a 503 in the
  API's error shape, the page's "unavailable" card), never a 500;
- the console and the host recover by themselves, without a restart;
- events the monitor cannot write are dropped and counted, never queued
  without bound, and recording resumes.
"""
from __future__ import annotations

import json
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import dash
import pytest
import redis as redis_lib
from flask import Flask
from ops_agent import cache
from ops_agent.cache.backend import client_options as toolkit_client_options
from plotly.utils import PlotlyJSONEncoder
from sqlalchemy import create_engine, make_url, text

from dashapp import create_app, monitor
from dashapp.config import load_settings
from tests.conftest import ADMIN_PASSWORD, PG_URL, _reset_postgres
from tests.helpers import token_for
from tests.integration.test_monitor import TcpProxy, outage_controls

OUTAGE_SECONDS = 60          # the store outage the issue asks for
REDIS_OUTAGE_SECONDS = 4     # Redis stopped this long (at least)
NAMESPACE = "resilience-price"
PRICE_RULE = "/price/<int:product_id>"
ITEM_RULE = "/items/<int:item_id>"
AFTER_RULE = "/after-outage"


# ----- helpers ---------------------------------------------------------------------
def console(tmp_path: Path, store_url: str, redis_url: str):
    """A console app (create_app) on this store and Redis: (flask app,
    settings, test client, an admin's bearer headers)."""
    settings = load_settings(
        instance_dir=tmp_path / "instance", database_url=store_url, redis_url=redis_url,
        demo=False, admin_password=ADMIN_PASSWORD, secret_key="test-secret-key",
        scheduler=False)
    server = create_app(settings).server
    client = server.test_client()
    return server, settings, client, token_for(client, server)


def host_database(tmp_path: Path, *statements: str):
    """The host application's own SQLite database, with these statements run."""
    engine = create_engine(f"sqlite:///{tmp_path / 'host.db'}")
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    return engine


def page_module(path: str):
    """The page module Dash loaded (importing it again would register twice)."""
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == path)]


def find(component, component_id: str):
    """The component with this id inside a rendered tree, else None."""
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and not isinstance(child, (str, int, float)):
            found = find(child, component_id)
            if found is not None:
                return found
    return None


def text_of(component) -> str:
    return json.dumps(component, cls=PlotlyJSONEncoder, ensure_ascii=False)


def wait_until(predicate, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


class Traffic:
    """GETs against a host app from a thread of its own, at a modest rate,
    until stopped: (time sent, path, status, JSON body) of every request,
    and the largest monitor buffers seen right after each request."""

    def __init__(self, app: Flask, paths: list[str], interval: float, mon=None):
        self.client = app.test_client()
        self.paths = paths
        self.interval = interval
        self.mon = mon
        self.results: list[tuple[float, str, int, object]] = []
        self.max_buffer = 0
        self.max_log_buffer = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-traffic", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            path = self.paths[i % len(self.paths)]
            sent = time.monotonic()
            try:
                resp = self.client.get(path)
                self.results.append((sent, path, resp.status_code, resp.get_json(silent=True)))
            except Exception as exc:  # noqa: BLE001 - the assertion reports it
                self.failures.append(f"{path}: {type(exc).__name__}: {exc}")
            if self.mon is not None:
                self.max_buffer = max(self.max_buffer, self.mon.buffered)
                if self.mon.logs is not None:
                    self.max_log_buffer = max(self.max_log_buffer,
                                              len(self.mon.logs.channel.items))
            i += 1
            self._stop.wait(self.interval)

    def sent_between(self, start: float, end: float) -> list:
        return [r for r in self.results if start <= r[0] <= end]


def endpoint_rows(client, headers) -> dict[str, dict]:
    resp = client.get("/api/metrics/endpoints?minutes=60", headers=headers)
    assert resp.status_code == 200, resp.get_json()
    return {row["endpoint"]: row for row in resp.get_json()["endpoints"]}


def assert_error_shape(resp, status: int, code: str) -> None:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:300])
    body = resp.get_json()
    assert body["error"]["code"] == code and body["error"]["message"], body


# ----- 1. Redis stopped and restarted under traffic ----------------------------------
def test_redis_restart_under_traffic(private_redis, tmp_path):
    """The host's @cached endpoint keeps answering (computing instead of
    reading Redis), the console reports Redis down while it is down and
    healthy again afterwards, from the same app objects."""
    store_url = f"sqlite:///{tmp_path / 'ops.db'}"
    server, settings, client, headers = console(tmp_path, store_url, private_redis.url)
    ops = server.extensions["ops"]

    # The host: a @cached price lookup on Redis (the toolkit, as a host
    # configures it) over its own SQL database, instrumented with monitor().
    host = Flask("host")
    engine = host_database(tmp_path, "CREATE TABLE price (id INTEGER PRIMARY KEY, cents INTEGER)",
                           "INSERT INTO price VALUES (1, 100), (2, 200), (3, 300)")
    host_redis = redis_lib.Redis.from_url(private_redis.url, **toolkit_client_options())
    cache.reset()
    cache.configure(client=host_redis, prefix=settings.cache_prefix)

    @cache.cached(NAMESPACE, ttl=600)
    def price(product_id: int) -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT cents FROM price WHERE id = :id"),
                                {"id": product_id}).scalar_one()

    @host.get("/price/<int:product_id>")
    def get_price(product_id: int):
        return {"id": product_id, "cents": price(product_id)}

    mon = monitor(host, engine=engine, redis=host_redis, settings=settings)
    redis_page = page_module("/redis")

    def namespace_stats() -> dict:
        return cache.stats()["namespaces"].get(NAMESPACE, {})

    def health() -> dict:
        resp = client.get("/api/health")
        assert resp.status_code == 200  # always 200: the body says what is wrong
        return resp.get_json()

    try:
        with Traffic(host, ["/price/1", "/price/2", "/price/3"], 0.02) as traffic:
            # Before: the cache serves hits and the console sees a healthy Redis.
            assert wait_until(lambda: namespace_stats().get("hits", 0) >= 10, 15)
            assert health()["redis"]["ok"] is True
            assert client.get("/api/redis/status", headers=headers).status_code == 200

            private_redis.stop()
            down_at = time.monotonic()
            # During: the console reports the outage; nothing answers 500.
            assert wait_until(lambda: health()["redis"]["ok"] is False, 10)
            body = health()
            assert body["status"] == "degraded" and body["store"]["ok"] is True
            assert body["redis"]["error"]
            assert_error_shape(client.get("/api/redis/status", headers=headers),
                               503, "redis_unavailable")
            assert_error_shape(client.get("/api/cache/stats", headers=headers),
                               503, "redis_unavailable")
            with server.test_request_context("/redis"):
                live = redis_page.render("default", 60)
            assert live["up"] is False
            assert "unavailable" in text_of(live["redis-status"]).lower()
            # Pages that do not need Redis keep working.
            assert client.get("/api/metrics/endpoints", headers=headers).status_code == 200
            remaining = REDIS_OUTAGE_SECONDS - (time.monotonic() - down_at)
            if remaining > 0:
                time.sleep(remaining)
            errors_during = namespace_stats().get("errors", 0)
            assert errors_during >= 1  # the host noticed, and served anyway
            private_redis.start()
            up_at = time.monotonic()

            # After: the same console objects report Redis healthy again...
            assert wait_until(lambda: health()["redis"]["ok"] is True, 20), health()
            assert health()["status"] == "ok"
            assert client.get("/api/redis/status", headers=headers).status_code == 200
            with server.test_request_context("/redis"):
                assert redis_page.render("default", 60)["up"] is True
            # ...and the host uses the cache again (the breaker closed).
            hits_at_restart = namespace_stats()["hits"]
            assert wait_until(lambda: namespace_stats()["hits"] > hits_at_restart + 5, 20)
            # The Cache page's figures show the outage: the errors counted
            # while Redis was down reached the restarted server.
            def replayed() -> bool:
                resp = client.get("/api/cache/stats", headers=headers)
                rows = {n["namespace"]: n for n in resp.get_json()["namespaces"]} \
                    if resp.status_code == 200 else {}
                return rows.get(NAMESPACE, {}).get("errors", 0) >= errors_during
            assert wait_until(replayed, 10)
        assert ops is server.extensions["ops"]  # recovered without rebuilding anything

        # Every host request succeeded, with the right answer, also while
        # Redis was down (computed from SQL instead of read from the cache).
        assert traffic.failures == []
        assert traffic.results and {r[2] for r in traffic.results} == {200}
        assert all(body == {"id": int(path.rsplit("/", 1)[1]),
                            "cents": 100 * int(path.rsplit("/", 1)[1])}
                   for _, path, _, body in traffic.results)
        assert len(traffic.sent_between(down_at, up_at)) >= 20
        # The console recorded every one of them as a success.
        mon.flush()
        row = endpoint_rows(client, headers)[PRICE_RULE]
        assert row["count"] == len(traffic.results) and row["errors"] == 0
    finally:
        mon.close()
        cache.reset()
        host_redis.close()
        ops.close()


# ----- 2. The store unreachable for a minute -----------------------------------------
@contextmanager
def store_outage(store_url: str, tmp_path: Path):
    """(store url for the console and the host, cut(), restore()): PostgreSQL
    behind a TcpProxy; SQLite as test_monitor's outage_controls does it."""
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        with outage_controls(store_url, tmp_path) as controls:
            yield controls
        return
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    try:
        yield (url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False), proxy.down, proxy.up)
    finally:
        proxy.down()


@pytest.fixture
def outage_store(tmp_path):
    """One backend per CI run, so the suite pays for one minute of outage:
    PostgreSQL in the PostgreSQL run, SQLite in the embedded run."""
    if PG_URL:
        _reset_postgres(PG_URL)
        return PG_URL
    return f"sqlite:///{tmp_path / 'ops.db'}"


@pytest.mark.usefixtures("redis_client")  # an empty Redis for the console
def test_store_unreachable_for_a_minute(outage_store, redis_url, tmp_path):
    """PostgreSQL: every connection of the console and the host to the store
    goes through a TCP proxy that the test closes for 60 s (connections cut,
    new ones refused). SQLite: another connection holds the database
    exclusively locked for 60 s (nothing can write)."""
    with store_outage(outage_store, tmp_path) as (url, cut, restore):
        backend = "sqlite" if url.startswith("sqlite") else "postgresql"
        server, settings, client, headers = console(tmp_path, url, redis_url)
        ops = server.extensions["ops"]
        host = Flask("host")
        engine = host_database(tmp_path, "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")

        @host.get("/items/<int:item_id>")
        def item(item_id: int):
            with engine.connect() as conn:
                conn.execute(text("SELECT name FROM item WHERE id = :id"), {"id": item_id})
            return {"id": item_id}

        @host.get(AFTER_RULE)
        def after():
            with engine.connect() as conn:
                conn.execute(text("SELECT count(*) FROM item"))
            return {"ok": True}

        # A small bound, so a minute of modest traffic (2 events a request)
        # is several times what the buffers may hold.
        # Log capture off: the console in this process logs its own 503s,
        # which the agent would capture, drop and count with the rest; this
        # test accounts for requests and statements exactly.
        mon = monitor(host, engine=engine, settings=settings, buffer_size=150, interval=0.5,
                      log_level="OFF")
        endpoints_page = page_module("/endpoints")
        host_client = host.test_client()
        try:
            for i in range(10):
                assert host_client.get(f"/items/{i}").status_code == 200
            mon.flush()
            assert endpoint_rows(client, headers)[ITEM_RULE]["count"] == 10
            assert mon.dropped == 0

            with Traffic(host, [f"/items/{i}" for i in range(50)], 0.05, mon) as traffic:
                time.sleep(1)
                cut()
                down_at = time.monotonic()
                console_during: list[int] = []
                while time.monotonic() - down_at < OUTAGE_SECONDS:
                    if backend == "postgresql":
                        # The console cannot read its store either: it says
                        # so (health, 503), it does not fail with a 500.
                        console_during.append(
                            client.get("/api/metrics/endpoints", headers=headers).status_code)
                    time.sleep(5)
                events_at_restore = 2 * len(traffic.results)
                dropped_at_restore = mon.dropped
                if backend == "postgresql":
                    assert client.get("/api/health").get_json()["store"]["ok"] is False
                    assert_error_shape(client.get("/api/metrics/endpoints", headers=headers),
                                       503, "store_unavailable")
                restore()
                up_at = time.monotonic()
                # Traffic goes on for a moment after the store is back.
                time.sleep(2)
            for _ in range(25):
                assert host_client.get(AFTER_RULE).status_code == 200

            # The host never noticed: every request answered 200.
            assert traffic.failures == []
            assert {r[2] for r in traffic.results} == {200}
            during = traffic.sent_between(down_at, up_at)
            assert len(during) >= 300
            # Not queued without bound: the buffers never held more than
            # their bound, and what could not be written was counted.
            # (requests and statements: buffer_size each)
            assert traffic.max_buffer <= 2 * mon.buffer_size
            # Nearly all of the outage's events were dropped and counted: all
            # but what the buffers still held and one batch in flight (as
            # large as the buffers at most).
            assert dropped_at_restore >= 2 * len(during) - 4 * mon.buffer_size - 2 * 20
            if backend == "postgresql":
                assert set(console_during) == {503}

            # Recording resumed: flush, then read the new requests via the API.
            def after_recorded() -> bool:
                mon.flush()
                resp = client.get("/api/metrics/endpoints?minutes=60", headers=headers)
                if resp.status_code != 200:
                    return False
                rows = {r["endpoint"]: r for r in resp.get_json()["endpoints"]}
                return rows.get(AFTER_RULE, {}).get("count") == 25
            assert wait_until(after_recorded, 30, every=0.5)
            assert client.get("/api/health").get_json()["status"] == "ok"
            mon.flush()
            # Every event is accounted for: written or dropped, none twice.
            stats = mon.stats()
            assert stats["buffered"] == 0
            total = 2 * (10 + len(traffic.results) + 25)
            assert stats["recorded_requests"] + stats["recorded_queries"] + stats["dropped"] \
                == total, (stats, total)
            assert stats["dropped"] >= dropped_at_restore > 0
            assert events_at_restore > dropped_at_restore
            # The drops are visible where the API metrics page shows them.
            with server.test_request_context("/endpoints"):
                _status, cards, *_ = endpoints_page.render(60)
            card = find(cards, "endpoints-card-dropped")
            assert card is not None
            assert f"{stats['dropped']:,}" in text_of(card)
            # The requests recorded around the outage are all there (a write
            # cut after its COMMIT reached the server may be there as well).
            rows = endpoint_rows(client, headers)
            assert rows[ITEM_RULE]["count"] >= stats["recorded_requests"] - 25
            assert rows[ITEM_RULE]["errors"] == 0
        finally:
            mon.close()
            ops.close()
