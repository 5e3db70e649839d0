"""Users (admin): accounts with their role, status, last sign-in and token
count; create a user, change a role, reset a password (a generated one is
shown once), deactivate or activate (confirmed); API tokens of every user,
create one (shown once, with a copy button) and revoke (confirmed).

Callbacks are thin: they call dashapp.services.users (the same functions
/api/users calls, which audit every change) and hand the results to
dashapp.ui.admin. The Dash endpoint only needs a sign-in, so the layout and
every callback check the admin role here; a non-admin sees a refusal card
and no data. Every action ends with a toast.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from dashapp.security.auth import action_allowed
from dashapp.services import users as svc
from dashapp.store import _short_error
from dashapp.ui import admin as ui
from dashapp.ui.components import (confirm_dialog, confirm_ids, modal, page_header, panel,
                                   push_toast, unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("users"))

ALL = "__all__"

# Component ids
BUMP = "users-bump"
REFRESH = "users-refresh"
STATUS = "users-status"
MAIN = "users-main"
SELECTED = "users-selected"
SELECTION = "users-selection"
ROLE_OPEN = "users-role-open"
PASSWORD_OPEN = "users-password-open"
TOGGLE_OPEN = "users-toggle-open"
TOKEN_OPEN = "users-token-open"
NEW_OPEN = "users-new-open"
# new user modal
NEW = "users-new-modal"
NEW_NAME = "users-new-username"
NEW_ROLE = "users-new-role"
NEW_MODE = "users-new-mode"
NEW_PASSWORD = "users-new-password"
NEW_SUBMIT = "users-new-submit"
NEW_ERROR = "users-new-error"
NEW_RESULT = "users-new-result"
# role modal
ROLE = "users-role-modal"
ROLE_VALUE = "users-role-value"
ROLE_SUBMIT = "users-role-submit"
ROLE_ERROR = "users-role-error"
ROLE_WHO = "users-role-who"
# password modal
PW = "users-pw-modal"
PW_MODE = "users-pw-mode"
PW_PASSWORD = "users-pw-password"
PW_SUBMIT = "users-pw-submit"
PW_ERROR = "users-pw-error"
PW_RESULT = "users-pw-result"
PW_WHO = "users-pw-who"
# activate / deactivate
TOGGLE = confirm_ids("users-toggle")
TOGGLE_TEXT = "users-toggle-text"
# tokens
TOKENS_USER = "users-tokens-user"
TOKENS_ACTIVE = "users-tokens-active"
TOKEN_SELECTED = "users-token-selected"
TOKEN_SELECTION = "users-token-selection"
REVOKE_OPEN = "users-revoke-open"
REVOKE = confirm_ids("users-revoke")
REVOKE_TEXT = "users-revoke-text"
TOKEN = "users-token-modal"
TOKEN_USER = "users-token-user"
TOKEN_NAME = "users-token-name"
TOKEN_EXPIRY = "users-token-expiry"
TOKEN_SUBMIT = "users-token-submit"
TOKEN_ERROR = "users-token-error"
TOKEN_RESULT = "users-token-result"
HIDDEN = {"display": "none"}


# ----------------------------------------------------------------- helpers

def _store():
    return current_app.extensions["ops"].store


def _admin(action: str, target: str) -> str | None:
    """The acting admin's name, or None after a toast (the denial is audited)."""
    actor, refusal = action_allowed("admin", action, f"users page: {target}")
    if actor is None:
        push_toast(refusal, "danger", title="Not allowed")
    return actor


def _failed(what: str, exc: Exception) -> str:
    """A sentence for the user (and a toast) for a refused or failed action."""
    if isinstance(exc, svc.UsersError):
        text = str(exc)
    else:
        text = f"the console's store is unavailable ({_short_error(exc)})."
    push_toast(f"{what}: {text}", "danger", title="Refused"
               if isinstance(exc, svc.UsersError) else "Failed")
    return text


def _bump() -> None:
    dash.set_props(BUMP, {"data": time.time()})


def _error(text: str | None):
    return None if not text else html.Div(text, className="alert alert-danger py-2 mb-0",
                                          role="alert")


def _user(user_id: int | None) -> dict | None:
    if not user_id:
        return None
    try:
        return svc.get_user(_store(), int(user_id))
    except (svc.UsersError, SQLAlchemyError):
        return None


