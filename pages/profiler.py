"""Profiler: start/stop sampling of the monitored app, then read the
session's hotspots, call tree (icicle), memory growth and exports.

Callbacks are thin: they call dashapp.services.profiler (the same functions
/api/profiler calls) and hand results to dashapp.ui.profiler. The Dash
endpoint only needs a sign-in, so start and stop check the operator role
here, as their REST twins do, and are audited the same way.
"""
from __future__ import annotations

import logging

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from dashapp.security.auth import action_allowed, current_principal
from dashapp.security.roles import role_allows
from dashapp.services import profiler as svc
from dashapp.store import _short_error
from dashapp.ui import profiler as ui
from dashapp.ui.components import chart, page_header, panel, push_toast, unavailable_card
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("profiler"))

REFRESH_MS = 2_000

LIVE = "profiler-live"
BUMP = "profiler-bump"
STATUS = "profiler-status"
VIEW_KEY = "profiler-view-key"
DURATION = "profiler-duration"
ENDPOINT = "profiler-endpoint"
INTERVAL = "profiler-interval"
MEMORY = "profiler-memory"
START = "profiler-start"
STOP = "profiler-stop"
ROLE_NOTE = "profiler-role-note"
SESSION = "profiler-session"
COMPARE = "profiler-compare"
RESULTS = "profiler-results"
ICICLE = "profiler-icicle"
MEM_GROWTH = "profiler-memory-growth"
MEM_SIZE = "profiler-memory-size"

INTERVAL_OPTIONS = [{"label": "0.5 ms", "value": 0.0005}, {"label": "1 ms", "value": 0.001},
                    {"label": "5 ms", "value": 0.005}, {"label": "10 ms", "value": 0.01}]


def _store():
    return current_app.extensions["ops"].store


def _field(label: str, control, width: str) -> html.Div:
    return html.Div([dbc.Label(label, html_for=control.id, className="small mb-1"), control],
                    className=width)


def layout(**_query):
    controls = html.Div([
        _field("Duration (s, empty: until stopped)",
               dbc.Input(id=DURATION, type="number", min=1, max=svc.MAX_DURATION, step=1,
                         value=60, size="sm"), "col-12 col-sm-6 col-lg-3"),
        _field("Endpoint filter (glob, empty: all)",
               dbc.Input(id=ENDPOINT, type="text", placeholder="/api/orders*", size="sm",
                         maxLength=255), "col-12 col-sm-6 col-lg-3"),
        _field("Sampling interval",
               dbc.Select(id=INTERVAL, options=INTERVAL_OPTIONS, value=0.001, size="sm"),
               "col-6 col-lg-2"),
        html.Div(dbc.Checkbox(id=MEMORY, label="Track memory", value=True),
                 className="col-6 col-lg-2 d-flex align-items-end pb-1"),
        html.Div([
            dbc.Button([html.I(className="bi bi-play-fill me-1"), "Start"], id=START,
                       color="primary", size="sm", n_clicks=0),
            dbc.Button([html.I(className="bi bi-stop-fill me-1"), "Stop"], id=STOP,
                       color="danger", outline=True, size="sm", n_clicks=0, disabled=True),
        ], className="col-12 col-lg-2 d-flex align-items-end gap-2"),
    ], className="row g-2 mb-3")
    return html.Div([
        dcc.Interval(id=LIVE, interval=REFRESH_MS),
        dcc.Store(id=BUMP, data=0),
        dcc.Store(id=VIEW_KEY, data=None),
        page_header("Profiler", "Sample the monitored app's requests (pyinstrument) and "
                                "trace its memory (tracemalloc) for a while, then find "
                                "the hot spots."),
        panel([controls, html.Div(id=STATUS), html.P(id=ROLE_NOTE, className="small "
                                                     "text-body-secondary mt-2 mb-0")],
              title="Session control"),
        panel(html.Div([
            html.Div([dbc.Label("Session", html_for=SESSION, className="small mb-1"),
                      dcc.Dropdown(id=SESSION, options=[], placeholder="No sessions yet",
                                   clearable=False)], className="col-12 col-md-6"),
            html.Div([dbc.Label("Compare with", html_for=COMPARE, className="small mb-1"),
                      dcc.Dropdown(id=COMPARE, options=[], placeholder="Another session…")],
                     className="col-12 col-md-6"),
        ], className="row g-2"), title="Sessions",
            subtitle="Earlier sessions are kept: open one, or compare two"),
        html.Div(id=RESULTS),
    ])


