"""The Cache module against a real Redis: /api/cache, its service and the
Cache page's callbacks.

Keys of every type are written with a plain client and read back through the
API; a full SCAN walk must yield each key once; a pattern clear must delete
exactly the matching keys; every route's role is checked; the commands the
console sends are read back from the Redis slowlog (logging every command)
so none of them can block Redis; a Redis stopped mid-session answers 503 and
the page shows the outage, then both recover.
"""
from __future__ import annotations

import base64
import json
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import dash
import pytest
import redis as redis_lib
from dash._callback_context import context_value
from dash._utils import AttributeDict
from flask import g
from ops_agent.cache import keys as layout

from dashapp import create_app
from dashapp.security.auth import Principal
from dashapp.services import cache as svc
from dashapp.services import redis_collector
from dashapp.store.models import AuditEvent
from tests.helpers import token_for

PREFIX = "cache"


def b64(raw: bytes | str) -> str:
    raw = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(raw).decode()


@pytest.fixture
def headers(app, client):
    """Bearer headers per role: admin, operator, viewer."""
    return {"admin": token_for(client, app),
            "operator": token_for(client, app, "op", "operator-pass-1", role="operator"),
            "viewer": token_for(client, app, "view", "viewer-pass-12", role="viewer")}


def page_module():
    """The page module Dash loaded (importing it again would register twice)."""
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == "/cache")]


@contextmanager
def as_user(app, role: str | None, username: str = "someone"):
    """A request context of the Cache page signed in with `role`, inside a
    Dash callback context whose set_props (toasts, drawer) the test can read."""
    token = context_value.set(AttributeDict(updated_props={}, triggered_inputs=[]))
    try:
        with app.test_request_context("/cache"):
            if role is not None:
                g.ops_principal = Principal(1, username, role, "x")
            else:
                g.ops_principal = None
            yield context_value.get().updated_props
    finally:
        context_value.reset(token)


def toast_of(props: dict) -> str:
    return ((props.get("shell-toast-store") or {}).get("data") or {}).get("message", "")


def seed_namespace(r: redis_lib.Redis, ns: str, n: int, *, hits: int, misses: int,
                   warmer: bool = False) -> list[str]:
    """Entries, index, stats (and a warmer) of one @cached namespace, as the toolkit lays them out."""
    r.sadd(layout.namespaces_key(PREFIX), ns)
    r.hset(layout.stats_key(PREFIX, ns), mapping={"hits": hits, "misses": misses,
                                                   "sets": misses, "errors": 1})
    keys, expiry = [], time.time() + 600
    pipe = r.pipeline()
    for i in range(n):
        key = layout.entry_key(PREFIX, ns, f"{i:032x}")
        pipe.set(key, json.dumps({"n": i, "pad": "x" * 50}), ex=600)
        pipe.zadd(layout.index_key(PREFIX, ns), {key: expiry})
        keys.append(key)
    # an expired index entry must not count
    pipe.zadd(layout.index_key(PREFIX, ns), {f"{PREFIX}:{ns}:gone": time.time() - 5})
    pipe.execute()
    if warmer:
        r.hset(layout.warmers_key(PREFIX), ns, json.dumps(
            {"description": f"refill {ns}", "every": 300, "process": "web-1",
             "registered_at": "2026-11-26T10:00:00+00:00"}))
        r.hset(layout.warm_status_key(PREFIX, ns), mapping={
            "last_request_id": "abc", "last_started": "2026-11-26T10:00:00+00:00",
            "last_finished": "2026-11-26T10:00:01+00:00", "last_duration_ms": 812,
            "last_entries": n, "last_error": "", "runs": 2, "process": "web-1"})
    return keys


def walk_keys(client, headers, **params) -> list[str]:
    """Follow /api/cache/keys cursors to the end; every key returned, in order."""
    cursor, seen, pages = "0", [], 0
    while True:
        resp = client.get("/api/cache/keys", headers=headers,
                          query_string={**params, "cursor": cursor})
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        page = [k["key"] for k in body["keys"]]
        assert len(page) == len(set(page)), "a page repeats a key"
        seen += page
        cursor, pages = body["cursor"], pages + 1
        if body["done"]:
            assert cursor == "0"
            return seen
        assert pages < 1000


# ------------------------------------------------------------------- values

