"""Background jobs: counts by status, running jobs with progress, the
schedule with pause/resume/run now/skip, the run history with filters, a
run's detail with its traceback, retry and cancel, and a chart of
durations and outcomes over time.

Callbacks are thin: they call dashapp.services.jobs (the same functions
/api/jobs calls) and hand the results to dashapp.ui.jobs. The Dash endpoint
only needs a sign-in, so every action checks the operator role here, as its
REST twin does, asks for confirmation, and is audited by the service.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from dashapp.security.auth import action_allowed, current_principal
from dashapp.security.roles import role_allows
from dashapp.services import jobs as svc
from dashapp.store import _short_error
from dashapp.ui import jobs as ui
from dashapp.ui.components import (RANGE_LABELS, RANGES, chart, confirm_dialog, confirm_ids,
                                   modal, page_header, panel, push_toast, range_picker,
                                   unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("jobs"))

LIVE_MS = 2_000          # running jobs, counts and the schedule
HISTORY_MS = 10_000      # history and charts
DEFAULT_MINUTES = 1440
HISTORY_ROWS = 500

# Component ids
LIVE = "jobs-live"
LIVE_SWITCH = "jobs-live-switch"
HISTORY_TICK = "jobs-history-tick"
REFRESH_NOW = "jobs-refresh-now"
BUMP = "jobs-bump"
STATUS = "jobs-status"
MAIN = "jobs-main"
CARDS = "jobs-cards-wrap"
RUNNING = "jobs-running"
SCHEDULE = "jobs-schedule"
RANGE = "jobs-range"
FILTER_JOB = "jobs-filter-job"
FILTER_STATUS = "jobs-filter-status"
HISTORY_INFO = "jobs-history-info"
DURATIONS = "jobs-durations-chart"
OUTCOMES = "jobs-outcomes-chart"
DETAIL = "jobs-detail"
DETAIL_BODY = "jobs-detail-body"
DETAIL_RUN = "jobs-detail-run"
DETAIL_STATUS = "jobs-detail-status"
DETAIL_RETRY = "jobs-detail-retry"
DETAIL_CANCEL = "jobs-detail-cancel"
PENDING = "jobs-pending-action"
CONFIRM = confirm_ids("jobs-confirm")
CONFIRM_TEXT = "jobs-confirm-text"
HIDDEN = {"display": "none"}
STATUS_OPTIONS = [{"label": "Any status", "value": ui.ALL}] + [
    {"label": s, "value": s} for s in svc.STATUSES if s != "pending"]


# ----------------------------------------------------------------- helpers

def _store():
    return current_app.extensions["ops"].store


def _role() -> str | None:
    principal = current_principal()
    return principal.role if principal else None


def _minutes(value: Any) -> int:
    return value if value in RANGE_LABELS else DEFAULT_MINUTES


def _window_label(minutes: int) -> str:
    return f"last {RANGE_LABELS.get(minutes, '24 h')}"


# ------------------------------------------------------------------ render

def render_live(minutes: int, can_operate: bool) -> tuple:
    """(status card, main style, cards, running list, schedule list)."""
    store = _store()
    try:
        counts = svc.counts(store, minutes)
        running = svc.list_runs(store, "active", per_page=100)["runs"]
        jobs = svc.schedule(store)
    except SQLAlchemyError as exc:
        logger.warning("jobs page: store unavailable: %s", _short_error(exc))
        return (unavailable_card("The console's store", _short_error(exc),
                                 hint=f"This page tries again every {LIVE_MS // 1000} "
                                      "seconds. Other pages keep working."),
                HIDDEN, no_update, no_update, no_update)
    return (None, {}, ui.summary_cards(counts, _window_label(minutes)),
            ui.running_list(running, can_operate), ui.schedule_list(jobs, can_operate))


def render_history(job: str | None, status: str | None, minutes: int) -> tuple:
    """(grid rows, info line, durations figure, outcomes figure)."""
    store = _store()
    since = datetime.now(timezone.utc) - timedelta(minutes=minutes)
    job = job if job and job != ui.ALL else None
    # pending runs are the Schedule panel's; the history is what happened
    statuses = [status] if status and status != ui.ALL else \
        [s for s in svc.STATUSES if s != "pending"]
    try:
        page = svc.list_runs(store, "all", statuses=statuses, job_id=job, since=since,
                             per_page=HISTORY_ROWS)
        points = svc.timeline(store, minutes, job)
    except (SQLAlchemyError, svc.JobsError) as exc:
        text = _short_error(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
        empty = ui.durations_figure([])
        return [], f"The history cannot be read right now: {text}", empty, empty
    return (ui.history_rows(page["runs"]), ui.history_info(page),
            ui.durations_figure(points, minutes), ui.outcomes_figure(points, minutes))


def job_options() -> list[dict]:
    try:
        ids = svc.job_ids(_store())
    except SQLAlchemyError:
        ids = []
    return [{"label": "All jobs", "value": ui.ALL}] + [{"label": i, "value": i} for i in ids]


def detail_view(run_id: int, can_operate: bool) -> tuple:
    """(body, retry disabled, cancel disabled, title, status) of the detail
    modal; status None when the run cannot be read."""
    try:
        run = svc.get_run(_store(), run_id)
    except svc.NotFound:
        return (html.P("This run no longer exists (retention may have removed it).",
                       className="text-body-secondary mb-0"), True, True, "Run", None)
    except SQLAlchemyError as exc:
        return (unavailable_card("The console's store", _short_error(exc)), True, True, "Run",
                None)
    title = f"Run {run['id']} · {run['name'] or run['job_id']}"
    return (ui.run_detail(run), not (can_operate and run["can_retry"]),
            not (can_operate and run["can_cancel"]), title, run["status"])



def _show_detail(run_id: int, view: tuple) -> None:
    body, no_retry, no_cancel, title, status = view
    dash.set_props(DETAIL_RUN, {"data": run_id})
    dash.set_props(DETAIL_STATUS, {"data": status})
    dash.set_props(DETAIL_BODY, {"children": body})
    dash.set_props(DETAIL_RETRY, {"disabled": no_retry})
    dash.set_props(DETAIL_CANCEL, {"disabled": no_cancel})
    dash.set_props("jobs-detail-title", {"children": title})


# ------------------------------------------------------------------ layout

def _filters(minutes: int) -> html.Div:
    return html.Div([
        html.Label([html.Span("Job", className="form-label d-block mb-1"),
                    dbc.Select(id=FILTER_JOB, options=job_options(), value=ui.ALL,
                               size="sm")], className="ops-jobs-filter mb-0"),
        html.Label([html.Span("Status", className="form-label d-block mb-1"),
                    dbc.Select(id=FILTER_STATUS, options=STATUS_OPTIONS, value=ui.ALL,
                               size="sm")], className="ops-jobs-filter mb-0"),
        html.Div([html.Span("Range", className="form-label d-block mb-1"),
                  range_picker(RANGE, minutes, RANGES)], className="ops-jobs-filter",
                 role="group", **{"aria-label": "Time range"}),
    ], className="ops-jobs-filters")


def layout(**_query):
    can_operate = role_allows(_role(), "operator")
    status, style, cards, running, jobs = render_live(DEFAULT_MINUTES, can_operate)
    rows, info, durations, outcomes = render_history(None, None, DEFAULT_MINUTES)
    actions = [
        dbc.Switch(id=LIVE_SWITCH, value=True, label="Live", class_name="ops-cache-live"),
        html.Button([html.I(className="bi bi-arrow-clockwise", **{"aria-hidden": "true"}),
                     html.Span("Refresh", className="ops-jobs-refresh__label")],
                    id=REFRESH_NOW, n_clicks=0, type="button", title="Refresh now",
                    className="btn btn-sm btn-outline-secondary"),
    ]
    need = "" if can_operate else " (actions need the operator role)"
    return html.Div([
        dcc.Store(id=BUMP, data=None),
        dcc.Store(id=PENDING, data=None),
        dcc.Store(id=DETAIL_RUN, data=None),
        dcc.Store(id=DETAIL_STATUS, data=None),
        page_header("Background jobs", "Runs of the scheduled jobs of every monitored "
                    "process: what runs now, what is next, what failed and why.",
                    actions=actions),
        html.Div(status, id=STATUS),
        html.Div(id=MAIN, style=style if style is not no_update else {},
                 className="ops-stack", children=[
            html.Div(cards if cards is not no_update else None, id=CARDS),
            html.Div(className="ops-cols", children=[
                panel(html.Div(running if running is not no_update else None, id=RUNNING),
                      title="Running now", subtitle="Progress as the jobs report it" + need),
                panel(html.Div(jobs if jobs is not no_update else None, id=SCHEDULE),
                      title="Schedule", subtitle="The next run of every job" + need),
            ]),
            panel([
                _filters(DEFAULT_MINUTES),
                html.P(info, id=HISTORY_INFO, className="small text-body-secondary my-2"),
                ui.history_grid(rows),
            ], title="History", subtitle="Click a run for its details, traceback and retry."),
            html.Div(className="ops-cols", children=[
                panel(chart(DURATIONS, durations, height=280, filename="job-durations"),
                      title="Durations", subtitle="Each finished run; failures crossed"),
                panel(chart(OUTCOMES, outcomes, height=280, filename="job-outcomes"),
                      title="Outcomes over time", subtitle="Finished runs per interval"),
            ]),
        ]),
        modal(DETAIL, html.Span("Run", id="jobs-detail-title"),
              dcc.Loading(html.Div(id=DETAIL_BODY), delay_show=300), footer=[
                  html.Button([html.I(className="bi bi-arrow-repeat me-1",
                                      **{"aria-hidden": "true"}), "Retry…"],
                              id=DETAIL_RETRY, n_clicks=0, type="button", disabled=True,
                              className="btn btn-primary"),
                  html.Button([html.I(className="bi bi-stop-circle me-1",
                                      **{"aria-hidden": "true"}), "Cancel run…"],
                              id=DETAIL_CANCEL, n_clicks=0, type="button", disabled=True,
                              className="btn btn-outline-danger"),
              ], size="xl"),
        confirm_dialog("jobs-confirm", "Are you sure?",
                       html.Div(id=CONFIRM_TEXT, className="ops-confirm__message"),
                       confirm_label="Yes, do it", danger=False),
        dcc.Interval(id=LIVE, interval=LIVE_MS),
        dcc.Interval(id=HISTORY_TICK, interval=HISTORY_MS),
    ], className="ops-jobs")


# --------------------------------------------------------------- callbacks

clientside_callback("function (on) { return [!on, !on]; }",
                    Output(LIVE, "disabled"), Output(HISTORY_TICK, "disabled"),
                    Input(LIVE_SWITCH, "value"))


@callback(Output(STATUS, "children"), Output(MAIN, "style"), Output(CARDS, "children"),
          Output(RUNNING, "children"), Output(SCHEDULE, "children"),
          Input(LIVE, "n_intervals"), Input(REFRESH_NOW, "n_clicks"), Input(BUMP, "data"),
          Input(RANGE, "value"), prevent_initial_call=True)
def refresh_live(_n, _clicks, _bump, minutes):
    return render_live(_minutes(minutes), role_allows(_role(), "operator"))


@callback(Output(ui.HISTORY_GRID, "rowData"), Output(HISTORY_INFO, "children"),
          Output(DURATIONS, "figure"), Output(OUTCOMES, "figure"),
          Output(FILTER_JOB, "options"),
          Input(HISTORY_TICK, "n_intervals"), Input(REFRESH_NOW, "n_clicks"),
          Input(BUMP, "data"), Input(FILTER_JOB, "value"), Input(FILTER_STATUS, "value"),
          Input(RANGE, "value"), prevent_initial_call=True)
def refresh_history(_n, _clicks, _bump, job, status, minutes):
    return (*render_history(job, status, _minutes(minutes)), job_options())


@callback(Output(DETAIL, "is_open"),
          Input(ui.HISTORY_GRID, "cellClicked"),
          Input({"type": "jobs-run-details", "run": ALL}, "n_clicks"),
          prevent_initial_call=True)
def open_detail(clicked, _details):
    trigger = ctx.triggered_id
    if isinstance(trigger, dict):
        if not ctx.triggered or not ctx.triggered[0].get("value"):
            return no_update  # buttons re-drawn by the live refresh
        run_id = trigger["run"]
    elif trigger != ui.HISTORY_GRID:
        return no_update  # the running list changed; nothing was clicked
    else:
        try:
            run_id = int((clicked or {}).get("rowId"))
        except (TypeError, ValueError):
            return no_update
    _show_detail(run_id, detail_view(run_id, role_allows(_role(), "operator")))
    return True


@callback(Input(LIVE, "n_intervals"), State(DETAIL, "is_open"), State(DETAIL_RUN, "data"),
          State(DETAIL_STATUS, "data"), prevent_initial_call=True)
def refresh_detail(_n, is_open, run_id, status):
    """While the modal shows a run that has not ended, keep it current."""
    if is_open and run_id and status in ("pending", "running"):
        _show_detail(run_id, detail_view(run_id, role_allows(_role(), "operator")))


def ask(action: str, *, run_id: int | None = None, job_id: str | None = None,
        name: str | None = None) -> tuple[dict | None, Any]:
    """(pending action, confirmation text), or (None, None) when the role
    does not allow it (a toast says so, the denial is audited)."""
    label = svc.ACTION_LABELS[action]
    actor, refusal = action_allowed("operator", f"job_{action}",
                                    f"jobs page: {label} "
                                    + (f"run {run_id}" if run_id else f"job {job_id}"))
    if actor is None:
        push_toast(f"{label}: {refusal}", "danger", title="Not allowed")
        return None, None
    what = name or job_id or f"run {run_id}"
    texts = {
        "retry": f"Run {what} again now, as a new attempt, with the same arguments as "
                 f"run {run_id}?",
        "cancel": (f"Cancel run {run_id} of {what}? A pending run is skipped; a running "
                   "one is asked to stop and stops the next time it checks cancelled()."),
        "pause": f"Pause {what}? No run starts until it is resumed.",
        "resume": f"Resume {what}? Its next run follows its schedule from now.",
        "run_now": f"Run {what} once now? Its schedule stays as it is.",
    }
    return {"action": action, "run_id": run_id, "job_id": job_id}, texts[action]


@callback(Input(DETAIL_RETRY, "n_clicks"), Input(DETAIL_CANCEL, "n_clicks"),
          Input({"type": "jobs-run-cancel", "run": ALL}, "n_clicks"),
          Input({"type": "jobs-sched", "action": ALL, "job": ALL, "process": ALL, "run": ALL},
                "n_clicks"),
          State(DETAIL_RUN, "data"), prevent_initial_call=True)
def ask_clicked(_retry, _cancel, _run_cancel, _sched, detail_run):
    """Any action button: ask for confirmation first."""
    if not ctx.triggered or not ctx.triggered[0].get("value"):
        return  # buttons re-drawn by the live refresh, not clicked
    trigger = ctx.triggered_id
    if trigger == DETAIL_RETRY and detail_run:
        pending, text = ask("retry", run_id=detail_run)
    elif trigger == DETAIL_CANCEL and detail_run:
        pending, text = ask("cancel", run_id=detail_run)
    elif isinstance(trigger, dict) and trigger.get("type") == "jobs-run-cancel":
        pending, text = ask("cancel", run_id=trigger["run"])
    elif isinstance(trigger, dict) and trigger.get("type") == "jobs-sched":
        action = trigger["action"]
        if action == "cancel":
            pending, text = ask("cancel", run_id=trigger["run"], name=trigger["job"])
        else:
            pending, text = ask(action, job_id=trigger["job"])
    else:
        return
    if pending is not None:
        dash.set_props(PENDING, {"data": pending})
        dash.set_props(CONFIRM_TEXT, {"children": text})
        dash.set_props(CONFIRM.modal, {"is_open": True})


@callback(Input(CONFIRM.confirm, "n_clicks"), State(PENDING, "data"),
          State(DETAIL_RUN, "data"), State(DETAIL, "is_open"), prevent_initial_call=True)
def confirmed(n_clicks, pending, detail_run, detail_open):
    if not n_clicks or not pending:
        return
    result = perform(pending)
    dash.set_props(PENDING, {"data": None})
    dash.set_props(BUMP, {"data": time.time()})
    if detail_open and detail_run:
        # after a retry the modal follows the new attempt
        shown = result["run_id"] if result and pending["action"] == "retry" and \
            result.get("run_id") else detail_run
        _show_detail(shown, detail_view(shown, True))


def perform(pending: dict) -> dict | None:
    """Carry out a confirmed action (operator, audited) and say how it went."""
    action = pending["action"]
    label = svc.ACTION_LABELS[action]
    actor, refusal = action_allowed("operator", f"job_{action}", f"jobs page: {label}")
    if actor is None:
        push_toast(f"{label}: {refusal}", "danger", title="Not allowed")
        return None
    try:
        result = svc.perform(_store(), action, actor=actor, run_id=pending.get("run_id"),
                             job_id=pending.get("job_id"), via="page")
    except svc.JobsError as exc:
        push_toast(f"{label}: {exc}", "danger", title="Refused")
        return None
    except SQLAlchemyError as exc:
        push_toast(f"{label}: the console's store is unavailable ({_short_error(exc)}).",
                   "danger")
        return None
    if result["status"] == "queued":
        push_toast(f"{label}: {result['message']}", "info", title="Queued")
    elif result["outcome"] == "ok":
        push_toast(f"{label}: {result['message']}", "success")
    else:
        push_toast(f"{label} failed: {result['message']}", "danger")
    return result
