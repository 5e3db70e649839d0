"""The HTTP edge, as a client of the real app sees it: deeply nested JSON,
near-misses of the public paths, and `next` with CR/LF."""
from __future__ import annotations

import logging
import re

import pytest

from dashapp.security.edge import MAX_JSON_DEPTH, PRESCAN_BYTES, json_too_deep
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import sign_in, token_for

DEEP_BODIES = {
    "arrays": "[" * 5000 + "]" * 5000,
    "objects": '{"a":' * 5000 + "1" + "}" * 5000,
    "unclosed": "[" * 5000,
    "unclosed-objects": '{"a":' * 5000,
}
ROUTES = ["/api/auth/token", "/api/users", "/api/cache/clear", "/api/reports/export",
          "/login", "/_dash-update-component"]


def assert_error_shape(resp, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.mimetype == "application/json", resp.get_data(as_text=True)[:300]
    error = resp.get_json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    if code is not None:
        assert error["code"] == code
    return error


def assert_nothing_logged_as_error(caplog):
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


def _callers(app, client):
    """(label, test client, extra headers): signed out, bearer, session."""
    anonymous = app.test_client()
    bearer = token_for(client, app)
    browser = app.test_client()
    assert sign_in(browser).status_code == 302
    return [("signed out", anonymous, {}), ("token", app.test_client(), bearer),
            ("session", browser, {})]


@pytest.mark.parametrize("shape", sorted(DEEP_BODIES))
def test_deeply_nested_json_is_a_400_on_every_route(app, client, shape, caplog):
    callers = _callers(app, client)
    caplog.clear()
    caplog.set_level(logging.INFO)
    for label, caller, headers in callers:
        for route in ROUTES:
            resp = caller.post(route, data=DEEP_BODIES[shape], headers=headers,
                               content_type="application/json")
            error = assert_error_shape(resp, 400, "invalid_json")
            assert "nested" in error["message"], (label, route)
    assert_nothing_logged_as_error(caplog)


def test_deep_json_past_the_prescan_is_still_a_400(app, client, caplog):
    """A body too large to measure before the sign-in check: the route's own
    parser refuses it, still without a traceback."""
    body = "[" * 5000 + "]" * 5000 + " " * (PRESCAN_BYTES + 1)
    callers = _callers(app, client)
    caplog.clear()
    for label, caller, headers in callers[1:]:
        for route in ("/api/users", "/_dash-update-component"):
            resp = caller.post(route, data=body, headers=headers,
                               content_type="application/json")
            if label == "session" and route.startswith("/api/"):
                continue  # refused by the CSRF check first (a 400 as well)
            assert_error_shape(resp, 400)
    assert_nothing_logged_as_error(caplog)


def test_depth_measure():
    assert not json_too_deep(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert json_too_deep(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    # Brackets inside strings are text, not nesting.
    assert not json_too_deep(b'{"a": "' + b"[" * 5000 + b'\\"["}')
    assert json_too_deep(b"[1," * 200 + b"1" + b"]" * 200)


def test_compressed_bodies_are_not_scanned_as_json_text(client):
    """An agent's gzip batch is bytes, not JSON text: brackets in them are
    not nesting (they refused good batches); /api/ingest decodes it itself."""
    resp = client.post("/api/ingest", data=b"[" * 500, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert_error_shape(resp, 401, "invalid_ingest_key")


def test_ordinary_json_still_works_everywhere(app, client):
    resp = client.post("/api/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD,
                                                "name": "[[[[{{{{"})
    assert resp.status_code == 200


# --------------------------------------------------------------- public paths

NEAR_MISSES = ["/loginx", "/login/x", "/login/", "/logoutx", "/logout/x", "/_favicon.icox",
               "/_favicon.ico/x", "/assetsx", "/assets"]


@pytest.mark.parametrize("path", NEAR_MISSES)
def test_public_paths_match_whole_segments(client, path):
    for method in ("GET", "POST"):
        resp = client.open(path, method=method)
        assert resp.status_code in (401, 404), (method, path, resp.status_code)
        text = resp.get_data(as_text=True)
        assert "_dash-" not in text and "<html" not in text.lower(), (method, path)
        assert resp.get_json()["error"]["code"] in ("unauthenticated", "not_found")


def test_the_public_paths_themselves_still_work(client):
    assert client.get("/login").status_code == 200
    assert client.get("/_favicon.ico").status_code == 200
    assert client.get("/logout").status_code == 302
    page = client.get("/login").get_data(as_text=True)
    css = re.search(r'href="(/assets/[^"]+\.css[^"]*)"', page).group(1)
    assert client.get(css).status_code == 200
    # The form names its icon, so a browser does not ask for /favicon.ico
    # (signed out, a 404 like any path that is not a page).
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page).group(1)
    assert client.get(icon).status_code == 200
    # A page still leads to the sign-in form.
    resp = client.get("/endpoints?minutes=60")
    assert resp.status_code == 302
    assert resp.location.startswith("/login?next=")


# ------------------------------------------------------------ next with CR/LF

CRLF_NEXTS = ["/\r\nSet-Cookie: stolen=1", "/endpoints\nX-Injected: 1", "/\r", "/\t/evil",
              "/\x00"]


@pytest.mark.parametrize("target", CRLF_NEXTS)
def test_next_with_control_characters_redirects_home(app, client, target):
    # Signing in with it goes home (not a 500, not a header of its own).
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                       "csrf_token": csrf, "next": target})
    assert resp.status_code == 302 and resp.location == "/"
    assert "stolen" not in resp.headers.get("Set-Cookie", "")
    # Signed in: /login?next=... redirects home at once.
    resp = client.get("/login", query_string={"next": target})
    assert resp.status_code == 302 and resp.location == "/"
    # Signed out: the form, whose hidden `next` is the home page.
    client.get("/logout")
    form = client.get("/login", query_string={"next": target})
    assert form.status_code == 200
    assert 'name="next" value="/"' in form.get_data(as_text=True)


def test_login_posts_that_are_not_the_form_are_400_in_the_error_shape(client):
    resp = client.post("/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert_error_shape(resp, 400, "invalid_request")
    assert client.get("/api/auth/me").status_code == 401
