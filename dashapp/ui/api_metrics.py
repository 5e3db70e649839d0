"""Pure builders for the API metrics page: service results in, components
and figures out (see dashapp.services.api_metrics for what the numbers mean).
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import html

from dashapp.services.api_metrics import (BAD_ERROR_RATE, SLOW_MS, VERY_SLOW_MS,
                                          WARN_ERROR_RATE)
from dashapp.ui.components import RANGE_LABELS, data_grid, metric_card, metric_grid

NO_DATA = "No requests recorded in this window"

# AG Grid expressions (evaluated by dash-ag-grid's safe expression parser).
_LATENCY_RULES = {
    "text-danger fw-semibold": f"params.value != null && params.value >= {VERY_SLOW_MS}",
    "text-warning-emphasis fw-semibold":
        f"params.value != null && params.value >= {SLOW_MS} && params.value < {VERY_SLOW_MS}",
}
_RATE_RULES = {
    "text-danger fw-semibold": f"params.value >= {BAD_ERROR_RATE}",
    "text-warning-emphasis fw-semibold":
        f"params.value >= {WARN_ERROR_RATE} && params.value < {BAD_ERROR_RATE}",
}
_HEALTH_RULES = {
    "text-danger fw-semibold": "params.data.health == 'error'",
    "text-warning-emphasis fw-semibold": "params.data.health == 'warn'",
    "text-success-emphasis": "params.data.health == 'ok'",
}
_MS = {"function": "params.value == null ? '—' : params.value >= 1000 ? "
                   "d3.format(',.0f')(params.value) : d3.format(',.1f')(params.value)"}
_TIME = {"function": "params.value ? params.value.slice(0, 19).replace('T', ' ') : ''"}
_PCT = {"function": "params.value == null ? '' : d3.format('.1%')(params.value)"}


def _num(field: str, header: str, **extra) -> dict:
    return {"field": field, "headerName": header, "type": "rightAligned",
            "filter": "agNumberColumnFilter", **extra}


def _ms(field: str, header: str, rules: dict | None = None, **extra) -> dict:
    col = _num(field, header, valueFormatter=_MS, minWidth=90, **extra)
    if rules:
        col["cellClassRules"] = rules
    return col


# ------------------------------------------------------------------ status

def health_label(row: dict[str, Any]) -> str:
    """Why an endpoint is coloured: words next to the colour."""
    rate, p95 = row.get("error_rate") or 0, row.get("p95_ms") or 0
    if rate >= BAD_ERROR_RATE:
        return "Failing"
    if p95 >= VERY_SLOW_MS:
        return "Very slow"
    if rate >= WARN_ERROR_RATE:
        return "Errors"
    if p95 >= SLOW_MS:
        return "Slow"
    return "OK"


def empty_notice(minutes: int) -> html.Div:
    """What the page says when the window holds no requests."""
    return html.Div([
        html.Span(html.I(className="bi bi-graph-up"), className="ops-empty__icon",
                  **{"aria-hidden": "true"}),
        html.H2(NO_DATA, className="ops-empty__title"),
        html.P(f"Nothing was recorded in the last {RANGE_LABELS.get(minutes, f'{minutes} min')}. "
               "Requests appear here within seconds of an application instrumented "
               "with dashapp.monitor() serving traffic; pick a longer range to look "
               "further back.", className="ops-empty__text"),
    ], className="ops-empty", id="endpoints-empty")


def summary_cards(perf: dict[str, Any], health: dict[str, Any]) -> html.Div:
    """Requests, 5xx rate, p95 and dropped events for the window."""
    count, rate, p95 = perf["count"], perf["error_rate"], perf["p95_ms"]
    dropped = health["dropped"]
    rate_status = ("muted" if not count else "error" if rate >= BAD_ERROR_RATE
                   else "warn" if rate >= WARN_ERROR_RATE else "ok")
    p95_status = ("muted" if p95 is None else "error" if p95 >= VERY_SLOW_MS
                  else "warn" if p95 >= SLOW_MS else "ok")
    alive = health["alive"]
    return metric_grid([
        metric_card("Requests", count, icon="arrow-left-right",
                    status="ok" if count else "muted",
                    footnote=f"{perf['rps']:.2f} per second on average",
                    id="endpoints-card-requests"),
        metric_card("Error rate", round(rate * 100, 2) if count else None, unit="%",
                    icon="exclamation-octagon", status=rate_status,
                    footnote=f"{perf['errors']:,} server errors (5xx), "
                             f"{perf['client_errors']:,} client errors (4xx)",
                    id="endpoints-card-errors"),
        metric_card("p95 latency", round(p95, 1) if p95 is not None else None, unit="ms",
                    icon="stopwatch", status=p95_status,
                    footnote=(f"p50 {perf['p50_ms']:.1f} ms · p99 {perf['p99_ms']:.1f} ms"
                              + (" · from roll-ups, ±9.5 %"
                                 if perf.get("percentiles") == "histogram" else "")
                              if p95 is not None else "no requests"),
                    id="endpoints-card-p95"),
        metric_card("Dropped events", dropped, icon="cloud-slash",
                    status="warn" if dropped else ("ok" if health["processes"] else "muted"),
                    footnote=(f"{alive} of {len(health['processes'])} monitored processes "
                              "reporting" if health["processes"]
                              else "no monitored process has reported yet"),
                    id="endpoints-card-dropped"),
    ], id="endpoints-cards")


# -------------------------------------------------------------------- grids

ENDPOINT_COLUMNS: list[dict] = [
    {"field": "health_label", "headerName": "Health", "minWidth": 100, "maxWidth": 130,
     "cellClassRules": _HEALTH_RULES, "filter": "agTextColumnFilter"},
    {"field": "method", "headerName": "Method", "minWidth": 90, "maxWidth": 110,
     "filter": "agTextColumnFilter"},
    {"field": "endpoint", "headerName": "Endpoint", "minWidth": 220, "flex": 3,
     "filter": "agTextColumnFilter", "cellClass": "font-monospace"},
    _num("count", "Requests", minWidth=100, valueFormatter={
        "function": "d3.format(',')(params.value)"}),
    _num("errors", "5xx", minWidth=70),
    _num("client_errors", "4xx", minWidth=70),
    _num("error_rate", "Error rate", minWidth=100, valueFormatter=_PCT,
         cellClassRules=_RATE_RULES),
    _ms("p50_ms", "p50 ms", _LATENCY_RULES),
    _ms("p95_ms", "p95 ms", _LATENCY_RULES),
    _ms("p99_ms", "p99 ms", _LATENCY_RULES),
    _ms("mean_ms", "Mean ms"),
    _ms("max_ms", "Max ms"),
]

ERROR_COLUMNS: list[dict] = [
    {"field": "time", "headerName": "Time (UTC)", "minWidth": 170, "valueFormatter": _TIME},
    _num("status", "Status", minWidth=80, cellClassRules={
        "text-danger fw-semibold": "params.value >= 500",
        "text-warning-emphasis": "params.value < 500"}),
    {"field": "method", "headerName": "Method", "minWidth": 80, "maxWidth": 100},
    {"field": "endpoint", "headerName": "Endpoint", "minWidth": 200, "cellClass": "font-monospace"},
    {"field": "exception_type", "headerName": "Exception", "minWidth": 140},
    {"field": "exception_message", "headerName": "Message", "minWidth": 200, "flex": 2},
    {"field": "request_id", "headerName": "Request id", "minWidth": 160,
     "cellClass": "font-monospace"},
]

SLOW_COLUMNS: list[dict] = [
    _ms("duration_ms", "Duration ms", _LATENCY_RULES, sort="desc"),
    {"field": "time", "headerName": "Time (UTC)", "minWidth": 170, "valueFormatter": _TIME},
    {"field": "method", "headerName": "Method", "minWidth": 80, "maxWidth": 100},
    _num("status", "Status", minWidth=80),
    {"field": "exception_type", "headerName": "Exception", "minWidth": 120},
    {"field": "request_id", "headerName": "Request id", "minWidth": 160,
     "cellClass": "font-monospace"},
]


def _with_grid_options(wrapper: html.Div, get_row_id: str, **options) -> html.Div:
    """Give the AgGrid inside a `data_grid` wrapper a row id (so clicks name
    the row) and extra grid options."""
    grid = wrapper.children[1]
    grid.getRowId = get_row_id
    grid.dashGridOptions = {**grid.dashGridOptions, **options}
    return wrapper


def endpoint_rows(df: pd.DataFrame) -> list[dict]:
    """Summary rows for the grid, with the health label in words."""
    from dashapp.services.api_metrics import summary_records
    rows = summary_records(df)
    for row in rows:
        row["health_label"] = health_label(row)
    return rows


def endpoint_grid(rows: list[dict]) -> html.Div:
    grid = data_grid("endpoints-table", rows, ENDPOINT_COLUMNS, page_size=25,
                     csv_filename="endpoints.csv", row_count=False)
    return _with_grid_options(grid, "params.data.method + ' ' + params.data.endpoint",
                              localeText={"noRowsToShow": NO_DATA},
                              rowStyle={"cursor": "pointer"})


def errors_grid(rows: list[dict]) -> html.Div:
    grid = data_grid("endpoints-errors", rows, ERROR_COLUMNS, page_size=10,
                     csv_filename="recent-errors.csv", row_count=False)
    return _with_grid_options(grid, "params.data.request_id",
                              localeText={"noRowsToShow": "No failed requests in this window"})


def slow_grid(rows: list[dict]) -> html.Div:
    grid = data_grid("endpoints-slow", rows, SLOW_COLUMNS, page_size=10, search=False,
                     csv_filename="slowest-requests.csv", row_count=False)
    return _with_grid_options(grid, "params.data.request_id",
                              localeText={"noRowsToShow": "No requests in this window"},
                              rowStyle={"cursor": "pointer"})


def parse_row_id(row_id: str | None) -> tuple[str, str] | None:
    """(method, endpoint) from an endpoint grid row id "GET /orders/<int:id>"."""
    if not row_id or " " not in row_id:
        return None
    method, endpoint = row_id.split(" ", 1)
    return method, endpoint


# ------------------------------------------------------------------ figures

def _figure() -> go.Figure:
    return go.Figure(layout={"template": "ops_light"})


def _empty(fig: go.Figure, message: str = NO_DATA) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper",
                       x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _finish(fig: go.Figure, yaxis_title: str) -> go.Figure:
    fig.update_layout(margin={"l": 48, "r": 10, "t": 10, "b": 30}, hovermode="x unified",
                      legend={"orientation": "h", "y": 1.12, "x": 0, "xanchor": "left"},
                      yaxis_title=yaxis_title)
    return fig


def _frame(series: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(series)
    if len(df):
        df["time"] = pd.to_datetime(df["time"], utc=True)
    return df


def latency_figure(series: list[dict]) -> go.Figure:
    """p50/p95/p99 per bucket (gaps where a bucket had no requests)."""
    fig = _figure()
    df = _frame(series)
    if not len(df) or not df["count"].sum():
        return _empty(fig)
    for key, name, width, dash in (("p50_ms", "p50", 2, None), ("p95_ms", "p95", 2, None),
                                   ("p99_ms", "p99", 1.5, "dot")):
        fig.add_scatter(x=df["time"], y=df[key], name=name, mode="lines+markers",
                        marker={"size": 4}, line={"width": width, "dash": dash},
                        connectgaps=False, hovertemplate="%{y:,.1f} ms")
    return _finish(fig, "ms")


def volume_figure(series: list[dict], bucket_seconds: int) -> go.Figure:
    """Requests per bucket, 5xx and 4xx stacked on top of the successes."""
    fig = _figure()
    df = _frame(series)
    if not len(df) or not df["count"].sum():
        return _empty(fig)
    ok = df["count"] - df["errors"] - df["client_errors"]
    fig.add_bar(x=df["time"], y=ok, name="2xx/3xx")
    fig.add_bar(x=df["time"], y=df["client_errors"], name="4xx",
                marker={"color": "#f59e0b"})
    fig.add_bar(x=df["time"], y=df["errors"], name="5xx", marker={"color": "#ef4444"})
    fig.update_layout(barmode="stack", bargap=0.1)
    return _finish(fig, f"requests per {_bucket_words(bucket_seconds)}")


def error_rate_figure(series: list[dict]) -> go.Figure:
    """Share of 5xx responses per bucket, in percent."""
    fig = _figure()
    df = _frame(series)
    if not len(df) or not df["count"].sum():
        return _empty(fig)
    rate = (df["error_rate"] * 100).where(df["count"] > 0)
    fig.add_scatter(x=df["time"], y=rate, name="5xx %", mode="lines+markers",
                    marker={"size": 4}, line={"width": 2, "color": "#ef4444"},
                    connectgaps=False, hovertemplate="%{y:.2f}%")
    fig.update_yaxes(rangemode="tozero")
    return _finish(fig, "% of requests (5xx)")


def _bucket_words(seconds: int) -> str:
    if seconds % 3600 == 0:
        return "hour" if seconds == 3600 else f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return "minute" if seconds == 60 else f"{seconds // 60} min"
    return f"{seconds} s"


def detail_figure(detail: dict[str, Any]) -> go.Figure:
    """One endpoint: p50/p95/p99 lines over request-count bars."""
    fig = _figure()
    df = _frame(detail["series"])
    if not detail["count"]:
        return _empty(fig, "No requests to this endpoint in this window")
    fig.add_bar(x=df["time"], y=df["count"], name="requests", yaxis="y2",
                marker={"color": "rgba(148,163,184,0.35)"}, hovertemplate="%{y:,}")
    for key, name, dash in (("p50_ms", "p50", None), ("p95_ms", "p95", None),
                            ("p99_ms", "p99", "dot")):
        fig.add_scatter(x=df["time"], y=df[key], name=name, mode="lines+markers",
                        marker={"size": 4}, line={"dash": dash}, connectgaps=False,
                        hovertemplate="%{y:,.1f} ms")
    fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "showgrid": False,
                              "title": {"text": "requests"}, "rangemode": "tozero"})
    return _finish(fig, "ms")


# ------------------------------------------------------------------- detail

def _fmt_ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def detail_summary(detail: dict[str, Any]) -> html.Div:
    """Title line and the endpoint's figures for the window."""
    method = detail["method"] or " / ".join(detail["methods"]) or "any method"
    facts = [("Requests", f"{detail['count']:,}"),
             ("5xx", f"{detail['errors']:,} ({detail['error_rate']:.1%})"),
             ("4xx", f"{detail['client_errors']:,}"),
             ("p50", _fmt_ms(detail["p50_ms"])), ("p95", _fmt_ms(detail["p95_ms"])),
             ("p99", _fmt_ms(detail["p99_ms"])), ("Max", _fmt_ms(detail["max_ms"]))]
    return html.Div([
        html.P([html.Span(method, className="badge text-bg-secondary me-2"),
                html.Code(detail["endpoint"], className="fs-6")],
               className="mb-2", id="endpoints-detail-name"),
        html.P(f"Last {RANGE_LABELS.get(detail['minutes'], str(detail['minutes']) + ' min')}"
               f", {_bucket_words(detail['bucket_seconds'])} buckets."
               + (" Counts and percentiles from the roll-ups (percentiles within "
                  "±9.5 %); status codes and slowest requests from the raw rows kept "
                  "(the last 7 days by default)."
                  if detail.get("percentiles") == "histogram" else ""),
               className="text-body-secondary small mb-2"),
        html.Ul([html.Li([html.Strong(f"{k}: "), v]) for k, v in facts],
                className="list-inline ops-facts mb-0 d-flex flex-wrap gap-3"),
    ])


