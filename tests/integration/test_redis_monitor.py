"""The Redis server monitor against real Redis servers: the REST routes with
their roles, the page's callbacks, the advice rules on real conditions, the
key distribution on a known keyspace, an outage and its recovery.

Anything that changes a server's state (CONFIG SET, CLIENT KILL, SLOWLOG
RESET) runs against `private_redis`, a redis-server of the test's own, never
against the shared one.
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import dash
import pytest
import redis as redis_lib
from flask import g

from dashapp import create_app
from dashapp.config import load_settings
from dashapp.security.auth import Principal
from dashapp.services import redis_collector
from dashapp.services import redis_monitor as svc
from dashapp.store.models import AuditEvent
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import token_for

READ_ROUTES = ["/api/redis/instances", "/api/redis/status", "/api/redis/memory",
               "/api/redis/keys", "/api/redis/clients", "/api/redis/slowlog",
               "/api/redis/commandstats", "/api/redis/advice"]
REDIS_ROUTES = READ_ROUTES[1:]   # every route that talks to Redis


def page_module():
    """The page module Dash loaded (importing it again would register twice)."""
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == "/redis")]


def build_app(tmp_path, store_url, redis_url, **extra):
    settings = load_settings(
        instance_dir=tmp_path / "instance-private", database_url=store_url,
        redis_url=redis_url, demo=False, admin_password=ADMIN_PASSWORD,
        secret_key="test-secret-key", scheduler=False,
        # the rate limiter's own counters would be counted as the Redis
        # page's commands (the limiter is tested in tests/api/test_security.py)
        rate_limit_enabled=False, **extra)
    return create_app(settings).server


@pytest.fixture
def private_app(tmp_path, store_url, private_redis):
    """A console whose default Redis is the test's own server."""
    app = build_app(tmp_path, store_url, private_redis.url)
    yield app
    app.extensions["ops"].close()


@pytest.fixture
def private_client(private_redis):
    client = redis_lib.Redis.from_url(private_redis.url, socket_connect_timeout=0.5)
    yield client
    client.close()


@contextmanager
def as_user(app, username: str = "admin", role: str | None = None):
    """A request context for calling page functions as `username`."""
    users = app.extensions["ops"].users
    if role is not None and users.by_name(username) is None:
        users.create_user(username, "password-1234", role)
    with app.test_request_context("/redis"):
        g.ops_principal = Principal.of(users.by_name(username))
        yield


def audit_events(app, action: str) -> list[AuditEvent]:
    from sqlalchemy import select
    with app.extensions["ops"].store.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.id)))


def open_client(url: str, name: str) -> redis_lib.Redis:
    """A separate connection with a name; returns a client pinned to it."""
    client = redis_lib.Redis.from_url(url, single_connection_client=True)
    client.client_setname(name)
    client.ping()
    return client


# ------------------------------------------------------------------ roles

def test_every_route_needs_sign_in_and_viewers_read(app, client, redis_client):
    for url in READ_ROUTES:
        resp = client.get(url)
        assert resp.status_code == 401, url
        assert set(resp.get_json()["error"]) >= {"code", "message"}
    for url in ("/api/redis/clients/1/kill", "/api/redis/slowlog/reset"):
        assert client.post(url).status_code == 401
    viewer = token_for(client, app, "vera", "viewer-pass-1", role="viewer")
    for url in READ_ROUTES:
        resp = client.get(url, headers=viewer)
        assert resp.status_code == 200, (url, resp.get_json())


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_kill_and_reset_need_admin_and_refusals_are_audited(app, client, role):
    headers = token_for(client, app, f"user-{role}", "password-1234", role=role)
    for url in ("/api/redis/clients/1/kill", "/api/redis/slowlog/reset"):
        resp = client.post(url, headers=headers)
        assert resp.status_code == 403, url
        assert resp.get_json()["error"]["code"] == "forbidden"
    denied = audit_events(app, "permission_denied")
    assert {e.target for e in denied if e.actor == f"user-{role}"} == {
        "POST /api/redis/clients/1/kill", "POST /api/redis/slowlog/reset"}


