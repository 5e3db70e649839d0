"""Backups: the monitored application's databases, their backups, restores,
restore drills and schedules.

Callbacks are thin: read the inputs, call dashapp.services.backups (the same
functions /api/backup calls), hand the result to dashapp.ui.backups. The
Dash endpoint only needs a sign-in, so every change checks the role here as
its REST twin does (operator: create a backup, run a drill; admin: restore,
delete, change schedules) and is audited the same way. A restore asks the
admin to type the target's name.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from dashapp.security.auth import action_allowed, current_principal
from dashapp.security.roles import role_allows
from dashapp.services import backups as svc
from dashapp.store import _short_error
from dashapp.ui import backups as ui
from dashapp.ui.components import (confirm_dialog, confirm_ids, modal, page_header, panel,
                                   push_toast, unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("backups"))

REFRESH_MS = 15_000

REFRESH = "backups-refresh"
REFRESH_NOW = "backups-refresh-now"
BUMP = "backups-bump"
STATUS = "backups-status"
WARNINGS = "backups-warnings"
CARDS = "backups-cards"
SCHEDULES = "backups-schedules"
CREATE_OPEN = "backups-create-open"
CREATE_MODAL = "backups-create-modal"
CREATE_TARGET = "backups-create-target"
CREATE_NOTE = "backups-create-note"
CREATE_GO = "backups-create-go"
CREATE_BUSY = "backups-create-busy"
DRAWER = "backups-drawer"
DETAIL = "backups-detail"
SELECTED = "backups-selected"
DOWNLOAD = "backups-download"
VERIFY = "backups-verify"
RESTORE_OPEN = "backups-restore-open"
DELETE_OPEN = "backups-delete-open"
RESTORE_SLOT = "backups-restore-slot"
SCHED_TARGET = "backups-sched-target"
SCHED_CRON = "backups-sched-cron"
SCHED_KEEP_LAST = "backups-sched-keep-last"
SCHED_KEEP_DAYS = "backups-sched-keep-days"
SCHED_ENABLED = "backups-sched-enabled"
SCHED_SAVE = "backups-sched-save"
SCHED_PREVIEW = "backups-sched-preview"
DEFAULT_CRON = "0 3 * * *"

RESTORE_DIALOG = confirm_ids("backups-restore")
DELETE_DIALOG = confirm_ids("backups-delete")
ACTION_ERRORS = (svc.BackupError, SQLAlchemyError, OSError, ValueError)


# ----------------------------------------------------------------- helpers

def _ops():
    return current_app.extensions["ops"]


def _role() -> str | None:
    principal = current_principal()
    return principal.role if principal else None


def _message(exc: BaseException) -> str:
    if isinstance(exc, SQLAlchemyError):
        return "The console's store cannot be reached: " + _short_error(exc)
    if isinstance(exc, OSError) and not isinstance(exc, svc.BackupError):
        return f"The backup folder cannot be used: {exc.strerror or exc}"
    return str(exc)


def act(required: str, what: str, action: str, target: str, work: Callable[[dict], Any],
        **details) -> Any:
    """Run one change from the page: check the role (refusals are audited and
    toasted), audit success or failure as the REST route does, and turn any
    failure into a toast. Returns `work`'s result, or None."""
    actor, refusal = action_allowed(required, what, f"backups page: {what}")
    if actor is None:
        push_toast(f"{what}: {refusal}", "danger", title="Not allowed")
        return None
    try:
        with svc.audited(_ops().store, actor=actor, action=action,
                         target=f"backup:{target}"[:255], details={**details, "via": "page"}) \
                as info:
            return work({"actor": actor, "info": info})
    except ACTION_ERRORS as exc:
        logger.info("backups page: %s failed: %s", what, exc)
        push_toast(f"{what} failed. {_message(exc)}", "danger", duration=None)
        return None


