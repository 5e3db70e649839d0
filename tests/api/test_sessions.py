"""Sign-in sessions end on the server: signing out, deactivation and a
password change make a copied session cookie worthless, and the token route
answers 503 like every other route when the store is locked."""
from __future__ import annotations

import sqlite3
import threading

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.helpers import sign_in, token_for


def _copy_session(app, client):
    """A second browser holding a copy of `client`'s session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None, "signing in sets the session cookie"
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def test_signing_out_ends_the_session_for_a_copied_cookie(app, client):
    assert sign_in(client).status_code == 302
    thief = _copy_session(app, client)
    assert thief.get("/api/auth/me").status_code == 200
    client.get("/logout")
    resp = thief.get("/api/auth/me")
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthenticated"
    page = thief.get("/endpoints")
    assert page.status_code == 302 and page.location.startswith("/login")


def test_signing_out_ends_only_that_session(app, client):
    sign_in(client)
    other = app.test_client()
    sign_in(other)
    client.get("/logout")
    assert other.get("/api/auth/me").status_code == 200


def test_deactivation_ends_sessions_for_good(app, client, admin):
    users = app.extensions["ops"].users
    users.create_user("vera", "viewer-pass-1234", "viewer")
    vera_id = users.by_name("vera").id
    browser = app.test_client()
    assert sign_in(browser, "vera", "viewer-pass-1234").status_code == 302
    thief = _copy_session(app, browser)
    assert thief.get("/api/auth/me").get_json()["username"] == "vera"

    off = client.patch(f"/api/users/{vera_id}", json={"active": False}, headers=admin)
    assert off.status_code == 200, off.get_json()
    assert thief.get("/api/auth/me").status_code == 401
    on = client.patch(f"/api/users/{vera_id}", json={"active": True}, headers=admin)
    assert on.status_code == 200, on.get_json()
    # Re-activation does not revive the old cookie, nor the browser's own.
    assert thief.get("/api/auth/me").status_code == 401
    assert browser.get("/api/auth/me").status_code == 401
    # Vera signs in again and gets a new session.
    fresh = app.test_client()
    assert sign_in(fresh, "vera", "viewer-pass-1234").status_code == 302
    assert fresh.get("/api/auth/me").status_code == 200
    assert thief.get("/api/auth/me").status_code == 401


def test_password_change_ends_copied_sessions(app, client):
    sign_in(client)
    thief = _copy_session(app, client)
    app.extensions["ops"].users.set_password("admin", "a-brand-new-password")
    app.extensions["ops"].users.set_password("admin", "admin-pass-1234")
    # Even back on the old password, the old session stays ended.
    assert thief.get("/api/auth/me").status_code == 401
    assert client.get("/api/auth/me").status_code == 401


# ------------------------------------------------- token route, store locked

def _locking_url(url: str) -> str:
    """The store URL with a short lock wait on PostgreSQL, so a statement
    that meets a lock fails (as a busy SQLite store does after its busy
    timeout) instead of waiting for ever."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    query = dict(parsed.query)
    query["options"] = "-c lock_timeout=1500"
    return parsed.set(query=query).render_as_string(hide_password=False)


def _hold_lock(url: str, held: threading.Event, release: threading.Event) -> None:
    """Another connection holds the store locked until `release` is set."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(parsed.database, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            held.set()
            release.wait(60)
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    engine = create_engine(parsed)
    try:
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE ops_user, ops_api_token IN ACCESS EXCLUSIVE MODE"))
            held.set()
            release.wait(60)
            conn.rollback()
    finally:
        engine.dispose()


def test_token_creation_with_the_store_locked_is_503(settings, redis_client):
    from dashapp import create_app
    from tests.conftest import ADMIN_PASSWORD
    url = _locking_url(settings.store_url)
    server = create_app(settings.model_copy(update={"database_url": url})).server
    try:
        client = server.test_client()
        held, release = threading.Event(), threading.Event()
        locker = threading.Thread(target=_hold_lock, args=(settings.store_url, held, release))
        locker.start()
        try:
            assert held.wait(10), "could not lock the store"
            resp = client.post("/api/auth/token",
                               json={"username": "admin", "password": ADMIN_PASSWORD})
        finally:
            release.set()
            locker.join(30)
        assert resp.status_code == 503, resp.get_data(as_text=True)
        body = resp.get_json()
        assert body["error"]["code"] == "store_unavailable"
        assert "message" in body["error"]
        # The store back: the same request works.
        assert client.post("/api/auth/token", json={"username": "admin",
                                                    "password": ADMIN_PASSWORD}
                           ).status_code == 200
        assert token_for(client, server)
    finally:
        server.extensions["ops"].close()



def test_a_session_unused_for_the_idle_limit_has_ended(app, client):
    from datetime import timedelta

    from sqlalchemy import update

    from dashapp.security.auth import SESSION_IDLE_LIMIT
    from dashapp.store.models import UserSession, utcnow
    sign_in(client)
    assert client.get("/api/auth/me").status_code == 200
    with app.extensions["ops"].store.session() as sess:
        sess.execute(update(UserSession).values(
            last_seen_at=utcnow() - SESSION_IDLE_LIMIT - timedelta(minutes=1)))
    assert client.get("/api/auth/me").status_code == 401
