"""Logs: a live stream of a log file (or the records monitor() captured),
filtered by level, text or regex, logger and request id, with a level
histogram, top errors and export of the filtered records.

The live list is not a Dash callback loop: a clientside callback hands the
stream's URL to assets/logs-stream.js, which opens an EventSource on
/api/logs/stream (Server-Sent Events, the same service the REST API uses)
and draws each record as text. Everything else is thin server callbacks
calling dashapp.services.logs, the same functions /api/logs calls. The page
only reads, so the viewer role is enough (the Dash endpoint needs a sign-in).
URL: /logs?source=<path or captured>&request=<request id>.
"""
from __future__ import annotations

import logging
import re
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from dashapp.services import logs as svc
from dashapp.store import _short_error
from dashapp.ui import logs as ui
from dashapp.ui.components import (RANGE_LABELS, chart, page_header, panel, push_toast,
                                   range_picker, unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("logs"))

REFRESH_MS = 15_000
DEFAULT_MINUTES = 60
BACKLOG = 200

# Component ids.
IDS = {"source": "logs-source", "levels": "logs-levels", "search": "logs-search",
       "regex": "logs-regex", "logger": "logs-logger", "request": "logs-request",
       "paused": "logs-paused", "follow": "logs-follow"}
CONFIG = "logs-config"
LIVE_STATUS = "logs-live-status"
VIEW = "logs-view"
FILTER_ERROR = "logs-filter-error"
RANGE = "logs-range"
REFRESH = "logs-refresh"
HISTOGRAM = "logs-histogram"
TOTALS = "logs-totals"
TOP = "logs-top"
STATS_STATUS = "logs-stats-status"
EXPORT_JSON = "logs-export-json"
EXPORT_TXT = "logs-export-txt"
DOWNLOAD = "logs-download"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_FIELD_LABELS = {"q": "Search"}   # the service's field names as the page shows them


def _ops():
    return current_app.extensions["ops"]


def filters_for(levels, search, regex, logger_name, request_id) -> svc.Filters:
    """The page's inputs as the service's filters (raises BadFilter)."""
    chosen = tuple(levels or ())
    if request_id and not _REQUEST_ID.match(request_id.strip()):
        raise svc.BadFilter("a request id is letters, digits, . _ : - (at most 64)",
                            "request id")
    return svc.Filters(levels=() if len(chosen) == len(svc.LEVELS) else chosen,
                       text=(search or "").strip() or None, regex=bool(regex),
                       logger=(logger_name or "").strip() or None,
                       request_id=(request_id or "").strip() or None)


def stream_url(source: str, filters: svc.Filters) -> str:
    """/api/logs/stream with the same filters (what the EventSource opens)."""
    query = {"source": source, "backlog": BACKLOG}
    if filters.levels:
        query["level"] = ",".join(filters.levels)
    if filters.text:
        query["q"] = filters.text
        if filters.regex:
            query["regex"] = "true"
    if filters.logger:
        query["logger"] = filters.logger
    if filters.request_id:
        query["request_id"] = filters.request_id
    return "/api/logs/stream?" + urlencode(query)


def layout(source: str | None = None, request: str | None = None, **_query):
    settings = _ops().settings
    try:
        sources = svc.list_sources(settings)
        chosen = svc.resolve_source(settings, source) if source else None
    except (svc.LogAccessError, OSError) as exc:
        sources = svc.list_sources(settings)
        chosen = None
        logger.info("Logs page: source %r refused: %s", source, exc)
    options = ui.source_options(sources)
    if chosen is None:
        chosen = options[0]["value"]
    request_id = request if request and _REQUEST_ID.match(request) else None
    no_files = not [s for s in sources if s["kind"] == "file"]
    hint = None
    if no_files:
        hint = html.P(["No log files are configured or found: set ", html.Code("OPS_LOG_FILES"),
                       " (paths or globs) and ", html.Code("OPS_LOG_DIRS"),
                       " (the folders they may be in). The records monitor() captures "
                       "are shown meanwhile."], className="ops-log-hint small")
    return html.Div([
        page_header("Logs", "Live log lines as they are written, filtered as you type.",
                    actions=html.Div([
                        html.Button([html.I(className="bi bi-filetype-json me-1",
                                            **{"aria-hidden": "true"}), "Export JSON"],
                                    id=EXPORT_JSON, className="btn btn-outline-secondary btn-sm"),
                        html.Button([html.I(className="bi bi-filetype-txt me-1",
                                            **{"aria-hidden": "true"}), "Export TXT"],
                                    id=EXPORT_TXT, className="btn btn-outline-secondary btn-sm"),
                    ], className="d-flex gap-2 flex-wrap")),
        hint,
        panel(ui.controls(IDS, options, chosen, request_id), className="mb-3"),
        html.Div(id=FILTER_ERROR, role="alert", className="ops-log-filter-error"),
        html.Div(className="ops-stack", children=[
            panel([
                html.Div([html.Span(id=LIVE_STATUS, className="ops-log-status",
                                    children="Connecting…", role="status"),
                          html.Button("Clear", id="logs-clear", n_clicks=0,
                                      className="btn btn-link btn-sm ms-auto p-0")],
                         className="d-flex align-items-center mb-2 gap-2"),
                html.Div(id=VIEW, className="ops-log-view", role="log", tabIndex="0",
                         **{"aria-live": "off", "aria-label": "Log lines, newest last"}),
            ], title="Live stream",
                subtitle="Newest last. Click a request id to open that request's "
                         "metrics and SQL."),
            html.Div(className="ops-cols", children=[
                panel([html.Div(id=STATS_STATUS), html.Div(id=TOTALS),
                       chart(HISTOGRAM, None, height=240, filename="log-levels")],
                      title="Levels over time", subtitle="Matching records per level",
                      actions=range_picker(RANGE, DEFAULT_MINUTES)),
                panel(html.Div(id=TOP), title="Errors and loggers",
                      subtitle="Same window and filters"),
            ]),
        ]),
        dcc.Store(id=CONFIG, data=None),
        dcc.Download(id=DOWNLOAD),
        dcc.Interval(id=REFRESH, interval=REFRESH_MS),
    ])


