"""Pure builders for the admin pages (Users, Audit trail): service results
in, components out. Usernames, token names, audit targets and details are
user-supplied, so they are always rendered as text (escaped by React),
never as HTML or markdown."""
from __future__ import annotations

import json
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashapp.security.roles import ROLES
from dashapp.ui.components import data_grid

USERS_GRID = "users-grid"
TOKENS_GRID = "users-tokens-grid"
AUDIT_GRID = "audit-grid"
ROLE_OPTIONS = [{"label": r, "value": r} for r in ROLES]
EXPIRY_OPTIONS = [{"label": "7 days", "value": "7"}, {"label": "30 days", "value": "30"},
                  {"label": "90 days", "value": "90"}, {"label": "1 year", "value": "365"},
                  {"label": "Never", "value": "never"}]
OUTCOME_CLASSES = {"success": "ops-admin-cell--ok", "failure": "ops-admin-cell--bad",
                   "denied": "ops-admin-cell--warn"}


def fmt_time(value: str | None) -> str:
    """'2026-11-26 14:03:05' (UTC) or '—'."""
    return value[:19].replace("T", " ") if value else "—"


# ----------------------------------------------------------- refusal

def caller_role() -> str | None:
    """The role of this request's caller (None when signed out)."""
    from dashapp.security.auth import current_principal
    principal = current_principal()
    return principal.role if principal else None


def caller_is_admin() -> bool:
    return caller_role() == "admin"


def admin_required_card(role: str | None) -> html.Div:
    """What a non-admin sees instead of an admin page: no data at all."""
    you = f"You are signed in as {role}." if role else "You are not signed in."
    return html.Div([
        html.Span(html.I(className="bi bi-shield-lock"), className="ops-empty__icon",
                  **{"aria-hidden": "true"}),
        html.H2("This page needs the admin role", className="ops-empty__title"),
        html.P([you, " Ask an admin if you need access."], className="ops-empty__text"),
    ], className="ops-empty ops-admin-refusal", id="admin-required", role="alert")


# ------------------------------------------------------------- users

USER_COLUMNS = [
    {"field": "username", "headerName": "User", "minWidth": 150},
    {"field": "role", "headerName": "Role", "maxWidth": 130,
     "cellClassRules": {"ops-admin-cell--strong": "params.value == 'admin'"}},
    {"field": "status", "headerName": "Status", "maxWidth": 140,
     "cellClassRules": {"ops-admin-cell--bad": "params.value == 'deactivated'",
                        "ops-admin-cell--ok": "params.value == 'active'"}},
    {"field": "tokens", "headerName": "Tokens", "maxWidth": 110, "type": "rightAligned",
     "filter": "agNumberColumnFilter"},
    {"field": "last_login", "headerName": "Last sign-in (UTC)", "minWidth": 185},
    {"field": "created", "headerName": "Created (UTC)", "minWidth": 185},
]


def user_rows(users: list[dict]) -> list[dict]:
    return [{"id": u["id"], "username": u["username"], "role": u["role"],
             "status": "active" if u["active"] else "deactivated", "active": u["active"],
             "tokens": u["tokens"], "last_login": fmt_time(u["last_login_at"]),
             "created": fmt_time(u["created_at"])} for u in users]


def _clickable(grid: html.Div, none_text: str) -> html.Div:
    """Rows select on click (the toolbar above acts on the selection). No
    static row count: the callbacks replace the rows; the pager counts."""
    ag = grid.children[1]
    ag.getRowId = "'' + params.data.id"
    ag.dashGridOptions = {**ag.dashGridOptions, "rowSelection": {"mode": "singleRow",
                                                                  "checkboxes": False,
                                                                  "enableClickSelection": True},
                          "rowStyle": {"cursor": "pointer"},
                          "localeText": {"noRowsToShow": none_text}}
    return grid


def users_grid(rows: list[dict]) -> html.Div:
    return _clickable(data_grid(USERS_GRID, rows, USER_COLUMNS, page_size=25,
                                csv_filename="users", row_count=False), "No users")


TOKEN_COLUMNS = [
    {"field": "username", "headerName": "User", "minWidth": 130},
    {"field": "name", "headerName": "Name", "minWidth": 150},
    {"field": "prefix", "headerName": "Starts with", "minWidth": 155,
     "cellClass": "ops-admin-mono"},
    {"field": "status", "headerName": "Status", "maxWidth": 120,
     "cellClassRules": {"ops-admin-cell--ok": "params.value == 'active'",
                        "ops-admin-cell--bad": "params.value == 'revoked'",
                        "ops-admin-cell--warn": "params.value == 'expired'"}},
    {"field": "created", "headerName": "Created (UTC)", "minWidth": 185},
    {"field": "expires", "headerName": "Expires (UTC)", "minWidth": 185},
    {"field": "last_used", "headerName": "Last used (UTC)", "minWidth": 185},
]