def test_every_key_type_is_shown_and_big_values_are_paged(client, headers, redis_client):
    h = headers["viewer"]
    r = redis_client
    r.set("s:json", json.dumps({"b": [1, 2], "a": "é"}))
    r.set("s:text", "plain <b>text</b>")
    r.set("s:bin", b"\x89PNG\x00\xff")
    r.set("s:big", "é" * 50_000)                     # 100,000 bytes: two pages
    r.hset("h:big", mapping={f"f{i}": f"v{i}" for i in range(300)})
    r.rpush("l:big", *[f"item{i}" for i in range(250)])
    r.sadd("set:big", *[f"m{i}" for i in range(700)])
    r.zadd("z:big", {f"p{i}": i / 2 for i in range(150)})
    for i in range(130):
        r.xadd("x:big", {"n": str(i)})
    r.set("a/b:c d", "slashes")

    def get(key, **params):
        resp = client.get("/api/cache/key", headers=h, query_string={"key": key, **params})
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()

    body = get("s:json")
    assert body["type"] == "string" and body["format"] == "json"
    assert json.loads(body["value"]) == {"b": [1, 2], "a": "é"} and "\n  " in body["value"]
    assert get("s:text")["value"] == "plain <b>text</b>" and get("s:text")["format"] == "text"
    binary = get("s:bin")
    assert binary["format"] == "binary" and binary["value"] == "\\x89PNG\\x00\\xff"

    first = get("s:big")
    assert first["length"] == 100_000 and first["truncated"] and first["next_cursor"]
    second = get("s:big", cursor=first["next_cursor"])
    assert second["next_cursor"] is None
    assert first["value"] + second["value"] == "é" * 50_000

    def walk(key, field):
        cursor, out = "0", []
        while cursor is not None:
            page = get(key, cursor=cursor, count=100)
            assert len(page["items"]) <= 300
            out += [item[field] for item in page["items"]]
            cursor = page["next_cursor"]
        return page, out

    page, fields = walk("h:big", "field")
    assert page["type"] == "hash" and sorted(fields) == sorted(f"f{i}" for i in range(300))
    page, items = walk("l:big", "value")
    assert page["type"] == "list" and items == [f"item{i}" for i in range(250)]
    assert len(get("l:big", count=100)["items"]) == 100      # LRANGE ranges, not the whole list
    page, members = walk("set:big", "member")
    assert page["type"] == "set" and set(members) == {f"m{i}" for i in range(700)}
    page, zmembers = walk("z:big", "member")
    assert page["type"] == "zset" and zmembers == [f"p{i}" for i in range(150)]
    assert get("z:big", count=3)["items"][2]["score"] == 1.0
    page, ids = walk("x:big", "id")
    assert page["type"] == "stream" and len(ids) == 130 == len(set(ids))
    assert get("x:big", count=1)["items"][0]["fields"] == [{"field": "n", "value": "0"}]

    # The path form (':' and '/' in the key) and the base64 form (any bytes).
    resp = client.get("/api/cache/key/" + quote("a/b:c d"), headers=h)
    assert resp.status_code == 200 and resp.get_json()["value"] == "slashes"
    r.set(b"bin\xff:key", b"v")
    listed = client.get("/api/cache/keys", headers=h,
                        query_string={"pattern": "bin*"}).get_json()["keys"]
    assert listed[0]["binary"] and listed[0]["key"] == "bin\\xff:key"
    resp = client.get("/api/cache/key", headers=h,
                      query_string={"key_b64": listed[0]["key_b64"]})
    assert resp.status_code == 200 and resp.get_json()["value"] == "v"


def test_listing_gives_type_ttl_memory_and_filters_by_type(client, headers, redis_client):
    redis_client.set("t:str", "x", ex=100)
    redis_client.hset("t:hash", "f", "v")
    redis_client.rpush("t:list", "a")
    resp = client.get("/api/cache/keys", headers=headers["viewer"],
                      query_string={"pattern": "t:*", "count": 10})
    rows = {k["key"]: k for k in resp.get_json()["keys"]}
    assert rows["t:str"]["type"] == "string" and 90 <= rows["t:str"]["ttl"] <= 100
    assert rows["t:hash"]["ttl"] is None and rows["t:hash"]["memory_bytes"] > 0
    hashes = walk_keys(client, headers["viewer"], pattern="t:*", type="hash")
    assert hashes == ["t:hash"]