def test_bad_parameters_are_400_and_unknown_instance_404(app, client):
    headers = token_for(client, app)
    for url in ("/api/redis/memory?minutes=14", "/api/redis/memory?minutes=43201",
                "/api/redis/keys?sample=0", f"/api/redis/keys?sample={svc.MAX_SAMPLE + 1}",
                "/api/redis/keys?separator=", "/api/redis/keys?depth=9",
                "/api/redis/slowlog?limit=0", "/api/redis/status?instance=No%20Such!"):
        resp = client.get(url, headers=headers)
        assert resp.status_code == 400, url
        assert resp.get_json()["error"]["code"] == "invalid_request"
    for url in ("/api/redis/clients/abc/kill", "/api/redis/clients/0/kill",
                "/api/redis/clients/-3/kill"):
        resp = client.post(url, headers=headers)
        assert resp.status_code == 400, url
        assert resp.get_json()["error"]["fields"][0]["field"] == "client_id"
    resp = client.get("/api/redis/status?instance=nope", headers=headers)
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "unknown_instance"


# ------------------------------------------------------------------ reads

def test_status_memory_and_commandstats_describe_the_server(app, client, redis_client):
    headers = token_for(client, app)
    redis_client.set("status:a", "1")
    for _ in range(5):
        redis_client.get("status:a")
    redis_client.get("status:missing")
    stat = client.get("/api/redis/status", headers=headers).get_json()
    info = redis_client.info()
    assert stat["version"] == info["redis_version"]
    assert stat["replication"]["role"] == "master"
    assert stat["uptime_seconds"] >= 0 and stat["connected_clients"] >= 1
    assert stat["keyspace_hits"] >= 5 and stat["keyspace_misses"] >= 1
    assert 0 < stat["hit_rate"] < 1
    db = svc.client_db(redis_client)
    assert {"db": db, "keys": 1}.items() <= next(
        r for r in stat["keyspace"] if r["db"] == db).items()
    assert stat["persistence"]["state"] in ("ok", "off")
    assert stat["persistence"]["summary"]

    mem = client.get("/api/redis/memory", headers=headers).get_json()
    assert mem["used"] > 0 and mem["rss"] > 0 and mem["peak"] >= mem["used"] * 0.5
    assert mem["maxmemory_policy"] and mem["dataset"] is not None
    assert mem["history"] == [] and "scheduler is off" in mem["history_note"]

    stats = client.get("/api/redis/commandstats", headers=headers).get_json()
    by_name = {c["command"]: c for c in stats["commands"]}
    assert by_name["get"]["calls"] >= 6
    assert abs(sum(c["time_share"] for c in stats["commands"]) - 1) < 1e-6


def test_memory_history_comes_from_the_collector(app, client, redis_client):
    ops = app.extensions["ops"]
    now = datetime.now(timezone.utc)
    for seconds_ago in (40, 10):
        assert redis_collector.sample_instance(ops.store, "default", redis_client, "cache",
                                               now=now - timedelta(seconds=seconds_ago))
    data = client.get("/api/redis/memory?minutes=15", headers=token_for(client, app)).get_json()
    assert len(data["history"]) == 2 and data["history_note"] is None
    assert all(p["used_memory"] > 0 for p in data["history"])
    assert data["history"][0]["time"] < data["history"][1]["time"]
    page = page_module()
    with as_user(app):
        live = page.render("default", 15)
    assert [t.name for t in live["redis-memory-chart"].data][:2] == ["used", "RSS"]
    assert live["redis-memory-note"] is None


