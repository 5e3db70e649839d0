"""Pure builders for the Jobs page: dashapp.services.jobs results in,
components and figures out. Job names, arguments, errors and tracebacks
come from host processes, so they are always rendered as text (escaped by
React), never as HTML or markdown."""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import html

from dashapp.ui.components import data_grid, metric_card, metric_grid

HISTORY_GRID = "jobs-history-grid"
STATUS_BADGE = {"pending": "text-bg-secondary", "running": "text-bg-primary",
                "succeeded": "text-bg-success", "failed": "text-bg-danger",
                "cancelled": "text-bg-warning", "missed": "text-bg-info"}
STATUS_COLOURS = {"succeeded": "#2f9e44", "failed": "#e03131", "cancelled": "#f08c00",
                  "missed": "#1c7ed6"}
ORIGIN_LABELS = {"schedule": "scheduled", "retry": "retry", "run_now": "run now"}
ALL = "all"


# ---------------------------------------------------------------- format

def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def fmt_time(value: str | None, now: datetime | None = None) -> str:
    """'14:03:05' today, 'Nov 25 14:03' before (UTC), '—' when unknown."""
    when = parse_time(value)
    if when is None:
        return "—"
    now = now or datetime.now(timezone.utc)
    return when.strftime("%H:%M:%S" if when.date() == now.date() else "%b %d %H:%M")


def fmt_duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def fmt_in(value: str | None, now: datetime | None = None) -> str:
    """'in 42 s' / 'in 3 min' / 'due now' for a next run time."""
    when = parse_time(value)
    if when is None:
        return "—"
    seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds <= 1:
        return "due now"
    return "in " + fmt_duration(seconds * 1000).replace(".0 s", " s")


def status_badge(status: str) -> html.Span:
    return html.Span(status, className=f"badge {STATUS_BADGE.get(status, 'text-bg-light')} "
                                        "ops-jobs-badge")


# ---------------------------------------------------------------- cards

def summary_cards(counts: dict[str, Any], minutes_label: str) -> html.Div:
    c = counts
    return metric_grid([
        metric_card("Running", c["running"], id="jobs-card-running", icon="play-circle",
                    status="ok" if c["running"] else "muted",
                    footnote=(f"{c['stale_running']} more from stopped processes"
                              if c["stale_running"] else "now")),
        metric_card("Scheduled", c["scheduled"], id="jobs-card-scheduled", icon="clock",
                    status="ok" if c["scheduled"] else "muted",
                    footnote=(f"{c['paused']} paused · " if c["paused"] else "")
                    + f"{c['processes']} process{'es' if c['processes'] != 1 else ''}"),
        metric_card("Succeeded", c["succeeded"], id="jobs-card-succeeded",
                    icon="check-circle", status="ok" if c["succeeded"] else "muted",
                    footnote=minutes_label),
        metric_card("Failed", c["failed"], id="jobs-card-failed", icon="x-octagon",
                    status="error" if c["failed"] else "muted", footnote=minutes_label),
        metric_card("Cancelled", c["cancelled"], id="jobs-card-cancelled", icon="slash-circle",
                    status="warn" if c["cancelled"] else "muted", footnote=minutes_label),
        metric_card("Missed", c["missed"], id="jobs-card-missed", icon="hourglass-bottom",
                    status="warn" if c["missed"] else "muted", footnote=minutes_label),
    ], id="jobs-cards")


# --------------------------------------------------------------- running

