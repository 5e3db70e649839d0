"""Pure builders for the Backups page: service results in, components out
(see dashapp.services.backups for what the records mean). Notes, errors and
file names are rendered as text children (escaped by React), never as HTML.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from dash import html

from dashapp.formatting import human_bytes
from dashapp.ui.cache import fmt_ttl
from dashapp.ui.components import data_grid, metric_card, metric_grid

BACKUPS_GRID = "backups-grid"
RESTORES_GRID = "backups-restores-grid"
STATUS_CLASSES = {"succeeded": "text-success-emphasis", "failed": "text-danger-emphasis",
                  "running": "text-primary-emphasis", "deleted": "text-body-secondary"}
STATUS_ICONS = {"succeeded": "bi-check-circle-fill", "failed": "bi-x-octagon-fill",
                "running": "bi-hourglass-split", "deleted": "bi-trash3"}


# ---------------------------------------------------------------- format

def fmt_time(iso: str | None) -> str:
    """'2026-11-26T18:25:05.2+00:00' -> '2026-11-26 18:25 UTC'."""
    if not iso:
        return "—"
    return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M} UTC"


def fmt_age(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    return "just now" if seconds < 60 else f"{fmt_ttl(seconds)} ago"


def target_options(targets: list[dict]) -> list[dict]:
    return [{"label": f"{t['name']} ({t['engine']})", "value": t["name"]} for t in targets]


def _icon(name: str, extra: str = "me-1") -> html.I:
    return html.I(className=f"bi {name} {extra}".strip(), **{"aria-hidden": "true"})


# --------------------------------------------------------------- targets

def target_cards(targets: list[dict]) -> html.Div:
    """One card per target: the age of its newest good backup, its schedule."""
    if not targets:
        return html.Div([
            html.Span(_icon("bi-archive", ""), className="ops-empty__icon",
                      **{"aria-hidden": "true"}),
            html.H2("No databases to back up", className="ops-empty__title"),
            html.P(["Name the monitored application's databases in ",
                    html.Code("OPS_BACKUP_TARGETS"), " (name=url pairs, SQLite or "
                    "PostgreSQL) and restart the console."], className="ops-empty__text"),
        ], className="ops-empty", id="backups-no-targets")
    cards = []
    for t in targets:
        age = t["newest_good_age_s"]
        status = "muted" if age is None else "warn" if t["stale"] else "ok"
        schedule = t["schedule"]
        if schedule and schedule["enabled"]:
            when = (f"next {fmt_time(schedule['next_runs'][0])}"
                    if schedule["next_runs"] else "")
            foot = f"Schedule {schedule['cron']} · {when}"
        else:
            foot = "No schedule"
        if not t["tools_ok"]:
            status, foot = "error", "pg_dump/pg_restore missing: install postgresql-client"
        cards.append(metric_card(
            f"{t['name']} · {t['engine']}", "never" if age is None else fmt_age(age),
            id=f"backups-card-{t['name']}", status=status,
            icon="database" if t["engine"] == "postgresql" else "file-earmark-zip",
            footnote=foot))
    return metric_grid(cards)


def stale_warnings(targets: list[dict]) -> list[html.Div]:
    """A warning card per target whose newest good backup is older than its
    schedule promises."""
    found = []
    for t in targets:
        if not t["stale"]:
            continue
        newest = ("it has never been backed up successfully" if t["newest_good_at"] is None
                  else f"its newest good backup is from {fmt_time(t['newest_good_at'])} "
                       f"({fmt_age(t['newest_good_age_s'])})")
        found.append(html.Div([
            html.I(className="bi bi-exclamation-triangle-fill me-2",
                   **{"aria-hidden": "true"}),
            html.Div([
                html.Strong(f"{t['name']}: backups are late. "),
                f"The schedule {t['schedule']['cron']} promised a backup by "
                f"{fmt_time(t['due_at'])}, but {newest}. Check the failed backups below "
                "and the console's log, or create one now.",
            ]),
        ], className="alert alert-warning d-flex align-items-start py-2 mb-2", role="alert",
            id=f"backups-stale-{t['name']}"))
    return found


# --------------------------------------------------------------- backups

def backup_rows(backups: list[dict]) -> list[dict]:
    rows = []
    for b in backups:
        verify = b.get("verify")
        rows.append({
            "id": b["id"], "row_id": str(b["id"]), "target": b["target"], "kind": b["kind"],
            "status": b["status"],
            "size": b["size"], "size_text": human_bytes(b["size"]),
            "started": fmt_time(b["started_at"]), "age": fmt_age(b["age_s"]),
            "age_s": b["age_s"], "created_by": b["created_by"], "note": b["note"],
            "drill": "—" if not verify else ("passed" if verify["ok"] else "failed"),
            "error": b["error"] or "",
        })
    return rows


BACKUP_COLUMNS: list[dict] = [
    {"field": "id", "headerName": "#", "maxWidth": 80, "minWidth": 70,
     "type": "rightAligned", "filter": "agNumberColumnFilter"},
    {"field": "target", "headerName": "Target", "minWidth": 100},
    {"field": "status", "headerName": "Status", "minWidth": 120, "cellClassRules": {
        f"{cls} fw-semibold": f"params.value === '{status}'"
        for status, cls in STATUS_CLASSES.items()}},
    {"field": "kind", "headerName": "Kind", "minWidth": 100},
    {"field": "size", "headerName": "Size", "type": "rightAligned", "minWidth": 100,
     "filter": "agNumberColumnFilter",
     "valueFormatter": {"function": "params.data.size_text"}},
    {"field": "age_s", "headerName": "Age", "minWidth": 120, "type": "rightAligned",
     "filter": "agNumberColumnFilter", "valueFormatter": {"function": "params.data.age"}},
    {"field": "started", "headerName": "Started", "minWidth": 190},
    {"field": "created_by", "headerName": "By", "minWidth": 100},
    {"field": "drill", "headerName": "Drill", "minWidth": 90, "cellClassRules": {
        "text-success-emphasis": "params.value === 'passed'",
        "text-danger-emphasis fw-semibold": "params.value === 'failed'"}},
    {"field": "note", "headerName": "Note", "minWidth": 180, "flex": 2, "tooltipField": "note"},
]


def backups_grid(rows: list[dict]) -> html.Div:
    grid = data_grid(BACKUPS_GRID, rows, BACKUP_COLUMNS, page_size=25,
                     csv_filename="backups", row_count=False)
    ag = grid.children[1]
    ag.getRowId = "params.data.row_id"
    ag.dashGridOptions = {**ag.dashGridOptions, "rowStyle": {"cursor": "pointer"},
                          "tooltipShowDelay": 400,
                          "localeText": {"noRowsToShow": "No backups yet"}}
    return grid


def status_badge(status: str) -> html.Span:
    return html.Span([_icon(STATUS_ICONS.get(status, "bi-circle")), status],
                     className=f"{STATUS_CLASSES.get(status, '')} fw-semibold",
                     id="backups-detail-status")


def backup_detail(b: dict | None) -> Any:
    """The drawer's facts about one backup: file, checksum, who, why, drill."""
    if b is None:
        return html.P("This backup is no longer listed.", className="text-body-secondary")
    verify = b.get("verify")
    drill = "never run" if not verify else (
        f"{'passed' if verify['ok'] else 'FAILED'} {fmt_time(verify['at'])}: "
        f"{verify['message']}")
    facts = [
        ("Status", status_badge(b["status"])), ("Target", f"{b['target']} ({b['engine']})"),
        ("Kind", b["kind"]), ("File", b["file"] or "—"),
        ("Size", human_bytes(b["size"])), ("SHA-256", b["sha256"] or "—"),
        ("Started", fmt_time(b["started_at"])),
        ("Took", "—" if b["duration_ms"] is None else f"{b['duration_ms'] / 1000:,.1f} s"),
        ("By", b["created_by"]), ("Why", b["note"] or "—"), ("Restore drill", drill),
    ]
    if b["error"]:
        facts.append(("Error", html.Span(b["error"], className="text-danger-emphasis")))
    if b["deleted_at"]:
        facts.append(("Deleted", f"{fmt_time(b['deleted_at'])} by {b['deleted_by']}"))
    items: list = []
    for label, value in facts:
        items += [html.Dt(label), html.Dd(value)]
    parts: list = [html.H3(f"Backup #{b['id']}", className="h5", id="backups-detail-title"),
                   html.Dl(items, className="ops-cache-facts")]
    if b.get("restores"):
        parts.append(html.H4("Restores", className="h6 mt-3"))
        parts.append(html.Ul([html.Li(
            f"{fmt_time(r['started_at'])}: {r['status']} by {r['requested_by']}"
            + (f" (restored from #{r['backup_id']})" if r["backup_id"] != b["id"]
               else f", safety backup #{r['safety_backup_id']}" if r["safety_backup_id"]
               else "")
            + (f": {r['error']}" if r["error"] else ""), className="small")
            for r in b["restores"]], className="mb-0"))
    return html.Div(parts)


