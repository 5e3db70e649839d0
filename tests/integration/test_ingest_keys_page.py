"""The Ingest keys page's callbacks, called directly as Dash would, inside a
request of a signed-in user, against the real store: what a non-admin gets
(nothing), what a bad name and a store outage say."""
from __future__ import annotations

import dash

from dashapp.ingest import keys as key_svc
from tests.integration.test_admin_pages import _events, as_user, page_module, toast_of

PATH = "/admin/ingest-keys"


def test_non_admins_get_the_refusal_and_no_keys(app):
    page = page_module(PATH)
    store = app.extensions["ops"].store
    made = key_svc.create_key(store, actor="admin", app="secret-shop", note="hush")
    for role in ("viewer", "operator"):
        with as_user(app, role, "vera", path=PATH) as props:
            text = str(page.layout())
            assert "This page needs the admin role" in text
            assert f"You are signed in as {role}" in text
            assert "secret-shop" not in text and "ingest-keys-grid" not in text
            # Forged callbacks get nothing and change nothing.
            assert page.refresh(None, 1, False) == (dash.no_update,) * 4
            error, result, _ = page.create_key("sneaky", "")
            assert "admin role" in str(error) and result is None
            page.revoke(made["id"])
            assert "needs the admin role" in toast_of(props)
            assert page.open_revoke(1, {"id": made["id"]}) == (dash.no_update,) * 2
    assert [k["app"] for k in key_svc.list_keys(store)] == ["secret-shop"]
    assert all(k["active"] for k in key_svc.list_keys(store))
    denied = _events(app, action="permission_denied", actor="vera")
    assert {"ingest keys page", "ingest keys page: list keys",
            "ingest keys page: new key for sneaky"} <= {e["target"] for e in denied}


def test_admin_creates_shows_once_and_revokes(app):
    page = page_module(PATH)
    with as_user(app, "admin", path=PATH) as props:
        error, result, disabled = page.create_key("bad name", "")
        assert "application name must be" in str(error) and result is None
        assert disabled is False
        error, result, disabled = page.create_key(" shop ", "prod")
        assert error is None and disabled is True
        assert "You will not see this key again" in str(result)
        secret = result.children[1].children[0].children
        dsn_line = result.children[3].children[0].children
        assert dsn_line == f"OPS_DSN=http://{secret}@localhost/shop"
        assert key_svc.authenticate(app.extensions["ops"].store, secret).app == "shop"
        key = key_svc.list_keys(app.extensions["ops"].store)[0]
        assert secret.startswith(key["prefix"])
        assert toast_of(props).startswith(f"Created ingest key {key['prefix']}")
        assert props["ingest-keys-bump"]["data"]
        status, style, rows, _apps = page.render()
        assert status is None and [r["app"] for r in rows] == ["shop"]
        assert rows[0]["note"] == "prod" and rows[0]["status"] == "active"
        page.revoke(key["id"])
        assert "Revoked ingest key" in toast_of(props)
        page.revoke(key["id"])
        assert "already revoked" in toast_of(props)
        _, _, rows, _ = page.render(active_only=True)
        assert rows == []
    # A bad name is refused before the service: no audited failure for a typo.
    made = _events(app, action="ingest_key_create")
    assert [(e["target"], e["outcome"]) for e in made] == [("app:shop", "success")]


def test_the_page_says_when_the_store_is_down(app):
    page = page_module(PATH)
    from dashapp.store import Store
    ops = app.extensions["ops"]
    real = ops.store
    ops.store = Store("postgresql+psycopg://nobody@127.0.0.1:1/gone")
    try:
        with as_user(app, "admin", path=PATH) as props:
            status, style, *_ = page.render()
            assert "is unavailable" in str(status) and style == {"display": "none"}
            assert "is unavailable" in str(page.layout())
            error, result, _ = page.create_key("shop", "")
            assert "store is unavailable" in str(error) and result is None
            page.revoke(1)
            assert "store is unavailable" in toast_of(props)
    finally:
        ops.store.close()
        ops.store = real