def running_list(runs: list[dict], can_operate: bool) -> html.Div:
    """Each running run with its progress bar, what it says it is doing,
    and Details / Cancel buttons."""
    if not runs:
        return html.P("Nothing is running right now.", className="text-body-secondary mb-0",
                      id="jobs-running-none")
    items = []
    for run in runs:
        progress = run.get("progress")
        bar = (dbc.Progress(value=round(progress * 100, 1), label=f"{progress * 100:.0f}%",
                            className="ops-jobs-progress", striped=True, animated=True)
               if progress is not None else
               dbc.Progress(value=100, label="no progress reported", striped=True,
                            animated=True, color="secondary",
                            className="ops-jobs-progress ops-jobs-progress--unknown"))
        notes = []
        if run.get("cancel_requested"):
            notes.append(html.Span("cancel requested", className="badge text-bg-warning"))
        if run.get("process_alive") is False:
            notes.append(html.Span("process not seen", className="badge text-bg-danger",
                                   title="Its process stopped reporting; it is marked "
                                         "failed after 2 minutes"))
        items.append(html.Li([
            html.Div([
                html.Strong(run["name"] or run["job_id"], className="ops-jobs-run__name"),
                html.Span(f"#{run['id']}", className="text-body-secondary small"),
                *notes,
            ], className="ops-jobs-run__head"),
            bar,
            html.Div([
                html.Span(run.get("progress_message") or "",
                          className="ops-jobs-run__message"),
                html.Span(f"started {fmt_time(run['started_at'])} · {run['process']}",
                          className="ops-jobs-run__meta"),
            ], className="ops-jobs-run__line"),
            html.Div([
                html.Button("Details", id={"type": "jobs-run-details", "run": run["id"]},
                            n_clicks=0, type="button",
                            className="btn btn-sm btn-outline-secondary"),
                html.Button([html.I(className="bi bi-stop-circle me-1",
                                    **{"aria-hidden": "true"}), "Cancel…"],
                            id={"type": "jobs-run-cancel", "run": run["id"]}, n_clicks=0,
                            type="button", disabled=not can_operate
                            or bool(run.get("cancel_requested")),
                            title=("Needs the operator role" if not can_operate
                                   else "Ask the run to stop"),
                            className="btn btn-sm btn-outline-danger"),
            ], className="ops-jobs-run__actions"),
        ], className="ops-jobs-run", id=f"jobs-running-{run['id']}"))
    return html.Ul(items, className="ops-jobs-runs", id="jobs-running-list")


# -------------------------------------------------------------- schedule

def schedule_list(jobs: list[dict], can_operate: bool) -> html.Div:
    """Every scheduled job with its next run and Pause/Resume, Run now and
    Skip next buttons."""
    if not jobs:
        return html.P(["No host process publishes a schedule. Jobs appear here once an "
                       "application calls ", html.Code("monitor(app, scheduler=...)"),
                       " and starts its scheduler."],
                      className="text-body-secondary mb-0", id="jobs-schedule-none")
    need = "Needs the operator role"
    rows = []
    for job in jobs:
        key = {"job": job["job_id"], "process": job["process"], "run": job["run_id"] or 0}
        paused = job["paused"]
        next_text = ("paused" if paused else
                     f"{fmt_time(job['next_run_time'])} ({fmt_in(job['next_run_time'])})")
        buttons = [
            html.Button("Resume" if paused else "Pause",
                        id={"type": "jobs-sched", "action": "resume" if paused else "pause",
                            **key}, n_clicks=0, type="button", disabled=not can_operate,
                        title=need if not can_operate else None,
                        className="btn btn-sm btn-outline-secondary"),
            html.Button("Run now", id={"type": "jobs-sched", "action": "run_now", **key},
                        n_clicks=0, type="button", disabled=not can_operate,
                        title=need if not can_operate else "Run once now; the schedule "
                                                           "stays as it is",
                        className="btn btn-sm btn-outline-primary"),
            html.Button("Skip next", id={"type": "jobs-sched", "action": "cancel", **key},
                        n_clicks=0, type="button",
                        disabled=not can_operate or not job["run_id"],
                        title=need if not can_operate else "Cancel the next run only",
                        className="btn btn-sm btn-outline-danger"),
        ]
        rows.append(html.Li([
            html.Div([
                html.Div([html.Strong(job["name"] or job["job_id"]),
                          html.Span(job["job_id"], className="ops-jobs-sched__id")],
                         className="ops-jobs-sched__title"),
                html.Div([html.Span(job["trigger"], className="ops-jobs-sched__trigger"),
                          html.Span(next_text, className="ops-jobs-sched__next"
                                    + (" text-warning-emphasis" if paused else "")),
                          *([html.Span("events only", className="badge border "
                                       "text-body-secondary",
                                       title="Persistent job store: recorded from "
                                             "scheduler events, no progress or cancel")]
                            if not job["wrapped"] else [])],
                         className="ops-jobs-sched__meta"),
            ], className="ops-jobs-sched__text"),
            html.Div(buttons, className="ops-jobs-sched__actions"),
        ], className="ops-jobs-sched"))
    return html.Ul(rows, className="ops-jobs-schedule", id="jobs-schedule-list")


# --------------------------------------------------------------- history

