"""Alerts: what fires now, the rules (create, edit, enable/disable, test
the webhook, delete), alerts resolved lately and the webhook delivery log.

Callbacks are thin: they call dashapp.services.alerts (the same functions
/api/alerts calls) and hand the results to dashapp.ui.alerts. The Dash
endpoint only needs a sign-in, so every change checks the admin role here,
as its REST twin does, and is audited by the service.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import dash
from dash import (ALL, Input, Output, State, callback, clientside_callback, ctx, dcc, html,
                  no_update)
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from dashapp.security.auth import action_allowed, current_principal
from dashapp.security.roles import role_allows
from dashapp.services import alerts as svc
from dashapp.store import _short_error
from dashapp.ui import alerts as ui
from dashapp.ui.components import (confirm_dialog, confirm_ids, modal, page_header, panel,
                                   push_toast, unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("alerts"))

REFRESH_MS = 10_000
RESOLVED_HOURS = 24 * 7

# Component ids
TICK = "alerts-tick"
BUMP = "alerts-bump"
STATUS = "alerts-status"
MAIN = "alerts-main"
CARDS = "alerts-cards-wrap"
FIRING = "alerts-firing"
RULES = "alerts-rules"
EVALUATE = "alerts-evaluate"
NEW = "alerts-new"
EDITOR = "alerts-editor"
EDITOR_TITLE = "alerts-editor-title"
EDIT_ID = "alerts-edit-id"
KIND_DEFAULTS = "alerts-kind-defaults"
SAVE = "alerts-save"
CANCEL = "alerts-cancel"
PENDING_DELETE = "alerts-pending-delete"
CONFIRM = confirm_ids("alerts-confirm")
CONFIRM_TEXT = "alerts-confirm-text"
HIDDEN = {"display": "none"}
FORM = {key: f"alerts-form-{key.replace('_', '-')}" for key in (
    "name", "kind", "kind_help", "target", "target_label", "target_wrap", "comparison",
    "threshold", "unit", "for_minutes", "window", "severity", "enabled", "webhook", "error")}


# ----------------------------------------------------------------- helpers

def _ops():
    return current_app.extensions["ops"]


def _can_admin() -> bool:
    principal = current_principal()
    return role_allows(principal.role if principal else None, "admin")


def render() -> tuple:
    """(status, main style, cards, firing list, rules list, resolved rows,
    delivery rows)."""
    store = _ops().store
    can_admin = _can_admin()
    try:
        rules = svc.list_rules(store)
        firing = svc.list_events(store, state="firing", limit=200)
        since = datetime.now(timezone.utc) - timedelta(hours=RESOLVED_HOURS)
        resolved = svc.list_events(store, state="resolved", since=since, limit=500)
        deliveries = svc.list_deliveries(store, limit=500)
    except SQLAlchemyError as exc:
        logger.warning("alerts page: store unavailable: %s", _short_error(exc))
        return (unavailable_card("The console's store", _short_error(exc),
                                 hint=f"This page tries again every {REFRESH_MS // 1000} "
                                      "seconds. Other pages keep working."),
                HIDDEN, no_update, no_update, no_update, no_update, no_update)
    day = datetime.now(timezone.utc) - timedelta(hours=24)
    resolved_day = [e for e in resolved
                    if e["resolved_at"] and datetime.fromisoformat(e["resolved_at"]) >= day]
    return (None, {}, ui.summary_cards(rules, firing, resolved_day), ui.firing_list(firing),
            ui.rules_list(rules, can_admin), ui.resolved_rows(resolved),
            ui.delivery_rows(deliveries))


def _number(value: Any) -> Any:
    """A number input's value for the service (which names a bad field)."""
    if value in (None, ""):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def form_data(name, kind, target, comparison, threshold, for_minutes, window, severity,
              enabled, webhook) -> dict[str, Any]:
    data = {"name": name or "", "kind": kind, "target": target or "",
            "comparison": comparison, "threshold": threshold,
            "for_minutes": _number(for_minutes), "window_minutes": _number(window),
            "severity": severity, "enabled": bool(enabled), "webhook_url": webhook or ""}
    if isinstance(data["threshold"], int):
        data["threshold"] = float(data["threshold"])
    return data


FORM_FIELDS = ("name", "kind", "target", "comparison", "threshold", "for_minutes",
               "window", "severity", "enabled", "webhook")


