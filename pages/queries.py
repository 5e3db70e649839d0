"""SQL queries: slow and frequent statements, plans, suggestions, N+1 findings.

Callbacks are thin: read the inputs, call dashapp.services.queries (the same
functions /api/queries calls), hand the result to dashapp.ui.queries.
"""
from __future__ import annotations

import logging

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html, no_update
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from dashapp.services import queries as svc
from dashapp.store import _short_error
from dashapp.ui import queries as ui
from dashapp.ui.components import (RANGE_LABELS, modal, page_header, panel, range_picker,
                                   unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("queries"))

DEFAULT_MINUTES = 60
REFRESH_MS = 15_000
ALLOWED = set(RANGE_LABELS)


def _ops():
    return current_app.extensions["ops"]


def _minutes(value) -> int:
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        return DEFAULT_MINUTES
    return minutes if minutes in ALLOWED else DEFAULT_MINUTES


def _load(minutes: int) -> tuple:
    """(stats, issues, problem): problem is an unavailable card when the
    store is down (stats and issues None then)."""
    ops = _ops()
    try:
        return svc.stats(ops.store, minutes), svc.issues(ops.store, minutes), None
    except SQLAlchemyError as exc:
        logger.warning("queries page: store unavailable: %s", _short_error(exc))
        return None, None, ui.unavailable(_short_error(exc))


def render(minutes: int) -> tuple:
    """(table, issues panel) for a time window: the first paint."""
    stats, found, problem = _load(minutes)
    return (ui.query_table(stats, _ops().settings.slow_query_ms, problem),
            ui.issues_panel(found))


def layout(**_query):
    table, issues = render(DEFAULT_MINUTES)
    picker = range_picker("queries-range", DEFAULT_MINUTES)
    return html.Div([
        page_header("SQL queries", "Statements the monitored application runs, per "
                    "fingerprint (values folded), with plans and suggestions.",
                    actions=html.Div(picker, role="group", **{"aria-label": "Time range"})),
        html.Div(className="ops-stack", children=[
            panel(dcc.Loading(html.Div(table, id="queries-table-wrap"), delay_show=400),
                  title="Queries", subtitle="Per fingerprint, by total time"),
            html.Div(issues, id="queries-issues-wrap"),
        ]),
        modal("queries-detail", "Query", html.Div(id="queries-detail-body"), size="xl"),
        dcc.Interval(id="queries-refresh", interval=REFRESH_MS),
    ])


@callback(Output("queries-status", "children"),
          Output("queries-table", "rowData"),
          Output("queries-grid-wrap", "style"),
          Output("queries-issues-wrap", "children"),
          Input("queries-range", "value"),
          Input("queries-refresh", "n_intervals"),
          prevent_initial_call=True)
def refresh(minutes, _tick):
    """New range or a refresh tick: new rows into the same grid, so the
    user's sort, filters and page stay as they were."""
    stats, found, problem = _load(_minutes(minutes))
    return (*ui.table_state(stats, problem), ui.issues_panel(found))


def open_detail(clicked) -> tuple:
    """(is_open, title, body) for the query a table click names."""
    try:
        query_id = int((clicked or {}).get("rowId"))
    except (TypeError, ValueError):
        return no_update, no_update, no_update
    ops = _ops()
    try:
        detail = svc.query_detail(ops.store, query_id)
    except svc.NotFound:
        return True, "Query", html.P("This query is no longer stored (retention).")
    except SQLAlchemyError as exc:
        return True, "Query", unavailable_card("The console's store", _short_error(exc))
    optimized, error = None, None
    try:
        optimized = svc.optimize(ops.store, svc.engine_for(ops.settings), query_id)
    except (svc.NoMonitoredDatabase, svc.DatabaseUnavailable, svc.ExplainError) as exc:
        error = str(exc)
    except SQLAlchemyError as exc:
        error = f"Could not build suggestions: {_short_error(exc)}"
    title = f"Query {detail['fingerprint']}"
    return True, title, ui.detail_body(detail, optimized, error)


@callback(Output("queries-detail", "is_open"),
          Output("queries-detail", "children"),
          Input("queries-table", "cellClicked"),
          prevent_initial_call=True)
def show_detail(clicked):
    is_open, title, body = open_detail(clicked)
    if is_open is no_update:
        return no_update, no_update
    return is_open, [dbc.ModalHeader(dbc.ModalTitle(title), close_button=True),
                     dbc.ModalBody(body)]