# ----------------------------------------------------------------- live

@callback(Output(STATUS, "children"), Output(SESSION, "options"), Output(COMPARE, "options"),
          Output(SESSION, "value"), Output(START, "disabled"), Output(STOP, "disabled"),
          Output(ROLE_NOTE, "children"), Output(VIEW_KEY, "data"),
          Input(LIVE, "n_intervals"), Input(BUMP, "data"),
          State(SESSION, "value"), State(VIEW_KEY, "data"))
def refresh(_n, bump, selected, view_key):
    """Live status, the session list, and which buttons apply."""
    principal = current_principal()
    can_operate = principal is not None and role_allows(principal.role, "operator")
    note = "" if can_operate else "Starting and stopping sessions needs the operator role."
    try:
        sessions = svc.list_sessions(_store(), 100)
    except SQLAlchemyError as exc:
        card = unavailable_card("The console's store", _short_error(exc))
        return card, no_update, no_update, no_update, True, True, note, no_update
    current = next((s for s in sessions if s["status"] in svc.OPEN), None)
    options = ui.session_options(sessions)
    ids = {s["id"]: s for s in sessions}
    chosen = selected
    if bump and current is not None and ctx_triggered(BUMP):
        selected = current["id"]  # a session just started: follow it
    elif selected not in ids:
        selected = sessions[0]["id"] if sessions else None
    key = f"{selected}:{ids[selected]['status']}" if selected in ids else None
    # The same value set again would still redraw the results every tick.
    return (ui.status_line(current), options, options,
            selected if selected != chosen else no_update,
            not can_operate or current is not None, not can_operate or current is None,
            note, key if key != view_key else no_update)


def ctx_triggered(component_id: str) -> bool:
    return any(t["prop_id"].split(".")[0] == component_id
               for t in dash.callback_context.triggered)


def _act(what: str, action: str, details: dict, work, done: str, bump):
    """Role check (operator), the audited service call, a toast either way;
    the new bump value (refreshes the status) or no_update."""
    actor, refusal = action_allowed("operator", action, f"profiler page: {what}")
    if actor is None:
        push_toast(f"{what}: {refusal}", "danger", title="Not allowed")
        return no_update
    try:
        result = svc.audited(_store(), actor, action, "profiler", details,
                             lambda: work(actor))
    except SQLAlchemyError as exc:
        push_toast(f"{what}: the console's store is unavailable ({_short_error(exc)}).",
                   "danger")
        return no_update
    except (svc.ProfilerError, ValueError) as exc:
        push_toast(f"{what}: {exc}", "warning")
        return no_update
    push_toast(done.format(id=result["id"]), "success")
    return (bump or 0) + 1


@callback(Output(BUMP, "data", allow_duplicate=True),
          Input(START, "n_clicks"), State(DURATION, "value"), State(ENDPOINT, "value"),
          State(INTERVAL, "value"), State(MEMORY, "value"), State(BUMP, "data"),
          prevent_initial_call=True)
def start(n_clicks, duration, endpoint, interval, memory, bump):
    if not n_clicks:
        return no_update
    details = {"duration": float(duration) if duration not in (None, "") else None,
               "endpoint": endpoint or None,
               "interval": float(interval) if interval else None, "memory": bool(memory)}
    return _act("Start profiling", "profiler_start", details,
                lambda actor: svc.start_session(_store(), actor=actor, **details),
                "Session #{id} requested: the monitored processes join within about a "
                "second.", bump)