HISTORY_COLUMNS = [
    {"field": "id", "headerName": "Run", "maxWidth": 90, "type": "rightAligned",
     "filter": "agNumberColumnFilter"},
    {"field": "name", "headerName": "Job", "minWidth": 170},
    {"field": "status", "headerName": "Status", "maxWidth": 130,
     "cellClassRules": {f"ops-jobs-cell--{s}": f"params.value == '{s}'"
                        for s in STATUS_BADGE}},
    {"field": "started", "headerName": "Started (UTC)", "minWidth": 150},
    {"field": "duration", "headerName": "Duration", "maxWidth": 130},
    {"field": "attempt", "headerName": "Attempt", "maxWidth": 110, "type": "rightAligned"},
    {"field": "origin", "headerName": "How", "maxWidth": 120},
    {"field": "error", "headerName": "Error", "minWidth": 220},
    {"field": "process", "headerName": "Process", "minWidth": 140},
]


def history_rows(runs: list[dict]) -> list[dict]:
    rows = []
    for run in runs:
        error = ": ".join(p for p in (run.get("error_type"), run.get("error_message")) if p)
        rows.append({
            "id": run["id"], "name": run["name"] or run["job_id"], "job_id": run["job_id"],
            "status": run["status"],
            "started": (run["started_at"] or run["scheduled_at"] or "")[:19].replace("T", " "),
            "duration": fmt_duration(run["duration_ms"]), "attempt": run["attempt"],
            "origin": ORIGIN_LABELS.get(run["origin"], run["origin"]),
            "error": error[:300] or (run.get("note") or "")[:300], "process": run["process"],
        })
    return rows


def history_grid(rows: list[dict]) -> html.Div:
    grid = data_grid(HISTORY_GRID, rows, HISTORY_COLUMNS, page_size=25,
                     csv_filename="job-runs")
    ag = grid.children[1]
    ag.getRowId = "'' + params.data.id"
    ag.dashGridOptions = {**ag.dashGridOptions, "rowStyle": {"cursor": "pointer"},
                          "localeText": {"noRowsToShow": "No runs match"}}
    return grid


def history_info(page: dict) -> str:
    shown, total = len(page["runs"]), page["total"]
    if total > shown:
        return f"The newest {shown:,} of {total:,} matching runs; narrow the filters to see older ones."
    return f"{total:,} matching run{'s' if total != 1 else ''}."


# ---------------------------------------------------------------- charts

def _bucket(minutes: float) -> timedelta:
    for span, bucket in ((30, 1), (120, 2), (360, 5), (1440, 15), (10080, 60)):
        if minutes <= span:
            return timedelta(minutes=bucket)
    return timedelta(hours=6)


MIN_SPAN = timedelta(minutes=15)


def _span(points: list[dict], minutes: int | None) -> tuple[datetime, datetime]:
    """The stretch of time the charts show: from the first run (at least
    the last 15 minutes, at most the window) to now, so a lone point or bar
    keeps its place in time and a new install is not one sliver at the edge."""
    now = datetime.now(timezone.utc)
    earliest = now - timedelta(minutes=minutes or 1440)
    first = min((parse_time(p["time"]) for p in points), default=now)
    return max(earliest, min(first, now - MIN_SPAN)), now


def _window_axis(fig: go.Figure, span: tuple[datetime, datetime]) -> None:
    fig.update_xaxes(range=list(span), type="date")


LEGEND = {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}


def durations_figure(points: list[dict], minutes: int | None = None) -> go.Figure:
    """Each finished run's duration over time, one colour per job; failed
    runs are drawn as red crosses."""
    fig = go.Figure(layout={"template": "ops_light"})
    timed = [p for p in points if p["duration_ms"] is not None]
    if not timed:
        return _empty(fig, "No finished runs in this window")
    by_job: dict[str, list[dict]] = defaultdict(list)
    for p in timed:
        by_job[p["name"] or p["job_id"]].append(p)
    for name, rows in sorted(by_job.items()):
        fig.add_scatter(x=[r["time"] for r in rows], y=[r["duration_ms"] / 1000 for r in rows],
                        mode="markers", name=name[:40],
                        customdata=[[r["status"], r["id"]] for r in rows],
                        hovertemplate=f"{name[:40]}<br>%{{x}}<br>%{{y:.2f}} s · "
                                      "%{customdata[0]} (run %{customdata[1]})<extra></extra>")
    failed = [p for p in timed if p["status"] == "failed"]
    if failed:
        fig.add_scatter(x=[r["time"] for r in failed], y=[r["duration_ms"] / 1000 for r in failed],
                        mode="markers", name="failed",
                        marker={"symbol": "x-thin", "size": 12, "color": STATUS_COLOURS["failed"],
                                "line": {"width": 2, "color": STATUS_COLOURS["failed"]}},
                        hoverinfo="skip")
    fig.update_layout(margin={"l": 48, "r": 12, "t": 36, "b": 36}, yaxis_title="seconds",
                      legend=LEGEND, hovermode="closest")
    _window_axis(fig, _span(timed, minutes))
    return fig