def test_key_distribution_is_exact_when_the_sample_covers_everything(redis_client):
    pipe = redis_client.pipeline(transaction=False)
    for i in range(30):
        pipe.set(f"orders:{i}", "x" * 20)
    for i in range(20):
        pipe.hset(f"users:{i}", mapping={"name": "n", "email": "e"})
    for i in range(6):
        pipe.set(f"cache:products:{i}", "p")
        pipe.set(f"cache:prices:{i}", "p")
    pipe.rpush("queue:big", *range(5000))
    pipe.set("loose", "1")
    pipe.set("other", "2")
    pipe.execute()
    total = 30 + 20 + 12 + 1 + 2

    dist = svc.key_distribution(redis_client, sample=1000)
    assert dist["estimate"] is False and dist["complete_scan"] is True
    assert dist["sample_size"] == dist["dbsize"] == total
    counts = {n["namespace"]: n["keys"] for n in dist["namespaces"]}
    assert counts == {"orders": 30, "users": 20, "cache": 12, "queue": 1, svc.NO_PREFIX: 2}
    assert all(n["keys_margin"] == 0 for n in dist["namespaces"])
    assert dist["namespaces"][0]["namespace"] == "orders"
    users = next(n for n in dist["namespaces"] if n["namespace"] == "users")
    assert users["types"] == {"hash": 20} and users["memory"] > 0
    big = dist["biggest"][0]
    assert (big["key"], big["type"], big["length"]) == ("queue:big", "list", 5000)
    assert "Exact" in dist["note"]

    deeper = svc.key_distribution(redis_client, sample=1000, depth=2)
    counts = {n["namespace"]: n["keys"] for n in deeper["namespaces"]}
    assert counts["cache:products"] == 6 and counts["cache:prices"] == 6
    assert counts["orders"] == 30  # a key's last part is never its namespace
    dashed = svc.key_distribution(redis_client, sample=1000, separator="-")
    assert [n["namespace"] for n in dashed["namespaces"]] == [svc.NO_PREFIX]


def test_key_distribution_estimates_from_a_small_sample_and_says_so(redis_client):
    pipe = redis_client.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"{'a' if i % 3 else 'b'}:{i}", "v")
    pipe.execute()
    dist = svc.key_distribution(redis_client, sample=500, scan_count=100)
    assert dist["estimate"] is True and dist["sample_size"] == 500
    assert dist["dbsize"] == 3000 and dist["scale"] == 6
    counts = {n["namespace"]: n for n in dist["namespaces"]}
    assert counts["a"]["sampled_keys"] + counts["b"]["sampled_keys"] == 500
    # the share scaled by DBSIZE, within its stated 95 % margin (and then some)
    assert abs(counts["a"]["keys"] - 2000) <= 2 * counts["a"]["keys_margin"]
    assert counts["a"]["keys"] == round(counts["a"]["share"] * 3000)
    assert "500 of 3,000 keys" in dist["note"] and "scaled by DBSIZE" in dist["note"]
    with pytest.raises(ValueError):
        svc.key_distribution(redis_client, sample=svc.MAX_SAMPLE + 1)


def test_keys_route_states_sample_size_and_estimate(app, client, redis_client):
    redis_client.mset({f"k:{i}": i for i in range(50)})
    headers = token_for(client, app)
    data = client.get("/api/redis/keys?sample=10", headers=headers).get_json()
    assert data["sample_size"] == 10 and data["estimate"] is True
    assert data["namespaces"][0] == {**data["namespaces"][0], "namespace": "k", "keys": 50}
    assert any(r["db"] == data["db"] and r["keys"] == 50 for r in data["keyspace"])
    exact = client.get("/api/redis/keys?sample=100", headers=headers).get_json()
    assert exact["estimate"] is False and exact["sample_size"] == 50


