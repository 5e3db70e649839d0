"""Logs page builders: the level histogram, top errors, source options and
the controls. Pure functions: data in, components and figures out. The live
list itself is drawn in the browser by assets/logs-stream.js (text nodes
only, never HTML)."""
from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import plotly.graph_objects as go
from dash import dcc, html

from dashapp.formatting import human_bytes
from dashapp.services.logs import CAPTURED, LEVELS

# Level colours, light enough for the dark theme and dark enough for the light one.
LEVEL_COLOURS = {"DEBUG": "#8b95a5", "INFO": "#3b82f6", "WARNING": "#f59e0b",
                 "ERROR": "#ef4444", "CRITICAL": "#a21caf"}


def source_options(sources: list[dict]) -> list[dict]:
    """Dropdown options: each file (name, size) and the captured records."""
    options = []
    for s in sources:
        if s["kind"] == "captured":
            options.append({"label": "Captured by monitor() (host logging)",
                            "value": CAPTURED})
        else:
            folder = os.path.basename(os.path.dirname(s["source"]))
            size = human_bytes(s["size"]) if s.get("size") is not None else ""
            options.append({"label": f"{folder}/{s['name']} · {size}", "value": s["source"]})
    return options


def histogram_figure(stats: dict | None) -> go.Figure:
    """Stacked bars: records per level per time bucket."""
    fig = go.Figure(layout={"template": "ops_light"})
    if stats:
        for level in LEVELS:
            points = [p for p in stats["series"] if p["level"] == level]
            if not points:
                continue
            fig.add_bar(x=[datetime.fromisoformat(p["time"]) for p in points],
                        y=[p["count"] for p in points], name=level.title(),
                        marker_color=LEVEL_COLOURS[level],
                        hovertemplate=f"{level.title()}: %{{y:,}}<extra></extra>")
    fig.update_layout(barmode="stack", margin={"l": 40, "r": 10, "t": 10, "b": 30},
                      hovermode="x unified", bargap=0.1,
                      legend={"orientation": "h", "y": 1.12, "x": 0},
                      yaxis={"rangemode": "tozero"})
    if stats:  # the whole window, so a burst shows as a burst
        fig.update_xaxes(range=[stats["since"], stats["until"]])
    if not stats or not stats["series"]:
        fig.add_annotation(text="No records in this window", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return fig


def totals_line(stats: dict | None) -> html.Div:
    """Per-level totals as small badges (text)."""
    if not stats:
        return html.Div()
    badges = [html.Span([html.Span(className=f"ops-log-dot ops-log-dot--{lvl}"),
                         f"{lvl.title()} {stats['totals'][lvl]:,}"],
                        className="ops-log-total") for lvl in LEVELS]
    note = []
    if not stats.get("complete", True):
        note = [html.Span("(newest 32 MiB of the file only)",
                          className="small text-body-secondary")]
    return html.Div(badges + note, className="ops-log-totals")


def top_errors(stats: dict | None) -> html.Div:
    """The most frequent error messages (digits folded) and loggers."""
    if not stats:
        return html.Div()
    errors = stats.get("top_errors") or []
    if not errors:
        body: Any = html.P("No errors in this window.", className="text-body-secondary mb-0")
    else:
        body = html.Ol([html.Li([html.Span(f"{e['count']:,}×", className="ops-log-count"),
                                 html.Code(e["message"], className="ops-log-errmsg")])
                        for e in errors[:6]], className="ops-log-toplist")
    loggers = stats.get("top_loggers") or []
    return html.Div([
        html.H3("Top errors", className="ops-log-subhead"), body,
        html.H3("Busiest loggers", className="ops-log-subhead mt-3"),
        html.P(", ".join(f"{item['logger']} ({item['count']:,})" for item in loggers[:6])
               or "—", className="small mb-0 ops-log-loggers"),
    ])


def controls(ids: dict[str, str], options: list[dict], source: str | None,
             request_id: str | None) -> html.Div:
    """Source, levels, search (text or regex), logger, request id, pause,
    auto-scroll."""
    toggles = _toggles(ids)
    return html.Div(className="ops-log-controls", children=[
        html.Div([html.Label("Source", htmlFor=ids["source"], className="form-label small"),
                  dcc.Dropdown(id=ids["source"], options=options, value=source,
                               clearable=False, searchable=False)],
                 className="ops-log-source"),
        html.Div([html.Label("Search", htmlFor=ids["search"], className="form-label small",
                             title="Text, or with Regex on a regular expression (run in "
                                   "linear time: no look-around or backreferences)"),
                  # filtered as you type: sent once typing pauses for 0.4 s
                  dcc.Input(id=ids["search"], type="search", debounce=0.4,
                            placeholder="text, or a regex", className="form-control",
                            maxLength=500)],
                 className="ops-log-search"),
        html.Div([html.Label("Logger", htmlFor=ids["logger"], className="form-label small"),
                  dcc.Input(id=ids["logger"], type="text", debounce=0.4,
                            placeholder="e.g. demo", className="form-control",
                            maxLength=255)],
                 className="ops-log-logger"),
        html.Div([html.Label("Request id", htmlFor=ids["request"],
                             className="form-label small"),
                  dcc.Input(id=ids["request"], type="text", debounce=0.4,
                            value=request_id or "", className="form-control",
                            maxLength=64)],
                 className="ops-log-request"),
        html.Div(className="ops-log-row2", children=[html.Fieldset([
            html.Legend("Levels", className="form-label small mb-1"),
            dcc.Checklist(id=ids["levels"], options=[{"label": lvl.title(), "value": lvl}
                                                     for lvl in LEVELS],
                          value=list(LEVELS), inline=True, className="ops-log-levels",
                          inputClassName="form-check-input",
                          labelClassName="form-check-label me-2"),
        ], className="ops-log-levels-wrap"), toggles]),
    ])


def _toggles(ids: dict[str, str]) -> html.Div:
    """Regex search, pause and auto-scroll switches."""
    return html.Div(className="ops-log-toggles", children=[
        dcc.Checklist(id=ids["regex"], options=[{"label": "Regex", "value": "on"}],
                          value=[], inputClassName="form-check-input",
                          labelClassName="form-check-label"),
        dcc.Checklist(id=ids["paused"], options=[{"label": "Pause", "value": "on"}],
                          value=[], inputClassName="form-check-input",
                          labelClassName="form-check-label"),
        dcc.Checklist(id=ids["follow"], options=[{"label": "Auto-scroll", "value": "on"}],
                          value=["on"], inputClassName="form-check-input",
                          labelClassName="form-check-label"),
    ])
