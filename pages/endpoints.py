"""API metrics: per-endpoint throughput, latency percentiles and errors.

Callbacks are thin: read the inputs, call dashapp.services.api_metrics (the
same functions /api/metrics calls), hand the result to the builders in
dashapp.ui.api_metrics.
"""
from __future__ import annotations

import logging
import re

import dash
from dash import Input, Output, State, callback, dcc, html, no_update
from flask import current_app
from sqlalchemy.exc import DBAPIError

from dashapp.services import api_metrics as svc
from dashapp.services.memo import SHARE_SECONDS, shared
from dashapp.store import _short_error
from dashapp.ui import api_metrics as ui
from dashapp.ui.components import (RANGE_LABELS, chart, modal, page_header, panel, range_picker,
                                   unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("endpoints"))

REFRESH_MS = 10_000
DEFAULT_MINUTES = 60
ERRORS_LIMIT = 200
SLOW_LIMIT = 20
STORE_NAME = "The console's store"


def _store():
    return current_app.extensions["ops"].store


def _minutes(value) -> int:
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        return DEFAULT_MINUTES
    return minutes if minutes in RANGE_LABELS else DEFAULT_MINUTES


def render(minutes: int) -> tuple:
    """(status, cards, main style, grid rows, 3 figures, error rows) for a window."""
    store = _store()

    def figures():
        return (svc.endpoint_summary(store, minutes), svc.performance(store, minutes),
                svc.monitor_health(store), svc.recent_errors(store, minutes, ERRORS_LIMIT))
    try:
        # Everyone watching this window shares one computation per refresh.
        summary, perf, health, errors = shared(store, ("endpoints", minutes),
                                               SHARE_SECONDS, figures)
    except DBAPIError as exc:
        logger.warning("API metrics page: store unavailable: %s", _short_error(exc))
        status = unavailable_card(STORE_NAME, _short_error(exc))
        empty = ui.latency_figure([])
        return status, None, {"display": "none"}, [], empty, empty, empty, []
    status = ui.empty_notice(minutes) if not perf["count"] else None
    return (status, ui.summary_cards(perf, health), {} if perf["count"] else {"display": "none"},
            ui.endpoint_rows(summary), ui.latency_figure(perf["series"]),
            ui.volume_figure(perf["series"], perf["bucket_seconds"]),
            ui.error_rate_figure(perf["series"]), svc.summary_records(errors))


def request_panel(request_id: str | None):
    """?request=<id> (the Logs page links here): that request and its SQL."""
    if not request_id or not re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", request_id):
        return None
    try:
        block = ui.sql_list(svc.requests_sql(_store(), request_id))
    except DBAPIError as exc:
        block = unavailable_card(STORE_NAME, _short_error(exc))
    block.id = "endpoints-request-sql"
    return panel(block, title="Request", className="mb-4",
                 subtitle="Opened from a log line: the request's timing and the SQL it ran")