def test_console_sends_only_cheap_commands(private_app, private_client):
    """Every route, then INFO commandstats: no KEYS, DEBUG, full reads; and
    the slowlog (10 ms) holds nothing the console sent."""
    pipe = private_client.pipeline(transaction=False)
    for i in range(20_000):
        pipe.set(f"bulk:{i % 7}:{i}", "v" * 10)
    pipe.hset("big:hash", mapping={str(i): i for i in range(20_000)})
    pipe.execute()
    private_client.config_set("slowlog-log-slower-than", 10_000)
    private_client.slowlog_reset()
    private_client.config_resetstat()
    client = private_app.test_client()
    headers = token_for(client, private_app)
    for url in REDIS_ROUTES:
        assert client.get(url, headers=headers).status_code == 200, url
    assert client.get(f"/api/redis/keys?sample={svc.MAX_SAMPLE}",
                      headers=headers).status_code == 200
    used = {name.removeprefix("cmdstat_") for name in private_client.info("commandstats")}
    allowed = {"info", "dbsize", "scan", "type", "memory|usage", "ttl", "strlen", "llen",
               "scard", "zcard", "hlen", "xlen", "echo", "client|list", "client|id",
               "slowlog|get", "slowlog|len", "config|get", "config|resetstat", "hello",
               "client|setinfo", "client|maint_notifications",
               "ping", "select"}
    # Redis < 7 counts subcommands under their command ("client", "config", ...).
    allowed |= {name.split("|")[0] for name in allowed}
    assert used <= allowed, used - allowed
    assert not used & {"keys", "debug", "smembers", "hgetall", "lrange", "zrange",
                       "hkeys", "hvals", "sort", "dump"}
    assert private_client.slowlog_len() == 0


# ---------------------------------------------------------------- clients

def test_clients_list_everyone_with_name_address_age_idle_and_command(
        private_app, private_redis, private_client):
    private_client.ping()
    others = [open_client(private_redis.url, f"rm-test-{c}") for c in "abc"]
    try:
        others[0].get("some-key")
        client = private_app.test_client()
        data = client.get("/api/redis/clients", headers=token_for(client, private_app)).get_json()
        listed = private_client.client_list()
        assert {r["id"] for r in data["clients"]} == {int(c["id"]) for c in listed}
        assert data["count"] == len(listed)
        rows = {r["name"]: r for r in data["clients"]}
        for other in others:
            me = other.client_info()
            row = rows[me["name"]]
            assert row["id"] == int(me["id"]) and row["addr"] == me["addr"]
            assert row["age"] >= 0 and row["idle"] >= 0 and row["db"] == 0
        assert rows["rm-test-a"]["cmd"] == "get"
        assert rows["rm-test-b"]["cmd"] in ("ping", "client|info")
        assert sum(r["own"] for r in data["clients"]) == 1
        assert not {"password", "requirepass"} & set(json.dumps(data).lower().split('"'))
    finally:
        for other in others:
            other.close()


def test_admin_kills_a_client_it_is_gone_and_audited(private_app, private_redis):
    victim = open_client(private_redis.url, "rm-victim")
    victim_id = int(victim.client_info()["id"])
    client = private_app.test_client()
    admin = token_for(client, private_app)
    viewer = token_for(client, private_app, "vic", "viewer-pass-1", role="viewer")
    assert client.post(f"/api/redis/clients/{victim_id}/kill", headers=viewer).status_code == 403

    resp = client.post(f"/api/redis/clients/{victim_id}/kill", headers=admin)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["client"]["name"] == "rm-victim"
    ids = {r["id"] for r in client.get("/api/redis/clients", headers=admin).get_json()["clients"]}
    assert victim_id not in ids
    with pytest.raises(redis_lib.ConnectionError):
        victim.connection.send_command("PING")
        victim.connection.read_response()
    victim.close()
    again = client.post(f"/api/redis/clients/{victim_id}/kill", headers=admin)
    assert again.status_code == 404 and again.get_json()["error"]["code"] == "not_found"

    events = audit_events(private_app, "redis_client_kill")
    assert [(e.outcome, e.actor) for e in events] == [("success", "admin"), ("failure", "admin")]
    assert events[0].target == f"redis:default:client:{victim_id}"
    assert events[0].details["name"] == "rm-victim" and events[0].ip


def test_the_console_does_not_kill_its_own_connection(private_app):
    client = private_app.test_client()
    admin = token_for(client, private_app)
    own = client.get("/api/redis/clients", headers=admin).get_json()["own_id"]
    resp = client.post(f"/api/redis/clients/{own}/kill", headers=admin)
    assert resp.status_code == 409
    assert resp.get_json()["error"]["code"] == "own_connection"
    assert client.get("/api/redis/status", headers=admin).status_code == 200


