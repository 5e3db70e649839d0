"""Ingest keys (admin): every application's keys with their prefix, note,
creator, last use and status; create one (the key and its OPS_DSN line are
shown once, with copy buttons) and revoke one (confirmed).

Callbacks are thin: they call dashapp.ingest.keys (the same functions
/api/ingest-keys calls, which audit every change) and hand the results to
dashapp.ui.ingest_keys. The Dash endpoint only needs a sign-in, so the
layout and every callback check the admin role here; a non-admin sees a
refusal card and no data. Every action ends with a toast.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, dcc, html, no_update
from flask import current_app, request
from sqlalchemy.exc import SQLAlchemyError

from dashapp.ingest import keys as svc
from dashapp.ingest.api import dsn_for
from dashapp.security.audit import AuditUnavailable
from dashapp.security.auth import action_allowed
from dashapp.store import _short_error
from dashapp.ui import admin
from dashapp.ui import ingest_keys as ui
from dashapp.ui.components import (confirm_dialog, confirm_ids, modal, page_header, panel,
                                   push_toast, unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("ingest_keys"))

# Component ids
BUMP = "ingest-keys-bump"
REFRESH = "ingest-keys-refresh"
STATUS = "ingest-keys-status"
MAIN = "ingest-keys-main"
ACTIVE = "ingest-keys-active"
APPS = "ingest-keys-apps"
SELECTED = "ingest-keys-selected"
SELECTION = "ingest-keys-selection"
NEW_OPEN = "ingest-keys-new-open"
NEW = "ingest-keys-new-modal"
NEW_APP = "ingest-keys-new-app"
NEW_NOTE = "ingest-keys-new-note"
NEW_SUBMIT = "ingest-keys-new-submit"
NEW_CLOSE = "ingest-keys-new-close"
NEW_ERROR = "ingest-keys-new-error"
NEW_RESULT = "ingest-keys-new-result"
REVOKE_OPEN = "ingest-keys-revoke-open"
REVOKE = confirm_ids("ingest-keys-revoke")
REVOKE_TEXT = "ingest-keys-revoke-text"
HIDDEN = {"display": "none"}
REFUSED = (svc.IngestError, AuditUnavailable, SQLAlchemyError)
TITLE = ("Ingest keys", "One key per application: its agent sends batches with it. "
                        "A key is shown once; every change is in the audit trail.")


def _store():
    return current_app.extensions["ops"].store


def _admin(action: str, target: str) -> str | None:
    """The acting admin's name, or None after a toast (the denial is audited)."""
    actor, refusal = action_allowed("admin", action, f"ingest keys page: {target}")
    if actor is None:
        push_toast(refusal, "danger", title="Not allowed")
    return actor


def _failed(what: str, exc: Exception) -> str:
    """A sentence for the user (and a toast) for a refused or failed action."""
    if isinstance(exc, SQLAlchemyError):  # AuditStoreDown too: the store is down
        text = f"the console's store is unavailable ({_short_error(exc)})."
    else:
        text = str(exc)
    push_toast(f"{what}: {text}", "danger",
               title="Refused" if isinstance(exc, svc.IngestError) else "Failed")
    return text


def _error(text: str | None):
    return None if not text else html.Div(text, className="alert alert-danger py-2 mb-0",
                                          role="alert")


def _bump() -> None:
    dash.set_props(BUMP, {"data": time.time()})


def render(active_only: bool = False) -> tuple:
    """(status card, main style, grid rows, application suggestions)."""
    try:
        keys = svc.list_keys(_store(), include_revoked=not active_only)
    except SQLAlchemyError as exc:
        logger.warning("ingest keys page: store unavailable: %s", _short_error(exc))
        return (unavailable_card("The console's store", _short_error(exc)), HIDDEN,
                no_update, no_update)
    return None, {}, ui.key_rows(keys), ui.app_options(keys)


# ------------------------------------------------------------------ layout