# ------------------------------------------------------------------ render

def render_users() -> tuple:
    """(status card, main style, user rows, token user options)."""
    try:
        users = svc.list_users(_store())
    except SQLAlchemyError as exc:
        logger.warning("users page: store unavailable: %s", _short_error(exc))
        return (unavailable_card("The console's store", _short_error(exc)), HIDDEN,
                no_update, no_update)
    return None, {}, ui.user_rows(users), user_options(users)


def user_options(users: list[dict]) -> list[dict]:
    return [{"label": u["username"] + ("" if u["active"] else " (deactivated)"),
             "value": str(u["id"])} for u in users]


def render_tokens(user_value: str | None, active_only: bool) -> list[dict]:
    user_id = int(user_value) if user_value and user_value != ALL else None
    try:
        return ui.token_rows(svc.list_tokens(_store(), user_id,
                                             include_inactive=not active_only))
    except (svc.NotFound, SQLAlchemyError):
        return []  # a user deleted meanwhile, or the store down (the status card says)


# ------------------------------------------------------------------ layout

def _new_user_modal():
    body = html.Div([
        ui.field("Username", dbc.Input(id=NEW_NAME, type="text", maxLength=64,
                                       autoComplete="off", placeholder="e.g. alice"),
                 f"{svc.USERNAME_RULE[:1].upper()}{svc.USERNAME_RULE[1:]}."),
        ui.field("Role", dbc.Select(id=NEW_ROLE, options=ui.ROLE_OPTIONS, value="viewer")),
        ui.password_choice("users-new"),
        html.Div(id=NEW_ERROR, className="mt-2"),
        html.Div(id=NEW_RESULT, className="mt-2"),
    ])
    footer = [html.Button("Close", id="users-new-close", n_clicks=0, type="button",
                          className="btn btn-outline-secondary"),
              html.Button("Create user", id=NEW_SUBMIT, n_clicks=0, type="button",
                          className="btn btn-primary")]
    return modal(NEW, "New user", body, footer)


def _role_modal():
    body = html.Div([
        html.P(id=ROLE_WHO, className="mb-2"),
        ui.field("Role", dbc.Select(id=ROLE_VALUE, options=ui.ROLE_OPTIONS, value="viewer"),
                 "viewer reads; operator also acts on jobs, cache and profiles; admin "
                 "can do everything, users included."),
        html.Div(id=ROLE_ERROR),
    ])
    footer = [html.Button("Cancel", id="users-role-close", n_clicks=0, type="button",
                          className="btn btn-outline-secondary"),
              html.Button("Save role", id=ROLE_SUBMIT, n_clicks=0, type="button",
                          className="btn btn-primary")]
    return modal(ROLE, "Change role", body, footer)


def _password_modal():
    body = html.Div([
        html.P(id=PW_WHO, className="mb-2"),
        ui.password_choice("users-pw"),
        html.P("Their sessions end at once; their API tokens keep working.",
               className="small text-body-secondary mt-2 mb-0"),
        html.Div(id=PW_ERROR, className="mt-2"),
        html.Div(id=PW_RESULT, className="mt-2"),
    ])
    footer = [html.Button("Close", id="users-pw-close", n_clicks=0, type="button",
                          className="btn btn-outline-secondary"),
              html.Button("Reset password", id=PW_SUBMIT, n_clicks=0, type="button",
                          className="btn btn-primary")]
    return modal(PW, "Reset password", body, footer)


def _token_modal(options: list[dict]):
    body = html.Div([
        ui.field("User", dbc.Select(id=TOKEN_USER, options=options, value=None)),
        ui.field("Name", dbc.Input(id=TOKEN_NAME, type="text", maxLength=100,
                                   autoComplete="off", placeholder="e.g. deploy script"),
                 "What uses it, to recognise it later."),
        ui.field("Expires after", dbc.Select(id=TOKEN_EXPIRY, options=ui.EXPIRY_OPTIONS,
                                             value="30")),
        html.Div(id=TOKEN_ERROR),
        html.Div(id=TOKEN_RESULT, className="mt-2"),
    ])
    footer = [html.Button("Close", id="users-token-close", n_clicks=0, type="button",
                          className="btn btn-outline-secondary"),
              html.Button("Create token", id=TOKEN_SUBMIT, n_clicks=0, type="button",
                          className="btn btn-primary")]
    return modal(TOKEN, "New API token", body, footer)