def status_split(detail: dict[str, Any]) -> html.Div:
    """Each status code's count and share, as words and a bar."""
    total = detail["count"]
    if not total:
        return html.P("No responses in this window.", className="text-body-secondary")
    items = []
    for s in detail["status_codes"]:
        share = s["count"] / total
        colour = ("bg-danger" if s["status"] >= 500 else "bg-warning"
                  if s["status"] >= 400 else "bg-success")
        items.append(html.Div([
            html.Span(str(s["status"]), className="font-monospace me-2",
                      style={"minWidth": "3ch"}),
            html.Div(html.Div(className=f"progress-bar {colour}",
                              style={"width": f"{share * 100:.1f}%"}),
                     className="progress flex-grow-1", style={"height": "8px"},
                     role="progressbar", **{"aria-label": f"status {s['status']}",
                                            "aria-valuenow": f"{share * 100:.0f}",
                                            "aria-valuemin": "0", "aria-valuemax": "100"}),
            html.Span(f"{s['count']:,} ({share:.1%})", className="ms-2 small text-nowrap"),
        ], className="d-flex align-items-center mb-1"))
    return html.Div(items, id="endpoints-status-split")


def sql_list(data: dict[str, Any] | None) -> html.Div:
    """The SQL one request ran, in order, with durations (text, never markup)."""
    if data is None:
        return html.P("Click a slow request to see the SQL it ran.",
                      className="text-body-secondary small mb-0")
    req = data.get("request")
    head = [html.Strong("Request "), html.Code(data["request_id"])]
    if req:
        head += [f" · {req['method']} ", html.Code(req["endpoint"]),
                 f" · {req['status']} · {req['duration_ms']:,.1f} ms"]
    children: list = [html.P(head, className="mb-2")]
    if not data["queries"]:
        children.append(html.P("This request ran no SQL that was recorded.",
                               className="text-body-secondary mb-0"))
        return html.Div(children, id="endpoints-sql-list")
    share = ""
    if req and req["duration_ms"]:
        share = f" ({data['total_ms'] / req['duration_ms']:.0%} of the request)"
    children.append(html.P(f"{data['count']} statement{'s' if data['count'] != 1 else ''}, "
                           f"{data['total_ms']:,.2f} ms in SQL{share}, in the order they ran:",
                           className="small text-body-secondary mb-2"))
    items = []
    for q in data["queries"]:
        rows = "" if q["rows"] is None else f" · {q['rows']:,} rows"
        items.append(html.Li([
            html.Div([html.Strong(f"{q['duration_ms']:,.2f} ms"), rows],
                     className="small mb-1"),
            html.Pre(html.Code(q["sql"], style={"background": "transparent", "padding": 0}), className="mb-0 p-2 rounded border small",
                     style={"whiteSpace": "pre-wrap", "wordBreak": "break-word"}),
        ], className="mb-2"))
    children.append(html.Ol(items, className="ps-3 mb-0"))
    return html.Div(children, id="endpoints-sql-list")
