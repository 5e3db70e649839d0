"""Every /api route refuses anonymous and under-privileged callers.

The test walks Flask's URL map, so a route added later without an access
policy, or with the wrong one, fails here.
"""
from __future__ import annotations

import re

import pytest

from dashapp.security.roles import ROLES, access_of, role_allows
from tests.helpers import token_for

# POST /api/ingest is public at the sign-in guard: its own ingest key
# authorises it (tests/api/test_ingest_keys.py).
PUBLIC_API = {"api_health.health", "api_auth.create_token", "api_ingest.ingest"}
# Routes whose role is part of the contract: a change must be deliberate.
EXPECTED = {"api_audit.list_events": "admin", "api_overview.get_overview": "viewer",
            "api_ingest.create_key": "admin", "api_ingest.revoke_key": "admin",
            "api_ingest.list_keys": "admin"}


def api_routes(app):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api"):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            url = re.sub(r"<int:[^>]+>", "1", rule.rule)
            url = re.sub(r"<(?:[a-z]+:)?[^>]+>", "x", url)
            yield rule.endpoint, method, url


def required_role(app, endpoint):
    overrides = app.config.get("OPS_ACCESS_OVERRIDES", {})
    return overrides.get(endpoint) or access_of(app.view_functions[endpoint])


def test_every_api_route_declares_a_policy(app):
    missing = [e for e, _, _ in api_routes(app) if required_role(app, e) is None]
    assert missing == []
    assert set(e for e, _, _ in api_routes(app)
               if required_role(app, e) == "public") == PUBLIC_API
    for endpoint, role in EXPECTED.items():
        assert required_role(app, endpoint) == role


def test_anonymous_gets_401_on_every_protected_route(app, client):
    checked = 0
    for endpoint, method, url in api_routes(app):
        if endpoint in PUBLIC_API:
            continue
        resp = client.open(url, method=method, json={})
        assert resp.status_code == 401, (method, url, resp.status_code)
        assert set(resp.get_json()["error"]) >= {"code", "message"}
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_under_privileged_roles_get_403(app, client, role):
    headers = token_for(client, app, f"user-{role}", "password-1234", role=role)
    refused = 0
    for endpoint, method, url in api_routes(app):
        needed = required_role(app, endpoint)
        if needed in ("public",) or role_allows(role, needed):
            continue
        resp = client.open(url, method=method, json={}, headers=headers)
        assert resp.status_code == 403, (method, url, resp.status_code)
        assert resp.get_json()["error"]["code"] == "forbidden"
        refused += 1
    assert refused >= 1
    denied = client.get("/api/audit", query_string={"action": "permission_denied"},
                        headers=token_for(client, app))
    assert any(e["actor"] == f"user-{role}" for e in denied.get_json()["events"])


def test_dash_routes_need_a_session(client):
    assert client.get("/_dash-layout").status_code == 401
    assert client.post("/_dash-update-component", json={}).status_code == 401
    page = client.get("/cache")
    assert page.status_code == 302 and page.location.startswith("/login")


def test_unknown_api_path_is_json_404(app, client):
    resp = client.get("/api/no-such-route", headers=token_for(client, app))
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "not_found"


def test_roles_are_ordered():
    assert ROLES == ("viewer", "operator", "admin")
    assert role_allows("admin", "operator") and not role_allows("viewer", "operator")
    assert not role_allows(None, "viewer") and not role_allows("root", "viewer")
