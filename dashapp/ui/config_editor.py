"""Pure builders for the Configuration page: results of
dashapp.services.config_files in, components out."""
from __future__ import annotations

from typing import Any

from dash import html

from dashapp.formatting import human_bytes

FILE_BUTTON = "config-file"        # dict id type of a file in the browser
ROLLBACK_BUTTON = "config-rollback"  # dict id type of a history entry's rollback
FORMAT_ICONS = {"yaml": "filetype-yml", "json": "filetype-json", "toml": "file-earmark-code",
                "ini": "file-earmark-text", "env": "key"}
KIND_LABELS = {"baseline": ("Baseline", "text-bg-secondary"),
               "edit": ("Edit", "text-bg-primary"),
               "rollback": ("Rollback", "text-bg-warning")}


def icon(name: str, extra: str = "") -> html.I:
    return html.I(className=f"bi bi-{name} {extra}".strip(), **{"aria-hidden": "true"})


def short(version: str | None) -> str:
    return (version or "")[:10] or "—"


def when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ") + (" UTC" if iso else "")


# ------------------------------------------------------------------ files

def file_list(listing: dict[str, Any], selected: str | None) -> Any:
    """The file browser: one button a file, the open one highlighted."""
    files = listing.get("files") or []
    if not files:
        where = listing.get("folder") or "the config folder"
        text = ("The folder does not exist yet." if not listing.get("exists")
                else "It holds no .yaml, .yml, .json, .toml, .ini, .cfg or .env files.")
        return html.Div([
            html.Span(icon("folder2-open"), className="ops-empty__icon",
                      **{"aria-hidden": "true"}),
            html.H2("No configuration files", className="ops-empty__title"),
            html.P([html.Code(where), ": ", text], className="ops-empty__text"),
            html.P(["Set ", html.Code("OPS_CONFIG_DIR"), " to the folder to manage."],
                   className="ops-empty__text"),
        ], className="ops-empty config-empty", id="config-files-empty")
    items = []
    for f in files:
        last = f.get("last_change")
        meta = [human_bytes(f["size"]), f["format"].upper()]
        if f.get("schema"):
            meta.append("schema")
        items.append(html.Button([
            icon(FORMAT_ICONS.get(f["format"], "file-earmark"), "config-file__icon"),
            html.Span([
                html.Span(f["name"], className="config-file__name"),
                html.Span(" · ".join(meta), className="config-file__meta"),
                html.Span(f"changed {when(last['time'])[:16]} by {last['actor']}",
                          className="config-file__meta") if last else None,
            ], className="config-file__text"),
        ], id={"type": FILE_BUTTON, "name": f["name"]}, n_clicks=0, type="button",
            title=f["name"],
            className="config-file" + (" config-file--active" if f["name"] == selected else ""),
            **({"aria-current": "true"} if f["name"] == selected else {})))
    note = [html.P(f"Only the first {len(files)} files are listed.",
                   className="small text-body-secondary mt-2 mb-0")] \
        if listing.get("truncated") else []
    return html.Div([html.Div(items, className="config-files", role="list"), *note])


# ----------------------------------------------------------------- editor

def editor_head(doc: dict[str, Any] | None) -> Any:
    """The file's name and facts above the editor."""
    if not doc:
        return html.P("Pick a file on the left.", className="text-body-secondary mb-0")
    badges = [html.Span(doc["format"].upper(), className="badge text-bg-secondary"),
              html.Span(human_bytes(doc["size"]), className="badge border text-body-secondary"),
              html.Span(["version ", html.Code(short(doc["version"]))],
                        className="badge border text-body-secondary",
                        title=doc["version"], id="config-version")]
    if doc.get("schema"):
        badges.append(html.Span([icon("patch-check", "me-1"), doc["schema"]],
                                className="badge text-bg-info", title="Validated against "
                                                                      "this JSON Schema"))
    if doc.get("masked"):
        badges.append(html.Span([icon("eye-slash", "me-1"),
                                 f"{doc['masked_values']} secret value"
                                 f"{'s' if doc['masked_values'] != 1 else ''} masked"],
                                className="badge text-bg-warning", id="config-masked"))
    if not doc.get("editable"):
        badges.append(html.Span([icon("lock", "me-1"), "read-only"],
                                className="badge border text-body-secondary",
                                title="Saving needs the admin role"))
    return html.Div([
        html.H3(doc["name"], className="config-title", id="config-file-name"),
        html.Div(badges, className="d-flex flex-wrap gap-1"),
    ])