def test_page_kill_needs_admin_and_is_audited(private_app, private_redis):
    page = page_module()
    victim = open_client(private_redis.url, "rm-page-victim")
    victim_id = int(victim.client_info()["id"])
    try:
        target = {"id": victim_id, "addr": "x", "name": "rm-page-victim", "own": False}
        with as_user(private_app, "ops-viewer", role="viewer"):
            message, kind = page.kill(target, "default")
            assert kind == "danger" and "admin role" in message
            _, disabled, label = page.select_client([target])
            assert disabled is True and "admin role" in label
        with as_user(private_app):
            _, disabled, _ = page.select_client([target])
            assert disabled is False
            is_open, body = page.open_kill(1, target, "default")
            assert is_open is True and f"client {victim_id}" in str(body)
            message, kind = page.kill(target, "default")
            assert kind == "success" and str(victim_id) in message
            message, kind = page.kill(target, "default")
            assert kind == "warning" and "no longer connected" in message
        assert victim_id not in {int(c["id"]) for c in
                                 redis_lib.Redis.from_url(private_redis.url).client_list()}
        denied = audit_events(private_app, "permission_denied")
        assert any(e.actor == "ops-viewer" for e in denied)
        outcomes = [e.outcome for e in audit_events(private_app, "redis_client_kill")]
        assert outcomes == ["success", "failure"]
        # The dialog asks for the typed word before the kill button works.
        with as_user(private_app):
            layout = str(page.layout())
        assert "ops-confirm-input" in layout and "'redis-kill'" in layout
    finally:
        victim.close()


# ---------------------------------------------------------------- slowlog

def test_slowlog_entries_advice_and_admin_reset(private_app, private_client):
    private_client.config_set("slowlog-log-slower-than", 0)  # log every command
    private_client.set("secret:session", "s" * 500)
    private_client.execute_command("CONFIG", "SET", "masterauth", "hunter2-secret")
    private_client.config_set("slowlog-log-slower-than", 10_000)
    client = private_app.test_client()
    admin = token_for(client, private_app)
    data = client.get("/api/redis/slowlog", headers=admin).get_json()
    assert data["length"] >= 3 and data["threshold_us"] == 10_000
    text = json.dumps(data)
    assert "hunter2-secret" not in text and "(redacted)" in text
    setting = next(e for e in data["entries"] if e["command"] == "SET")
    assert setting["args"][1] == "secret:session" and "(500 bytes)" in setting["args"][2]
    assert len(setting["args"][2]) < 100 and setting["client_addr"]

    advice = client.get("/api/redis/advice", headers=admin).get_json()["advice"]
    slow = next(a for a in advice if a["rule"] == "slowlog")
    assert slow["figure"] == "slowlog length" and slow["value"] == data["length"]
    assert f"{data['length']} entries" in slow["message"]

    viewer = token_for(client, private_app, "vic", "viewer-pass-1", role="viewer")
    assert client.post("/api/redis/slowlog/reset", headers=viewer).status_code == 403
    resp = client.post("/api/redis/slowlog/reset", headers=admin)
    assert resp.status_code == 200 and resp.get_json()["entries_removed"] == data["length"]
    assert private_client.slowlog_len() == 0
    assert client.get("/api/redis/slowlog", headers=admin).get_json()["entries"] == []
    assert "slowlog" not in {a["rule"] for a in
                             client.get("/api/redis/advice", headers=admin).get_json()["advice"]}
    events = audit_events(private_app, "redis_slowlog_reset")
    assert [(e.outcome, e.details["entries_removed"]) for e in events] == [
        ("success", data["length"])]


def test_page_reset_needs_admin(private_app, private_client):
    page = page_module()
    private_client.config_set("slowlog-log-slower-than", 0)
    private_client.ping()
    private_client.config_set("slowlog-log-slower-than", 10_000)
    with as_user(private_app, "ops-operator", role="operator"):
        message, kind = page.reset("default")
        assert kind == "danger" and "admin role" in message
        assert "disabled" in str(page.layout()).split("redis-slowlog-reset-open")[1][:400]
    assert private_client.slowlog_len() > 0
    with as_user(private_app):
        message, kind = page.reset("default")
    assert kind == "success" and "removed" in message
    assert private_client.slowlog_len() == 0