def _new_key_modal(apps: list) -> dbc.Modal:
    body = html.Div([
        admin.field("Application", dbc.Input(
            id=NEW_APP, type="text", maxLength=64, autoComplete="off", list=APPS,
            placeholder="e.g. shop"),
            "The name its agent sends as (the last part of OPS_DSN): 1-64 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit."),
        html.Datalist(apps, id=APPS),
        admin.field("Note", dbc.Input(id=NEW_NOTE, type="text", maxLength=200,
                                      autoComplete="off",
                                      placeholder="e.g. production web servers"),
                    "What or who uses this key, to recognise it later (optional)."),
        html.Div(id=NEW_ERROR),
        html.Div(id=NEW_RESULT, className="mt-2"),
    ])
    footer = [html.Button("Close", id=NEW_CLOSE, n_clicks=0, type="button",
                          className="btn btn-outline-secondary"),
              html.Button("Create key", id=NEW_SUBMIT, n_clicks=0, type="button",
                          className="btn btn-primary")]
    return modal(NEW, "New ingest key", body, footer, size="lg")


def layout(**_query):
    if not admin.caller_is_admin():
        action_allowed("admin", "view_page", "ingest keys page")  # audits the denial
        return html.Div([page_header(*TITLE), admin.admin_required_card(admin.caller_role())])
    status, style, rows, apps = render()
    if rows is no_update:
        rows, apps = [], []
    header_actions = [
        html.Button([html.I(className="bi bi-arrow-clockwise", **{"aria-hidden": "true"}),
                     html.Span("Refresh", className="ops-admin-btn-label")],
                    id=REFRESH, n_clicks=0, type="button", title="Refresh now",
                    className="btn btn-sm btn-outline-secondary"),
        html.Button([html.I(className="bi bi-plus-circle me-1", **{"aria-hidden": "true"}),
                     "New key"], id=NEW_OPEN, n_clicks=0, type="button",
                    className="btn btn-sm btn-primary"),
    ]
    toolbar = html.Div([
        html.Div(ui.selection_text(None), id=SELECTION, className="ops-admin-selection"),
        html.Div([
            dbc.Switch(id=ACTIVE, value=False, label="Hide revoked",
                       class_name="ops-admin-switch mb-0"),
            html.Button([html.I(className="bi bi-x-octagon me-1", **{"aria-hidden": "true"}),
                         "Revoke…"], id=REVOKE_OPEN, n_clicks=0, type="button",
                        disabled=True, className="btn btn-sm btn-outline-danger"),
        ], className="ops-admin-actions align-items-center"),
    ], className="ops-admin-toolbar")
    return html.Div([
        dcc.Store(id=BUMP, data=None),
        dcc.Store(id=SELECTED, data=None),
        page_header(*TITLE, actions=header_actions),
        html.Div(status, id=STATUS),
        html.Div(id=MAIN, style=style, className="ops-stack", children=[
            panel([toolbar, ui.keys_grid(rows)], title="Keys",
                  subtitle="Only a key's first characters are kept; the key itself is "
                           "shown once, when created. Last use is noted to the minute."),
        ]),
        _new_key_modal(apps),
        confirm_dialog("ingest-keys-revoke", "Revoke ingest key?",
                       html.Div(id=REVOKE_TEXT, className="ops-confirm__message"),
                       confirm_label="Revoke"),
    ], className="ops-admin ops-ingest-keys")


# --------------------------------------------------------------- callbacks

@callback(Output(STATUS, "children"), Output(MAIN, "style"), Output(ui.GRID, "rowData"),
          Output(APPS, "children"),
          Input(BUMP, "data"), Input(REFRESH, "n_clicks"), Input(ACTIVE, "value"),
          prevent_initial_call=True)
def refresh(_bump, _clicks, active_only):
    if _admin("ingest_keys_read", "list keys") is None:
        return no_update, no_update, no_update, no_update
    return render(bool(active_only))