def test_page_drawer_shows_every_type_and_pages_big_values(app, redis_client):
    r = redis_client
    r.set("d:str", json.dumps({"a": 1}))
    r.set("d:ctl", "line1\nline2\x07")
    r.hset("d:hash", mapping={"f1": "v1", "f2": "v2"})
    r.rpush("d:list", *[f"item{i}" for i in range(150)])
    r.sadd("d:set", "m1", "m2")
    r.zadd("d:zset", {"low": 1, "high": 2.5})
    r.xadd("d:stream", {"field": "value"})
    page = page_module()
    from dashapp.ui import cache as ui
    with as_user(app, "viewer"):
        shown = {}
        for key in ("d:str", "d:hash", "d:list", "d:set", "d:zset", "d:stream"):
            view = page.open_key("default", b64(key))
            shown[key] = str(ui.key_meta(view)) + str(ui.key_value(view))
            assert view["detail"]["type"] in shown[key]
        assert '"a": 1' in shown["d:str"] and "JSON, pretty-printed" in shown["d:str"]
        assert "f2" in shown["d:hash"] and "v2" in shown["d:hash"]
        assert "m2" in shown["d:set"] and "high" in shown["d:zset"] and "2.5" in shown["d:zset"]
        assert "field" in shown["d:stream"] and "value" in shown["d:stream"]
        # 150 list items: the first 100, then Load more appends the rest.
        view = page.open_key("default", b64("d:list"))
        assert len(view["items"]) == 100 and "100 of 150 shown" in str(ui.key_value(view))
        is_open, view, meta, value, more_style, ttl = page._drawer(view)
        assert more_style == {}
        view = page.more_of_key(view)
        assert [i["value"] for i in view["items"]] == [f"item{i}" for i in range(150)]
        assert page._drawer(view)[4] == {"display": "none"}
        # Control characters are shown escaped, never hidden; line breaks stay.
        pre = ui.key_value(page.open_key("default", b64("d:ctl"))).children[-1]
        assert pre.children == "line1\nline2\\x07"
        assert ui.shown("a\nb\x00") == "a\\x0ab\\x00"     # keys: one line


# ------------------------------------------------------------------ paging

def test_a_full_cursor_walk_yields_every_key_exactly_once(client, headers, redis_client):
    pipe = redis_client.pipeline()
    for i in range(3000):
        pipe.set(f"walk:{i}", i)
    for i in range(200):
        pipe.set(f"other:{i}", i)
    pipe.execute()
    seen = walk_keys(client, headers["viewer"], pattern="walk:*", count=100)
    assert len(seen) == 3000 and set(seen) == {f"walk:{i}" for i in range(3000)}
    everything = walk_keys(client, headers["viewer"], count=1000)
    assert len(everything) == len(set(everything)) == 3200
    # A rare pattern: pages may be short, even empty, but the walk finds it.
    assert walk_keys(client, headers["viewer"], pattern="walk:2999", count=5) == ["walk:2999"]


def test_page_loads_pages_and_never_shows_a_key_twice(app, redis_client):
    pipe = redis_client.pipeline()
    for i in range(450):
        pipe.set(f"pg:{i}", i)
    pipe.execute()
    page = page_module()
    with as_user(app, "viewer"):
        rows, state, info, more_disabled, error = page.search_keys("default", "pg:*", "all")
        assert error is None and not state["done"] and not more_disabled
        while not state["done"]:
            before, rows_before = state, rows
            rows, state, info, more_disabled, _ = page.search_keys(
                "default", state["pattern"], state["type"], state, rows)
            # The same page asked for twice (two scroll events) adds nothing twice.
            again, *_ = page.search_keys("default", before["pattern"], before["type"],
                                         before, rows)
            assert len(again) == len(rows) > len(rows_before)
        ids = [r["key_b64"] for r in rows]
        assert len(ids) == len(set(ids)) == 450 and more_disabled
        assert "all 450 matching keys loaded" in str(info)


# ------------------------------------------------------------------- clear