def _button(label: str, id: str, icon: str, kind: str = "outline-secondary") -> html.Button:
    return html.Button([html.I(className=f"bi bi-{icon} me-1", **{"aria-hidden": "true"}),
                        label], id=id, n_clicks=0, type="button", disabled=True,
                       className=f"btn btn-sm btn-{kind}")


def layout(**_query):
    title = ("Users", "Accounts, roles, password resets and API tokens. Every change is "
                      "in the audit trail.")
    if not ui.caller_is_admin():
        action_allowed("admin", "view_page", "users page")  # audits the denial
        return html.Div([page_header(*title), ui.admin_required_card(ui.caller_role())])
    status, style, rows, options = render_users()
    if rows is no_update:
        rows, options = [], []
    header_actions = [
        html.Button([html.I(className="bi bi-arrow-clockwise", **{"aria-hidden": "true"}),
                     html.Span("Refresh", className="ops-admin-btn-label")],
                    id=REFRESH, n_clicks=0, type="button", title="Refresh now",
                    className="btn btn-sm btn-outline-secondary"),
        html.Button([html.I(className="bi bi-person-plus me-1", **{"aria-hidden": "true"}),
                     "New user"], id=NEW_OPEN, n_clicks=0, type="button",
                    className="btn btn-sm btn-primary"),
    ]
    user_actions = html.Div([
        html.Div(ui.selection_text(None), id=SELECTION, className="ops-admin-selection"),
        html.Div([
            _button("Change role…", ROLE_OPEN, "person-gear"),
            _button("Reset password…", PASSWORD_OPEN, "key"),
            _button("Deactivate…", TOGGLE_OPEN, "person-x"),
            _button("New token…", TOKEN_OPEN, "plus-circle"),
        ], className="ops-admin-actions"),
    ], className="ops-admin-toolbar")
    token_filters = html.Div([
        ui.field("User", dbc.Select(id=TOKENS_USER, value=ALL, size="sm",
                                    options=[{"label": "All users", "value": ALL}] + options),
                 className="ops-admin-filter"),
        dbc.Switch(id=TOKENS_ACTIVE, value=False, label="Hide revoked and expired",
                   class_name="ops-admin-switch"),
    ], className="ops-admin-filters")
    token_actions = html.Div([
        html.Div("Click a token to revoke it.", id=TOKEN_SELECTION,
                 className="ops-admin-selection text-body-secondary"),
        html.Div([
            _button("Revoke…", REVOKE_OPEN, "x-octagon", "outline-danger"),
            html.Button([html.I(className="bi bi-plus-circle me-1",
                                **{"aria-hidden": "true"}), "New token…"],
                        id="users-token-open-any", n_clicks=0, type="button",
                        className="btn btn-sm btn-outline-primary"),
        ], className="ops-admin-actions"),
    ], className="ops-admin-toolbar")
    return html.Div([
        dcc.Store(id=BUMP, data=None),
        dcc.Store(id=SELECTED, data=None),
        dcc.Store(id=TOKEN_SELECTED, data=None),
        page_header(*title, actions=header_actions),
        html.Div(status, id=STATUS),
        html.Div(id=MAIN, style=style, className="ops-stack", children=[
            panel([user_actions, ui.users_grid(rows)], title="Accounts",
                  subtitle="Click a user to change their role, reset their password, "
                           "deactivate them or give them a token."),
            panel([token_filters, token_actions,
                   ui.tokens_grid(render_tokens(ALL, False))],
                  title="API tokens", subtitle="Only a token's first characters are "
                  "kept in view; the token itself is shown once, when created."),
        ]),
        _new_user_modal(), _role_modal(), _password_modal(), _token_modal(options),
        confirm_dialog("users-toggle", "Are you sure?",
                       html.Div(id=TOGGLE_TEXT, className="ops-confirm__message"),
                       confirm_label="Yes, do it"),
        confirm_dialog("users-revoke", "Revoke token?",
                       html.Div(id=REVOKE_TEXT, className="ops-confirm__message"),
                       confirm_label="Revoke"),
    ], className="ops-admin ops-users")