# -------------------------------------------------------------- restores

def restore_rows(restores: list[dict]) -> list[dict]:
    return [{"id": r["id"], "backup_id": r["backup_id"], "target": r["target"],
             "status": r["status"], "started": fmt_time(r["started_at"]),
             "by": r["requested_by"], "safety": r["safety_backup_id"],
             "error": r["error"] or ""} for r in restores]


RESTORE_COLUMNS: list[dict] = [
    {"field": "started", "headerName": "When", "minWidth": 190},
    {"field": "target", "headerName": "Target", "minWidth": 100},
    {"field": "backup_id", "headerName": "From backup #", "minWidth": 120,
     "type": "rightAligned"},
    {"field": "status", "headerName": "Outcome", "minWidth": 110, "cellClassRules": {
        "text-success-emphasis fw-semibold": "params.value === 'succeeded'",
        "text-danger-emphasis fw-semibold": "params.value === 'failed'"}},
    {"field": "by", "headerName": "By", "minWidth": 100},
    {"field": "safety", "headerName": "Safety backup #", "minWidth": 130,
     "type": "rightAligned"},
    {"field": "error", "headerName": "Why it failed", "minWidth": 200, "flex": 2,
     "tooltipField": "error"},
]


def restores_grid(rows: list[dict]) -> html.Div:
    grid = data_grid(RESTORES_GRID, rows, RESTORE_COLUMNS, page_size=10,
                     csv_filename="backup-restores", row_count=False, search=False)
    ag = grid.children[1]
    ag.dashGridOptions = {**ag.dashGridOptions, "tooltipShowDelay": 400,
                          "localeText": {"noRowsToShow": "No restores yet"}}
    return grid


