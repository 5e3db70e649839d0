"""The Alerts page's callbacks and the overview's strip, called directly as
Dash would, against a real store: an admin's changes go through and are
audited, anyone else's are refused (and the refusal audited), and user
text is rendered as text."""
from __future__ import annotations

import sys
from contextlib import contextmanager

import dash
from dash._callback_context import context_value
from dash._utils import AttributeDict
from flask import g
from sqlalchemy import select

from dashapp.security.auth import Principal
from dashapp.services import alerts as svc
from dashapp.store.models import AuditEvent


def page_module(path: str = "/alerts"):
    """The page module Dash loaded (importing it again would register twice)."""
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == path)]


@contextmanager
def as_user(app, role: str, username: str = "pat"):
    token = context_value.set(AttributeDict(updated_props={}, triggered_inputs=[]))
    try:
        with app.test_request_context("/alerts"):
            g.ops_principal = Principal(1, username, role, "x")
            yield context_value.get().updated_props
    finally:
        context_value.reset(token)


def toast_of(props: dict) -> str:
    return ((props.get("shell-toast-store") or {}).get("data") or {}).get("message", "")


FORM = dict(name="<b>Checkout</b> slow", kind="endpoint_p95", target="/checkout",
            comparison=">", threshold=800, for_minutes=5, window=5, severity="critical",
            enabled=True, webhook="https://u:pw-1234@hooks.example.com/x?sig=zz99")


def test_admin_saves_a_rule_viewer_and_operator_cannot(app):
    page = page_module()
    store = app.extensions["ops"].store
    for role in ("viewer", "operator"):
        with as_user(app, role) as props:
            assert page.save_rule(None, page.form_data(**FORM)) is None
            assert "needs the admin role" in props[page.FORM["error"]]["children"]
    assert svc.list_rules(store) == []

    with as_user(app, "admin", "ada") as props:
        rule = page.save_rule(None, page.form_data(**FORM))
        assert rule["name"] == "<b>Checkout</b> slow" and "created" in toast_of(props)
    with store.session() as sess:
        trail = [(e.actor, e.action, e.outcome) for e in sess.scalars(
            select(AuditEvent).order_by(AuditEvent.id))]
    assert ("ada", "alert_rule_create", "success") in trail
    assert [t[2] for t in trail if t[1] == "permission_denied"] == ["denied", "denied"]

    # the service's refusal shows in the form, naming the field
    with as_user(app, "admin") as props:
        bad = page.form_data(**{**FORM, "name": "Other", "webhook": "ftp://x/y"})
        assert page.save_rule(None, bad) is None
        assert props[page.FORM["error"]]["children"].startswith("webhook_url:")


def test_page_renders_rules_as_text_with_masked_webhooks(app):
    page = page_module()
    store = app.extensions["ops"].store
    svc.create_rule(store, {"name": "<script>alert(1)</script>", "kind": "backup_age",
                            "threshold": 1, "for_minutes": 0,
                            "webhook_url": "https://u:pw-1234@hooks.example.com/x?sig=zz99"},
                    actor="admin")
    with as_user(app, "viewer"):
        layout = page.layout()
    text = str(layout)
    assert "pw-1234" not in text and "zz99" not in text
    assert "https://***@hooks.example.com/x?***" in text
    # a viewer sees no action buttons; the name is a plain string child
    assert "alerts-rule-edit" not in text and "<script>alert(1)</script>" in text
    with as_user(app, "admin"):
        assert "alerts-rule-edit" in str(page.layout())


def test_evaluate_now_from_the_page_and_the_overview_strip(app):
    page = page_module()
    overview = page_module("/")
    store = app.extensions["ops"].store
    svc.create_rule(store, {"name": "Slow SQL", "kind": "slow_queries", "threshold": -1,
                            "for_minutes": 0}, actor="admin")
    with as_user(app, "viewer") as props:
        page.evaluate_now(1)
        assert "needs the admin role" in toast_of(props)
    assert svc.list_events(store) == []
    with as_user(app, "admin") as props:
        page.evaluate_now(1)
        assert toast_of(props) == "Evaluated 1 rule: 1 fired, 0 resolved."
    with as_user(app, "viewer"):
        strip = str(overview.render()[3])
    assert "1 alert firing" in strip and "Slow SQL" in strip and "/alerts" in strip