# --------------------------------------------------------------- callbacks

for _prefix in ("users-new", "users-pw"):
    clientside_callback(
        "function (mode) { return mode === 'type' ? {} : {display: 'none'}; }",
        Output(f"{_prefix}-password-wrap", "style"), Input(f"{_prefix}-mode", "value"))


@callback(Output(STATUS, "children"), Output(MAIN, "style"), Output(ui.USERS_GRID, "rowData"),
          Output(TOKENS_USER, "options"), Output(TOKEN_USER, "options"),
          Input(BUMP, "data"), Input(REFRESH, "n_clicks"), prevent_initial_call=True)
def refresh_users(_bump, _clicks):
    if _admin("users_read", "list users") is None:
        return no_update, no_update, no_update, no_update, no_update
    status, style, rows, options = render_users()
    every = ([{"label": "All users", "value": ALL}] + options) if options is not no_update \
        else no_update
    return status, style, rows, every, options


@callback(Output(ui.TOKENS_GRID, "rowData"),
          Input(BUMP, "data"), Input(REFRESH, "n_clicks"), Input(TOKENS_USER, "value"),
          Input(TOKENS_ACTIVE, "value"), prevent_initial_call=True)
def refresh_tokens(_bump, _clicks, user_value, active_only):
    if _admin("users_read", "list tokens") is None:
        return no_update
    return render_tokens(user_value, bool(active_only))


def selection_state(user: dict | None) -> tuple:
    """(selected store, text, role/password/toggle/token disabled, toggle label)."""
    if not user:
        return None, ui.selection_text(None), True, True, True, True, \
            [html.I(className="bi bi-person-x me-1"), "Deactivate…"]
    label = ([html.I(className="bi bi-person-x me-1"), "Deactivate…"] if user["active"]
             else [html.I(className="bi bi-person-check me-1"), "Activate…"])
    return ({"id": user["id"], "username": user["username"]}, ui.selection_text(user),
            False, False, False, not user["active"], label)


@callback(Output(SELECTED, "data"), Output(SELECTION, "children"),
          Output(ROLE_OPEN, "disabled"), Output(PASSWORD_OPEN, "disabled"),
          Output(TOGGLE_OPEN, "disabled"), Output(TOKEN_OPEN, "disabled"),
          Output(TOGGLE_OPEN, "children"),
          Input(ui.USERS_GRID, "selectedRows"), Input(ui.USERS_GRID, "rowData"),
          State(SELECTED, "data"), prevent_initial_call=True)
def select_user(rows, _data, selected):
    """The selected user (kept across refreshes) is the one the buttons act on."""
    if ctx.triggered_id == ui.USERS_GRID and ctx.triggered and \
            ctx.triggered[0]["prop_id"].endswith("selectedRows"):
        row = (rows or [None])[0]
        user_id = row.get("id") if row else None
    else:
        user_id = (selected or {}).get("id")
    if not ui.caller_is_admin():
        return selection_state(None)
    return selection_state(_user(user_id))


# ----- new user

@callback(Output(NEW, "is_open"), Input(NEW_OPEN, "n_clicks"),
          Input("users-new-close", "n_clicks"), prevent_initial_call=True)
def open_new(_open, _close):
    if ctx.triggered_id != NEW_OPEN:
        return False
    if _admin("user_create", "new user") is None:
        return no_update
    for id_, props in ((NEW_NAME, {"value": ""}), (NEW_ROLE, {"value": "viewer"}),
                       (NEW_MODE, {"value": "generate"}), (NEW_PASSWORD, {"value": ""}),
                       (NEW_ERROR, {"children": None}), (NEW_RESULT, {"children": None}),
                       (NEW_SUBMIT, {"disabled": False})):
        dash.set_props(id_, props)
    return True