def render() -> tuple:
    """(status, warnings, cards, backup rows, restore rows, schedules)."""
    ops = _ops()
    try:
        targets = svc.target_overview(ops.store, ops.settings)
        backups = svc.list_backups(ops.store, limit=1000)["backups"]
        restores = svc.list_restores(ops.store, limit=200)
        schedules = svc.list_schedules(ops.store)
    except SQLAlchemyError as exc:
        logger.warning("backups page: store unavailable: %s", _short_error(exc))
        return (unavailable_card("The console's store", _short_error(exc)), None, None, [], [],
                None)
    return (None, ui.stale_warnings(targets), ui.target_cards(targets),
            ui.backup_rows(backups), ui.restore_rows(restores), ui.schedules_table(schedules))


def _target_of(backup_id: int) -> str | None:
    """The backup's target, or None after a toast saying why not."""
    try:
        return svc.get_backup(_ops().store, backup_id)["target"]
    except ACTION_ERRORS as exc:
        push_toast(_message(exc), "danger")
        return None


def _bump() -> None:
    dash.set_props(BUMP, {"data": time.time()})


# ------------------------------------------------------------------ layout

def _create_modal(options: list[dict], can_operate: bool) -> dbc.Modal:
    body = html.Div([
        html.P("The backup runs now; a SQLite database is copied with its online backup "
               "API while the application keeps writing, PostgreSQL with pg_dump.",
               className="small text-body-secondary"),
        html.Label([html.Span("Database", className="form-label d-block mb-1"),
                    dbc.Select(id=CREATE_TARGET, options=options,
                               value=options[0]["value"] if options else None)],
                   className="d-block mb-2"),
        html.Label([html.Span("Why (kept with the backup)", className="form-label d-block mb-1"),
                    dcc.Textarea(id=CREATE_NOTE, value="", maxLength=500, rows=2,
                                 className="form-control",
                                 placeholder="e.g. before the 2.3 migration")],
                   className="d-block mb-0"),
        dcc.Loading(html.Div(id=CREATE_BUSY), delay_show=200),
    ])
    footer = html.Button([html.I(className="bi bi-archive me-1", **{"aria-hidden": "true"}),
                          "Create backup"], id=CREATE_GO, n_clicks=0, type="button",
                         disabled=not can_operate or not options,
                         className="btn btn-primary")
    return modal(CREATE_MODAL, "Create a backup", body, footer)


def _drawer(can_operate: bool, can_admin: bool) -> dbc.Offcanvas:
    need_op = None if can_operate else "Needs the operator role"
    need_admin = None if can_admin else "Needs the admin role"
    return dbc.Offcanvas(id=DRAWER, title="Backup", placement="end", is_open=False,
                         scrollable=True, class_name="ops-cache-drawer", children=[
        html.Div(id=DETAIL),
        html.Div([
            html.A([html.I(className="bi bi-download me-1", **{"aria-hidden": "true"}),
                    "Download"], id=DOWNLOAD, href="#", download="",
                   className="btn btn-sm btn-outline-secondary"),
            html.Button([html.I(className="bi bi-clipboard2-check me-1",
                                **{"aria-hidden": "true"}), "Run restore drill"],
                        id=VERIFY, n_clicks=0, type="button", disabled=not can_operate,
                        title=need_op or "Restore into a scratch database and check it",
                        className="btn btn-sm btn-outline-primary"),
            html.Button([html.I(className="bi bi-arrow-counterclockwise me-1",
                                **{"aria-hidden": "true"}), "Restore…"],
                        id=RESTORE_OPEN, n_clicks=0, type="button", disabled=not can_admin,
                        title=need_admin or "Replace the database with this backup",
                        className="btn btn-sm btn-outline-danger"),
            html.Button([html.I(className="bi bi-trash3 me-1", **{"aria-hidden": "true"}),
                         "Delete…"], id=DELETE_OPEN, n_clicks=0, type="button",
                        disabled=not can_admin, title=need_admin or "Delete this backup's file",
                        className="btn btn-sm btn-outline-danger ms-auto"),
        ], className="ops-cache-keyactions mt-3"),
        dcc.Store(id=SELECTED, data=None),
    ])


