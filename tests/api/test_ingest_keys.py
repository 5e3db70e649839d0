"""Ingest keys through /api/ingest-keys and the key itself through
/api/ingest, against the real app and store: a new key sends a batch, a
revoked one is refused, every change is audited, and only admins manage keys."""
from __future__ import annotations

import json

import pytest
from ops_agent import protocol
from ops_agent.settings import parse_dsn

from dashapp.ingest import keys as key_svc


@pytest.fixture(autouse=True)
def _fresh_last_used():
    """keys.authenticate notes a key's use at most once a minute per key id,
    remembered per process; each test's store numbers its keys from 1 again."""
    key_svc._last_used.clear()
    yield
    key_svc._last_used.clear()


def _batch(app: str, **extra) -> bytes:
    return protocol.encode({"v": protocol.VERSION, "app": app, "events": {}, **extra})


def _send(client, key: str | None, body: bytes):
    headers = {"Content-Encoding": "gzip", "Content-Type": protocol.CONTENT_TYPE,
               protocol.FORMAT_HEADER: str(protocol.VERSION)}
    if key is not None:
        headers[protocol.KEY_HEADER] = key
    return client.post(protocol.INGEST_PATH, data=body, headers=headers)


def _create(client, admin, app="shop", note="") -> dict:
    resp = client.post("/api/ingest-keys", json={"app": app, "note": note}, headers=admin)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _events(client, admin, action: str) -> list[dict]:
    resp = client.get("/api/audit", query_string={"action": action}, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["events"]


def test_a_new_key_sends_batches_until_revoked(client, admin):
    created = _create(client, admin, "shop", "production web servers")
    key = created["key"]
    assert key.startswith("opsik_") and created["prefix"] == key[:12]
    assert created["app"] == "shop" and created["active"] is True
    assert created["created_by"] == "admin" and created["note"] == "production web servers"
    # The OPS_DSN the console hands out is one the agent reads back as this key and app.
    endpoint, dsn_key, dsn_app = parse_dsn(created["dsn"])[:3]
    assert (dsn_key, dsn_app) == (key, "shop")
    assert endpoint == "http://localhost/api/ingest"

    resp = _send(client, key, _batch("shop"))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["accepted"] == 0
    assert isinstance(resp.get_json()["commands"], list)

    listed = client.get("/api/ingest-keys", headers=admin).get_json()["keys"]
    row = next(k for k in listed if k["id"] == created["id"])
    assert row["prefix"] == created["prefix"] and row["last_used_at"] is not None
    assert key not in json.dumps(listed)  # never the key again

    resp = client.delete(f"/api/ingest-keys/{created['id']}", headers=admin)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["active"] is False and resp.get_json()["revoked_by"] == "admin"
    resp = _send(client, key, _batch("shop"))
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "invalid_ingest_key"
    again = client.delete(f"/api/ingest-keys/{created['id']}", headers=admin)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "already_revoked"
    active = client.get("/api/ingest-keys", query_string={"active_only": "true"},
                        headers=admin).get_json()["keys"]
    assert created["id"] not in [k["id"] for k in active]

    made = _events(client, admin, "ingest_key_create")
    assert [(e["actor"], e["target"], e["outcome"]) for e in made] == \
        [("admin", "app:shop", "success")]
    revoked = _events(client, admin, "ingest_key_revoke")
    assert [(e["target"], e["outcome"]) for e in revoked][-1] == \
        (f"ingest_key:{created['id']}", "success")
    assert ("failure" in {e["outcome"] for e in revoked})  # the second revoke
    everything = client.get("/api/audit", query_string={"limit": 1000},
                            headers=admin).get_json()
    assert key not in json.dumps(everything)


def test_a_key_opens_its_application_only(client, admin):
    shop = _create(client, admin, "shop")["key"]
    _create(client, admin, "billing")
    resp = _send(client, shop, _batch("billing"))
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "wrong_app"
    for key in (None, "opsik_" + "x" * 43, shop[:-1]):
        assert _send(client, key, _batch("shop")).status_code == 401
    # An ingest key is no bearer token: it opens no other route.
    resp = client.get("/api/ingest-keys", headers={protocol.KEY_HEADER: shop,
                                                   "Authorization": f"Bearer {shop}"})
    assert resp.status_code == 401


def test_bad_input_names_the_problem(client, admin):
    for body, field in (({"app": "has space"}, "app"), ({"app": "-dash"}, "app"),
                        ({"app": "x" * 65}, "app"), ({"app": "ok", "note": "n" * 201}, "note")):
        resp = client.post("/api/ingest-keys", json=body, headers=admin)
        assert resp.status_code == 400, body
        assert resp.get_json()["error"]["fields"][0]["field"] == field
    resp = client.delete("/api/ingest-keys/999999", headers=admin)
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/ingest-keys", headers=admin).get_json()["keys"] == []


def test_viewers_and_operators_are_refused(client, admin, viewer, operator):
    created = _create(client, admin, "shop")
    for who in (viewer, operator):
        assert client.get("/api/ingest-keys", headers=who).status_code == 403
        resp = client.post("/api/ingest-keys", json={"app": "sneaky"}, headers=who)
        assert resp.status_code == 403
        assert client.delete(f"/api/ingest-keys/{created['id']}",
                             headers=who).status_code == 403
    keys = client.get("/api/ingest-keys", headers=admin).get_json()["keys"]
    assert [(k["app"], k["active"]) for k in keys] == [("shop", True)]
    denied = _events(client, admin, "permission_denied")
    assert {e["actor"] for e in denied} >= {"vera", "otto"}
    assert client.get("/api/ingest-keys").status_code == 401