def _fill_form(rule: dict | None) -> None:
    """Put a rule's fields (or a new rule's defaults) into the form."""
    kind = svc.KINDS[rule["kind"]] if rule else next(iter(svc.KINDS.values()))
    values = {
        "name": rule["name"] if rule else "", "kind": kind.key,
        "target": rule["target"] if rule else "",
        "comparison": rule["comparison"] if rule else kind.comparison,
        "threshold": rule["threshold"] if rule else kind.threshold,
        "for_minutes": rule["for_minutes"] if rule else 5,
        "window": rule["window_minutes"] if rule else 5,
        "severity": rule["severity"] if rule else "warning",
        "enabled": rule["enabled"] if rule else True,
        "webhook": (rule["webhook_url"] or "") if rule else "",
    }
    for key, value in values.items():
        dash.set_props(FORM[key], {"value": value})
    dash.set_props(FORM["error"], {"children": None})


# ------------------------------------------------------------------ layout

def layout(**_query):
    can_admin = _can_admin()
    status, style, cards, firing, rules, resolved, deliveries = render()
    need = None if can_admin else "Changing rules needs the admin role."
    actions = [
        html.Button([html.I(className="bi bi-lightning-charge me-1",
                            **{"aria-hidden": "true"}), "Evaluate now"],
                    id=EVALUATE, n_clicks=0, type="button", disabled=not can_admin,
                    title="Evaluate every enabled rule now" if can_admin else need,
                    className="btn btn-sm btn-outline-secondary"),
        html.Button([html.I(className="bi bi-plus-lg me-1", **{"aria-hidden": "true"}),
                     "New rule"], id=NEW, n_clicks=0, type="button", disabled=not can_admin,
                    title=need, className="btn btn-sm btn-primary"),
    ]
    interval = svc_interval()
    return html.Div([
        dcc.Store(id=BUMP, data=None),
        dcc.Store(id=EDIT_ID, data=None),
        dcc.Store(id=KIND_DEFAULTS,
                  data={k.key: [k.comparison, k.threshold] for k in svc.KINDS.values()}),
        dcc.Store(id=PENDING_DELETE, data=None),
        page_header("Alerts", "Thresholds on latency, errors, SQL, cache, Redis, jobs, "
                    f"backups and models, evaluated every {interval} s; firing alerts on "
                    "top, optional webhooks.", actions=actions),
        html.Div(status, id=STATUS),
        html.Div(id=MAIN, style=style if style is not no_update else {},
                 className="ops-stack ops-alerts", children=[
            html.Div(cards if cards is not no_update else None, id=CARDS),
            panel(html.Div(firing if firing is not no_update else None, id=FIRING),
                  title="Firing now", subtitle="Alerts whose figure has stayed past the "
                  "threshold for the rule's minutes", className="ops-alerts-firing-panel"),
            panel(html.Div(rules if rules is not no_update else None, id=RULES),
                  title="Rules", subtitle="State, condition and the last figure read"
                  + ("" if can_admin else " (changes need the admin role)")),
            panel(ui.resolved_grid(resolved if resolved is not no_update else []),
                  title="Recently resolved", subtitle="The last 7 days, newest first"),
            panel(ui.deliveries_grid(deliveries if deliveries is not no_update else []),
                  title="Webhook deliveries", subtitle="Every attempt, retries included; "
                  "URLs masked"),
        ]),
        modal(EDITOR, html.Span("New alert rule", id=EDITOR_TITLE), ui.rule_form(FORM),
              footer=[
                  html.Button("Cancel", id=CANCEL, n_clicks=0, type="button",
                              className="btn btn-outline-secondary"),
                  html.Button("Save rule", id=SAVE, n_clicks=0, type="button",
                              className="btn btn-primary"),
              ], size="lg"),
        confirm_dialog("alerts-confirm", "Delete this rule?",
                       html.Div(id=CONFIRM_TEXT, className="ops-confirm__message"),
                       confirm_label="Delete rule"),
        dcc.Interval(id=TICK, interval=REFRESH_MS),
    ])


def svc_interval() -> int:
    try:
        return int(_ops().settings.alert_interval)
    except Exception:  # noqa: BLE001 - only a subtitle
        return 60


# --------------------------------------------------------------- callbacks

@callback(Output(STATUS, "children"), Output(MAIN, "style"), Output(CARDS, "children"),
          Output(FIRING, "children"), Output(RULES, "children"),
          Output(ui.RESOLVED_GRID, "rowData"), Output(ui.DELIVERIES_GRID, "rowData"),
          Input(TICK, "n_intervals"), Input(BUMP, "data"), prevent_initial_call=True)
