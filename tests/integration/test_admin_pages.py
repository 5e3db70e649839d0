"""The Users and Audit pages' callbacks, called directly as Dash would,
inside a request of a signed-in user, against the real store."""
from __future__ import annotations

import csv
import io
import sys
from contextlib import contextmanager

import dash
from dash._callback_context import context_value
from dash._utils import AttributeDict
from flask import g

from dashapp.security.auth import Principal


def page_module(path: str):
    """The page module Dash loaded (importing it again would register twice)."""
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == path)]


@contextmanager
def as_user(app, role: str, username: str = "admin", path: str = "/users"):
    """A request signed in as `username` with `role`, inside a Dash callback
    context whose set_props (toasts, stores) the test can read."""
    token = context_value.set(AttributeDict(updated_props={}, triggered_inputs=[]))
    try:
        with app.test_request_context(path):
            user = app.extensions["ops"].users.by_name(username)
            g.ops_principal = Principal(user.id if user else 999, username, role, "x")
            yield context_value.get().updated_props
    finally:
        context_value.reset(token)


def toast_of(props: dict) -> str:
    return ((props.get("shell-toast-store") or {}).get("data") or {}).get("message", "")


def _events(app, **filters):
    from dashapp.services import users as svc
    return svc.audit_events(app.extensions["ops"].store, svc.AuditFilter(**filters),
                            limit=1000)["events"]


def test_non_admins_see_the_refusal_and_no_data(app):
    users, audit = page_module("/users"), page_module("/audit")
    app.extensions["ops"].users.create_user("secret-sam", "sam-password-1", "viewer")
    for role in ("viewer", "operator"):
        with as_user(app, role, "vera"):
            for page in (users, audit):
                text = str(page.layout())
                assert "This page needs the admin role" in text
                assert f"You are signed in as {role}" in text
                assert "secret-sam" not in text and "users-grid" not in text
            # A forged callback gets nothing and is refused.
            assert users.refresh_users(None, 1) == (dash.no_update,) * 5
            rows, info, *_ = audit.refresh(1, 1, None, None, None, None, None, 1440)
            assert rows == [] and "needs the admin role" in info
    denied = _events(app, action="permission_denied", actor="vera")
    assert {e["target"] for e in denied} >= {"users page", "audit page"}


def test_admin_creates_user_resets_password_and_changes_role(app):
    page = page_module("/users")
    with as_user(app, "admin") as props:
        layout = str(page.layout())
        assert "users-grid" in layout and "'username': 'admin'" in layout
        error, result, disabled = page.create_user("nora", "operator", "generate", None)
        assert error is None and disabled is True
        assert "Shown once" in str(result)
        password = result.children[1].children[0].children
        assert len(password) >= 16
        assert toast_of(props) == "Created nora (operator)."
        assert props["users-bump"]["data"]  # the grids refresh
    assert app.extensions["ops"].users.authenticate("nora", password) is not None

    with as_user(app, "admin") as props:
        error, result, disabled = page.create_user("nora", "viewer", "generate", None)
        assert "already exists" in str(error) and result is None and disabled is False
        assert "already exists" in toast_of(props)
        error, _, _ = page.create_user("bad name", "viewer", "generate", None)
        assert "letters, digits" in str(error)
        error, _, _ = page.create_user("olga", "viewer", "type", "short")
        assert "at least 8 characters" in str(error)
        error, _, _ = page.create_user("olga", "viewer", "type", "")
        assert "Type a password" in str(error)
        error, result, _ = page.create_user("olga", "viewer", "type", "olga-password-1")
        assert error is None and "the password you typed" in str(result)
        assert "olga-password-1" not in str(result)

    nora = app.extensions["ops"].users.by_name("nora")
    with as_user(app, "admin") as props:
        error, result, _ = page.reset_password(nora.id, "generate", None)
        assert error is None
        new_password = result.children[1].children[0].children
        assert "sessions ended" in toast_of(props)
        is_open, error = page.change_role(nora.id, "admin")
        assert is_open is False and error is None
        assert toast_of(props) == "nora is now admin."
    users = app.extensions["ops"].users
    assert users.authenticate("nora", new_password).role == "admin"
    assert {"user_create", "user_password", "user_role"} <= {
        e["action"] for e in _events(app, actor="admin", outcome="success")}
    assert new_password not in str(_events(app)) and password not in str(_events(app))


def test_selection_and_the_admin_rules_reach_the_user(app):
    page = page_module("/users")
    admin = app.extensions["ops"].users.by_name("admin")
    with as_user(app, "admin") as props:
        store, text, *disabled, label = page.selection_state(page._user(admin.id))
        assert store == {"id": admin.id, "username": "admin"}
        assert disabled == [False, False, False, False] and "Deactivate" in str(label)
        # The only admin cannot deactivate or demote themself: a clear toast.
        page.toggle_active(admin.id)
        assert "You cannot deactivate yourself" in toast_of(props)
        is_open, error = page.change_role(admin.id, "viewer")
        assert is_open is True and "You cannot demote yourself" in str(error)
    assert app.extensions["ops"].users.by_name("admin").role == "admin"


