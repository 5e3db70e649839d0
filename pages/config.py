"""Configuration: browse, edit, validate, save and roll back the files in
OPS_CONFIG_DIR.

Callbacks are thin: they call dashapp.services.config_files (the same
functions /api/config calls) and hand the results to dashapp.ui.config_editor.
The editor is CodeMirror 5 (assets/vendor/codemirror), bound to Dash by
assets/config-editor.js: a file loaded into DOC is shown in the editor; every
edit (debounced) lands in DRAFT, which the server validates, and the errors
come back in MARKS, which the editor marks at their lines. The Dash endpoint
only needs a sign-in, so saving and rolling back check the admin role here,
as their REST twins do, and are audited the same way. Non-admins see secret
values masked and a read-only editor. `?file=<name>` opens a file.
"""
from __future__ import annotations

import logging
from typing import Any

import dash
from dash import (ALL, ClientsideFunction, Input, Output, State, callback, clientside_callback,
                  ctx, dcc, html, no_update)
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from dashapp.security.auth import action_allowed, current_role
from dashapp.security.roles import role_allows
from dashapp.services import config_files as svc
from dashapp.store import _short_error
from dashapp.ui import config_editor as ui
from dashapp.ui.components import (confirm_dialog, confirm_ids, page_header, panel, push_toast,
                                   unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("config"))

# Component ids.
DOC = "config-doc"                 # the open file: name, version, content, ...
DRAFT = "config-draft"             # the editor's text, pushed by the glue
MARKS = "config-marks"             # validation errors the glue marks
LOADED = "config-loaded"           # the glue's receipt (unused by the server)
MARKED = "config-marked"
SAVE_REQUEST = "config-save-request"
EDITOR = "config-editor"           # CodeMirror mounts inside this div
HEAD = "config-head"
STATUS = "config-status"
ERRORS = "config-errors"
REASON = "config-reason"
SAVE = "config-save"
RELOAD = "config-reload"
REFRESH = "config-refresh"
FILES = "config-files"
HISTORY = "config-history"
NOTICE = "config-notice"
PENDING = "config-rollback-pending"
ROLLBACK_DIALOG = confirm_ids("config-rollback")
HISTORY_LIMIT = 50


# ----------------------------------------------------------------- helpers

def _ops():
    return current_app.extensions["ops"]


def _folder():
    return _ops().settings.config_folder


def _is_admin() -> bool:
    return role_allows(current_role(), "admin")


def _admin(what: str, name: str) -> str | None:
    """The caller's name when they are an admin; else a toast and an audited
    denial (the Dash endpoint itself only needs a sign-in), and None."""
    actor, refusal = action_allowed("admin", f"{what} a config file",
                                    f"config page: {what.lower()} {name}")
    if actor is None:
        push_toast(f"{what}: {refusal}", "danger", title="Not allowed")
    return actor


def _problem(exc: BaseException) -> str:
    """A failure as a sentence for the user (never a traceback)."""
    if isinstance(exc, SQLAlchemyError):
        return f"The console's store is unavailable: {_short_error(exc)}"
    if isinstance(exc, OSError):
        return f"The config folder cannot be used: {exc.strerror or exc}"
    return str(exc)


FAILURES = (svc.ConfigError, SQLAlchemyError, OSError)


def open_doc(name: str) -> dict:
    """The DOC store's value for file `name` (secrets masked for non-admins)."""
    admin = _is_admin()
    data = svc.read_file(_folder(), name, reveal=admin)
    return {**data, "editable": admin}


def load_history(name: str | None) -> Any:
    if not name:
        return ui.history_list(None, False)
    try:
        data = svc.history(_ops().store, _folder(), name, reveal=_is_admin(),
                           limit=HISTORY_LIMIT)
    except FAILURES as exc:
        return html.P(_problem(exc), className="text-danger small mb-0")
    return ui.history_list(data, _is_admin())


def load_files(selected: str | None) -> tuple[Any, dict | None]:
    """(the file browser, the listing) — or an unavailable card."""
    try:
        listing = svc.list_files(_ops().store, _folder())
    except FAILURES as exc:
        what = "The console's store" if isinstance(exc, SQLAlchemyError) else "The config folder"
        return unavailable_card(what, _problem(exc)), None
    return ui.file_list(listing, selected), listing


def check_draft(draft: dict | None, doc: dict | None) -> tuple:
    """(marks, status badges, error list, Save disabled) for the editor's text."""
    if not draft or not doc or draft.get("name") != doc.get("name"):
        return no_update, no_update, no_update, no_update
    content = draft.get("content") or ""
    try:
        result = svc.validate(_folder(), doc["name"], content)
    except FAILURES as exc:
        return [], None, html.P(_problem(exc), className="text-danger small mb-0"), True
    dirty = content != doc.get("content")
    blocked = not doc.get("editable") or not dirty or not result["valid"]
    return (result["errors"], ui.validation_status(result, dirty), ui.error_list(result),
            blocked)