def refresh(_n, _bump):
    return render()


@callback(Output(FORM["target_label"], "children"), Output(FORM["kind_help"], "children"),
          Output(FORM["unit"], "children"), Output(FORM["target_wrap"], "style"),
          Input(FORM["kind"], "value"))
def kind_changed(kind):
    label, text, unit, shown = ui.kind_help(kind)
    return label, text, unit, None if shown else HIDDEN


# A new rule takes the kind's usual comparison and threshold. In the browser:
# a server callback's answer for the kind the form was opened with could
# arrive after the one for the kind the user then picked, and overwrite it.
clientside_callback(
    """function (kind, editId, isOpen, defaults) {
        const d = (defaults || {})[kind];
        if (!isOpen || (editId !== null && editId !== undefined) || !d) {
            return [window.dash_clientside.no_update, window.dash_clientside.no_update];
        }
        return d;
    }""",
    Output(FORM["comparison"], "value"), Output(FORM["threshold"], "value"),
    Input(FORM["kind"], "value"), State(EDIT_ID, "data"), State(EDITOR, "is_open"),
    State(KIND_DEFAULTS, "data"), prevent_initial_call=True)


@callback(Output(EDITOR, "is_open"),
          Input(NEW, "n_clicks"), Input({"type": ui.RULE_EDIT, "rule": ALL}, "n_clicks"),
          Input(CANCEL, "n_clicks"), prevent_initial_call=True)
def open_editor(_new, _edits, _cancel):
    if not ctx.triggered or not ctx.triggered[0].get("value"):
        return no_update  # buttons re-drawn by the refresh, not clicked
    trigger = ctx.triggered_id
    if trigger == CANCEL:
        return False
    actor, refusal = action_allowed("admin", "alert_rule_edit", "alerts page: rule editor")
    if actor is None:
        push_toast(refusal, "danger", title="Not allowed")
        return no_update
    if trigger == NEW:
        dash.set_props(EDIT_ID, {"data": None})
        dash.set_props(EDITOR_TITLE, {"children": "New alert rule"})
        _fill_form(None)
        return True
    rule_id = trigger["rule"]
    try:
        rule = svc.get_rule(_ops().store, rule_id)
    except svc.RuleNotFound as exc:
        push_toast(str(exc), "warning")
        dash.set_props(BUMP, {"data": time.time()})
        return no_update
    dash.set_props(EDIT_ID, {"data": rule_id})
    dash.set_props(EDITOR_TITLE, {"children": f"Edit rule · {rule['name']}"})
    _fill_form(rule)
    return True


@callback(Input(SAVE, "n_clicks"), State(EDIT_ID, "data"),
          *(State(FORM[f], "value") for f in FORM_FIELDS), prevent_initial_call=True)
def save(n_clicks, edit_id, *values):
    if not n_clicks:
        return
    data = form_data(*values)
    result = save_rule(edit_id, data)
    if result is None:
        return
    dash.set_props(EDITOR, {"is_open": False})
    dash.set_props(BUMP, {"data": time.time()})


def save_rule(edit_id: int | None, data: dict) -> dict | None:
    """Create or update (admin, audited); a refusal is shown in the form."""
    action = "alert_rule_update" if edit_id else "alert_rule_create"
    actor, refusal = action_allowed("admin", action, "alerts page: save rule")
    if actor is None:
        dash.set_props(FORM["error"], {"children": refusal})
        return None
    store = _ops().store
    try:
        if edit_id:
            rule = svc.update_rule(store, edit_id, data, actor=actor)
        else:
            rule = svc.create_rule(store, data, actor=actor)
    except svc.AlertError as exc:
        dash.set_props(FORM["error"], {"children": str(exc)})
        return None
    except SQLAlchemyError as exc:
        dash.set_props(FORM["error"], {"children": "The console's store is unavailable: "
                                                   + _short_error(exc)})
        return None
    push_toast(f"Rule {rule['name']!r} {'saved' if edit_id else 'created'}.", "success")
    return rule