@callback(Output(SELECTED, "data"), Output(SELECTION, "children"),
          Output(REVOKE_OPEN, "disabled"), Input(ui.GRID, "selectedRows"),
          prevent_initial_call=True)
def select_key(rows):
    row = (rows or [None])[0]
    if not row or not admin.caller_is_admin():
        return None, ui.selection_text(None), True
    chosen = {k: row.get(k) for k in ("id", "app", "prefix", "status", "revoked")}
    return chosen, ui.selection_text(chosen), row.get("status") != "active"


# ----- new key

@callback(Output(NEW, "is_open"), Input(NEW_OPEN, "n_clicks"), Input(NEW_CLOSE, "n_clicks"),
          prevent_initial_call=True)
def open_new(_open, _close):
    """Opening starts a clean form; closing drops the shown key from the page."""
    opening = ctx.triggered_id == NEW_OPEN
    if opening and _admin("ingest_key_create", "new key") is None:
        return no_update
    for id_, props in ((NEW_APP, {"value": ""}), (NEW_NOTE, {"value": ""}),
                       (NEW_ERROR, {"children": None}), (NEW_RESULT, {"children": None}),
                       (NEW_SUBMIT, {"disabled": False})):
        dash.set_props(id_, props)
    return opening


def create_key(app: str | None, note: str | None) -> tuple[Any, Any, bool]:
    """(error, result, submit disabled) after creating a key."""
    actor = _admin("ingest_key_create", f"new key for {(app or '')[:64]}")
    if actor is None:
        return _error("This needs the admin role."), None, False
    try:
        # Checked before the service so a typo is not an audited failure.
        name = svc.check_app_name(app or "")
        created = svc.create_key(_store(), actor=actor, app=name, note=(note or "").strip())
    except svc.IngestError as exc:
        return _error(str(exc)), None, False
    except REFUSED as exc:
        return _error(_failed("Create ingest key", exc)), None, False
    _bump()
    push_toast(f"Created ingest key {created['prefix']}… for {created['app']}.")
    dsn = dsn_for(created["key"], created["app"], request.host_url)
    return None, ui.key_reveal(created, dsn), True


@callback(Output(NEW_ERROR, "children"), Output(NEW_RESULT, "children"),
          Output(NEW_SUBMIT, "disabled"), Input(NEW_SUBMIT, "n_clicks"),
          State(NEW_APP, "value"), State(NEW_NOTE, "value"), prevent_initial_call=True)
def submit_new(n_clicks, app, note):
    if not n_clicks:
        return no_update, no_update, no_update
    return create_key(app, note)


# ----- revoke

@callback(Output(REVOKE.modal, "is_open"), Output(REVOKE_TEXT, "children"),
          Input(REVOKE_OPEN, "n_clicks"), State(SELECTED, "data"), prevent_initial_call=True)
def open_revoke(n_clicks, row):
    if not n_clicks or not row:
        return no_update, no_update
    if _admin("ingest_key_revoke", f"key {row.get('id')}") is None:
        return no_update, no_update
    return True, ui.revoke_message(row)


def revoke(key_id: int | None) -> None:
    actor = _admin("ingest_key_revoke", f"key {key_id}")
    if actor is None or not key_id:
        return
    try:
        row = svc.revoke_key(_store(), actor=actor, key_id=int(key_id))
    except REFUSED as exc:
        _failed("Revoke ingest key", exc)
        _bump()  # e.g. revoked meanwhile elsewhere: show the current state
        return
    _bump()
    dash.set_props(REVOKE_OPEN, {"disabled": True})
    dash.set_props(SELECTION, {"children": ui.selection_text(ui.key_rows([row])[0])})
    push_toast(f"Revoked ingest key {row['prefix']}… of {row['app']}; its next batch "
               "is refused.")


@callback(Input(REVOKE.confirm, "n_clicks"), State(SELECTED, "data"),
          prevent_initial_call=True)
def confirmed_revoke(n_clicks, row):
    if n_clicks and row:
        revoke(row.get("id"))