def test_deactivate_and_activate_with_tokens(app):
    page = page_module("/users")
    ops = app.extensions["ops"]
    user = ops.users.create_user("pia", "pia-password-1", "operator")
    with as_user(app, "admin") as props:
        error, result, _ = page.create_token(str(user.id), "ci deploy", "7")
        assert error is None
        token = result.children[1].children[0].children
        assert token.startswith("ops_")
        assert toast_of(props).startswith("Created token ops_")
        rows = page.render_tokens(page.ALL, False)
        row = next(r for r in rows if r["name"] == "ci deploy")
        assert row["username"] == "pia" and row["status"] == "active"
        assert token not in str(rows)
    assert ops.users.user_for_token(token) is not None

    with as_user(app, "admin") as props:
        page.toggle_active(user.id)
        assert "pia is deactivated" in toast_of(props)
        state = page.selection_state(page._user(user.id))
        assert "Activate" in str(state[-1]) and state[5] is True  # no token for inactive
    assert ops.users.user_for_token(token) is None
    with as_user(app, "admin") as props:
        page.toggle_active(user.id)
        assert toast_of(props) == "pia is active."
    assert ops.users.user_for_token(token) is not None

    with as_user(app, "admin") as props:
        sel, _, disabled = page.select_token([row])
        assert sel["id"] == row["id"] and disabled is False
        is_open, text = page.open_revoke(1, sel)
        assert is_open is True and "cannot be undone" in text
        page.revoke(row["id"])
        assert "Revoked token" in toast_of(props)
        page.revoke(row["id"])
        assert "already revoked" in toast_of(props)
        assert page.render_tokens(str(user.id), True) == []
    assert ops.users.user_for_token(token) is None


def test_actions_refused_for_a_non_admin_callback(app):
    page = page_module("/users")
    ops = app.extensions["ops"]
    user = ops.users.create_user("quinn", "quinn-password-1", "viewer")
    with as_user(app, "operator", "otto") as props:
        error, result, _ = page.create_user("mallory", "admin", "generate", None)
        assert "admin role" in str(error) and result is None
        assert "needs the admin role" in toast_of(props)
        page.toggle_active(user.id)
        error, _, _ = page.create_token(str(user.id), "", "30")
        assert "admin role" in str(error)
    assert ops.users.by_name("mallory") is None
    assert ops.users.by_name("quinn").active is True
    assert len(_events(app, action="permission_denied", actor="otto")) >= 3


def test_audit_page_filters_and_exports(app):
    page = page_module("/audit")
    ops = app.extensions["ops"]
    from dashapp.security import audit
    audit.record(ops.store, actor="rita", action="cache_delete", outcome="success",
                 target="cache:shop:1", ip="10.1.1.1")
    audit.record(ops.store, actor="rita", action="config_save", outcome="failure",
                 target="=cmd|' /C calc'!A0", ip="10.1.1.1")
    audit.record(ops.store, actor="sol", action="login", outcome="failure", ip="10.1.1.2")
    with as_user(app, "admin", path="/audit") as props:
        layout = str(page.layout())
        assert "audit-grid" in layout and "rita" in layout
        rows, info, actors, actions, status = page.refresh(
            1, None, "rita", page.ANY, page.ANY, None, None, 60)
        assert status is None and {r["actor"] for r in rows} == {"rita"}
        assert "2 events" in info
        assert {"rita", "sol"} <= {o["value"] for o in actors}
        assert "cache_delete" in {o["value"] for o in actions}
        rows, *_ = page.refresh(1, None, page.ANY, page.ANY, "failure", "CMD", None, 0)
        assert [r["action"] for r in rows] == ["config_save"]
        rows, info, *_ = page.refresh(1, None, page.ANY, page.ANY, page.ANY, None,
                                      "10.1.1.2", 15)
        assert [r["actor"] for r in rows] == ["sol"]
        rows, info, *_ = page.refresh(1, None, "nobody", page.ANY, page.ANY, None, None, 15)
        assert rows == [] and info == "No events match these filters."

        download = page.export(1, "rita", page.ANY, page.ANY, None, None, 1440)
        assert download["filename"].endswith(".csv") and download["type"] == "text/csv"
        table = list(csv.DictReader(io.StringIO(download["content"])))
        assert [r["action"] for r in table] == ["config_save", "cache_delete"]
        assert table[0]["target"].startswith("'=cmd")
        assert "Exported the matching events" in toast_of(props)
    export = _events(app, action="audit_export")[0]
    assert export["actor"] == "admin" and export["details"]["actor"] == "rita"
    assert export["details"]["via"] == "page"


def test_pages_say_when_the_store_is_down(app):
    users, audit_page = page_module("/users"), page_module("/audit")
    from dashapp.store import Store
    ops = app.extensions["ops"]
    real = ops.store
    ops.store = Store("postgresql+psycopg://nobody@127.0.0.1:1/gone")
    try:
        with as_user(app, "admin") as props:
            status, style, *_ = users.render_users()
            assert "is unavailable" in str(status) and style == {"display": "none"}
            assert "is unavailable" in str(users.layout())
            assert "is unavailable" in str(audit_page.layout())
            error, result, _ = users.create_user("vic", "viewer", "generate", None)
            assert "store is unavailable" in str(error) and result is None
            assert audit_page.export(1, None, None, None, None, None, 60) is dash.no_update
            assert "store is unavailable" in toast_of(props)
    finally:
        ops.store.close()
        ops.store = real