_FILTER_INPUTS = [Input(IDS["source"], "value"), Input(IDS["levels"], "value"),
                  Input(IDS["search"], "value"), Input(IDS["regex"], "value"),
                  Input(IDS["logger"], "value"), Input(IDS["request"], "value")]


@callback(Output(CONFIG, "data"), Output(FILTER_ERROR, "children"), *_FILTER_INPUTS)
def configure(source, levels, search, regex, logger_name, request_id):
    """The stream to open for these filters (or why they cannot be used)."""
    if not levels:
        return {"url": None, "message": "Choose at least one level."}, None
    try:
        filters = filters_for(levels, search, regex, logger_name, request_id)
        path = svc.resolve_source(_ops().settings, source)
    except svc.BadFilter as exc:
        label = _FIELD_LABELS.get(exc.field, exc.field.capitalize())
        return no_update, html.P(f"{label}: {exc}", className="text-danger small mb-2")
    except svc.LogAccessError as exc:
        return no_update, html.P(str(exc), className="text-danger small mb-2")
    return {"url": stream_url(path, filters), "highlight": filters.highlight()}, None


clientside_callback(
    "function (config, paused, follow) {"
    " return window.opsLogs ? window.opsLogs.configure(config, (paused || []).length > 0,"
    " (follow || []).length > 0) : 'The live view script did not load.'; }",
    Output(LIVE_STATUS, "children"),
    Input(CONFIG, "data"), Input(IDS["paused"], "value"), Input(IDS["follow"], "value"),
)

clientside_callback(
    "function (n) { if (n && window.opsLogs) { window.opsLogs.clear(); }"
    " return window.dash_clientside.no_update; }",
    Output(VIEW, "className"), Input("logs-clear", "n_clicks"),
    prevent_initial_call=True,
)


@callback(Output(HISTOGRAM, "figure"), Output(TOTALS, "children"), Output(TOP, "children"),
          Output(STATS_STATUS, "children"),
          Input(REFRESH, "n_intervals"), Input(RANGE, "value"), *_FILTER_INPUTS)
def refresh_stats(_n, minutes, source, levels, search, regex, logger_name, request_id):
    """Histogram, totals and top errors for the window and filters."""
    try:
        filters = filters_for(levels, search, regex, logger_name, request_id)
        window = minutes if minutes in RANGE_LABELS else DEFAULT_MINUTES
        result = svc.stats(_ops().settings, _ops().store, source, window, filters=filters)
    except (svc.BadFilter, svc.LogAccessError):
        return no_update, no_update, no_update, no_update
    except SQLAlchemyError as exc:
        return (ui.histogram_figure(None), None, None,
                unavailable_card("The console's store", _short_error(exc)))
    except OSError as exc:
        return (ui.histogram_figure(None), None, None,
                unavailable_card("The log file", f"It cannot be read: {type(exc).__name__}"))
    return ui.histogram_figure(result), ui.totals_line(result), ui.top_errors(result), None


@callback(Output(DOWNLOAD, "data"),
          Input(EXPORT_JSON, "n_clicks"), Input(EXPORT_TXT, "n_clicks"),
          *[State(i.component_id, i.component_property) for i in _FILTER_INPUTS],
          prevent_initial_call=True)
def export(_json, _txt, source, levels, search, regex, logger_name, request_id):
    """The newest matching records (up to 10,000), oldest first, as a file."""
    fmt = "json" if ctx.triggered_id == EXPORT_JSON else "txt"
    if not levels:
        push_toast("Choose at least one level to export.", "warning")
        return no_update
    try:
        filters = filters_for(levels, search, regex, logger_name, request_id)
        text, name = svc.export(_ops().settings, _ops().store, source, filters, fmt)
    except (svc.BadFilter, svc.LogAccessError) as exc:
        push_toast(f"Cannot export: {exc}", "danger")
        return no_update
    except SQLAlchemyError as exc:
        push_toast(f"The console's store is unavailable: {_short_error(exc)}", "danger")
        return no_update
    except OSError as exc:
        push_toast(f"The log file cannot be read: {type(exc).__name__}", "danger")
        return no_update
    push_toast(f"Exported the matching records as {name}.")
    return {"content": text, "filename": name,
            "type": "application/json" if fmt == "json" else "text/plain"}
