"""Pure builders for the Ingest keys page: service results in, components
out. Application names and notes are user-supplied, so they are rendered
as text (escaped by React), never as HTML or markdown."""
from __future__ import annotations

from typing import Any

from dash import dcc, html

from dashapp.ui.admin import _clickable, fmt_time
from dashapp.ui.components import data_grid

GRID = "ingest-keys-grid"
SECRET = "ingest-keys-secret"

COLUMNS = [
    {"field": "app", "headerName": "Application", "minWidth": 140,
     "cellClass": "ops-admin-cell--strong"},
    {"field": "prefix", "headerName": "Starts with", "minWidth": 165,
     "cellClass": "ops-admin-mono"},
    {"field": "note", "headerName": "Note", "minWidth": 150, "flex": 2,
     "tooltipField": "note"},
    {"field": "status", "headerName": "Status", "minWidth": 105, "maxWidth": 120,
     "tooltipField": "revoked",
     "cellClassRules": {"ops-admin-cell--ok": "params.value == 'active'",
                        "ops-admin-cell--bad": "params.value == 'revoked'"}},
    {"field": "created_by", "headerName": "Created by", "minWidth": 115},
    # "text": AG Grid would infer a date column from the first row and then
    # draw "never" as an empty cell.
    {"field": "created", "headerName": "Created (UTC)", "minWidth": 170,
     "cellDataType": "text"},
    {"field": "last_used", "headerName": "Last used (UTC)", "minWidth": 170,
     "cellDataType": "text"},
]


def key_rows(keys: list[dict]) -> list[dict]:
    """Grid rows from keys.list_keys(): never the key, only its prefix.
    `revoked` (when and by whom) is the status cell's tooltip."""
    return [{"id": k["id"], "app": k["app"], "prefix": k["prefix"] + "…",
             "note": k["note"] or "—", "status": "active" if k["active"] else "revoked",
             "created_by": k["created_by"], "created": fmt_time(k["created_at"]),
             "last_used": fmt_time(k["last_used_at"]) if k["last_used_at"] else "never",
             "revoked": None if k["active"] else
             f"Revoked {fmt_time(k['revoked_at'])} UTC by {k['revoked_by'] or '?'}"}
            for k in keys]


def keys_grid(rows: list[dict]) -> html.Div:
    return _clickable(data_grid(GRID, rows, COLUMNS, page_size=25,
                                csv_filename="ingest-keys", row_count=False),
                      "No ingest keys yet: create one with New key")


def app_options(keys: list[dict]) -> list[html.Option]:
    """The applications that have keys, offered while typing a name."""
    return [html.Option(value=app) for app in sorted({k["app"] for k in keys})]


def selection_text(row: dict | None) -> Any:
    if not row:
        return html.Span("Click a key to revoke it.", className="text-body-secondary")
    state = row["status"]
    if state == "revoked" and row.get("revoked"):
        state = "r" + row["revoked"][1:]  # "revoked <when> UTC by <who>"
    return html.Span(["Selected: ", html.Strong(row["prefix"]), f" of {row['app']}",
                      html.Span(f" ({state})", className="text-body-secondary")])


def _copy_row(value_id: str, value: str, label: str) -> html.Div:
    # break-all: a long key wraps evenly instead of at its first '-'
    return html.Div([
        html.Code(value, id=value_id, className="ops-admin-secret__value",
                  style={"wordBreak": "break-all"}),
        dcc.Clipboard(target_id=value_id, title=f"Copy {label}",
                      className="btn btn-sm btn-outline-secondary ops-admin-copy"),
    ], className="ops-admin-secret__row")


def key_reveal(created: dict, dsn: str) -> html.Div:
    """A new key and its OPS_DSN line, shown once, each with a copy button."""
    return html.Div([
        html.Div(["Ingest key for ", html.Strong(created["app"])], className="form-label mb-1"),
        _copy_row(f"{SECRET}-value", created["key"], "the key"),
        html.Div(["Put this line in the application's environment:"],
                 className="form-label mt-3 mb-1"),
        _copy_row(f"{SECRET}-dsn", f"OPS_DSN={dsn}", "the OPS_DSN line"),
        html.P("It names this console as your browser reaches it; use the address your "
               "application reaches it under if that differs.",
               className="form-text mb-0"),
        html.P([html.I(className="bi bi-exclamation-triangle me-1", **{"aria-hidden": "true"}),
                html.Strong("You will not see this key again. "),
                "Copy it now: the console keeps only its first characters. If it is lost, "
                "create a new key and revoke this one."],
               className="ops-admin-secret__note mb-0", role="alert"),
    ], className="ops-admin-secret", id=SECRET)


def revoke_message(row: dict) -> list:
    return ["Revoke key ", html.Strong(row["prefix"]), " of ", html.Strong(row["app"]),
            "? Agents sending with it are refused (401) from their next batch until "
            "they get a new key. This cannot be undone."]
