"""Alert rules against real data: a host app instrumented with monitor()
on the console's store, real Redis samples, a real backup, the @cached
toolkit, and webhooks POSTed to a real local HTTP server.

Evaluation takes a `now`, so a test steps through a rule's for-N-minutes
window without waiting: the figures are recorded at the real time and
every evaluation stays inside the rule's measuring window.
"""
from __future__ import annotations

import base64
import json
import logging
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask import Flask, abort
from sqlalchemy import create_engine, text

from dashapp import monitor
from dashapp.services import alerts as svc
from dashapp.services import backups, redis_collector

SECRET = "s3cr3t-pass"
TOKEN = "tok-98765"


# ----------------------------------------------------------------- fixtures

@pytest.fixture
def shop_db(tmp_path):
    path = tmp_path / "app" / "shop.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO item VALUES (?, ?)", [(i, f"item {i}") for i in range(50)])
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def settings(settings, shop_db):
    """Every statement counts as slow; the shop is the one backup target."""
    return settings.model_copy(update={"slow_query_ms": 0.0001,
                                       "backup_targets": f"shop=sqlite:///{shop_db}"})


@pytest.fixture
def ops(app):
    return app.extensions["ops"]


@pytest.fixture
def host(tmp_path, settings, app):
    """(get(path) -> status, monitor, delay) for an instrumented host app;
    `delay["s"]` is how long /work sleeps."""
    flask_host = Flask("alerts_host")
    flask_host.logger.disabled = True
    engine = create_engine(f"sqlite:///{tmp_path / 'host.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    delay = {"s": 0.0}

    @flask_host.get("/ok")
    def ok():
        return "ok"

    @flask_host.get("/boom")
    def boom():
        abort(500)

    @flask_host.get("/work")
    def work():
        time.sleep(delay["s"])
        return "done"

    @flask_host.get("/sql")
    def sql():
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM t")).scalar()
        return "sql"

    mon = monitor(flask_host, engine=engine, settings=settings)
    client = flask_host.test_client()

    def get(path: str, times: int = 1) -> None:
        for _ in range(times):
            client.get(path)

    yield get, mon, delay
    mon.close()
    engine.dispose()


class Hook:
    """A real HTTP server answering each POST with the next status of
    `statuses` (the last one repeats) and keeping what it received."""

    def __init__(self, statuses=(200,)):
        self.statuses = list(statuses)
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append({"path": self.path, "json": json.loads(body),
                                      "type": self.headers.get("Content-Type"),
                                      "auth": self.headers.get("Authorization")})
                status = hook.statuses.pop(0) if len(hook.statuses) > 1 else hook.statuses[0]
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://alice:{SECRET}@127.0.0.1:{self.port}/hook?token={TOKEN}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook_factory():
    hooks = []

    def make(statuses=(200,)):
        hook = Hook(statuses)
        hooks.append(hook)
        return hook

    yield make
    for hook in hooks:
        hook.close()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Webhook retries wait 50 ms here instead of seconds (same code path)."""
    monkeypatch.setattr(svc, "BACKOFF_S", (0.05, 0.05))


def rule(ops, **fields):
    data = {"name": fields.pop("name", "rule"), "for_minutes": 0, "window_minutes": 5,
            **fields}
    return svc.create_rule(ops.store, data, actor="admin")


def state_of(ops, rule_id: int) -> str:
    return svc.get_rule(ops.store, rule_id)["state"]


def now_plus(t0: datetime, minutes: float) -> datetime:
    return t0 + timedelta(minutes=minutes)


# --------------------------------------------------- for N minutes, resolve

def test_error_rate_fires_after_its_window_and_resolves(ops, host):
    get, mon, _ = host
    get("/ok", 2)
    get("/boom", 8)
    mon.flush()
    r = rule(ops, name="Errors", kind="endpoint_error_rate", comparison=">", threshold=50,
             for_minutes=2)
    t0 = datetime.now(timezone.utc)

    first = svc.evaluate(ops, t0, force=True)
    assert first["fired"] == [] and state_of(ops, r["id"]) == "pending"
    assert svc.get_rule(ops.store, r["id"])["last_value"] == pytest.approx(80.0)
    assert svc.evaluate(ops, now_plus(t0, 1), force=True)["fired"] == []
    assert state_of(ops, r["id"]) == "pending"

    fired = svc.evaluate(ops, now_plus(t0, 2), force=True)["fired"]
    assert len(fired) == 1 and state_of(ops, r["id"]) == "firing"
    [event] = svc.list_events(ops.store, state="firing")
    assert event["id"] == fired[0] and event["rule_name"] == "Errors"
    assert event["value"] == pytest.approx(80.0)
    assert "8 of 10 requests" in event["message"]

    # still breaching: the same episode, no second event
    assert svc.evaluate(ops, now_plus(t0, 3), force=True)["fired"] == []
    assert len(svc.list_events(ops.store)) == 1

    get("/ok", 40)  # 8 errors in 50 requests: 16%
    mon.flush()
    resolved = svc.evaluate(ops, now_plus(t0, 4), force=True)["resolved"]
    assert resolved == fired and state_of(ops, r["id"]) == "ok"
    [event] = svc.list_events(ops.store)
    assert event["state"] == "resolved" and event["resolved_value"] == pytest.approx(16.0)
    assert svc.list_events(ops.store, state="firing") == []


def test_a_breach_that_ends_before_its_window_never_fires(ops, host):
    get, mon, _ = host
    get("/boom", 5)
    mon.flush()
    r = rule(ops, name="Short blip", kind="endpoint_error_rate", threshold=50, for_minutes=5,
             window_minutes=10)
    t0 = datetime.now(timezone.utc)
    svc.evaluate(ops, t0, force=True)
    assert state_of(ops, r["id"]) == "pending"
    get("/ok", 20)
    mon.flush()
    svc.evaluate(ops, now_plus(t0, 1), force=True)
    assert state_of(ops, r["id"]) == "ok"
    get("/boom", 30)  # breaching again: the window starts over
    mon.flush()
    assert svc.evaluate(ops, now_plus(t0, 2), force=True)["fired"] == []
    assert svc.evaluate(ops, now_plus(t0, 6), force=True)["fired"] == []
    assert len(svc.evaluate(ops, now_plus(t0, 7), force=True)["fired"]) == 1


def test_p95_of_one_endpoint(ops, host):
    get, mon, delay = host
    delay["s"] = 0.03
    get("/work", 20)
    get("/ok", 50)  # fast, and not the rule's endpoint
    mon.flush()
    r = rule(ops, name="Slow work", kind="endpoint_p95", target="/work", threshold=20)
    t0 = datetime.now(timezone.utc)
    assert len(svc.evaluate(ops, t0, force=True)["fired"]) == 1
    rule_now = svc.get_rule(ops.store, r["id"])
    assert rule_now["state"] == "firing" and rule_now["last_value"] >= 30
    assert "GET /work" in rule_now["last_message"]

    delay["s"] = 0.0
    get("/work", 500)  # 20 slow in 520: the p95 is fast again
    mon.flush()
    assert len(svc.evaluate(ops, now_plus(t0, 1), force=True)["resolved"]) == 1
    assert svc.get_rule(ops.store, r["id"])["last_value"] < 20


def test_slow_query_count(ops, host):
    get, mon, _ = host
    get("/sql", 6)
    mon.flush()
    r = rule(ops, name="Slow SQL", kind="slow_queries", threshold=5, for_minutes=1)
    t0 = datetime.now(timezone.utc)
    svc.evaluate(ops, t0, force=True)
    assert svc.get_rule(ops.store, r["id"])["last_value"] >= 6
    assert len(svc.evaluate(ops, now_plus(t0, 1), force=True)["fired"]) == 1


def test_redis_memory_from_the_collectors_samples(ops):
    t0 = datetime.now(timezone.utc)
    client = ops.redis.client
    r = rule(ops, name="Redis memory", kind="redis_memory", threshold=0.01, for_minutes=1)
    assert svc.evaluate(ops, t0, force=True)["fired"] == []
    assert "No samples" in svc.get_rule(ops.store, r["id"])["last_message"]

    redis_collector.sample_instance(ops.store, "default", client, ops.settings.cache_prefix,
                                    now=t0)
    svc.evaluate(ops, t0, force=True)
    assert state_of(ops, r["id"]) == "pending"
    redis_collector.sample_instance(ops.store, "default", client, ops.settings.cache_prefix,
                                    now=now_plus(t0, 1))
    assert len(svc.evaluate(ops, now_plus(t0, 1), force=True)["fired"]) == 1
    used_mb = client.info("memory")["used_memory"] / 1048576
    assert svc.get_rule(ops.store, r["id"])["last_value"] == pytest.approx(used_mb, rel=0.5)

    # raised above what Redis uses: resolved at the next evaluation
    svc.update_rule(ops.store, r["id"], {"threshold": 1_000_000}, actor="admin")
    assert len(svc.evaluate(ops, now_plus(t0, 2), force=True)["resolved"]) == 1


def test_unknown_redis_instance_reads_as_no_data(ops):
    r = rule(ops, name="Other", kind="redis_evictions", target="nope", threshold=0)
    svc.evaluate(ops, force=True)
    found = svc.get_rule(ops.store, r["id"])
    assert found["state"] == "ok" and "No watched Redis instance" in found["last_message"]


def test_backup_age_fires_without_any_backup_and_resolves_after_one(ops, settings):
    r = rule(ops, name="Backups", kind="backup_age", target="shop", threshold=26)
    t0 = datetime.now(timezone.utc)
    assert len(svc.evaluate(ops, t0, force=True)["fired"]) == 1
    [event] = svc.list_events(ops.store, state="firing")
    assert "No successful backup of shop" in event["message"]

    backups.create_backup(ops.store, settings, "shop", actor="admin")
    assert len(svc.evaluate(ops, now_plus(t0, 1), force=True)["resolved"]) == 1
    assert svc.get_rule(ops.store, r["id"])["last_value"] < 1  # hours

    # a day and a half later the backup is too old
    assert len(svc.evaluate(ops, now_plus(t0, 36 * 60), force=True)["fired"]) == 1


def test_cache_hit_rate_of_a_namespace(ops):
    from ops_agent import cache
    from ops_agent.cache import cached

    cache.reset()
    cache.configure(client=ops.redis.client, prefix=ops.settings.cache_prefix)
    try:
        # a namespace of its own: the toolkit remembers which function owns
        # one for the life of the process (test_cache_toolkit uses "prices")
        @cached("alert_prices", ttl=60)
        def price(i):
            return i * 2

        for i in range(10):
            price(i)  # ten misses
        r = rule(ops, name="Cold cache", kind="cache_hit_rate", target="alert_prices",
                 comparison="<", threshold=50)
        assert len(svc.evaluate(ops, force=True)["fired"]) == 1
        assert svc.get_rule(ops.store, r["id"])["last_value"] == pytest.approx(0.0)
        for _ in range(5):
            for i in range(10):
                price(i)  # fifty hits
        assert len(svc.evaluate(ops, force=True)["resolved"]) == 1
        assert svc.get_rule(ops.store, r["id"])["last_value"] == pytest.approx(100 * 50 / 60,
                                                                               rel=0.01)
    finally:
        cache.reset()


def test_a_disabled_rule_is_not_evaluated_and_closes_its_alert(ops, host):
    get, mon, _ = host
    get("/boom", 3)
    mon.flush()
    r = rule(ops, name="Errors", kind="endpoint_error_rate", threshold=10)
    svc.evaluate(ops, force=True)
    assert state_of(ops, r["id"]) == "firing"
    svc.update_rule(ops.store, r["id"], {"enabled": False}, actor="admin")
    assert state_of(ops, r["id"]) == "disabled"
    [event] = svc.list_events(ops.store)
    assert event["state"] == "resolved" and "disabled" in event["message"]
    assert svc.evaluate(ops, force=True)["evaluated"] == 0


def test_deleting_a_rule_keeps_its_history(ops, host):
    get, mon, _ = host
    get("/boom", 3)
    mon.flush()
    r = rule(ops, name="Errors", kind="endpoint_error_rate", threshold=10)
    svc.evaluate(ops, force=True)
    svc.delete_rule(ops.store, r["id"], actor="admin")
    [event] = svc.list_events(ops.store)
    assert event["rule_name"] == "Errors" and event["rule_id"] is None
    assert event["state"] == "resolved"


# ------------------------------------------------------------------ webhooks

def test_webhook_receives_firing_and_resolved(ops, host, hook_factory, caplog):
    caplog.set_level(logging.DEBUG)
    hook = hook_factory([200])
    get, mon, _ = host
    get("/boom", 4)
    mon.flush()
    r = rule(ops, name="Errors", kind="endpoint_error_rate", threshold=10,
             webhook_url=hook.url, severity="critical")
    assert r["webhook_url"] == f"http://***@127.0.0.1:{hook.port}/hook?***"

    [event_id] = svc.evaluate(ops, force=True)["fired"]
    [got] = hook.received
    body = got["json"]
    assert got["type"] == "application/json" and got["path"] == f"/hook?token={TOKEN}"
    # user:password of the URL travel as HTTP Basic authentication
    assert got["auth"] == "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert body["state"] == "firing" and body["rule"]["name"] == "Errors"
    assert body["rule"]["severity"] == "critical" and body["value"] == pytest.approx(100.0)
    assert body["threshold"] == 10 and body["path"] == f"/alerts?event={event_id}"
    assert body["time"]

    get("/ok", 96)
    mon.flush()
    svc.evaluate(ops, force=True)
    assert [h["json"]["state"] for h in hook.received] == ["firing", "resolved"]
    assert hook.received[1]["json"]["value"] == pytest.approx(4.0)

    deliveries = svc.list_deliveries(ops.store)
    assert [d["outcome"] for d in deliveries] == ["delivered", "delivered"]
    assert all(d["status_code"] == 200 for d in deliveries)
    assert svc.list_events(ops.store)[0]["delivery"] == "delivered"
    shown = json.dumps(deliveries) + json.dumps(svc.list_rules(ops.store)) + caplog.text
    assert SECRET not in shown and TOKEN not in shown


def test_webhook_is_retried_after_a_500(ops, hook_factory):
    hook = hook_factory([500, 200])
    r = rule(ops, name="Backups", kind="backup_age", threshold=1, webhook_url=hook.url)
    svc.evaluate(ops, force=True)
    assert len(hook.received) == 2
    attempts = sorted(svc.list_deliveries(ops.store, rule_id=r["id"]), key=lambda d: d["id"])
    assert [(d["attempt"], d["status_code"], d["outcome"]) for d in attempts] == [
        (1, 500, "retry"), (2, 200, "delivered")]
    assert attempts[0]["error"] == "HTTP 500"


def test_webhook_failure_is_recorded(ops, hook_factory):
    hook = hook_factory([503])
    r = rule(ops, name="Backups", kind="backup_age", threshold=1, webhook_url=hook.url)
    [event_id] = svc.evaluate(ops, force=True)["fired"]
    assert len(hook.received) == svc.ATTEMPTS
    attempts = sorted(svc.list_deliveries(ops.store, event_id=event_id), key=lambda d: d["id"])
    assert [d["outcome"] for d in attempts] == ["retry"] * (svc.ATTEMPTS - 1) + ["failed"]
    assert svc.list_events(ops.store)[0]["delivery"] == "failed"
    # the alert fired all the same
    assert state_of(ops, r["id"]) == "firing"


def test_a_4xx_answer_is_not_retried(ops, hook_factory):
    hook = hook_factory([404])
    r = rule(ops, name="Backups", kind="backup_age", threshold=1, webhook_url=hook.url)
    svc.evaluate(ops, force=True)
    [attempt] = svc.list_deliveries(ops.store, rule_id=r["id"])
    assert attempt["status_code"] == 404 and attempt["outcome"] == "failed"
    assert len(hook.received) == 1


def test_unreachable_webhook_records_the_error_without_secrets(ops, hook_factory):
    hook = hook_factory()
    url = hook.url
    hook.close()  # nothing listens there any more
    r = rule(ops, name="Backups", kind="backup_age", threshold=1, webhook_url=url)
    result = svc.send_test_webhook(ops.store, r["id"], actor="admin", timeout=1)
    assert result["outcome"] == "failed" and result["attempts"] == svc.ATTEMPTS
    attempts = svc.list_deliveries(ops.store, rule_id=r["id"])
    assert all(a["status_code"] is None and a["error"] for a in attempts)
    assert all(a["state"] == "test" for a in attempts)
    assert SECRET not in json.dumps(attempts) and TOKEN not in json.dumps(attempts)


def test_test_webhook_sends_a_sample(ops, hook_factory):
    hook = hook_factory([204])
    r = rule(ops, name="Memory", kind="redis_memory", threshold=100, webhook_url=hook.url)
    result = svc.send_test_webhook(ops.store, r["id"], actor="admin")
    assert result == {"outcome": "delivered", "attempts": 1, "status_code": 204, "error": None}
    body = hook.received[0]["json"]
    assert body["state"] == "test" and body["rule"]["name"] == "Memory"
    assert body["path"] == "/alerts"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd",
                                 "javascript:alert(1)", "http://", "http://exa mple.com/",
                                 "http://example.com:99999/"])
def test_webhook_urls_must_be_http(ops, url):
    with pytest.raises(svc.InvalidRule) as err:
        rule(ops, name="Bad", kind="slow_queries", threshold=1, webhook_url=url)
    assert err.value.field == "webhook_url"


# -------------------------------------------------------------- many workers

def test_two_evaluators_at_once_open_one_event(ops, settings):
    """Two console workers (two apps on one store) evaluate the same breach
    at the same moment, forced, many times: one event per episode."""
    from dashapp import create_app
    other = create_app(settings)
    try:
        ops2 = other.server.extensions["ops"]
        r = rule(ops, name="Backups", kind="backup_age", threshold=1)
        barrier = threading.Barrier(2)
        results: list[dict] = []
        t0 = datetime.now(timezone.utc)

        def worker(o):
            for i in range(5):
                barrier.wait()
                results.append(svc.evaluate(o, now_plus(t0, i), force=True))

        threads = [threading.Thread(target=worker, args=(o,)) for o in (ops, ops2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 10
        assert sum(len(r["fired"]) for r in results) == 1
        assert len(svc.list_events(ops.store, rule_id=r["id"])) == 1
    finally:
        other.server.extensions["ops"].close()


def test_a_scheduled_round_is_claimed_by_one_worker(ops, settings):
    from dashapp import create_app
    other = create_app(settings)
    try:
        ops2 = other.server.extensions["ops"]
        rule(ops, name="Backups", kind="backup_age", threshold=1)
        t0 = datetime.now(timezone.utc)
        barrier = threading.Barrier(2)
        results: list[dict] = []

        def worker(o):
            barrier.wait()
            results.append(svc.evaluate(o, t0))

        threads = [threading.Thread(target=worker, args=(o,)) for o in (ops, ops2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(r["claimed"] for r in results) == [False, True]
        assert sum(len(r["fired"]) for r in results) == 1
        # the next round (one interval later) is claimed again
        later = t0 + timedelta(seconds=settings.alert_interval)
        assert svc.evaluate(ops2, later)["claimed"] is True
    finally:
        other.server.extensions["ops"].close()


def test_evaluation_survives_an_unreadable_figure(ops):
    rule(ops, name="Ghost model", kind="model_accuracy", target="no-such-model",
         comparison="<", threshold=90)
    ok = rule(ops, name="Backups", kind="backup_age", threshold=1)
    result = svc.evaluate(ops, force=True)
    assert result["evaluated"] == 2 and len(result["fired"]) == 1
    ghost = next(r for r in svc.list_rules(ops.store) if r["name"] == "Ghost model")
    assert ghost["state"] == "ok" and "no-such-model" in ghost["last_message"]
    assert state_of(ops, ok["id"]) == "firing"


def test_failed_jobs_of_one_job(ops, settings):
    """A host scheduler instrumented by monitor(): one job fails, one works."""
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(timezone=timezone.utc)
    mon = monitor(Flask("jobs_host"), scheduler=scheduler, settings=settings)
    mon.jobs.poll_interval = 0.1
    try:
        def broken_import():
            raise RuntimeError("price feed is down")

        def report():
            return "ok"

        soon = datetime.now(timezone.utc) + timedelta(seconds=0.2)
        scheduler.add_job(broken_import, "interval", hours=1, id="import", next_run_time=soon)
        scheduler.add_job(report, "interval", hours=1, id="report", next_run_time=soon)
        failing = rule(ops, name="Import failing", kind="failed_jobs", target="import",
                       threshold=0)
        fine = rule(ops, name="Report failing", kind="failed_jobs", target="report",
                    threshold=0)
        assert svc.evaluate(ops, force=True)["fired"] == []
        scheduler.start()
        deadline = time.monotonic() + 15
        fired: list[int] = []
        while time.monotonic() < deadline and not fired:
            mon.flush()
            fired = svc.evaluate(ops, force=True)["fired"]
            time.sleep(0.2)
        assert len(fired) == 1
        assert state_of(ops, failing["id"]) == "firing"
        assert state_of(ops, fine["id"]) == "ok"
        assert "1 failed runs of job import" in svc.list_events(ops.store)[0]["message"]
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        mon.close()


def test_model_accuracy_and_drift(ops, settings):
    """A model registered and used through monitor().ml: live accuracy from
    labelled predictions, drift from a shifted feature."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mon = monitor(Flask("ml_host"), settings=settings)
    try:
        rng = np.random.default_rng(7)
        X_ev = rng.normal(0, 1, size=(1000, 3))
        y_ev = (X_ev[:, 0] + X_ev[:, 1] > 0).astype(int)
        model = LogisticRegression().fit(X_ev, y_ev)
        mon.ml.register("risk", model, version="1", task="classification", X_eval=X_ev,
                        y_eval=y_ev, feature_names=["amount", "age", "score"])
        mon.flush()
        acc = rule(ops, name="Risk accuracy", kind="model_accuracy", target="risk",
                   comparison="<", threshold=90)
        drift = rule(ops, name="Risk drift", kind="model_drift", target="risk", threshold=0)
        assert svc.evaluate(ops, force=True)["fired"] == []
        assert "No labelled predictions" in svc.get_rule(ops.store, acc["id"])["last_message"]

        live = rng.normal(0, 1, size=(400, 3))
        live[:, 0] += 1.0  # "amount" shifted by one standard deviation
        pred = model.predict(live)
        ids = mon.ml.record("risk", live, pred)
        truth = pred.copy()
        truth[:100] = 1 - truth[:100]  # a quarter of the answers wrong
        for pid, y in zip(ids, truth):
            mon.ml.label(pid, int(y))
        mon.flush()
        assert len(svc.evaluate(ops, force=True)["fired"]) == 2
        assert svc.get_rule(ops.store, acc["id"])["last_value"] == pytest.approx(75.0)
        drifted = svc.get_rule(ops.store, drift["id"])
        assert drifted["last_value"] == 1 and "(amount)" in drifted["last_message"]
    finally:
        mon.close()


def test_scheduled_rounds_purge_old_history(ops, settings):
    r = rule(ops, name="Backups", kind="backup_age", threshold=1)
    t0 = datetime.now(timezone.utc)
    assert len(svc.evaluate(ops, t0, force=True)["fired"]) == 1
    svc.delete_rule(ops.store, r["id"], actor="admin")  # resolves its alert
    assert [e["state"] for e in svc.list_events(ops.store)] == ["resolved"]
    keep = settings.rollup_retention_days
    assert svc.evaluate(ops, now_plus(t0, (keep - 1) * 1440))["claimed"]
    assert len(svc.list_events(ops.store)) == 1
    assert svc.evaluate(ops, now_plus(t0, (keep + 1) * 1440))["claimed"]
    assert svc.list_events(ops.store) == []