# ------------------------------------------------------------------ layout

def _editor_panel(doc: dict | None, can_admin: bool) -> Any:
    save_row = html.Div([
        html.Label([html.Span("Reason for the change", className="visually-hidden"),
                    dcc.Input(id=REASON, type="text", value="", maxLength=svc.MAX_REASON,
                              placeholder="Why? (required to save)", autoComplete="off",
                              disabled=not can_admin, className="form-control")],
                   className="config-reason mb-0"),
        html.Button([ui.icon("save", "me-1"), "Save"], id=SAVE, n_clicks=0, type="button",
                    disabled=True, className="btn btn-primary",
                    title="Validate and save (admin)" if can_admin else "Needs the admin role"),
        html.Button([ui.icon("arrow-clockwise", "me-1"), "Reload"], id=RELOAD, n_clicks=0,
                    type="button", className="btn btn-outline-secondary",
                    title="Discard unsaved changes and load the file from disk"),
    ], className="config-save-row")
    return panel([
        html.Div(ui.editor_head(doc), id=HEAD, className="mb-2"),
        html.Div(id=STATUS, className="config-status"),
        html.Div(id=EDITOR, className="config-editor-host",
                 **{"aria-label": "File content editor"}),
        html.Div(id=ERRORS, className="mt-2"),
        save_row,
    ], title="Editor", subtitle="Checked as you type: syntax, and the JSON Schema "
                                "<name>.schema.json when one sits beside the file.")


def layout(file: str | None = None, **_query):
    can_admin = _is_admin()
    files_view, listing = load_files(None)
    names = [f["name"] for f in (listing or {}).get("files", [])]
    selected = file if file in names else (names[0] if names else None)
    doc, problem = None, None
    if file and file not in names:
        problem = f"No editable file called {file!r}."
    if selected:
        try:
            doc = open_doc(selected)
        except FAILURES as exc:
            problem = _problem(exc)
        files_view = ui.file_list(listing, selected)
    notice = []
    if not can_admin:
        notice.append(html.Div([ui.icon("eye-slash", "me-2"),
                                "Read-only: secret values are masked, and saving or rolling "
                                "back needs the admin role."],
                               className="alert alert-info py-2", id="config-readonly"))
    if problem:
        notice.append(html.Div([ui.icon("exclamation-triangle", "me-2"), problem],
                               className="alert alert-warning py-2", role="alert"))
    folder = str(_folder())
    return html.Div([
        dcc.Store(id=DOC, data=doc),
        dcc.Store(id=DRAFT, data=None),
        dcc.Store(id=MARKS, data=[]),
        dcc.Store(id=LOADED, data=None),
        dcc.Store(id=MARKED, data=None),
        dcc.Store(id=SAVE_REQUEST, data=None),
        dcc.Store(id=PENDING, data=None),
        page_header("Configuration", f"Files in {folder}. Every save is validated first, "
                                     "recorded with who and why, and can be rolled back.",
                    actions=html.Button([ui.icon("arrow-clockwise", "me-1"),
                                         "Refresh list"], id=REFRESH, n_clicks=0,
                                        type="button",
                                        className="btn btn-sm btn-outline-secondary")),
        html.Div(notice, id=NOTICE),
        html.Div([
            panel(html.Div(files_view, id=FILES), title="Files",
                  className="config-files-panel"),
            html.Div([
                _editor_panel(doc, can_admin),
                panel(html.Div(load_history(selected), id=HISTORY), title="History",
                      subtitle="Every version the console recorded, newest first."),
            ], className="ops-stack config-main"),
        ], className="config-layout"),
        confirm_dialog("config-rollback", "Roll back this file?",
                       html.Div(id="config-rollback-body"), confirm_label="Roll back",
                       danger=True),
    ], className="config-page")


# --------------------------------------------------------------- callbacks

clientside_callback(ClientsideFunction("config_editor", "load"),
                    Output(LOADED, "data"), Input(DOC, "data"))
clientside_callback(ClientsideFunction("config_editor", "mark"),
                    Output(MARKED, "data"), Input(MARKS, "data"))
clientside_callback(ClientsideFunction("config_editor", "content"),
                    Output(SAVE_REQUEST, "data"), Input(SAVE, "n_clicks"), State(DOC, "data"),
                    prevent_initial_call=True)


@callback(Output(MARKS, "data"), Output(STATUS, "children"), Output(ERRORS, "children"),
          Output(SAVE, "disabled"),
          Input(DRAFT, "data"), State(DOC, "data"), prevent_initial_call=True)
def validate_draft(draft, doc):
    """Validate the editor's text as the user types (the glue debounces)."""
    return check_draft(draft, doc)


