"""Rate limits, CSRF, security headers, cookies, production refusals,
compression and assets, as a client of the real app sees them."""
from __future__ import annotations

import gzip
import re

import pytest
from sqlalchemy import select

from dashapp.store.models import AuditEvent
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import sign_in, token_for


@pytest.fixture
def make_app(settings, redis_client):
    """Build apps with settings overrides; closes them all at the end."""
    from dashapp import create_app
    built = []

    def build(**update):
        update = {"rate_limit_enabled": True, **update}
        dash_app = create_app(settings.model_copy(update=update))
        built.append(dash_app.server)
        return dash_app.server
    yield build
    for server in built:
        server.extensions["ops"].close()


def audit_rows(app, action):
    with app.extensions["ops"].store.session() as sess:
        return sess.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


# ----------------------------------------------------------------- limits

def test_sign_in_limit_is_429_with_retry_after_and_audited_once(make_app):
    app = make_app(rate_limit_login="3/minute")
    client = app.test_client()
    codes = [client.post("/api/auth/token", json={"username": "admin",
                                                  "password": "wrong-password"}).status_code
             for _ in range(6)]
    assert codes == [401, 401, 401, 429, 429, 429]
    resp = client.post("/api/auth/token", json={"username": "admin",
                                                "password": ADMIN_PASSWORD})
    assert resp.status_code == 429, "the right password does not lift the limit"
    body = resp.get_json()
    assert body["error"]["code"] == "rate_limited"
    assert "3 per 1 minute" in body["error"]["message"]
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    events = audit_rows(app, "rate_limited")
    assert len(events) == 1, "one audit event per caller and window, not per refusal"
    assert events[0].outcome == "denied" and events[0].target == "POST /api/auth/token"


def test_sign_in_form_limit_shows_the_form_with_a_message(make_app):
    app = make_app(rate_limit_login="2/minute")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    for _ in range(2):
        client.post("/login", data={"username": "admin", "password": "nope-nope",
                                    "csrf_token": csrf})
    resp = client.post("/login", data={"username": "admin", "password": "nope-nope",
                                       "csrf_token": csrf})
    assert resp.status_code == 429
    assert "Too many requests" in resp.get_data(as_text=True)
    assert "<form" in resp.get_data(as_text=True)