def _schedule_form(options: list[dict], can_admin: bool) -> html.Div:
    def field(label: str, control, grow: str = "1 1 10rem"):
        return html.Label([html.Span(label, className="form-label d-block mb-1"), control],
                          className="mb-0", style={"flex": grow, "minWidth": 0})
    return html.Div([
        html.Div([
            field("Database", dbc.Select(id=SCHED_TARGET, options=options,
                                         value=options[0]["value"] if options else None)),
            field("Cron (UTC: minute hour day month weekday)",
                  dcc.Input(id=SCHED_CRON, type="text", value=DEFAULT_CRON, maxLength=100,
                            debounce=False, autoComplete="off", spellCheck=False,
                            className="form-control font-monospace"), "2 1 14rem"),
            field("Keep last", dcc.Input(id=SCHED_KEEP_LAST, type="number", min=1, step=1,
                                         value=7, placeholder="all",
                                         className="form-control")),
            field("Keep days", dcc.Input(id=SCHED_KEEP_DAYS, type="number", min=1, step=1,
                                         value=None, placeholder="any age",
                                         className="form-control")),
        ], className="d-flex flex-wrap gap-2 align-items-end"),
        html.Div(ui.next_runs_preview(svc_next_runs(DEFAULT_CRON)), id=SCHED_PREVIEW,
                 className="mt-2"),
        html.Div([
            dbc.Switch(id=SCHED_ENABLED, value=True, label="Enabled", class_name="mb-0"),
            html.Button([html.I(className="bi bi-calendar-check me-1",
                                **{"aria-hidden": "true"}), "Save schedule"],
                        id=SCHED_SAVE, n_clicks=0, type="button",
                        disabled=not can_admin or not options,
                        title=None if can_admin else "Needs the admin role",
                        className="btn btn-sm btn-primary"),
        ], className="d-flex flex-wrap gap-3 align-items-center mt-2"),
        html.P("Retention removes scheduled backups that are neither among the newest "
               "'keep last' nor younger than 'keep days' (never the newest good backup; "
               "manual backups are kept until an admin deletes them; safety backups taken "
               f"before a restore are kept {svc.SAFETY_KEEP_DAYS} days).",
               className="small text-body-secondary mt-2 mb-0"),
    ])


def svc_next_runs(cron: str | None) -> list[str]:
    return [t.isoformat() for t in svc.next_runs(cron or "", 3)]


def layout(**_query):
    ops = _ops()
    role = _role()
    can_operate, can_admin = role_allows(role, "operator"), role_allows(role, "admin")
    status, warnings, cards, rows, restores, schedules = render()
    options = ui.target_options([{"name": t.name, "engine": t.engine}
                                 for t in svc.targets(ops.settings).values()])
    actions = [
        html.Button([html.I(className="bi bi-plus-lg me-1", **{"aria-hidden": "true"}),
                     "Create backup…"], id=CREATE_OPEN, n_clicks=0, type="button",
                    disabled=not can_operate or not options,
                    title=None if can_operate else "Needs the operator role",
                    className="btn btn-sm btn-primary"),
        html.Button([html.I(className="bi bi-arrow-clockwise", **{"aria-hidden": "true"})],
                    id=REFRESH_NOW, n_clicks=0, type="button", title="Refresh now",
                    className="btn btn-sm btn-outline-secondary",
                    **{"aria-label": "Refresh now"}),
    ]
    return html.Div([
        dcc.Store(id=BUMP, data=None),
        page_header("Backups", "Backups of the monitored application's databases, "
                    "restores that never lose data, restore drills and schedules.",
                    actions=actions),
        html.Div(status, id=STATUS),
        html.Div(warnings, id=WARNINGS),
        html.Div(className="ops-stack", children=[
            html.Div(cards, id=CARDS),
            panel(ui.backups_grid(rows), title="Backups",
                  subtitle="Newest first. Click a backup to download, drill, restore or "
                           "delete it."),
            html.Div(className="ops-cols", children=[
                panel(_schedule_form(options, can_admin), title="Schedule",
                      subtitle="Run by the console's scheduler"
                               + ("" if can_admin else " (changing it needs the admin role)")),
                panel(html.Div(schedules, id=SCHEDULES), title="Schedules",
                      subtitle="Every target's schedule and its next runs"),
            ]),
            panel(ui.restores_grid(restores), title="Restores",
                  subtitle="Who restored what, the safety backup taken before, and why a "
                           "restore failed"),
        ]),
        _create_modal(options, can_operate),
        _drawer(can_operate, can_admin),
        html.Div(id=RESTORE_SLOT),
        confirm_dialog("backups-delete", "Delete this backup?",
                       html.Div(id="backups-delete-text", className="ops-confirm__message"),
                       confirm_label="Delete backup"),
        dcc.Interval(id=REFRESH, interval=REFRESH_MS),
    ], className="ops-backups")


