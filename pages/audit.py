"""Audit trail (admin): every state change and security event with who,
what, target, outcome, IP and time; filters, a sortable grid, live refresh
and a CSV export of every matching event.

Callbacks are thin: they call dashapp.services.users (the same functions
GET /api/audit calls) and hand the results to dashapp.ui.admin. The Dash
endpoint only needs a sign-in, so the layout and every callback check the
admin role here; a non-admin sees a refusal card and no data.
"""
from __future__ import annotations

import csv
import io
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, clientside_callback, dcc, html, no_update
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from dashapp.security import audit
from dashapp.security.auth import action_allowed
from dashapp.services import users as svc
from dashapp.store import _short_error
from dashapp.ui import admin as ui
from dashapp.ui.components import (RANGES, page_header, panel, push_toast, range_picker,
                                   unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("audit"))

LIVE_MS = 10_000
PAGE_ROWS = 1000
EXPORT_ROWS = 100_000
ANY = "__any__"
ALL_TIME = 0
AUDIT_RANGES = tuple(RANGES) + ((ALL_TIME, "All"),)
DEFAULT_MINUTES = 1440

# Component ids
ACTOR = "audit-actor"
ACTION = "audit-action"
OUTCOME = "audit-outcome"
TARGET = "audit-target"
IP = "audit-ip"
RANGE = "audit-range"
LIVE = "audit-live"
LIVE_SWITCH = "audit-live-switch"
REFRESH = "audit-refresh"
EXPORT = "audit-export"
DOWNLOAD = "audit-download"
INFO = "audit-info"
STATUS = "audit-status"
HIDDEN = {"display": "none"}


def _store():
    return current_app.extensions["ops"].store


def _opt(value: Any) -> str | None:
    value = (value or "").strip() if isinstance(value, str) else value
    return None if value in (None, "", ANY) else value


def audit_filter(actor=None, action=None, outcome=None, target=None, ip=None,
                 minutes=DEFAULT_MINUTES, now: datetime | None = None) -> svc.AuditFilter:
    """The page's filter values as the service's filter."""
    since = None
    if minutes not in (None, ALL_TIME):
        since = (now or datetime.now(timezone.utc)) - timedelta(minutes=int(minutes))
    target = _opt(target)
    return svc.AuditFilter(actor=_opt(actor), action=_opt(action), outcome=_opt(outcome),
                           target=target[:255] if target else None,
                           ip=(_opt(ip) or "")[:64] or None, since=since)


def _options(values: list[str], label: str) -> list[dict]:
    return [{"label": label, "value": ANY}] + [{"label": v, "value": v} for v in values]


def render(flt: svc.AuditFilter) -> tuple:
    """(grid rows, info line, actor options, action options, status card)."""
    try:
        page = svc.audit_events(_store(), flt, limit=PAGE_ROWS)
        choices = svc.audit_choices(_store())
    except SQLAlchemyError as exc:
        logger.warning("audit page: store unavailable: %s", _short_error(exc))
        return ([], "", no_update, no_update,
                unavailable_card("The console's store", _short_error(exc)))
    rows = ui.audit_rows(page["events"])
    return (rows, ui.audit_info(page, len(rows)), _options(choices["actors"], "Anyone"),
            _options(choices["actions"], "Any action"), None)


# ------------------------------------------------------------------ layout

def _filters(actors: list[dict], actions: list[dict]) -> html.Div:
    outcomes = [{"label": "Any outcome", "value": ANY}] + [
        {"label": o, "value": o} for o in svc.OUTCOMES]
    return html.Div([
        ui.field("Who", dbc.Select(id=ACTOR, options=actors, value=ANY,
                                   size="sm"), className="ops-admin-filter"),
        ui.field("Action", dbc.Select(id=ACTION, options=actions,
                                      value=ANY, size="sm"), className="ops-admin-filter"),
        ui.field("Outcome", dbc.Select(id=OUTCOME, options=outcomes, value=ANY, size="sm"),
                 className="ops-admin-filter"),
        ui.field("Target contains", dbc.Input(id=TARGET, type="search", size="sm",
                                              debounce=True, maxLength=255,
                                              placeholder="e.g. user:alice"),
                 className="ops-admin-filter"),
        ui.field("IP", dbc.Input(id=IP, type="search", size="sm", debounce=True,
                                 maxLength=64, placeholder="exact"),
                 className="ops-admin-filter ops-admin-filter--narrow"),
        html.Div([html.Span("Time", className="form-label d-block mb-1"),
                  range_picker(RANGE, DEFAULT_MINUTES, AUDIT_RANGES)],
                 className="ops-admin-filter", role="group",
                 **{"aria-label": "Time range"}),
    ], className="ops-admin-filters")