# ------------------------------------------------------------- schedules

def next_runs_preview(runs: list[str] | None, problem: str | None = None) -> html.Div:
    """Under the cron input: the next run times, or what is wrong with it."""
    if problem:
        return html.Div([_icon("bi-x-circle"), problem],
                        className="small text-danger-emphasis", id="backups-cron-error")
    if not runs:
        return html.Div("Disabled: no runs.", className="small text-body-secondary",
                        id="backups-next-runs")
    return html.Div(["Next runs: ", ", ".join(fmt_time(r) for r in runs)],
                    className="small text-body-secondary", id="backups-next-runs")


def schedules_table(schedules: list[dict]) -> Any:
    if not schedules:
        return html.P("No schedules yet: backups are only made by hand.",
                      className="small text-body-secondary mb-0", id="backups-schedules-none")
    head = html.Thead(html.Tr([html.Th(h) for h in
                               ("Target", "Cron (UTC)", "Keep", "Next runs", "Last run")]))
    body = []
    for s in schedules:
        keep = " and ".join(p for p in (
            f"last {s['keep_last']}" if s["keep_last"] else "",
            f"{s['keep_days']} days" if s["keep_days"] else "") if p) or "all"
        runs = ", ".join(fmt_time(r) for r in s["next_runs"]) if s["enabled"] else "disabled"
        body.append(html.Tr([html.Td(s["target"]),
                             html.Td(html.Code(s["cron"]), className="text-nowrap"),
                             html.Td(keep), html.Td(runs), html.Td(fmt_time(s["last_run_at"]))]))
    return html.Div(html.Table([head, html.Tbody(body)],
                               className="table table-sm small mb-0",
                               style={"--bs-table-bg": "transparent"},
                               id="backups-schedules-table"),
                    className="table-responsive")