def outcomes_figure(points: list[dict], minutes: int) -> go.Figure:
    """Finished runs per time bucket, stacked by final status."""
    fig = go.Figure(layout={"template": "ops_light"})
    if not points:
        return _empty(fig, "No finished runs in this window")
    span = _span(points, minutes)
    seconds = _bucket((span[1] - span[0]).total_seconds() / 60).total_seconds()
    counts: dict[str, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
    for p in points:
        when = parse_time(p["time"])
        start = datetime.fromtimestamp(when.timestamp() // seconds * seconds, timezone.utc)
        counts[p["status"]][start] += 1
    for status in ("succeeded", "failed", "cancelled", "missed"):
        if status not in counts:
            continue
        xs = sorted(counts[status])
        fig.add_bar(x=xs, y=[counts[status][x] for x in xs], name=status,
                    marker_color=STATUS_COLOURS[status],
                    hovertemplate=f"%{{x}}<br>%{{y}} {status}<extra></extra>")
    fig.update_layout(barmode="stack", margin={"l": 40, "r": 12, "t": 36, "b": 36},
                      yaxis_title="runs", legend=LEGEND, bargap=0.15)
    fig.update_traces(width=seconds * 1000 * 0.85, offset=0)  # bars span their interval
    _window_axis(fig, span)
    return fig


def _empty(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 13})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


# ---------------------------------------------------------------- detail

def _fact(label: str, value: Any) -> list:
    return [html.Dt(label), html.Dd(value if value not in (None, "") else "—")]


def run_detail(run: dict) -> html.Div:
    """The detail modal's body: facts, arguments, error, traceback, retries."""
    facts = [
        *_fact("Job", [html.Span(run["name"]), " ", html.Code(run["job_id"])]),
        *_fact("Status", status_badge(run["status"])),
        *_fact("Function", html.Code(run["func"]) if run["func"] else None),
        *_fact("How it started", ORIGIN_LABELS.get(run["origin"], run["origin"])),
        *_fact("Attempt", str(run["attempt"]) + (f" (retry of run {run['retry_of']})"
                                                  if run["retry_of"] else "")),
        *_fact("Scheduled", (run["scheduled_at"] or "")[:23].replace("T", " ")),
        *_fact("Started", (run["started_at"] or "")[:23].replace("T", " ")),
        *_fact("Finished", (run["finished_at"] or "")[:23].replace("T", " ")),
        *_fact("Duration", fmt_duration(run["duration_ms"])),
        *_fact("Process", [run["process"], "" if run.get("process_alive", True)
                           else " (not running any more)"]),
    ]
    if run.get("progress") is not None:
        facts += _fact("Progress", f"{run['progress'] * 100:.0f}%"
                       + (f" — {run['progress_message']}" if run["progress_message"] else ""))
    parts: list = [html.Dl(facts, className="ops-jobs-facts", id="jobs-detail-facts")]
    if run.get("note"):
        parts.append(html.P([html.I(className="bi bi-info-circle me-2",
                                    **{"aria-hidden": "true"}), run["note"]],
                            className="alert alert-info py-2", id="jobs-detail-note"))
    if run.get("error_type") or run.get("error_message"):
        parts.append(html.P([html.Strong(run.get("error_type") or "Error"), ": ",
                             run.get("error_message") or ""],
                            className="alert alert-danger py-2 ops-jobs-error",
                            id="jobs-detail-error"))
    if run.get("traceback"):
        parts += [html.H3("Traceback", className="h6 mt-3"),
                  html.Pre(run["traceback"], className="ops-jobs-pre", id="jobs-detail-traceback")]
    if run.get("args") is not None:
        parts += [html.H3("Arguments", className="h6 mt-3"),
                  html.P("As recorded, values that look secret replaced by ***; a retry "
                         "uses the host's real ones.", className="small text-body-secondary"),
                  html.Pre(json.dumps(run["args"], indent=2, ensure_ascii=False, default=str),
                           className="ops-jobs-pre", id="jobs-detail-args")]
    if run.get("retries"):
        parts += [html.H3("Retried by", className="h6 mt-3"),
                  html.Ul([html.Li([f"Run {r['id']} (attempt {r['attempt']}) ",
                                    status_badge(r["status"])]) for r in run["retries"]],
                          id="jobs-detail-retries")]
    return html.Div(parts)
