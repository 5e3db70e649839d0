"""Sign-in, tokens and the audit of failures, through the real app."""
from __future__ import annotations

from tests.conftest import ADMIN_PASSWORD
from tests.helpers import sign_in, token_for


def audit_events(client, headers, **filters):
    resp = client.get("/api/audit", query_string=filters, headers=headers)
    assert resp.status_code == 200
    return resp.get_json()["events"]


def test_token_for_good_password_works_and_is_hashed(app, client):
    headers = token_for(client, app)
    me = client.get("/api/auth/me", headers=headers)
    assert me.status_code == 200 and me.get_json()["role"] == "admin"
    token = headers["Authorization"].split()[1]
    from dashapp.store.models import ApiToken
    with app.extensions["ops"].store.session() as sess:
        stored = [row.token_hash for row in sess.query(ApiToken)]
    assert token not in stored and len(stored) == 1


def test_wrong_password_is_401_and_audited(app, client):
    bad = client.post("/api/auth/token", json={"username": "admin", "password": "nope"})
    assert bad.status_code == 401
    assert bad.get_json()["error"]["code"] == "invalid_credentials"
    events = audit_events(client, token_for(client, app), outcome="failure")
    assert any(e["action"] == "token_create" and e["actor"] == "admin" for e in events)
    assert all("nope" not in str(e) for e in events)  # the password is never stored


def test_failed_form_sign_in_is_audited(app, client):
    resp = sign_in(client, "admin", "wrong-password")
    assert resp.status_code == 401
    assert "Wrong username or password" in resp.get_data(as_text=True)
    events = audit_events(client, token_for(client, app), action="login")
    assert [e["outcome"] for e in events] == ["failure"]


def test_form_sign_in_then_pages_and_api_with_session(app, client):
    assert client.get("/").status_code == 302
    resp = sign_in(client)
    assert resp.status_code == 302 and resp.location == "/"
    assert client.get("/api/auth/me").get_json()["via"] == "session"
    client.get("/logout")
    assert client.get("/api/auth/me").status_code == 401


def test_sign_in_form_refuses_missing_csrf(client):
    resp = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert resp.status_code == 400
    assert client.get("/api/auth/me").status_code == 401


def test_no_open_redirect_after_sign_in(client):
    import re
    page = client.get("/login?next=//evil.example/x").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                       "csrf_token": csrf, "next": "https://evil.example/"})
    assert resp.status_code == 302 and resp.location == "/"


def test_revoked_and_garbage_tokens_are_refused(app, client):
    headers = token_for(client, app)
    token_id = client.get("/api/audit", headers=headers).get_json()["events"][0]["target"]
    assert token_id.startswith("token:")
    resp = client.delete(f"/api/auth/token/{token_id.split(':')[1]}", headers=headers)
    assert resp.status_code == 200
    assert client.get("/api/auth/me", headers=headers).status_code == 401
    garbage = client.get("/api/auth/me", headers={"Authorization": "Bearer ops_nonsense"})
    assert garbage.status_code == 401
    assert "invalid" in garbage.get_json()["error"]["message"]


def test_password_change_ends_sessions(app, client):
    sign_in(client)
    assert client.get("/api/auth/me").status_code == 200
    app.extensions["ops"].users.set_password("admin", "a-brand-new-password")
    assert client.get("/api/auth/me").status_code == 401


def test_admin_password_from_env_and_generated_once(settings, redis_client):
    from dashapp import create_app
    generated_settings = settings.model_copy(update={"admin_password": None})
    first = create_app(generated_settings).server.extensions["ops"]
    try:
        password = first.generated_admin_password
        assert password and len(password) >= 12
        assert first.users.authenticate("admin", password) is not None
        stored = first.users.by_name("admin").password_hash
        assert password not in stored and stored.startswith("scrypt:")
    finally:
        first.close()
    second = create_app(generated_settings).server.extensions["ops"]
    try:
        assert second.generated_admin_password is None  # printed once only
        assert second.users.authenticate("admin", password) is not None
    finally:
        second.close()