@callback(Output(DOC, "data"), Output(HEAD, "children"), Output(HISTORY, "children"),
          Output(FILES, "children"), Output(REASON, "value"),
          Input({"type": ui.FILE_BUTTON, "name": ALL}, "n_clicks"),
          Input(SAVE_REQUEST, "data"), Input(ROLLBACK_DIALOG.confirm, "n_clicks"),
          Input(RELOAD, "n_clicks"), Input(REFRESH, "n_clicks"),
          State(DOC, "data"), State(REASON, "value"), State(PENDING, "data"),
          prevent_initial_call=True)
def act(_files, save_request, _confirm, _reload, _refresh, doc, reason, pending):
    """Open a file, save it, roll it back, reload it, or refresh the list."""
    trigger = ctx.triggered_id
    value = ctx.triggered[0].get("value") if ctx.triggered else None
    name = (doc or {}).get("name")
    keep = (no_update,) * 5
    if isinstance(trigger, dict) and trigger.get("type") == ui.FILE_BUTTON:
        if not value:
            return keep           # the list was re-rendered, not clicked
        name = trigger["name"]
    elif trigger == SAVE_REQUEST:
        if not save_request or not doc:
            return keep
        saved = save(doc, save_request.get("content") or "", reason)
        if saved is None:
            return keep
        reason = ""
    elif trigger == ROLLBACK_DIALOG.confirm:
        if not value or not pending or pending.get("name") != name:
            return keep
        if run_rollback(pending) is None:
            return keep
    elif trigger == REFRESH:
        files_view, _listing = load_files(name)
        return no_update, no_update, no_update, files_view, no_update
    if not name:
        return keep
    try:
        new_doc = open_doc(name)
    except FAILURES as exc:
        push_toast(f"Opening {name} failed. {_problem(exc)}", "danger")
        files_view, _listing = load_files(name)
        return no_update, no_update, no_update, files_view, no_update
    files_view, _listing = load_files(name)
    return (new_doc, ui.editor_head(new_doc), load_history(name), files_view,
            "" if trigger != SAVE_REQUEST else reason)


def save(doc: dict, content: str, reason: str | None) -> dict | None:
    """Save the editor's text (admin, audited). The result, or None after a
    toast saying why not."""
    actor = _admin("Saving", doc["name"])
    if actor is None:
        return None
    try:
        result = svc.save_file(_ops().store, _folder(), doc["name"], content,
                               expected_version=doc["version"], actor=actor, reason=reason,
                               via="page")
    except svc.InvalidContent as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" The first is on line {first['line']}." if first.get("line") else ""
        push_toast(f"Not saved: the content has {len(exc.errors)} error"
                   f"{'s' if len(exc.errors) != 1 else ''}.{where}", "danger")
        return None
    except svc.ReasonRequired as exc:
        push_toast(f"Not saved: {exc}", "warning")
        return None
    except svc.VersionConflict as exc:
        push_toast(f"Not saved: {exc}", "danger", duration=None)
        return None
    except FAILURES as exc:
        push_toast(f"Not saved. {_problem(exc)}", "danger")
        return None
    if result["changed"]:
        push_toast(f"Saved {doc['name']} (version {ui.short(result['version'])}).")
    else:
        push_toast("Nothing to save: the content is the file's already.", "info")
    return result


@callback(Output(ROLLBACK_DIALOG.modal, "is_open"), Output("config-rollback-body", "children"),
          Output(PENDING, "data"),
          Input({"type": ui.ROLLBACK_BUTTON, "id": ALL}, "n_clicks"), State(DOC, "data"),
          prevent_initial_call=True)
def ask_rollback(_clicks, doc):
    """Open the confirmation for the clicked history entry."""
    trigger = ctx.triggered_id
    value = ctx.triggered[0].get("value") if ctx.triggered else None
    if not isinstance(trigger, dict) or not value or not doc:
        return no_update, no_update, no_update
    try:
        data = svc.history(_ops().store, _folder(), doc["name"], reveal=_is_admin(),
                           limit=1000)
    except FAILURES as exc:
        push_toast(_problem(exc), "danger")
        return no_update, no_update, no_update
    change = next((c for c in data["changes"] if c["id"] == trigger["id"]), None)
    if change is None:
        push_toast("That version is no longer in the history.", "warning")
        return no_update, no_update, no_update
    pending = {"name": doc["name"], "id": change["id"], "version": change["version_after"],
               "expected": doc["version"]}
    return True, ui.rollback_text(change, doc["name"]), pending


def run_rollback(pending: dict) -> dict | None:
    """Write the pending version back (admin, audited); None after a toast."""
    actor = _admin("Rolling back", pending["name"])
    if actor is None:
        return None
    try:
        result = svc.rollback(_ops().store, _folder(), pending["name"], pending["version"],
                              actor=actor, expected_version=pending.get("expected"),
                              via="page")
    except FAILURES as exc:
        push_toast(f"Not rolled back. {_problem(exc)}", "danger", duration=None)
        return None
    push_toast(f"Rolled {pending['name']} back to version {ui.short(pending['version'])}.")
    return result