@callback(Output(BUMP, "data", allow_duplicate=True),
          Input(STOP, "n_clicks"), State(BUMP, "data"), prevent_initial_call=True)
def stop(n_clicks, bump):
    if not n_clicks:
        return no_update
    return _act("Stop profiling", "profiler_stop", {"id": None},
                lambda actor: svc.stop_session(_store(), actor=actor),
                "Session #{id} stopping: results appear once every process has written "
                "its part.", bump)


# ----------------------------------------------------------------- results

@callback(Output(RESULTS, "children"), Input(VIEW_KEY, "data"), Input(COMPARE, "value"),
          Input(SESSION, "value"))
def view(view_key, compare_id, session_id):
    """The chosen session's results (and a comparison with another)."""
    if session_id is None:
        return panel(html.P("No profiling sessions yet. Start one above while the app "
                            "serves traffic; its results show here when it ends.",
                            className="mb-0 text-body-secondary"), title="Results")
    try:
        return results_body(session_id, compare_id)
    except svc.SessionNotFound as exc:
        return panel(html.P(str(exc), className="mb-0"), title="Results")
    except SQLAlchemyError as exc:
        return unavailable_card("The console's store", _short_error(exc))


def results_body(session_id: int, compare_id: int | None) -> list:
    store = _store()
    summary = svc.session_summary(store, session_id)
    head = [ui.summary_cards(summary)]
    if summary["status"] in svc.OPEN:
        return [panel(head + [html.P("Results appear here when the session ends.",
                                     className="mt-3 mb-0 text-body-secondary")],
                      title=f"Session #{session_id}")]
    if summary["status"] == "failed" and not summary["requests"]:
        return [panel(head, title=f"Session #{session_id}")]
    cpu = svc.cpu(store, session_id, limit=1000)
    mem = svc.memory(store, session_id)
    out = [
        panel(head + [ui.process_table(summary)],
              title=f"Session #{session_id}", actions=ui.export_links(session_id)),
        panel(ui.hotspot_grid(cpu["hotspots"]), title="Hotspots",
              subtitle="By self time: where the samples landed"),
        panel(chart(ICICLE, ui.icicle_figure(cpu["tree"]), height=460,
                    filename=f"profile-{session_id}-calltree"),
              title="Call tree (flame summary)",
              subtitle="Width is total time; colour is self time; click to zoom"
                       + (" · the tree hit its size bound" if cpu["truncated"] else "")),
        panel([ui.memory_cards(mem), html.Div([
            html.Div(chart(MEM_GROWTH, ui.memory_figure(mem["growth"], "size_diff",
                                                        "Growth start → stop by line"),
                           height=340, filename=f"profile-{session_id}-memory-growth"),
                     className="col-12 col-xl-6"),
            html.Div(chart(MEM_SIZE, ui.memory_figure(mem["by_size"], "size",
                                                      "Largest allocation sites at stop"),
                           height=340, filename=f"profile-{session_id}-memory-size"),
                     className="col-12 col-xl-6"),
        ], className="row g-2")] if mem["enabled"] else ui.memory_cards(mem),
              title="Memory (tracemalloc)"),
    ]
    if compare_id and compare_id != session_id:
        try:
            other = svc.cpu(store, compare_id, limit=1000)
        except svc.ProfilerError as exc:
            out.append(panel(html.P(str(exc), className="mb-0"), title="Comparison"))
        else:
            rows = ui.compare_rows(other["hotspots"], cpu["hotspots"])
            out.append(panel(ui.compare_grid(rows, compare_id, session_id),
                             title=f"Compared with #{compare_id}",
                             subtitle="Share of sampled time per function; biggest "
                                      "changes first"))
    return out