def test_pattern_clear_deletes_exactly_the_matching_keys(app, client, headers, redis_client):
    pipe = redis_client.pipeline()
    for i in range(1234):
        pipe.set(f"clear:a:{i}", i)
    for i in range(300):
        pipe.set(f"clear:b:{i}", i)
    pipe.set("clear:a", "no trailing colon")
    pipe.set("xclear:a:1", "prefix differs")
    pipe.hset("clear:a:hash", "f", "v")
    pipe.execute()
    before = set(redis_client.scan_iter(count=1000))
    h = headers["admin"]

    dry = client.post("/api/cache/clear", headers=h, json={"pattern": "clear:a:*"})
    assert dry.status_code == 200 and dry.get_json()["matched"] == 1235
    assert len(dry.get_json()["sample"]) == 20
    assert redis_client.dbsize() == len(before)          # a dry run deletes nothing

    real = client.post("/api/cache/clear", headers=h,
                       json={"pattern": "clear:a:*", "dry_run": False})
    assert real.status_code == 200, real.get_json()
    assert real.get_json()["deleted"] == 1235
    after = set(redis_client.scan_iter(count=1000))
    gone = {k for k in before if k.startswith(b"clear:a:")}
    assert after == before - gone and b"clear:a" in after and b"xclear:a:1" in after

    with app.app_context():
        ops = app.extensions["ops"]
        with ops.store.session() as sess:
            events = sess.query(AuditEvent).filter_by(action="cache_clear").all()
            assert [(e.actor, e.outcome, e.details["deleted"]) for e in events] == \
                [("admin", "success", 1235)]


@pytest.mark.parametrize("body, code", [
    ({"pattern": "*", "dry_run": False}, "pattern_refused"),
    ({"pattern": "*", "dry_run": False, "confirm": "yes"}, "pattern_refused"),
    ({"pattern": "**", "dry_run": True}, "pattern_refused"),
    ({"pattern": "?*", "dry_run": False, "confirm": "*"}, "pattern_refused"),
    ({"pattern": ""}, "invalid_request"),
    ({"pattern": "a" * 513}, "invalid_request"),
    ({}, "invalid_request"),
])
def test_clear_rules(client, headers, redis_client, body, code):
    redis_client.set("keep", "1")
    resp = client.post("/api/cache/clear", headers=headers["admin"], json=body)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == code
    assert redis_client.get("keep") == b"1"


def test_clearing_everything_needs_star_and_confirm(client, headers, redis_client):
    for i in range(10):
        redis_client.set(f"k{i}", i)
    dry = client.post("/api/cache/clear", headers=headers["admin"], json={"pattern": "*"})
    assert dry.get_json()["matched"] == 10
    resp = client.post("/api/cache/clear", headers=headers["admin"],
                       json={"pattern": "*", "dry_run": False, "confirm": "*"})
    assert resp.status_code == 200 and resp.get_json()["deleted"] == 10
    assert redis_client.dbsize() == 0


def test_page_clear_counts_then_deletes_only_for_admins(app, redis_client):
    for i in range(40):
        redis_client.set(f"pc:{i}", i)
    redis_client.set("pcx", 1)
    page = page_module()
    with as_user(app, "admin"):
        pending, shown = page.count_for_clear("default", "pc:*")
        assert pending == {"instance": "default", "pattern": "pc:*", "matched": 40}
        assert "40 keys" in str(shown)
        refused, why = page.count_for_clear("default", "**")
        assert refused is None and "exactly" in str(why)
    with as_user(app, "operator", "op") as props:
        assert page.run_clear(pending) is None
        assert "needs the admin role; you are operator" in toast_of(props)
    assert redis_client.dbsize() == 41
    with as_user(app, "admin", "boss") as props:
        assert page.run_clear({**pending, "pattern": "*"}) is None   # no confirm
        assert "confirm" in toast_of(props)
        result = page.run_clear(pending)
        assert result["deleted"] == 40 and "Deleted 40 keys" in toast_of(props)
        assert props["cache-search-request"]["data"]                  # the keys reload
    assert redis_client.keys("*") == [b"pcx"]


# ------------------------------------------------------------- roles, audit