# --------------------------------------------------------------- callbacks

@callback(Output(STATUS, "children"), Output(WARNINGS, "children"), Output(CARDS, "children"),
          Output(ui.BACKUPS_GRID, "rowData"), Output(ui.RESTORES_GRID, "rowData"),
          Output(SCHEDULES, "children"),
          Input(REFRESH, "n_intervals"), Input(REFRESH_NOW, "n_clicks"), Input(BUMP, "data"),
          prevent_initial_call=True)
def refresh(_n, _clicks, _bump):
    return render()


# ----- create

@callback(Output(CREATE_MODAL, "is_open"), Input(CREATE_OPEN, "n_clicks"),
          prevent_initial_call=True)
def open_create(n_clicks):
    if not n_clicks:
        return no_update
    actor, refusal = action_allowed("operator", "Creating a backup",
                                    "backups page: Creating a backup")
    if actor is None:
        push_toast(refusal, "danger", title="Not allowed")
        return no_update
    return True


@callback(Output(CREATE_BUSY, "children"), Input(CREATE_GO, "n_clicks"),
          State(CREATE_TARGET, "value"), State(CREATE_NOTE, "value"), prevent_initial_call=True)
def create_clicked(n_clicks, target, note):
    if n_clicks and target:
        create(target, note)
    return None


def create(target: str, note: str | None) -> dict | None:
    """Back up `target` now (operator, audited); say how it went."""
    note = (note or "").strip()

    def work(run):
        result = svc.create_backup(_ops().store, _ops().settings, target,
                                   actor=run["actor"], note=note)
        run["info"]["backup_id"] = result["id"]
        return result
    result = act("operator", f"Backing up {target}", "backup_create", target, work,
                 note=note, kind="manual")
    if result is not None:
        push_toast(f"Backup #{result['id']} of {target} created "
                   f"({ui.human_bytes(result['size'])}).")
        dash.set_props(CREATE_MODAL, {"is_open": False})
        dash.set_props(CREATE_NOTE, {"value": ""})
        _bump()
    return result


# ----- the drawer

def _open_drawer(backup_id: int) -> tuple:
    try:
        info = svc.get_backup(_ops().store, backup_id)
    except svc.BackupNotFound:
        info = None
    except SQLAlchemyError as exc:
        return (True, unavailable_card("The console's store", _short_error(exc)), None, "#",
                no_update)
    href = f"/api/backup/{backup_id}/download"
    has_file = bool(info and info["status"] == "succeeded")
    return (True, ui.backup_detail(info), backup_id if info else None,
            href if has_file else "#", "btn btn-sm btn-outline-secondary"
            + ("" if has_file else " disabled"))


@callback(Output(DRAWER, "is_open"), Output(DETAIL, "children"), Output(SELECTED, "data"),
          Output(DOWNLOAD, "href"), Output(DOWNLOAD, "className"),
          Input(ui.BACKUPS_GRID, "cellClicked"), prevent_initial_call=True)