# ----------------------------------------------------------------- advice

def rules(advice_list) -> set[str]:
    return {a["rule"] for a in advice_list}


def test_maxmemory_unset_and_set_advice(private_app, private_client):
    client = private_app.test_client()
    admin = token_for(client, private_app)
    private_client.config_set("maxmemory", 0)
    found = client.get("/api/redis/advice", headers=admin).get_json()
    unset = next(a for a in found["advice"] if a["rule"] == "maxmemory_unset")
    assert unset["figure"] == "maxmemory" and "maxmemory is 0" in unset["message"]
    private_client.config_set("maxmemory", 512 * 1024 * 1024)
    found = client.get("/api/redis/advice", headers=admin).get_json()
    assert "maxmemory_unset" not in rules(found["advice"])
    assert found["figures"]["maxmemory"] == 512 * 1024 * 1024


def test_evictions_are_reported_with_their_count(private_app, private_client):
    private_client.config_set("maxmemory-policy", "allkeys-lru")
    private_client.config_set("maxmemory", 3 * 1024 * 1024)
    value = "v" * 1000
    pipe = private_client.pipeline(transaction=False)
    for i in range(8000):
        pipe.set(f"fill:{i}", value)
    pipe.execute()
    evicted = private_client.info("stats")["evicted_keys"]
    assert evicted > 0
    client = private_app.test_client()
    found = client.get("/api/redis/advice", headers=token_for(client, private_app)).get_json()
    rule = next(a for a in found["advice"] if a["rule"] == "evictions")
    assert rule["figure"] == "evicted_keys" and rule["value"] >= evicted
    assert "allkeys-lru" in rule["message"] and "evicted_keys is" in rule["message"]
    assert "memory_near_limit" in rules(found["advice"])


def test_clients_piling_up_are_reported(private_app, private_redis, private_client):
    private_client.config_set("maxclients", 10)
    extra = [open_client(private_redis.url, f"pile-{i}") for i in range(7)]
    try:
        client = private_app.test_client()
        found = client.get("/api/redis/advice",
                           headers=token_for(client, private_app)).get_json()
        rule = next(a for a in found["advice"] if a["rule"] == "clients_near_limit")
        assert rule["figure"] == "connected_clients" and rule["value"] >= 8
        assert "of maxclients 10" in rule["message"]
    finally:
        for c in extra:
            c.close()


def test_rules_on_given_figures():
    """Conditions too costly to create for real (GBs of fragmentation, a
    broken disk, a lost master), checked on the figures the rules read."""
    stat = {"evicted_keys": 0, "connected_clients": 3, "maxclients": 10_000,
            "rejected_connections": 0, "uptime_human": "1 h",
            "persistence": {"state": "ok"}, "replication": {"role": "master"}}
    mem = {"fragmentation_ratio": 1.1, "fragmentation_bytes": 1 << 20, "rss": 110 << 20,
           "used": 100 << 20, "maxmemory": 1 << 30, "maxmemory_human": "1.0 GiB",
           "maxmemory_policy": "allkeys-lru"}
    slow = {"entries": [], "length": 0, "threshold_us": 10_000}
    assert svc.evaluate(stat, mem, slow) == []
    fragmented = {**mem, "fragmentation_ratio": 2.4, "fragmentation_bytes": 600 << 20,
                  "rss": 1000 << 20, "used": 400 << 20}
    [frag] = svc.evaluate(stat, fragmented, slow)
    assert frag["rule"] == "fragmentation" and frag["value"] == 2.4
    assert "mem_fragmentation_ratio is 2.40" in frag["message"]
    # A tiny dataset has a high ratio that means nothing.
    tiny = {**mem, "fragmentation_ratio": 6.0, "fragmentation_bytes": 6 << 20,
            "rss": 7 << 20, "used": 1 << 20}
    assert svc.evaluate(stat, tiny, slow) == []
    swapping = {**mem, "fragmentation_ratio": 0.6, "rss": 300 << 20, "used": 500 << 20,
                "fragmentation_bytes": -(200 << 20)}
    assert rules(svc.evaluate(stat, swapping, slow)) == {"swapping"}
    full = {**mem, "used": 980 << 20, "maxmemory_policy": "noeviction"}
    [near] = svc.evaluate(stat, full, slow)
    assert near["rule"] == "memory_near_limit" and near["level"] == "error"
    broken = {**stat, "rejected_connections": 4,
              "persistence": {"state": "failing", "rdb_last_bgsave_status": "err",
                              "aof_last_write_status": "ok"},
              "replication": {"role": "slave", "master_link_status": "down"}}
    assert rules(svc.evaluate(broken, mem, slow)) == {
        "rejected_connections", "persistence_failing", "replication_down"}
    idle = [{"id": i, "idle": 7200, "flags": "N"} for i in range(svc.IDLE_CLIENTS_WARN)]
    [leak] = svc.evaluate(stat, mem, slow, idle)
    assert leak["rule"] == "idle_clients" and leak["value"] == svc.IDLE_CLIENTS_WARN