def test_every_route_checks_its_role(app, client, headers, redis_client):
    redis_client.set("r:1", "x")
    seed_namespace(redis_client, "prods", 3, hits=1, misses=1, warmer=True)
    reads = ["/api/cache/instances", "/api/cache/stats", "/api/cache/keys",
             "/api/cache/key?key=r:1", "/api/cache/key/r:1", "/api/cache/metrics"]
    for url in reads:
        assert client.get(url).status_code == 401, url
        resp = client.get(url, headers=headers["viewer"])
        assert resp.status_code == 200, (url, resp.get_json())

    changes = [  # (method, url, json, role needed)
        ("PATCH", "/api/cache/key?key=r:1", {"ttl": 60}, "operator"),
        ("PATCH", "/api/cache/key/r:1", {"ttl": None}, "operator"),
        ("POST", "/api/cache/warm/prods", None, "operator"),
        ("POST", "/api/cache/clear", {"pattern": "nothing:*"}, "admin"),
        ("DELETE", "/api/cache/key/r:1", None, "operator"),
        ("POST", "/api/cache/invalidate/prods", None, "operator"),
    ]
    order = ["viewer", "operator", "admin"]
    for method, url, body, needed in changes:
        assert client.open(url, method=method, json=body).status_code == 401
        for role in order[:order.index(needed)]:
            resp = client.open(url, method=method, json=body, headers=headers[role])
            assert resp.status_code == 403, (method, url, role)
            assert resp.get_json()["error"]["code"] == "forbidden"
        resp = client.open(url, method=method, json=body, headers=headers[needed])
        assert resp.status_code in (200, 202), (method, url, resp.get_json())
    assert not redis_client.exists("r:1")

    admin = headers["admin"]
    actions = {(e["action"], e["actor"], e["outcome"]) for e in
               client.get("/api/audit", headers=admin, query_string={"limit": 200})
               .get_json()["events"]}
    for action in ("cache_key_ttl", "cache_warm", "cache_key_delete", "cache_invalidate"):
        assert (action, "op", "success") in actions, action
    assert ("cache_clear", "admin", "success") not in actions   # a dry run changes nothing
    assert ("permission_denied", "view", "denied") in actions


def test_page_actions_check_roles_too(app, redis_client):
    redis_client.set("pk", "v", ex=500)
    page = page_module()
    with as_user(app, "viewer", "view") as props:
        view = page.open_key("default", b64("pk"))
        assert view["detail"]["ttl"] > 400
        assert page.change_ttl(view, 10) is dash.no_update
        assert not page.delete_from_view(view, [], None)
        assert "needs the operator role; you are viewer" in toast_of(props)
        assert page.warm("default", "nothing") is None
        assert page.invalidate("default", "nothing") is None
    assert redis_client.ttl("pk") > 400 and redis_client.exists("pk")
    with as_user(app, "operator", "op") as props:
        assert page.change_ttl(view, 10) == 10
        assert "expires in 10 s" in toast_of(props)
        assert page.change_ttl(view, None) is None and redis_client.ttl("pk") == -1
        rows = [{"key_b64": b64("pk")}, {"key_b64": b64("other")}]
        assert page.delete_from_view(view, rows, {"loaded": 2})
        assert props["cache-keys-grid"]["rowData"] == [{"key_b64": b64("other")}]
        assert props["cache-key-drawer"]["is_open"] is False
    assert not redis_client.exists("pk")


def test_validation_errors_name_the_field(client, headers, redis_client):
    h = headers["admin"]
    redis_client.set("v", "1")
    cases = [
        ("GET", "/api/cache/keys?count=0", None, "count"),
        ("GET", "/api/cache/keys?count=1001", None, "count"),
        ("GET", "/api/cache/keys?type=blob", None, "type"),
        ("GET", "/api/cache/keys?cursor=abc", None, "cursor"),
        ("GET", "/api/cache/keys?pattern=" + "a" * 513, None, "pattern"),
        ("PATCH", "/api/cache/key?key=v", {"ttl": 0}, "ttl"),
        ("PATCH", "/api/cache/key?key=v", {"ttl": -5}, "ttl"),
        ("PATCH", "/api/cache/key?key=v", {}, "ttl"),
        ("GET", "/api/cache/metrics?minutes=0", None, "minutes"),
        ("GET", "/api/cache/stats?instance=Bad!", None, "instance"),
    ]
    for method, url, body, field in cases:
        resp = client.open(url, method=method, json=body, headers=h)
        assert resp.status_code == 400, (url, resp.get_json())
        err = resp.get_json()["error"]
        assert err["code"] == "invalid_request" and field in err["message"], (url, err)
    for url in ("/api/cache/key", "/api/cache/key?key=v&key_b64=dg==",
                "/api/cache/key?key_b64=!!", "/api/cache/key?key=v&cursor=x"):
        resp = client.get(url, headers=h)
        assert resp.status_code == 400 and resp.get_json()["error"]["message"], url
    missing = client.get("/api/cache/key?key=nope", headers=h)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert client.delete("/api/cache/key/nope", headers=h).status_code == 404
    assert client.patch("/api/cache/key/nope", headers=h, json={"ttl": 5}).status_code == 404
    unknown = client.get("/api/cache/stats?instance=elsewhere", headers=h)
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "unknown_instance"
    assert "redis://" not in unknown.get_data(as_text=True)