def _password_form(action: str, target: str, mode: str | None, password: str | None,
                   run: Callable[[str, str | None], dict], *, secret_id: str, failed: str,
                   toast: Callable[[dict], str], reveal: Callable[[dict], tuple[str, str]],
                   typed_note: Callable[[dict], str]) -> tuple[Any, Any, bool]:
    """(error, result, submit disabled) of a form that sets a password (new
    user, reset): the admin check, the typed-or-generated choice, the call
    `run(actor, typed password or None)`, and the generated password shown
    once (`reveal` gives its title and note) or a line saying the typed one
    is in place."""
    actor = _admin(action, target)
    if actor is None:
        return _error("This needs the admin role."), None, False
    typed = password if mode == "type" else None
    if mode == "type" and not typed:
        return _error(f"Type a password of at least {svc.MIN_PASSWORD} characters, "
                      "or choose to generate one."), None, False
    try:
        done = run(actor, typed)
    except (svc.UsersError, SQLAlchemyError) as exc:
        return _error(_failed(failed, exc)), None, False
    push_toast(toast(done))
    if done["password"]:
        title, note = reveal(done)
        return None, ui.secret_reveal(secret_id, title, done["password"], note), True
    return None, html.Div(typed_note(done), className="alert alert-success py-2 mb-0"), True


def create_user(username: str | None, role: str | None, mode: str | None,
                password: str | None) -> tuple[Any, Any, bool]:
    """(error, result, submit disabled) after creating a user."""
    def run(actor: str, typed: str | None) -> dict:
        user = svc.create_user(_store(), actor=actor, username=username or "",
                               role=role or "viewer", password=typed)
        _bump()
        return user
    return _password_form(
        "user_create", f"create {username or ''}", mode, password, run,
        secret_id="users-new-secret", failed="Create user", toast=lambda u: f"Created {u['username']} ({u['role']}).",
        reveal=lambda u: (f"Password for {u['username']}", "Shown once: copy it now and "
                          "hand it over safely. It cannot be shown again."),
        typed_note=lambda u: f"Created {u['username']} with the password you typed.")


@callback(Output(NEW_ERROR, "children"), Output(NEW_RESULT, "children"),
          Output(NEW_SUBMIT, "disabled"), Input(NEW_SUBMIT, "n_clicks"),
          State(NEW_NAME, "value"), State(NEW_ROLE, "value"), State(NEW_MODE, "value"),
          State(NEW_PASSWORD, "value"), prevent_initial_call=True)
def submit_new(n_clicks, username, role, mode, password):
    if not n_clicks:
        return no_update, no_update, no_update
    return create_user(username, role, mode, password)


# ----- role

@callback(Output(ROLE, "is_open"), Input(ROLE_OPEN, "n_clicks"),
          Input("users-role-close", "n_clicks"), State(SELECTED, "data"),
          prevent_initial_call=True)
def open_role(_open, _close, selected):
    if ctx.triggered_id != ROLE_OPEN:
        return False
    user = _user((selected or {}).get("id"))
    if user is None or _admin("user_role", f"role of {user['username']}") is None:
        return no_update
    dash.set_props(ROLE_WHO, {"children": ["Role of ", html.Strong(user["username"]),
                                           f" (now {user['role']})."]})
    dash.set_props(ROLE_VALUE, {"value": user["role"]})
    dash.set_props(ROLE_ERROR, {"children": None})
    return True


def change_role(user_id: int | None, role: str | None) -> tuple[bool, Any]:
    """(modal open, error) after changing a role."""
    user = _user(user_id)
    if user is None:
        return True, _error("This user no longer exists.")
    actor = _admin("user_role", f"role of {user['username']}")
    if actor is None:
        return True, _error("This needs the admin role.")
    try:
        changed = svc.update_user(_store(), actor=actor, user_id=user["id"], role=role)
    except (svc.UsersError, SQLAlchemyError) as exc:
        return True, _error(_failed(f"Change role of {user['username']}", exc))
    _bump()
    push_toast(f"{changed['username']} is now {changed['role']}.")
    return False, None


@callback(Output(ROLE, "is_open", allow_duplicate=True), Output(ROLE_ERROR, "children"),
          Input(ROLE_SUBMIT, "n_clicks"), State(SELECTED, "data"), State(ROLE_VALUE, "value"),
          prevent_initial_call=True)
def submit_role(n_clicks, selected, role):
    if not n_clicks:
        return no_update, no_update
    return change_role((selected or {}).get("id"), role)


# ----- password

@callback(Output(PW, "is_open"), Input(PASSWORD_OPEN, "n_clicks"),
          Input("users-pw-close", "n_clicks"), State(SELECTED, "data"),
          prevent_initial_call=True)