def open_backup(clicked):
    row_id = str((clicked or {}).get("rowId") or "")
    if not row_id.isdigit():
        return (no_update,) * 5
    return _open_drawer(int(row_id))


@callback(Input(VERIFY, "n_clicks"), State(SELECTED, "data"), prevent_initial_call=True)
def verify_clicked(n_clicks, backup_id):
    if n_clicks and backup_id:
        verify(backup_id)


def verify(backup_id: int) -> dict | None:
    """A restore drill (operator, audited); the result is a toast and the drawer."""
    target = _target_of(backup_id)
    if target is None:
        return None

    def work(run):
        result = svc.verify_backup(_ops().store, _ops().settings, backup_id)
        run["info"]["ok"] = result["ok"]
        return result
    result = act("operator", f"The restore drill of backup #{backup_id}", "backup_verify",
                 target, work, backup_id=backup_id)
    if result is not None:
        push_toast(result["message"], "success" if result["ok"] else "warning",
                   title="Drill passed" if result["ok"] else "Drill failed",
                   duration=None if not result["ok"] else 0)
        dash.set_props(DETAIL, {"children": _open_drawer(backup_id)[1]})
        _bump()
    return result


# ----- restore

@callback(Output(RESTORE_SLOT, "children"), Input(RESTORE_OPEN, "n_clicks"),
          State(SELECTED, "data"), prevent_initial_call=True)
def ask_restore(n_clicks, backup_id):
    """Build the restore dialog for this backup: the admin must type the
    target's name."""
    if not n_clicks or not backup_id:
        return no_update
    actor, refusal = action_allowed("admin", "Restoring a backup",
                                    f"backups page: restore #{backup_id}")
    if actor is None:
        push_toast(refusal, "danger", title="Not allowed")
        return no_update
    try:
        info = svc.get_backup(_ops().store, backup_id)
    except ACTION_ERRORS as exc:
        push_toast(_message(exc), "danger")
        return no_update
    return restore_dialog(info)


def restore_dialog(info: dict) -> dbc.Modal:
    target = info["target"]
    text = html.Div([
        html.P([f"The whole content of {target} is replaced by backup #{info['id']} from "
                f"{ui.fmt_time(info['started_at'])}",
                f" ({info['note']})" if info["note"] else "", "."]),
        html.P(["First the file's checksum is checked and a safety backup of the current "
                "database is taken (restore that one to undo). Changes made since this "
                "backup are lost from the live database."], className="mb-0 small"),
    ], className="ops-confirm__message", id="backups-restore-text")
    dialog = confirm_dialog("backups-restore", f"Restore {target}?", text,
                            confirm_label="Restore", typed_confirmation=target)
    dialog.is_open = True
    return dialog


@callback(Input(RESTORE_DIALOG.confirm, "n_clicks"), State(SELECTED, "data"),
          prevent_initial_call=True)
def restore_confirmed(n_clicks, backup_id):
    if n_clicks and backup_id:
        restore(backup_id)


def restore(backup_id: int) -> dict | None:
    """Restore (admin, audited) and say what happened, and how to undo it."""
    target = _target_of(backup_id)
    if target is None:
        return None

    def work(run):
        result = svc.restore_backup(_ops().store, _ops().settings, backup_id,
                                    actor=run["actor"])
        run["info"].update(safety_backup_id=result["safety_backup_id"],
                           restore_id=result["id"])
        return result
    result = act("admin", f"Restoring {target} from backup #{backup_id}", "backup_restore",
                 target, work, backup_id=backup_id)
    if result is not None:
        undo = (f" The previous content is in safety backup #{result['safety_backup_id']}."
                if result["safety_backup_id"] else "")
        push_toast(f"{target} was restored from backup #{backup_id}.{undo}",
                   title="Restored", duration=None)
        dash.set_props(DETAIL, {"children": _open_drawer(backup_id)[1]})
    _bump()
    return result


# ----- delete