def test_ttl_patch_sets_and_removes_the_expiry(client, headers, redis_client):
    redis_client.set("ttl:k", "1")
    h = headers["operator"]
    resp = client.patch("/api/cache/key/ttl:k", headers=h, json={"ttl": 120})
    assert resp.status_code == 200 and 115 <= resp.get_json()["ttl"] <= 120
    assert 115 <= redis_client.ttl("ttl:k") <= 120
    resp = client.patch("/api/cache/key?key=ttl:k", headers=h, json={"ttl": -1})
    assert resp.get_json()["ttl"] is None and redis_client.ttl("ttl:k") == -1


# -------------------------------------------------------- namespaces, stats

def test_stats_warm_and_invalidate(app, client, headers, redis_client):
    products = seed_namespace(redis_client, "products", 30, hits=90, misses=10, warmer=True)
    users = seed_namespace(redis_client, "users", 12, hits=1, misses=3)
    resp = client.get("/api/cache/stats", headers=headers["viewer"])
    body = resp.get_json()
    by_ns = {r["namespace"]: r for r in body["namespaces"]}
    assert by_ns["products"]["keys"] == 30 and by_ns["users"]["keys"] == 12
    assert by_ns["products"]["hit_rate"] == 0.9 and by_ns["users"]["hit_rate"] == 0.25
    one = redis_client.memory_usage(products[0])
    assert by_ns["products"]["memory_sampled"] == 5
    assert abs(by_ns["products"]["memory_bytes"] - one * 30) <= one * 30 * 0.2
    assert body["memory_estimate"]["estimated"] and body["memory_estimate"]["sample_size"] == 5
    assert body["overall"]["hits"] == 91 and body["overall"]["keys"] == 42
    assert body["overall"]["hit_rate"] == round(91 / 104, 4)
    assert {"keyspace_hits", "keyspace_misses"} <= set(body["redis"])
    assert by_ns["products"]["warmer"]["every"] == 300 and by_ns["users"]["warmer"] is None
    assert by_ns["products"]["warm_status"]["last_entries"] == 30

    op = headers["operator"]
    resp = client.post("/api/cache/warm/products", headers=op)
    assert resp.status_code == 202
    queued = json.loads(redis_client.lindex(layout.warm_requests_key(PREFIX), 0))
    assert queued == {"id": resp.get_json()["id"], "namespace": "products",
                      "requested_by": "op", "at": queued["at"]}
    datetime.fromisoformat(queued["at"])
    resp = client.post("/api/cache/warm/users", headers=op)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "no_warmer"
    assert client.post("/api/cache/warm/nope", headers=op).status_code == 409
    assert client.post("/api/cache/warm/_meta", headers=op).status_code == 404

    resp = client.post("/api/cache/invalidate/products", headers=op)
    assert resp.status_code == 200 and resp.get_json()["deleted"] == 30
    assert not any(redis_client.exists(k) for k in products)
    assert all(redis_client.exists(k) for k in users)
    assert not redis_client.exists(layout.index_key(PREFIX, "products"))
    assert redis_client.hget(layout.stats_key(PREFIX, "products"), "invalidations") == b"1"
    assert client.post("/api/cache/invalidate/unknown", headers=op).status_code == 404
    after = {r["namespace"]: r for r in
             client.get("/api/cache/stats", headers=op).get_json()["namespaces"]}
    assert after["products"]["keys"] == 0 and after["products"]["invalidations"] == 1


def test_counters_only_stats_skip_the_memory_sample(redis_client):
    """sample=0 (what a Prometheus scrape asks for) reads the counters and
    entry counts but sends no MEMORY USAGE."""
    seed_namespace(redis_client, "products", 30, hits=90, misses=10)
    stats = svc.cache_stats(redis_client, PREFIX, sample=0)
    row = stats["namespaces"][0]
    assert (row["namespace"], row["hits"], row["misses"], row["keys"]) == \
        ("products", 90, 10, 30)
    assert row["memory_sampled"] == 0 and row["memory_bytes"] is None
    assert svc.cache_stats(redis_client, PREFIX)["namespaces"][0]["memory_sampled"] == 5