def open_password(_open, _close, selected):
    if ctx.triggered_id != PASSWORD_OPEN:
        return False
    user = _user((selected or {}).get("id"))
    if user is None or _admin("user_password", f"password of {user['username']}") is None:
        return no_update
    dash.set_props(PW_WHO, {"children": ["New password for ", html.Strong(user["username"]),
                                         "."]})
    for id_, props in ((PW_MODE, {"value": "generate"}), (PW_PASSWORD, {"value": ""}),
                       (PW_ERROR, {"children": None}), (PW_RESULT, {"children": None}),
                       (PW_SUBMIT, {"disabled": False})):
        dash.set_props(id_, props)
    return True


def reset_password(user_id: int | None, mode: str | None,
                   password: str | None) -> tuple[Any, Any, bool]:
    """(error, result, submit disabled) after a password reset."""
    user = _user(user_id)
    if user is None:
        return _error("This user no longer exists."), None, False
    name = user["username"]
    return _password_form(
        "user_password", f"password of {name}", mode, password,
        lambda actor, typed: svc.reset_password(_store(), actor=actor, user_id=user["id"],
                                                password=typed),
        secret_id="users-pw-secret", failed=f"Reset password of {name}",
        toast=lambda _r: f"New password set for {name}; their sessions ended.",
        reveal=lambda _r: (f"New password for {name}",
                           "Shown once: copy it now. It cannot be shown again."),
        typed_note=lambda _r: f"{name} now has the password you typed.")


@callback(Output(PW_ERROR, "children"), Output(PW_RESULT, "children"),
          Output(PW_SUBMIT, "disabled"), Input(PW_SUBMIT, "n_clicks"),
          State(SELECTED, "data"), State(PW_MODE, "value"), State(PW_PASSWORD, "value"),
          prevent_initial_call=True)
def submit_password(n_clicks, selected, mode, password):
    if not n_clicks:
        return no_update, no_update, no_update
    return reset_password((selected or {}).get("id"), mode, password)


# ----- activate / deactivate

@callback(Output(TOGGLE.modal, "is_open"), Output(TOGGLE_TEXT, "children"),
          Input(TOGGLE_OPEN, "n_clicks"), State(SELECTED, "data"), prevent_initial_call=True)
def open_toggle(n_clicks, selected):
    user = _user((selected or {}).get("id"))
    if not n_clicks or user is None:
        return no_update, no_update
    if user["active"]:
        action = "user_deactivate"
        text = [f"Deactivate {user['username']}? ", "They are signed out at once, cannot "
                "sign in, and their API tokens stop working until you activate them again."]
    else:
        action = "user_activate"
        text = [f"Activate {user['username']}? ", "They can sign in again and their "
                "unrevoked, unexpired API tokens work again."]
    if _admin(action, user["username"]) is None:
        return no_update, no_update
    return True, text


def toggle_active(user_id: int | None) -> None:
    user = _user(user_id)
    if user is None:
        push_toast("This user no longer exists.", "danger")
        return
    verb = "Deactivate" if user["active"] else "Activate"
    actor = _admin(f"user_{verb.lower()}", user["username"])
    if actor is None:
        return
    try:
        changed = svc.update_user(_store(), actor=actor, user_id=user["id"],
                                  active=not user["active"])
    except (svc.UsersError, SQLAlchemyError) as exc:
        _failed(f"{verb} {user['username']}", exc)
        return
    _bump()
    push_toast(f"{changed['username']} is {'active' if changed['active'] else 'deactivated'}"
               + ("" if changed["active"] else "; their sessions and tokens no longer work")
               + ".")


@callback(Input(TOGGLE.confirm, "n_clicks"), State(SELECTED, "data"),
          prevent_initial_call=True)
def confirmed_toggle(n_clicks, selected):
    if n_clicks:
        toggle_active((selected or {}).get("id"))


# ----- tokens

@callback(Output(TOKEN, "is_open"), Input(TOKEN_OPEN, "n_clicks"),
          Input("users-token-open-any", "n_clicks"), Input("users-token-close", "n_clicks"),
          State(SELECTED, "data"), State(TOKEN_USER, "options"), prevent_initial_call=True)