@callback(Output(DELETE_DIALOG.modal, "is_open"), Output("backups-delete-text", "children"),
          Input(DELETE_OPEN, "n_clicks"), State(SELECTED, "data"), prevent_initial_call=True)
def ask_delete(n_clicks, backup_id):
    if not n_clicks or not backup_id:
        return no_update, no_update
    return True, html.P(f"The file of backup #{backup_id} is deleted from the backup folder; "
                        "its record stays in the history. This cannot be undone.",
                        className="mb-0")


@callback(Input(DELETE_DIALOG.confirm, "n_clicks"), State(SELECTED, "data"),
          prevent_initial_call=True)
def delete_confirmed(n_clicks, backup_id):
    if n_clicks and backup_id:
        delete(backup_id)


def delete(backup_id: int) -> dict | None:
    try:
        info = svc.get_backup(_ops().store, backup_id)
    except ACTION_ERRORS as exc:
        push_toast(_message(exc), "danger")
        return None
    result = act("admin", f"Deleting backup #{backup_id}", "backup_delete", info["target"],
                 lambda run: svc.delete_backup(_ops().store, _ops().settings, backup_id,
                                               actor=run["actor"]),
                 backup_id=backup_id, file=info["file"])
    if result is not None:
        push_toast(f"Backup #{backup_id} deleted.")
        dash.set_props(DRAWER, {"is_open": False})
        _bump()
    return result


# ----- schedules

@callback(Output(SCHED_CRON, "value"), Output(SCHED_KEEP_LAST, "value"),
          Output(SCHED_KEEP_DAYS, "value"), Output(SCHED_ENABLED, "value"),
          Input(SCHED_TARGET, "value"))
def load_schedule(target):
    """The chosen target's saved schedule (or the defaults) in the form."""
    try:
        found = {s["target"]: s for s in svc.list_schedules(_ops().store)}
    except SQLAlchemyError:
        return (no_update,) * 4
    s = found.get(target)
    if s is None:
        return DEFAULT_CRON, 7, None, True
    return s["cron"], s["keep_last"], s["keep_days"], s["enabled"]


@callback(Output(SCHED_PREVIEW, "children"), Input(SCHED_CRON, "value"),
          Input(SCHED_ENABLED, "value"))
def preview(cron, enabled):
    """The next run times while the cron expression is typed."""
    try:
        runs = svc_next_runs(cron)
    except ValueError as exc:
        return ui.next_runs_preview(None, str(exc))
    return ui.next_runs_preview(runs if enabled else [])


@callback(Input(SCHED_SAVE, "n_clicks"), State(SCHED_TARGET, "value"),
          State(SCHED_CRON, "value"), State(SCHED_KEEP_LAST, "value"),
          State(SCHED_KEEP_DAYS, "value"), State(SCHED_ENABLED, "value"),
          prevent_initial_call=True)
def save_clicked(n_clicks, target, cron, keep_last, keep_days, enabled):
    if n_clicks and target:
        save_schedule(target, cron, keep_last, keep_days, bool(enabled))


def _whole(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    if not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise ValueError(f"{name}: must be a whole number, 1 or more (or empty)")
    return int(value)


def save_schedule(target: str, cron: str | None, keep_last: Any, keep_days: Any,
                  enabled: bool) -> dict | None:
    """Save a target's schedule (admin, audited)."""
    def work(_run):
        return svc.save_schedule(
            _ops().store, _ops().settings, target=target, cron=cron or "",
            keep_last=_whole(keep_last, "Keep last"), keep_days=_whole(keep_days, "Keep days"),
            enabled=enabled, actor=_run["actor"])
    result = act("admin", f"Saving the schedule of {target}", "backup_schedule", target, work,
                 cron=cron, keep_last=keep_last, keep_days=keep_days, enabled=enabled)
    if result is not None:
        when = (f" Next run {ui.fmt_time(result['next_runs'][0])}."
                if result["next_runs"] else " It is disabled.")
        push_toast(f"Schedule of {target} saved: {result['cron']}.{when}")
        _bump()
    return result