def token_rows(tokens: list[dict]) -> list[dict]:
    return [{"id": t["id"], "user_id": t["user_id"], "username": t["username"],
             "name": t["name"] or "—", "prefix": t["prefix"] + "…", "status": t["status"],
             "created": fmt_time(t["created_at"]),
             "expires": fmt_time(t["expires_at"]) if t["expires_at"] else "never",
             "last_used": fmt_time(t["last_used_at"]) if t["last_used_at"] else "never"}
            for t in tokens]


def tokens_grid(rows: list[dict]) -> html.Div:
    return _clickable(data_grid(TOKENS_GRID, rows, TOKEN_COLUMNS, page_size=10,
                                csv_filename="api-tokens", row_count=False), "No tokens")


def selection_text(user: dict | None) -> Any:
    if not user:
        return html.Span("Click a user to act on it.", className="text-body-secondary")
    state = "" if user["active"] else " · deactivated"
    return html.Span(["Selected: ", html.Strong(user["username"]),
                      html.Span(f" ({user['role']}{state})",
                                className="text-body-secondary")])


def secret_reveal(id_prefix: str, label: str, secret: str, note: str) -> html.Div:
    """A password or token shown once, with a copy button."""
    value_id = f"{id_prefix}-value"
    return html.Div([
        html.Div(label, className="form-label mb-1"),
        html.Div([
            html.Code(secret, id=value_id, className="ops-admin-secret__value"),
            dcc.Clipboard(target_id=value_id, title="Copy",
                          className="btn btn-sm btn-outline-secondary ops-admin-copy"),
        ], className="ops-admin-secret__row"),
        html.P([html.I(className="bi bi-exclamation-triangle me-1",
                       **{"aria-hidden": "true"}), note],
               className="ops-admin-secret__note mb-0"),
    ], className="ops-admin-secret", id=id_prefix)


def field(label: str, control: Any, help_text: str | None = None,
          className: str = "mb-3") -> html.Div:
    parts: list = [html.Label([html.Span(label, className="form-label d-block mb-1"),
                               control], className="d-block mb-0")]
    if help_text:
        parts.append(html.Div(help_text, className="form-text"))
    return html.Div(parts, className=className)


def password_choice(id_prefix: str) -> html.Div:
    """Generate a password (default) or type one."""
    return html.Div([
        dbc.RadioItems(id=f"{id_prefix}-mode", value="generate", inline=True,
                       options=[{"label": "Generate a password", "value": "generate"},
                                {"label": "Type a password", "value": "type"}],
                       class_name="mb-2"),
        html.Div(field("Password", dbc.Input(id=f"{id_prefix}-password", type="password",
                                             autoComplete="new-password", maxLength=1024),
                       "At least 8 characters.", className="mb-0"),
                 id=f"{id_prefix}-password-wrap", style={"display": "none"}),
    ], className="mb-1")


# ------------------------------------------------------------- audit

AUDIT_COLUMNS = [
    {"field": "time", "headerName": "Time (UTC)", "minWidth": 185, "sort": "desc"},
    {"field": "actor", "headerName": "Who", "minWidth": 110},
    {"field": "action", "headerName": "Action", "minWidth": 150},
    {"field": "target", "headerName": "Target", "minWidth": 180},
    {"field": "outcome", "headerName": "Outcome", "maxWidth": 125,
     "cellClassRules": {cls: f"params.value == '{o}'" for o, cls in OUTCOME_CLASSES.items()}},
    {"field": "ip", "headerName": "IP", "minWidth": 115},
    {"field": "details", "headerName": "Details", "minWidth": 220, "flex": 2,
     "tooltipField": "details"},
]


def audit_rows(events: list[dict]) -> list[dict]:
    rows = []
    for e in events:
        details = e.get("details")
        rows.append({"id": e["id"], "time": fmt_time(e["time"]), "actor": e["actor"],
                     "action": e["action"], "target": e["target"] or "—",
                     "outcome": e["outcome"], "ip": e["ip"] or "—",
                     "details": "" if not details else json.dumps(
                         details, sort_keys=True, default=str)})
    return rows


def audit_grid(rows: list[dict]) -> html.Div:
    grid = data_grid(AUDIT_GRID, rows, AUDIT_COLUMNS, page_size=50,
                     csv_filename="audit-page", search=True, row_count=False)
    ag = grid.children[1]
    ag.getRowId = "'' + params.data.id"
    ag.dashGridOptions = {**ag.dashGridOptions,
                          "localeText": {"noRowsToShow": "No events match"}}
    # The toolbar's own Export CSV button exports only the loaded rows; the
    # page's "Export CSV" downloads every matching event from the server.
    toolbar = grid.children[0]
    toolbar.children = [c for c in toolbar.children
                        if not (isinstance(getattr(c, "id", None), dict))
                        or c.id.get("type") != "ops-grid-export"]
    return grid


def audit_info(page: dict, shown: int) -> str:
    if not shown:
        return "No events match these filters."
    more = (" — newer first; narrow the filters, or Export CSV for every matching event"
            if page.get("has_more") else "")
    return f"{shown:,} event{'s' if shown != 1 else ''}{more}."