def test_page_shows_stats_warmers_and_no_namespace_notice(app, redis_client):
    page = page_module()
    with as_user(app, "viewer"):
        status, style, cards, rows, figure, warmers, empty = page.render_stats("default")
        assert status is None and rows == [] and "No @cached namespaces" in str(empty)
    seed_namespace(redis_client, "products", 5, hits=8, misses=2, warmer=True)
    with as_user(app, "operator", "op") as props:
        status, style, cards, rows, figure, warmers, empty = page.render_stats("default")
        assert empty is None and rows[0]["namespace"] == "products"
        assert "80" in str(cards) and "Warm now" in str(warmers)
        assert [t.name for t in figure.data] == ["hits", "misses"]
        result = page.warm("default", "products")
        assert result["namespace"] == "products" and "requested" in toast_of(props)
        row, body = page.namespace_view("default", "products")
        assert row["keys"] == 5 and "refill products" in str(body)
        assert page.invalidate("default", "products")["deleted"] == 5
        notice = str(page.layout(instance="elsewhere"))
        assert "No Redis instance called 'elsewhere'" in notice
    assert redis_client.llen(layout.warm_requests_key(PREFIX)) == 1


def test_metrics_come_from_the_sampler(app, client, headers, redis_client):
    h = headers["viewer"]
    empty = client.get("/api/cache/metrics", headers=h).get_json()
    assert empty["samples"] == 0 and "OPS_SCHEDULER=false" in empty["note"]
    store = app.extensions["ops"].store
    now = datetime.now(timezone.utc)
    for i in range(3):
        redis_client.set(f"m{i}", i)
        assert redis_collector.sample_instance(
            store, "default", redis_client, PREFIX,
            now=now - timedelta(seconds=redis_collector.SAMPLE_SECONDS * (3 - i)))
    body = client.get("/api/cache/metrics", headers=h, query_string={"minutes": 15}).get_json()
    assert body["samples"] == 3 and body["note"] is None
    assert {"time", "hit_rate", "cache_hit_rate", "ops_per_sec", "used_memory", "keys"} \
        <= set(body["series"][-1])
    assert body["series"][-1]["keys"] >= 3 and body["series"][-1]["used_memory"] > 0
    page = page_module()
    with as_user(app, "viewer"):
        notice, style, hit, ops, memory, keys = page.render_metrics("default", 15)
        assert notice is None and len(keys.data[0].x) == 3


# --------------------------------------------------------- command discipline

ALLOWED = {"SCAN", "TYPE", "TTL", "MEMORY", "UNLINK", "DBSIZE", "INFO", "SSCAN", "HSCAN",
           "ZCOUNT", "ZRANGEBYSCORE", "HMGET", "HGETALL", "LLEN", "STRLEN", "GET",
           "GETRANGE", "LRANGE", "ZRANGE", "XRANGE", "XLEN", "HLEN", "SCARD", "ZCARD",
           "OBJECT", "EXISTS", "SISMEMBER", "HEXISTS", "HINCRBY", "LPUSH", "EXPIRE",
           "PERSIST", "PING", "CLIENT", "HELLO"}


def _args(entry) -> list[str]:
    command = entry["command"]
    text = command.decode("utf-8", "replace") if isinstance(command, bytes) else command
    return text.split(" ")