def validation_status(result: dict[str, Any] | None, dirty: bool) -> Any:
    """Badges: valid / N errors, and unsaved changes."""
    if result is None:
        return None
    n = len(result.get("errors") or [])
    parts = [html.Span([icon("check-circle-fill", "me-1"), "Valid"],
                       className="badge config-badge--ok", id="config-valid")
             if n == 0 else
             html.Span([icon("x-octagon-fill", "me-1"), f"{n} error{'s' if n != 1 else ''}"],
                       className="badge config-badge--error", id="config-invalid")]
    if dirty:
        parts.append(html.Span([icon("pencil-fill", "me-1"), "Unsaved changes"],
                               className="badge config-badge--dirty", id="config-dirty"))
    return parts


def error_list(result: dict[str, Any] | None) -> Any:
    """Each validation error; a click moves the editor's cursor to it."""
    errors = (result or {}).get("errors") or []
    if not errors:
        return None
    items = []
    for e in errors:
        where = (f"Line {e['line']}" + (f", column {e['column']}" if e.get("column") else "")
                 if e.get("line") else "File")
        attrs = {"data-config-line": e["line"], "data-config-column": e.get("column") or 1} \
            if e.get("line") else {}
        label = {"schema": "Schema", "encoding": "Encoding"}.get(e.get("source"), "Syntax")
        items.append(html.Li(html.Button([
            html.Strong(where, className="me-2"),
            html.Span(label, className="badge border text-body-secondary me-2"),
            html.Span(e["message"]),
        ], type="button", className="config-error", **attrs)))
    return html.Ul(items, className="config-errors list-unstyled mb-0", id="config-error-list",
                   role="alert")


# ---------------------------------------------------------------- history

def diff_view(diff: str) -> Any:
    """A unified diff, lines coloured by kind."""
    if not diff:
        return html.P("No diff: this is the first recorded version.",
                      className="small text-body-secondary mb-0")
    lines = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        lines.append(html.Span(line or " ", className=f"config-diff__{kind}"))
    return html.Pre(lines, className="config-diff")


def history_list(data: dict[str, Any] | None, can_admin: bool) -> Any:
    """The recorded versions, newest first, each with its diff and (for
    earlier versions) a rollback button."""
    changes = (data or {}).get("changes") or []
    if not changes:
        return html.P("No changes recorded yet. The first save records the file as it was "
                      "found, so you can always roll back to it.",
                      className="small text-body-secondary mb-0", id="config-history-empty")
    items = []
    for c in changes:
        label, badge = KIND_LABELS.get(c["kind"], (c["kind"], "text-bg-secondary"))
        head = [html.Span(label, className=f"badge {badge}"),
                html.Span(when(c["time"]), className="small text-body-secondary"),
                html.Span(c["actor"], className="small fw-semibold")]
        if c.get("current"):
            head.append(html.Span("current", className="badge config-badge--ok"))
        button = None
        if not c.get("current"):
            button = html.Button(
                [icon("arrow-counterclockwise", "me-1"), "Roll back to this"],
                id={"type": ROLLBACK_BUTTON, "id": c["id"]}, n_clicks=0, type="button",
                disabled=not can_admin,
                title=("Write this version back to the file" if can_admin
                       else "Needs the admin role"),
                className="btn btn-sm btn-outline-primary config-change__rollback")
        items.append(html.Li([
            html.Div([html.Div(head, className="d-flex flex-wrap align-items-center gap-2"),
                      button], className="config-change__head"),
            html.P(c["reason"] or "—", className="config-change__reason"),
            html.Details([
                html.Summary([f"Diff · version {short(c['version_after'])}",
                              html.Span(f" · {human_bytes(c['size'])}",
                                        className="text-body-secondary")]),
                diff_view(c["diff"]),
            ], className="config-change__diff"),
        ], className="config-change", id={"type": "config-change", "id": c["id"]}))
    more = []
    if data.get("total", 0) > len(changes):
        more = [html.P(f"The newest {len(changes)} of {data['total']} changes are shown.",
                       className="small text-body-secondary mt-2 mb-0")]
    return html.Div([html.Ol(items, className="config-history list-unstyled mb-0"), *more])


def rollback_text(change: dict[str, Any], name: str) -> Any:
    """What the rollback confirmation says."""
    return html.Div([
        html.P(["Write version ", html.Code(short(change["version_after"])), " of ",
                html.Code(name), f" back to disk (recorded {when(change['time'])} by "
                                 f"{change['actor']}: {change['reason'] or 'no reason'})?"]),
        html.P("The exact bytes of that version are restored. The current content stays in "
               "the history, so this can be undone by another rollback.",
               className="small text-body-secondary mb-0"),
    ], className="ops-confirm__message", id="config-rollback-text")