def layout(**_query):
    header_text = ("Audit trail", "Who did what, to which target, with what outcome, "
                   "from where and when.")
    if not ui.caller_is_admin():
        action_allowed("admin", "view_page", "audit page")  # audits the denial
        return html.Div([page_header(*header_text), ui.admin_required_card(ui.caller_role())])
    rows, info, actors, actions, status = render(audit_filter())
    actions_bar = [
        dbc.Switch(id=LIVE_SWITCH, value=True, label="Live", class_name="ops-admin-live"),
        html.Button([html.I(className="bi bi-arrow-clockwise", **{"aria-hidden": "true"}),
                     html.Span("Refresh", className="ops-admin-btn-label")],
                    id=REFRESH, n_clicks=0, type="button", title="Refresh now",
                    className="btn btn-sm btn-outline-secondary"),
        html.Button([html.I(className="bi bi-download me-1", **{"aria-hidden": "true"}),
                     "Export CSV"], id=EXPORT, n_clicks=0, type="button",
                    title="Download every event that matches the filters",
                    className="btn btn-sm btn-primary"),
    ]
    if actors is no_update:
        actors, actions = _options([], "Anyone"), _options([], "Any action")
    filters = _filters(actors, actions)
    return html.Div([
        page_header(*header_text, actions=actions_bar),
        html.Div(status, id=STATUS),
        panel([
            filters,
            html.P(info, id=INFO, className="small text-body-secondary my-2",
                   role="status"),
            ui.audit_grid(rows),
        ], title="Events", subtitle="Newest first; click a header to sort. Times are UTC."),
        dcc.Download(id=DOWNLOAD),
        dcc.Interval(id=LIVE, interval=LIVE_MS),
    ], className="ops-admin ops-audit")


# --------------------------------------------------------------- callbacks

clientside_callback("function (on) { return !on; }", Output(LIVE, "disabled"),
                    Input(LIVE_SWITCH, "value"))

_FILTERS = [Input(ACTOR, "value"), Input(ACTION, "value"), Input(OUTCOME, "value"),
            Input(TARGET, "value"), Input(IP, "value"), Input(RANGE, "value")]


@callback(Output(ui.AUDIT_GRID, "rowData"), Output(INFO, "children"),
          Output(ACTOR, "options"), Output(ACTION, "options"), Output(STATUS, "children"),
          Input(LIVE, "n_intervals"), Input(REFRESH, "n_clicks"), *_FILTERS,
          prevent_initial_call=True)
def refresh(_n, _clicks, actor, action, outcome, target, ip, minutes):
    actor_name, refusal = action_allowed("admin", "audit_read", "audit page")
    if actor_name is None:
        return [], refusal, no_update, no_update, None
    return render(audit_filter(actor, action, outcome, target, ip, minutes))


def export_csv(flt: svc.AuditFilter, actor: str) -> tuple[str, int]:
    """(CSV text, number of events) for the filter, at most EXPORT_ROWS;
    the export is audited like GET /api/audit?format=csv."""
    text = "".join(svc.audit_csv(_store(), flt, max_rows=EXPORT_ROWS))
    count = sum(1 for _ in csv.reader(io.StringIO(text))) - 1
    details = {k: (v.isoformat() if isinstance(v, datetime) else v)
               for k, v in vars(flt).items() if v}
    audit.record(_store(), actor=actor, action="audit_export", outcome="success",
                 details={**details, "via": "page"})
    return text, count


@callback(Output(DOWNLOAD, "data"), Input(EXPORT, "n_clicks"),
          *[State(i.component_id, i.component_property) for i in _FILTERS],
          prevent_initial_call=True)
def export(n_clicks, actor, action, outcome, target, ip, minutes):
    if not n_clicks:
        return no_update
    actor_name, refusal = action_allowed("admin", "audit_export", "audit page: export")
    if actor_name is None:
        push_toast(refusal, "danger", title="Not allowed")
        return no_update
    try:
        text, count = export_csv(audit_filter(actor, action, outcome, target, ip, minutes),
                                 actor_name)
    except SQLAlchemyError as exc:
        push_toast(f"The console's store is unavailable: {_short_error(exc)}", "danger")
        return no_update
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = f"audit-{stamp}.csv"
    limit = f" (the newest {EXPORT_ROWS:,}; narrow the filters for older ones)" \
        if count >= EXPORT_ROWS else ""
    push_toast(f"Exported the matching events as {name}{limit}.")
    return {"content": text, "filename": name, "type": "text/csv"}