def test_console_never_sends_a_blocking_command(settings, private_redis, tmp_path):
    """The slowlog logs every command (threshold 0) while the console lists,
    reads, counts and clears; each must be bounded: SCAN with COUNT, no
    KEYS/SMEMBERS/HGETALL of data, ranges not 0..-1, UNLINK in batches."""
    seed = redis_lib.Redis.from_url(private_redis.url)
    pipe = seed.pipeline(transaction=False)
    for i in range(20_000):
        pipe.set(f"bulk:{i}", i)
    pipe.execute()
    seed.hset("big:hash", mapping={f"f{i}": i for i in range(5000)})
    seed.rpush("big:list", *range(5000))
    seed.sadd("big:set", *range(5000))
    seed.zadd("big:zset", {f"m{i}": i for i in range(5000)})
    seed_namespace(seed, "ns", 50, hits=1, misses=1, warmer=True)
    seed.config_set("slowlog-max-len", 200_000)
    seed.config_set("slowlog-log-slower-than", 0)
    seed.slowlog_reset()

    dash_app = create_app(settings.model_copy(update={"redis_url": private_redis.url}))
    server = dash_app.server
    try:
        client = server.test_client()
        h = token_for(client, server)
        assert client.get("/api/cache/stats", headers=h).status_code == 200
        walk_keys(client, h, pattern="bulk:1*", count=100)
        for key in ("big:hash", "big:list", "big:set", "big:zset"):
            assert client.get("/api/cache/key", headers=h,
                              query_string={"key": key}).status_code == 200
        assert client.post("/api/cache/clear", headers=h,
                           json={"pattern": "bulk:2*"}).status_code == 200
        resp = client.post("/api/cache/clear", headers=h,
                           json={"pattern": "bulk:*", "dry_run": False})
        assert resp.get_json()["deleted"] == 20_000
        assert client.post("/api/cache/invalidate/ns", headers=h).status_code == 200
        entries = seed.slowlog_get(200_000)
    finally:
        server.extensions["ops"].close()
        seed.config_set("slowlog-log-slower-than", 10_000)
        seed.close()

    commands = [_args(e) for e in entries]
    assert len(commands) > 100
    unlinked = 0
    for args in commands:
        name = args[0].upper()
        if name in ("SLOWLOG", "CONFIG"):
            continue  # the test's own
        assert name in ALLOWED, args[:4]
        upper = [a.upper() for a in args]
        if name in ("SCAN", "SSCAN", "HSCAN"):
            count = int(args[upper.index("COUNT") + 1])
            assert count <= svc.SCAN_COUNT_MAX, args
        if name == "MEMORY":
            assert "SAMPLES" in upper, args
        if name in ("LRANGE", "ZRANGE"):
            assert args[-1] != "-1" and args[3] != "-1", args
        if name == "XRANGE":
            assert "COUNT" in upper, args
        if name == "HGETALL":
            assert ":_meta:warm_status:" in args[1], args
        if name == "UNLINK":
            # Redis logs 31 arguments, then "... (N more arguments)".
            if args[-1] == "arguments)":
                n = len(args) - 5 + int(args[-3].lstrip("("))
            else:
                n = len(args) - 1
            assert n <= svc.UNLINK_BATCH, n
            unlinked += n
    assert unlinked >= 20_050


# ------------------------------------------------------------------ outage

def test_redis_outage_is_503_and_the_page_shows_it_then_recovers(settings, private_redis):
    dash_app = create_app(settings.model_copy(update={"redis_url": private_redis.url}))
    server = dash_app.server
    page = page_module()
    try:
        client = server.test_client()
        h = token_for(client, server)
        seed = redis_lib.Redis.from_url(private_redis.url)
        seed.set("o:1", "x")
        seed.close()
        assert client.get("/api/cache/stats", headers=h).status_code == 200

        private_redis.stop()
        requests = [("GET", "/api/cache/stats", None), ("GET", "/api/cache/keys", None),
                    ("GET", "/api/cache/key?key=o:1", None),
                    ("GET", "/api/cache/key/o:1", None),
                    ("PATCH", "/api/cache/key/o:1", {"ttl": 5}),
                    ("DELETE", "/api/cache/key/o:1", None),
                    ("POST", "/api/cache/clear", {"pattern": "o:*"}),
                    ("POST", "/api/cache/clear", {"pattern": "o:*", "dry_run": False}),
                    ("POST", "/api/cache/warm/products", None),
                    ("POST", "/api/cache/invalidate/products", None)]
        for method, url, body in requests:
            resp = client.open(url, method=method, json=body, headers=h)
            assert resp.status_code == 503, (method, url, resp.get_json())
            err = resp.get_json()["error"]
            assert err["code"] == "redis_unavailable" and "unavailable" in err["message"]
            assert "Traceback" not in err["message"]
        # The metrics come from the store: they still answer.
        assert client.get("/api/cache/metrics", headers=h).status_code == 200
        with as_user(server, "admin") as props:
            status, style, *_ = page.render_stats("default")
            assert "Redis (default) is unavailable" in str(status)
            assert style == {"display": "none"}
            *_, error = page.search_keys("default", "*", "all")
            assert "is unavailable" in str(error)
            assert page.warm("default", "x") is None
            assert "is unavailable" in toast_of(props)
            whole = str(page.layout())                  # the page itself still renders
            assert "Redis (default) is unavailable" in whole and "Traceback" not in whole

        private_redis.start()
        assert client.get("/api/cache/stats", headers=h).status_code == 200
        assert client.get("/api/cache/keys", headers=h).get_json()["keys"] == []
        with as_user(server, "admin"):
            status, style, *_ = page.render_stats("default")
            assert status is None and style == {}
    finally:
        server.extensions["ops"].close()