@callback(Input({"type": ui.RULE_TOGGLE, "rule": ALL}, "n_clicks"), prevent_initial_call=True)
def toggle(_clicks):
    if not ctx.triggered or not ctx.triggered[0].get("value"):
        return
    rule_id = ctx.triggered_id["rule"]
    actor, refusal = action_allowed("admin", "alert_rule_update", f"alert_rule:{rule_id}")
    if actor is None:
        push_toast(refusal, "danger", title="Not allowed")
        return
    try:
        current = svc.get_rule(_ops().store, rule_id)
        rule = svc.update_rule(_ops().store, rule_id, {"enabled": not current["enabled"]},
                               actor=actor)
    except svc.AlertError as exc:
        push_toast(str(exc), "danger", title="Refused")
    except SQLAlchemyError as exc:
        push_toast(f"The console's store is unavailable ({_short_error(exc)}).", "danger")
    else:
        push_toast(f"Rule {rule['name']!r} {'enabled' if rule['enabled'] else 'disabled'}.",
                   "success")
    dash.set_props(BUMP, {"data": time.time()})


@callback(Input({"type": ui.RULE_TEST, "rule": ALL}, "n_clicks"), prevent_initial_call=True)
def test_hook(_clicks):
    if not ctx.triggered or not ctx.triggered[0].get("value"):
        return
    rule_id = ctx.triggered_id["rule"]
    actor, refusal = action_allowed("admin", "alert_webhook_test", f"alert_rule:{rule_id}")
    if actor is None:
        push_toast(refusal, "danger", title="Not allowed")
        return
    try:
        result = svc.send_test_webhook(_ops().store, rule_id, actor=actor)
    except svc.AlertError as exc:
        push_toast(str(exc), "danger", title="Refused")
        return
    except SQLAlchemyError as exc:
        push_toast(f"The console's store is unavailable ({_short_error(exc)}).", "danger")
        return
    if result["outcome"] == "delivered":
        push_toast(f"Test payload delivered (HTTP {result['status_code']}, attempt "
                   f"{result['attempts']}).", "success")
    else:
        push_toast(f"Test payload not delivered after {result['attempts']} attempts: "
                   f"{result['error']}", "danger")
    dash.set_props(BUMP, {"data": time.time()})


@callback(Input({"type": ui.RULE_DELETE, "rule": ALL}, "n_clicks"), prevent_initial_call=True)
def ask_delete(_clicks):
    if not ctx.triggered or not ctx.triggered[0].get("value"):
        return
    rule_id = ctx.triggered_id["rule"]
    actor, refusal = action_allowed("admin", "alert_rule_delete", f"alert_rule:{rule_id}")
    if actor is None:
        push_toast(refusal, "danger", title="Not allowed")
        return
    try:
        rule = svc.get_rule(_ops().store, rule_id)
    except (svc.AlertError, SQLAlchemyError) as exc:
        push_toast(str(exc), "warning")
        return
    dash.set_props(PENDING_DELETE, {"data": rule_id})
    dash.set_props(CONFIRM_TEXT, {"children": [
        "Delete the rule ", html.Strong(rule["name"]), "? Its alerts stay in the history; "
        "one that fires now is resolved."]})
    dash.set_props(CONFIRM.modal, {"is_open": True})


@callback(Input(CONFIRM.confirm, "n_clicks"), State(PENDING_DELETE, "data"),
          prevent_initial_call=True)
def confirmed_delete(n_clicks, rule_id):
    if not n_clicks or not rule_id:
        return
    dash.set_props(PENDING_DELETE, {"data": None})
    actor, refusal = action_allowed("admin", "alert_rule_delete", f"alert_rule:{rule_id}")
    if actor is None:
        push_toast(refusal, "danger", title="Not allowed")
        return
    try:
        result = svc.delete_rule(_ops().store, rule_id, actor=actor)
    except (svc.AlertError, SQLAlchemyError) as exc:
        push_toast(str(exc), "danger", title="Refused")
    else:
        push_toast(f"Rule {result['name']!r} deleted.", "success")
    dash.set_props(BUMP, {"data": time.time()})


@callback(Input(EVALUATE, "n_clicks"), prevent_initial_call=True)
def evaluate_now(n_clicks):
    if not n_clicks:
        return
    actor, refusal = action_allowed("admin", "alert_evaluate", "alerts page: evaluate now")
    if actor is None:
        push_toast(refusal, "danger", title="Not allowed")
        return
    try:
        result = svc.evaluate_now(_ops(), actor=actor)
    except SQLAlchemyError as exc:
        push_toast(f"The console's store is unavailable ({_short_error(exc)}).", "danger")
        return
    n, fired, resolved = result["evaluated"], len(result["fired"]), len(result["resolved"])
    push_toast(f"Evaluated {n} rule{'s' if n != 1 else ''}: {fired} fired, "
               f"{resolved} resolved.", "warning" if fired else "success")
    dash.set_props(BUMP, {"data": time.time()})