def test_default_limit_is_per_user(make_app):
    app = make_app(rate_limit_default="5/minute", rate_limit_login="100/minute")
    client = app.test_client()
    admin = token_for(client, app)
    viewer = token_for(client, app, "vera", "viewer-pass-1234", role="viewer")
    codes = [client.get("/api/auth/me", headers=admin).status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    assert client.get("/api/auth/me", headers=viewer).status_code == 200, \
        "another user has a budget of their own"


def test_ip_limit_covers_every_user_of_one_address(make_app):
    app = make_app(rate_limit_ip="6/minute", rate_limit_login="100/minute")
    client = app.test_client()
    # two token creations count against the address too
    admin = token_for(client, app)
    viewer = token_for(client, app, "vera", "viewer-pass-1234", role="viewer")
    codes = [client.get("/api/auth/me", headers=h).status_code
             for h in (admin, viewer, admin, viewer, admin, viewer)]
    assert codes[:4] == [200] * 4 and codes[4:] == [429, 429]


def test_sensitive_limit_on_explain(make_app):
    app = make_app(rate_limit_sensitive="2/minute")
    client = app.test_client()
    admin = token_for(client, app)
    codes = [client.post("/api/queries/explain", json={"sql": "SELECT 1"},
                         headers=admin).status_code for _ in range(3)]
    assert codes[2] == 429 and 429 not in codes[:2]
    # reading is not limited by it
    assert client.get("/api/queries/stats", headers=admin).status_code == 200


def test_limits_are_shared_by_every_worker(make_app):
    """Two console processes on one Redis count against one budget."""
    first = make_app(rate_limit_default="4/minute", rate_limit_login="100/minute")
    second = make_app(rate_limit_default="4/minute", rate_limit_login="100/minute")
    c1, c2 = first.test_client(), second.test_client()
    admin = token_for(c1, first)
    codes = [c.get("/api/auth/me", headers=admin).status_code
             for c in (c1, c2, c1, c2, c1)]
    # four between the two workers, then both refuse (the token creation
    # was signed out: it counted against the address, not the user)
    assert codes == [200, 200, 200, 200, 429]
    assert c2.get("/api/auth/me", headers=admin).status_code == 429


def test_static_files_are_not_counted(make_app):
    app = make_app(rate_limit_ip="3/minute")
    client = app.test_client()
    for _ in range(10):
        assert client.get("/assets/10-theme.css").status_code == 200


# ------------------------------------------------------------------- CSRF

def test_session_writes_need_the_csrf_header(app, client):
    sign_in(client)
    resp = client.get("/")
    token = client.get_cookie("ops_csrf")
    assert token is not None and token.value
    cookie = next(v for k, v in resp.headers.items()
                  if k == "Set-Cookie" and v.startswith("ops_csrf="))
    assert "SameSite=Strict" in cookie and "HttpOnly" not in cookie

    resp = client.delete("/api/auth/token/999")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "csrf_failed"
    assert audit_rows(app, "csrf_rejected")
    resp = client.delete("/api/auth/token/999", headers={"X-CSRF-Token": "forged"})
    assert resp.status_code == 400
    resp = client.delete("/api/auth/token/999", headers={"X-CSRF-Token": token.value})
    assert resp.status_code == 404  # got past the check: there is no token 999


def test_bearer_writes_need_no_csrf_header(app, client, admin):
    fresh = app.test_client()
    resp = fresh.delete("/api/auth/token/999", headers=admin)
    assert resp.status_code == 404


def test_dash_callbacks_need_the_csrf_header(app, client):
    sign_in(client)
    client.get("/")
    body = {"output": "nothing.children", "outputs": {"id": "nothing", "property": "children"},
            "inputs": [], "changedPropIds": []}
    resp = client.post("/_dash-update-component", json=body)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "csrf_failed"
    token = client.get_cookie("ops_csrf").value
    resp = client.post("/_dash-update-component", json=body,
                       headers={"X-CSRF-Token": token})
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "unknown_callback"


# ---------------------------------------------------------------- headers

@pytest.mark.parametrize("path", ["/login", "/api/health"])
def test_security_headers(client, path):
    resp = client.get(path)
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    script = next(p for p in csp.split(";") if p.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
    assert "http" not in csp, "only the console's own origin"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert resp.headers["X-Frame-Options"] == "DENY"


def test_pages_are_not_cached(client):
    sign_in(client)
    assert client.get("/").headers["Cache-Control"] == "no-store"


def test_session_cookie_flags(client):
    resp = sign_in(client)
    cookie = next(v for k, v in resp.headers.items()
                  if k == "Set-Cookie" and v.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # development over plain HTTP


PROD = {"env": "production", "secret_key": "9f8e7d6c5b4a39281706f5e4d3c2b1a0fedcba98"}


def test_production_cookies_are_secure_behind_an_https_proxy(make_app):
    app = make_app(**PROD, trusted_proxies=1)
    client = app.test_client()
    page = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"',
                     page.get_data(as_text=True)).group(1)
    resp = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                       "csrf_token": csrf, "next": "/"},
                       headers={"X-Forwarded-Proto": "https",
                                "Referer": "https://localhost/login"})
    assert resp.status_code == 302
    cookie = next(v for k, v in resp.headers.items()
                  if k == "Set-Cookie" and v.startswith("session="))
    assert "Secure" in cookie
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


# ------------------------------------------------------------- production

@pytest.mark.parametrize("update, named", [
    ({"secret_key": None}, "SECRET_KEY"),
    ({"secret_key": "change-me-to-64-random-hex-characters-please"}, "SECRET_KEY"),
    ({"secret_key": "short"}, "SECRET_KEY"),
    ({"workers": 3, "database_url": None}, "OPS_DATABASE_URL"),
])
def test_production_refuses_unsafe_settings(settings, update, named):
    from dashapp import create_app
    from dashapp.factory import StartupError
    with pytest.raises(StartupError, match=named):
        create_app(settings.model_copy(update={**PROD, **update}))


def test_production_refuses_a_first_admin_without_password(settings):
    from dashapp import create_app
    from dashapp.factory import StartupError
    with pytest.raises(StartupError, match="OPS_ADMIN_PASSWORD"):
        create_app(settings.model_copy(update={**PROD, "admin_password": None}))


def test_production_starts_with_safe_settings(make_app, settings):
    update = dict(PROD)
    if not settings.store_url.startswith("sqlite"):
        update["workers"] = 4
    app = make_app(**update)
    assert app.test_client().get("/api/health").status_code == 200


# ------------------------------------------------- compression and assets

def test_responses_are_compressed(client, admin):
    resp = client.get("/api/openapi.json", headers={**admin, "Accept-Encoding": "gzip"})
    assert resp.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(resp.get_data()).startswith(b"{")


def test_own_assets_are_minified_and_versioned_urls_cached(client):
    from dashapp.factory import ASSETS_DIR
    source = (ASSETS_DIR / "10-theme.css").read_bytes()
    resp = client.get("/assets/10-theme.css?m=12345")
    assert resp.status_code == 200 and resp.mimetype == "text/css"
    assert 0 < len(resp.get_data()) < len(source) * 0.9
    assert "immutable" in resp.headers["Cache-Control"]
    assert "max-age=31536000" in resp.headers["Cache-Control"]
    plain = client.get("/assets/05-csrf.js")
    assert plain.headers["Cache-Control"] == "no-cache"
    assert b"X-CSRF-Token" in plain.get_data()
    # no file outside the assets folder
    assert client.get("/assets/../dashapp/config.py").status_code == 404