def test_redaction_of_command_arguments():
    assert svc.redact_command([b"AUTH", b"pw"]) == ["AUTH", svc.REDACTED]
    assert svc.redact_command(["HELLO", "3", "AUTH", "u", "pw", "SETNAME", "n"]) == [
        "HELLO", "3", "AUTH", svc.REDACTED, svc.REDACTED, "SETNAME", "n"]
    assert svc.redact_command(["CONFIG", "SET", "requirepass", "x"])[-1] == svc.REDACTED
    assert svc.redact_command(["ACL", "SETUSER", "bob", ">pw", "on"]) == [
        "ACL", "SETUSER", "bob", svc.REDACTED, "on"]
    long = svc.redact_command(["SET", "k", "v" * 1000])
    assert long[2].endswith("(1,000 bytes)") and len(long[2]) < 90
    many = svc.redact_command(["DEL"] + [f"k{i}" for i in range(40)])
    assert len(many) == svc.ARGS_MAX + 1 and many[-1] == "… (25 more arguments)"


# ---------------------------------------------------------------- secrets

def test_no_route_shows_the_password(tmp_path, store_url, private_redis, private_client):
    password = "very-secret-pass-42"
    private_client.config_set("requirepass", password)
    url = private_redis.url.replace("redis://", f"redis://:{password}@")
    app = build_app(tmp_path, store_url, url)
    try:
        client = app.test_client()
        headers = token_for(client, app)
        for route in REDIS_ROUTES:
            resp = client.get(route, headers=headers)
            assert resp.status_code == 200, route
            assert password not in resp.get_data(as_text=True), route
        page = page_module()
        with as_user(app):
            assert password not in str(page.layout())
        private_redis.stop()
        resp = client.get("/api/redis/status", headers=headers)
        assert resp.status_code == 503 and password not in resp.get_data(as_text=True)
    finally:
        app.extensions["ops"].close()


# ----------------------------------------------------------------- outage