def open_token(_open, _any, _close, selected, options):
    if ctx.triggered_id not in (TOKEN_OPEN, "users-token-open-any"):
        return False
    if _admin("token_create", "new token") is None:
        return no_update
    chosen = str((selected or {}).get("id") or "") if ctx.triggered_id == TOKEN_OPEN else ""
    values = [o["value"] for o in options or []]
    dash.set_props(TOKEN_USER, {"value": chosen if chosen in values else
                                (values[0] if values else None)})
    for id_, props in ((TOKEN_NAME, {"value": ""}), (TOKEN_EXPIRY, {"value": "30"}),
                       (TOKEN_ERROR, {"children": None}), (TOKEN_RESULT, {"children": None}),
                       (TOKEN_SUBMIT, {"disabled": False})):
        dash.set_props(id_, props)
    return True


def create_token(user_value: str | None, name: str | None,
                 expiry: str | None) -> tuple[Any, Any, bool]:
    """(error, result, submit disabled) after creating a token."""
    actor = _admin("token_create", "new token")
    if actor is None:
        return _error("This needs the admin role."), None, False
    try:
        user_id = int(user_value)
    except (TypeError, ValueError):
        return _error("Choose a user."), None, False
    days = None if expiry == "never" else int(expiry or 30)
    try:
        token = svc.create_token(_store(), actor=actor, user_id=user_id,
                                 name=(name or "").strip()[:100], expires_in_days=days)
    except (svc.UsersError, SQLAlchemyError) as exc:
        return _error(_failed("Create token", exc)), None, False
    _bump()
    push_toast(f"Created token {token['prefix']}… for {token['username']}.")
    return None, ui.secret_reveal(
        "users-token-secret", f"API token for {token['username']}", token["token"],
        "Shown once: copy it now. Send it as 'Authorization: Bearer <token>'."), True


@callback(Output(TOKEN_ERROR, "children"), Output(TOKEN_RESULT, "children"),
          Output(TOKEN_SUBMIT, "disabled"), Input(TOKEN_SUBMIT, "n_clicks"),
          State(TOKEN_USER, "value"), State(TOKEN_NAME, "value"), State(TOKEN_EXPIRY, "value"),
          prevent_initial_call=True)
def submit_token(n_clicks, user_value, name, expiry):
    if not n_clicks:
        return no_update, no_update, no_update
    return create_token(user_value, name, expiry)


@callback(Output(TOKEN_SELECTED, "data"), Output(TOKEN_SELECTION, "children"),
          Output(REVOKE_OPEN, "disabled"), Input(ui.TOKENS_GRID, "selectedRows"),
          prevent_initial_call=True)
def select_token(rows):
    row = (rows or [None])[0]
    if not row or not ui.caller_is_admin():
        return None, "Click a token to revoke it.", True
    text = html.Span(["Selected: ", html.Strong(row["prefix"]), f" of {row['username']}",
                      f" ({row['status']})"])
    return ({"id": row["id"], "prefix": row["prefix"], "username": row["username"]}, text,
            row["status"] == "revoked")


@callback(Output(REVOKE.modal, "is_open"), Output(REVOKE_TEXT, "children"),
          Input(REVOKE_OPEN, "n_clicks"), State(TOKEN_SELECTED, "data"),
          prevent_initial_call=True)
def open_revoke(n_clicks, token):
    if not n_clicks or not token:
        return no_update, no_update
    if _admin("token_revoke", f"token {token['id']}") is None:
        return no_update, no_update
    return True, (f"Revoke token {token['prefix']} of {token['username']}? Scripts using "
                  "it get 401 from now on. This cannot be undone.")


def revoke(token_id: int | None) -> None:
    actor = _admin("token_revoke", f"token {token_id}")
    if actor is None or not token_id:
        return
    try:
        row = svc.revoke_token(_store(), actor=actor, token_id=int(token_id))
    except (svc.UsersError, SQLAlchemyError) as exc:
        _failed("Revoke token", exc)
        return
    _bump()
    dash.set_props(REVOKE_OPEN, {"disabled": True})
    push_toast(f"Revoked token {row['prefix']}… of {row['username']}.")


@callback(Input(REVOKE.confirm, "n_clicks"), State(TOKEN_SELECTED, "data"),
          prevent_initial_call=True)
def confirmed_revoke(n_clicks, token):
    if n_clicks and token:
        revoke(token.get("id"))