def layout(request: str | None = None, **_query):
    minutes = DEFAULT_MINUTES
    status, cards, style, rows, latency, volume, rate, errors = render(minutes)
    picker = range_picker("endpoints-range", minutes)
    detail_body = html.Div([
        html.Div(id="endpoints-detail-summary"),
        chart("endpoints-detail-chart", None, height=260, filename="endpoint-latency"),
        html.H3("Status codes", className="h6 mt-3"),
        html.Div(id="endpoints-detail-status"),
        html.H3("Slowest requests", className="h6 mt-3"),
        html.P("Click a request to see the SQL it ran.", className="small text-body-secondary"),
        ui.slow_grid([]),
        html.H3("SQL of the request", className="h6 mt-3"),
        dcc.Loading(html.Div(ui.sql_list(None), id="endpoints-sql"), delay_show=300),
    ])
    return html.Div([
        page_header("API metrics", "Throughput, latency percentiles and errors per "
                    "endpoint, refreshed every 10 seconds.",
                    actions=html.Div([html.Span("Range", className="visually-hidden"),
                                      picker], role="group",
                                     **{"aria-label": "Time range"})),
        request_panel(request),
        html.Div(status, id="endpoints-status"),
        html.Div(cards, id="endpoints-cards-wrap", className="mb-4"),
        html.Div(id="endpoints-main", style=style, className="ops-stack", children=[
            panel(ui.endpoint_grid(rows), title="Endpoints",
                  subtitle="Click a row for its detail. Colours: amber = slow "
                           f"(p95 ≥ {svc.SLOW_MS:.0f} ms) or some 5xx, "
                           f"red = very slow (≥ {svc.VERY_SLOW_MS:.0f} ms) or "
                           f"≥ {svc.BAD_ERROR_RATE:.0%} 5xx."),
            panel(chart("endpoints-latency", latency, height=280, filename="response-times"),
                  title="Response time", subtitle="p50, p95 and p99, all endpoints"),
            html.Div(className="ops-cols", children=[
                panel(chart("endpoints-volume", volume, height=260,
                            filename="request-volume"),
                      title="Request volume", subtitle="Requests by outcome"),
                panel(chart("endpoints-error-rate", rate, height=260,
                            filename="error-rate"),
                      title="Error rate", subtitle="Share of server errors (5xx)"),
            ]),
            panel(ui.errors_grid(errors), title="Recent errors",
                  subtitle="Failed requests, newest first; 5xx with the exception raised"),
        ]),
        modal("endpoints-detail", "Endpoint detail", detail_body, size="xl"),
        dcc.Interval(id="endpoints-refresh", interval=REFRESH_MS),
    ])


@callback(Output("endpoints-status", "children"),
          Output("endpoints-cards-wrap", "children"),
          Output("endpoints-main", "style"),
          Output("endpoints-table", "rowData"),
          Output("endpoints-latency", "figure"),
          Output("endpoints-volume", "figure"),
          Output("endpoints-error-rate", "figure"),
          Output("endpoints-errors", "rowData"),
          Input("endpoints-refresh", "n_intervals"),
          Input("endpoints-range", "value"),
          prevent_initial_call=True)
def refresh(_n, minutes):
    return render(_minutes(minutes))


@callback(Output("endpoints-detail", "is_open"),
          Output("endpoints-detail-summary", "children"),
          Output("endpoints-detail-chart", "figure"),
          Output("endpoints-detail-status", "children"),
          Output("endpoints-slow", "rowData"),
          Output("endpoints-sql", "children"),
          Input("endpoints-table", "cellClicked"),
          State("endpoints-range", "value"),
          prevent_initial_call=True)
def open_detail(clicked, minutes):
    """A click on an endpoint row opens its detail for the current range."""
    parsed = ui.parse_row_id((clicked or {}).get("rowId"))
    if parsed is None:
        return (no_update,) * 6
    method, endpoint = parsed
    try:
        detail = svc.endpoint_detail(_store(), endpoint, method, _minutes(minutes),
                                     slow_limit=SLOW_LIMIT)
    except DBAPIError as exc:
        card = unavailable_card(STORE_NAME, _short_error(exc))
        return True, card, ui.latency_figure([]), None, [], ui.sql_list(None)
    if detail is None:
        return (True, html.P("This endpoint has no recorded requests any more."),
                ui.latency_figure([]), None, [], ui.sql_list(None))
    return (True, ui.detail_summary(detail), ui.detail_figure(detail),
            ui.status_split(detail), detail["slowest"], ui.sql_list(None))


@callback(Output("endpoints-sql", "children", allow_duplicate=True),
          Input("endpoints-slow", "cellClicked"),
          prevent_initial_call=True)
def show_sql(clicked):
    """A click on a slow request shows the SQL it ran, in order."""
    request_id = (clicked or {}).get("rowId")
    if not request_id:
        return no_update
    try:
        data = svc.requests_sql(_store(), request_id)
    except DBAPIError as exc:
        return unavailable_card(STORE_NAME, _short_error(exc))
    return ui.sql_list(data)