def test_outage_gives_503_the_page_says_so_and_recovers(private_app, private_redis):
    client = private_app.test_client()
    headers = token_for(client, private_app)
    page = page_module()
    assert client.get("/api/redis/status", headers=headers).status_code == 200
    private_redis.stop()
    for url in REDIS_ROUTES:
        resp = client.get(url, headers=headers)
        assert resp.status_code == 503, url
        body = resp.get_json()["error"]
        assert body["code"] == "redis_unavailable" and "Redis (default)" in body["message"]
    assert client.get("/api/redis/instances", headers=headers).status_code == 200
    kill = client.post("/api/redis/clients/5/kill", headers=headers)
    assert kill.status_code == 503
    with as_user(private_app):
        outputs = page.refresh(1, 60, "default", True)
        keys = page.sample_keys(0, False, "default", "10000", ":", "1")
        layout = str(page.layout())
    live = dict(zip([i for i, _p in page.LIVE], outputs))
    assert "Redis (default) is unavailable" in str(live["redis-status"])
    assert "Traceback" not in str(live["redis-status"])
    assert live["redis-main"] == {"display": "none"}
    assert outputs[-1] is False                      # redis-up flips to down
    assert "unavailable" in str(keys[0])
    assert "Redis (default) is unavailable" in layout

    private_redis.start()
    deadline = time.monotonic() + 10
    while client.get("/api/redis/status", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, "Redis did not come back"
        time.sleep(0.2)
    with as_user(private_app):
        outputs = page.refresh(2, 60, "default", False)
        keys = page.sample_keys(0, True, "default", "10000", ":", "1")
    live = dict(zip([i for i, _p in page.LIVE], outputs))
    assert live["redis-status"] is None and live["redis-main"] == {}
    assert "redis-card-server" in str(live["redis-cards-wrap"])
    assert outputs[-1] is True                       # back up: keys are sampled again
    assert "Exact" in str(keys[0])


# ------------------------------------------------------- instances & page

def test_instances_switch_between_servers(tmp_path, store_url, redis_client, redis_url,
                                          private_redis, private_client):
    private_client.mset({"other:alpha:1": 1, "other:alpha:2": 2})
    redis_client.mset({"main:x": 1})
    app = build_app(tmp_path, store_url, redis_url, redis_instances=f"other={private_redis.url}")
    try:
        client = app.test_client()
        headers = token_for(client, app)
        listed = client.get("/api/redis/instances", headers=headers)
        assert listed.get_json()["instances"] == [{"name": "default", "default": True},
                                                  {"name": "other", "default": False}]
        assert "redis://" not in listed.get_data(as_text=True)
        other = client.get("/api/redis/keys?instance=other", headers=headers).get_json()
        assert other["instance"] == "other" and other["dbsize"] == 2
        assert [n["namespace"] for n in other["namespaces"]] == ["other"]
        main = client.get("/api/redis/keys", headers=headers).get_json()
        assert "main" in {n["namespace"] for n in main["namespaces"]}
        port = private_redis.url.rsplit(":", 1)[1].split("/")[0]
        status = client.get("/api/redis/status?instance=other", headers=headers).get_json()
        assert status["tcp_port"] == int(port)

        page = page_module()
        with as_user(app):
            layout = str(page.layout(instance="other"))
            assert "data='other'" in layout and "There is no Redis instance" not in layout
            assert "There is no Redis instance called “nope”" in str(page.layout(instance="nope"))
            assert page.switch_instance("other", "default") == "?instance=other"
            assert page.switch_instance("default", "other") == ""
            keys = page.render_keys("other", 100)
        assert [r["namespace"] for r in keys["redis-namespaces"]] == ["other"]
        assert "redis://" not in layout
    finally:
        app.extensions["ops"].close()


def test_page_renders_every_section(app, redis_client):
    redis_client.mset({f"shop:item:{i}": "x" * i for i in range(40)})
    page = page_module()
    with as_user(app):
        layout = page.layout()
        live = page.render("default", 60)
        keys = page.sample_keys(0, True, "default", "10000", ":", "1")
    text = str(layout)
    for part in ("redis-card-server", "redis-card-memory", "redis-card-hits",
                 "redis-card-clients", "redis-card-evicted", "redis-card-persistence",
                 "redis-memory-chart", "redis-keys-bar", "redis-keys-treemap",
                 "redis-clients", "redis-slowlog", "redis-commands", "redis-advice"):
        assert part in text, part
    assert "No samples yet: the console's scheduler is off" in str(live["redis-memory-note"])
    assert any(r["own"] for r in live["redis-clients"])
    parts = dict(zip([i for i, _p in page.KEYS], keys))
    assert parts["redis-namespaces"][0]["namespace"] == "shop"
    assert parts["redis-namespaces"][0]["keys"] == 40
    assert parts["redis-keys-bar"].data[0].x[-1] == 40
    assert parts["redis-keys-treemap"].data[0].type == "treemap"
    assert "Exact" in str(parts["redis-keys-note"])
