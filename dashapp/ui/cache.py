"""Pure builders for the Cache page: service results in, components and
figures out (see dashapp.services.cache for what the numbers mean).

Keys and values are always rendered as text children (escaped by React),
never as HTML or markdown; control characters are shown escaped.

Redis instance convention (shared with the Redis page): the page URL carries
`?instance=<name>`; `instance_picker` draws the dropdown (names only, never
URLs) and the page writes its value back into the URL, which re-renders the
page for that instance.
"""
from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import html

from dashapp.formatting import human_bytes
from dashapp.services.cache import ELEMENT_LIMIT, TYPES
from dashapp.ui.components import RANGES as ALL_RANGES
from dashapp.ui.components import data_grid, metric_card, metric_grid, unavailable_card

NS_GRID = "cache-ns-grid"
KEYS_GRID = "cache-keys-grid"
# Up to 7 days: the Redis samples behind the Metrics tab are kept that long.
RANGES = ALL_RANGES[:-1]
RANGE_LABELS = dict(RANGES)
ALL_TYPES = "all"
TYPE_OPTIONS = [{"label": "All types", "value": ALL_TYPES}] + [
    {"label": {"zset": "sorted set"}.get(t, t), "value": t} for t in TYPES]
HIT_OK, HIT_WARN = 0.8, 0.5
MAX_STRING_SHOWN = 1024 * 1024  # characters of a string the drawer loads, at most


# ---------------------------------------------------------------- format

fmt_bytes = human_bytes


def fmt_ttl(seconds: int | None) -> str:
    if seconds is None:
        return "no expiry"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return _pair(seconds // 60, "min", seconds % 60, "s")
    if seconds < 86400:
        return _pair(seconds // 3600, "h", seconds % 3600 // 60, "min")
    return _pair(seconds // 86400, "d", seconds % 86400 // 3600, "h")


def _pair(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big} {big_unit}" + (f" {small} {small_unit}" if small else "")


def fmt_rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def fmt_every(seconds: int | None) -> str:
    if not seconds:
        return "on demand"
    return f"every {fmt_ttl(seconds)}"


def shown(text: str, multiline: bool = False) -> str:
    """Text with control characters escaped, so nothing invisible hides in it
    (a value keeps its line breaks and tabs with `multiline`)."""
    if text.isprintable():
        return text
    keep = "\n\t" if multiline else ""
    return "".join(c if c.isprintable() or c == " " or c in keep else
                   (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
                   for c in text)


def instance_picker(id: str, names: list[str], current: str) -> html.Div:
    """A labelled dropdown of Redis instance names (never their URLs)."""
    return html.Div([
        html.Label([html.I(className="bi bi-hdd-stack", **{"aria-hidden": "true"}),
                    html.Span("Redis", className="ops-cache-picker__text")],
                   htmlFor=id, className="ops-cache-picker__label"),
        dbc.Select(id=id, options=[{"label": n, "value": n} for n in names], value=current,
                   size="sm", className="ops-cache-picker__select",
                   disabled=len(names) < 2),
    ], className="ops-cache-picker", title="Redis instance")


def unavailable(instance: str, message: str) -> html.Div:
    return unavailable_card(
        f"Redis ({instance})", message,
        hint="The page checks again every 5 seconds while Live is on (or press "
             "Refresh); it recovers by itself when Redis is back.")


def _hit_status(rate: float | None) -> str:
    if rate is None:
        return "muted"
    return "ok" if rate >= HIT_OK else "warn" if rate >= HIT_WARN else "error"


def _value_unit(text: str) -> tuple[str, str | None]:
    value, _, unit = text.partition(" ")
    return value, unit or None


# ----------------------------------------------------------------- stats

def stats_cards(stats: dict[str, Any]) -> html.Div:
    o, r, est = stats["overall"], stats["redis"], stats["memory_estimate"]
    mem, mem_unit = _value_unit(fmt_bytes(o["memory_bytes"]))
    rate = o["hit_rate"]
    return metric_grid([
        metric_card("@cached hit rate", None if rate is None else round(rate * 100, 1),
                    unit="%", icon="bullseye", status=_hit_status(rate),
                    footnote=f"{o['hits']:,} hits · {o['misses']:,} misses in "
                             f"{o['namespaces']} namespace{'s' if o['namespaces'] != 1 else ''}",
                    id="cache-card-hit-rate"),
        metric_card("Cached entries", o["keys"], icon="collection",
                    status="ok" if o["keys"] else "muted",
                    footnote="Live entries in the namespaces' indexes",
                    id="cache-card-keys"),
        metric_card("Memory (estimate)", mem, unit=mem_unit, icon="memory",
                    status="ok" if o["keys"] else "muted",
                    footnote=f"MEMORY USAGE of up to {est['sample_size']} entries per "
                             "namespace × entries", id="cache-card-memory"),
        metric_card("Keyspace hit rate",
                    None if r["keyspace_hit_rate"] is None
                    else round(r["keyspace_hit_rate"] * 100, 1),
                    unit="%", icon="hdd-stack", status=_hit_status(r["keyspace_hit_rate"]),
                    footnote=f"All of Redis: {r['keyspace_hits']:,} hits · "
                             f"{r['keyspace_misses']:,} misses since it started · "
                             f"{r['keys'] or 0:,} keys",
                    id="cache-card-keyspace"),
    ], id="cache-cards")


def _last_warm(status: dict[str, Any] | None) -> str:
    if not status or not (status.get("last_finished") or status.get("last_started")):
        return ""
    when = (status.get("last_finished") or status.get("last_started") or "")[:19]
    when = when.replace("T", " ")
    if status.get("last_error"):
        return f"{when} · failed: {status['last_error']}"
    parts = [when]
    if status.get("last_entries") is not None:
        parts.append(f"{status['last_entries']:,} entries")
    if status.get("last_duration_ms") is not None:
        parts.append(f"{status['last_duration_ms']:,} ms")
    return " · ".join(parts)


def namespace_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for ns in stats["namespaces"]:
        rows.append({
            "namespace": ns["namespace"], "hit_rate": ns["hit_rate"], "hits": ns["hits"],
            "misses": ns["misses"], "keys": ns["keys"], "memory_bytes": ns["memory_bytes"],
            "memory_text": fmt_bytes(ns["memory_bytes"]), "errors": ns["errors"],
            "sets": ns["sets"], "invalidations": ns["invalidations"],
            "warmer": fmt_every(ns["warmer"]["every"]) if ns["warmer"] else "",
            "last_warm": _last_warm(ns["warm_status"]),
        })
    return rows


_PCT = {"function": "params.value == null ? '—' : d3.format('.1%')(params.value)"}
_HIT_RULES = {
    "text-danger fw-semibold": f"params.value != null && params.value < {HIT_WARN}",
    "text-warning-emphasis fw-semibold":
        f"params.value != null && params.value >= {HIT_WARN} && params.value < {HIT_OK}",
}


def _num(field: str, header: str, **extra) -> dict:
    return {"field": field, "headerName": header, "type": "rightAligned",
            "filter": "agNumberColumnFilter", "minWidth": 90,
            "valueFormatter": {"function": "params.value == null ? '—' : "
                                           "d3.format(',')(params.value)"}, **extra}


NS_COLUMNS: list[dict] = [
    {"field": "namespace", "headerName": "Namespace", "minWidth": 150, "flex": 2,
     "cellClass": "font-monospace", "pinned": None},
    _num("hit_rate", "Hit rate", valueFormatter=_PCT, cellClassRules=_HIT_RULES),
    _num("hits", "Hits"),
    _num("misses", "Misses"),
    _num("keys", "Entries"),
    _num("memory_bytes", "Memory (est.)", minWidth=150,
         valueFormatter={"function": "params.data.memory_text"}),
    _num("errors", "Errors", cellClassRules={"text-danger fw-semibold": "params.value > 0"}),
    _num("invalidations", "Invalidations", minWidth=120),
    {"field": "warmer", "headerName": "Warmer", "minWidth": 120},
    {"field": "last_warm", "headerName": "Last warm (UTC)", "minWidth": 200, "flex": 2,
     "tooltipField": "last_warm"},
]


def namespace_grid(rows: list[dict]) -> html.Div:
    grid = data_grid(NS_GRID, rows, NS_COLUMNS, page_size=25, csv_filename="cache-namespaces",
                     row_count=False)
    ag = grid.children[1]
    ag.getRowId = "params.data.namespace"
    ag.dashGridOptions = {**ag.dashGridOptions, "rowStyle": {"cursor": "pointer"},
                          "tooltipShowDelay": 400,
                          "localeText": {"noRowsToShow": "No @cached namespaces"}}
    return grid


def namespace_empty(stats: dict[str, Any] | None) -> html.Div | None:
    """Said plainly when this Redis has no @cached namespace."""
    if stats is None or stats["namespaces"]:
        return None
    return html.Div([
        html.Span(html.I(className="bi bi-lightning-charge"), className="ops-empty__icon",
                  **{"aria-hidden": "true"}),
        html.H2("No @cached namespaces on this Redis yet", className="ops-empty__title"),
        html.P(["Namespaces appear once an application using the @cached toolkit with "
                "the key prefix ", html.Code(stats["prefix"] + ":"), " stores an entry. The "
                "Keys tab browses every key of this Redis meanwhile."],
               className="ops-empty__text"),
    ], className="ops-empty ops-cache-empty", id="cache-ns-none")


def namespace_figure(stats: dict[str, Any] | None) -> go.Figure:
    """Hits and misses per namespace, stacked, hit rate in the hover."""
    fig = go.Figure(layout={"template": "ops_light"})
    rows = (stats or {}).get("namespaces") or []
    if not any(r["hits"] or r["misses"] for r in rows):
        return _empty(fig, "No cache hits or misses recorded yet")
    rows = sorted(rows, key=lambda r: r["hits"] + r["misses"])[-15:]
    names = [r["namespace"] for r in rows]
    rates = [fmt_rate(r["hit_rate"]) for r in rows]
    fig.add_bar(y=names, x=[r["hits"] for r in rows], name="hits", orientation="h",
                marker={"color": "#10b981"}, customdata=rates,
                hovertemplate="%{y}: %{x:,} hits (hit rate %{customdata})<extra></extra>")
    fig.add_bar(y=names, x=[r["misses"] for r in rows], name="misses", orientation="h",
                marker={"color": "#f59e0b"},
                hovertemplate="%{y}: %{x:,} misses<extra></extra>")
    fig.update_layout(barmode="stack", bargap=0.3,
                      margin={"l": 10, "r": 10, "t": 10, "b": 30},
                      legend={"orientation": "h", "y": 1.08, "x": 0, "xanchor": "left",
                              "traceorder": "normal"})
    fig.update_yaxes(automargin=True, type="category")
    return fig


def warmers_list(stats: dict[str, Any] | None, can_operate: bool) -> html.Div:
    """Every namespace that has a warmer, its last run and a "Warm now" button."""
    rows = [r for r in ((stats or {}).get("namespaces") or []) if r["warmer"]]
    if stats is None:
        return html.Div()
    if not rows:
        return html.P("No namespace has a warmer registered on this Redis. A host "
                      "process running the @cached toolkit registers its warmers here.",
                      className="text-body-secondary mb-0", id="cache-warmers-none")
    items = []
    for r in rows:
        w, status = r["warmer"], r["warm_status"] or {}
        last = _last_warm(status) or "never run"
        failed = bool(status.get("last_error"))
        items.append(html.Li([
            html.Div([
                html.Div([html.Code(r["namespace"], className="me-2"),
                          html.Span(fmt_every(w["every"]),
                                    className="badge rounded-pill border bg-body-tertiary "
                                              "text-body-secondary me-1")],
                         className="d-flex flex-wrap align-items-center gap-1"),
                html.Div(w["description"], className="small") if w["description"] else None,
                html.Div([html.I(className="bi bi-clock-history me-1",
                                 **{"aria-hidden": "true"}), "Last run: ", last],
                         className="small " + ("text-danger-emphasis" if failed
                                               else "text-body-secondary")),
            ], className="ops-cache-warmer__text"),
            html.Button([html.I(className="bi bi-fire me-1", **{"aria-hidden": "true"}),
                         "Warm now"],
                        id={"type": "cache-warm", "ns": r["namespace"]}, n_clicks=0,
                        type="button", disabled=not can_operate,
                        title=("Queue a warm run for this namespace" if can_operate
                               else "Needs the operator role"),
                        className="btn btn-sm btn-outline-primary flex-shrink-0"),
        ], className="ops-cache-warmer"))
    note = []
    if stats.get("warm_queue"):
        note = [html.P(f"{stats['warm_queue']} warm request(s) waiting for a host process.",
                       className="small text-body-secondary mt-2 mb-0")]
    return html.Div([html.Ul(items, className="list-unstyled mb-0 ops-cache-warmers"), *note])


def namespace_detail(row: dict[str, Any] | None, prefix: str) -> Any:
    """The namespace drawer: figures, warmer and its last run."""
    if row is None:
        return html.P("This namespace is no longer listed.", className="text-body-secondary")
    facts = [("Hit rate", fmt_rate(row["hit_rate"])), ("Hits", f"{row['hits']:,}"),
             ("Misses", f"{row['misses']:,}"), ("Errors", f"{row['errors']:,}"),
             ("Sets", f"{row['sets']:,}"), ("Entries", f"{row['keys']:,}"),
             ("Memory (estimate)", fmt_bytes(row["memory_bytes"])),
             ("Invalidations", f"{row['invalidations']:,}"),
             ("Warm runs", f"{row['warm_runs']:,}")]
    parts: list = [
        html.P([html.Span("Namespace ", className="text-body-secondary"),
                html.Code(row["namespace"], id="cache-ns-name")], className="mb-1"),
        html.P(["Entries are keys ", html.Code(f"{prefix}:{row['namespace']}:…")],
               className="small text-body-secondary"),
        _facts(facts),
    ]
    w, status = row.get("warmer"), row.get("warm_status") or {}
    parts.append(html.H3("Warmer", className="h6 mt-3"))
    if not w:
        parts.append(html.P("No warmer is registered for this namespace.",
                            className="text-body-secondary small"))
    else:
        parts.append(_facts([("Schedule", fmt_every(w["every"])),
                             ("Process", w.get("process") or "—"),
                             ("Registered", (w.get("registered_at") or "—")[:19]
                              .replace("T", " "))]))
        if w["description"]:
            parts.append(html.P(w["description"], className="small mb-1"))
        parts.append(html.P(["Last run: ", _last_warm(status) or "never"],
                            className="small " + ("text-danger-emphasis"
                                                  if status.get("last_error") else "")))
    return html.Div(parts)


def _facts(pairs: list[tuple[str, Any]]) -> html.Dl:
    children: list = []
    for label, value in pairs:
        children += [html.Dt(label), html.Dd(value)]
    return html.Dl(children, className="ops-cache-facts")


# ------------------------------------------------------------------ keys

KEY_COLUMNS: list[dict] = [
    {"field": "display", "headerName": "Key", "minWidth": 220, "flex": 3,
     "cellClass": "font-monospace", "tooltipField": "display", "sortable": False},
    {"field": "type", "headerName": "Type", "minWidth": 90, "maxWidth": 120},
    {"field": "ttl", "headerName": "TTL", "minWidth": 110, "maxWidth": 160,
     "type": "rightAligned", "filter": "agNumberColumnFilter",
     "valueFormatter": {"function": "params.data.ttl_text"}},
    {"field": "memory_bytes", "headerName": "Memory", "minWidth": 100, "maxWidth": 150,
     "type": "rightAligned", "filter": "agNumberColumnFilter",
     "valueFormatter": {"function": "params.data.memory_text"}},
]


def key_rows(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the keys grid: the API's fields plus display text."""
    return [{**k, "display": shown(k["key"]), "ttl_text": fmt_ttl(k["ttl"]),
             "memory_text": fmt_bytes(k["memory_bytes"])} for k in keys]


def keys_grid(rows: list[dict], info: Any = None, more: Any = None) -> html.Div:
    """All keys loaded so far in one scrolling grid; scrolling to the end
    reports the last row shown (`eventData`) so the page loads the next page.
    `info` (what is loaded) and `more` (a Load more button) go in its toolbar."""
    grid = data_grid(KEYS_GRID, rows, KEY_COLUMNS, height=460, search=False,
                     row_count=False, csv_filename="cache-keys", pagination=False)
    toolbar = grid.children[0]
    toolbar.children = [html.Span(info, className="ops-cache-info", id="cache-keys-info"),
                        *([more] if more is not None else []), toolbar.children[-1]]
    ag = grid.children[1]
    ag.getRowId = "params.data.key_b64"
    ag.dashGridOptions = {**ag.dashGridOptions, "rowStyle": {"cursor": "pointer"},
                          "tooltipShowDelay": 500,
                          "localeText": {"noRowsToShow": "No keys loaded"}}
    ag.eventListeners = {"bodyScrollEnd": [
        "setEventData({last: params.api.getLastDisplayedRowIndex(), "
        "rows: params.api.getDisplayedRowCount()})"]}
    return grid


def keys_info(state: dict[str, Any]) -> list:
    """The line above the keys grid: what is loaded and whether more exist."""
    n = state.get("loaded", 0)
    what = [html.Code(state.get("pattern") or "*")]
    if state.get("type"):
        what += [" of type ", html.Strong(state["type"])]
    if state.get("done"):
        tail = f" · all {n:,} matching key{'s' if n != 1 else ''} loaded"
    else:
        tail = f" · {n:,} loaded, more to scan (scroll down or Load more)"
    if state.get("capped"):
        tail = f" · {n:,} loaded: the most this page keeps; narrow the pattern"
    return ["Keys matching ", *what, tail]


def key_meta(view: dict[str, Any]) -> html.Div:
    """The key drawer's header: name, type, TTL, size, memory, encoding."""
    d = view["detail"]
    length = d.get("length")
    size = ("—" if length is None else fmt_bytes(length) if d["type"] == "string"
            else f"{length:,} element{'s' if length != 1 else ''}")
    badges = [html.Span(d["type"], className="badge text-bg-primary")]
    if d.get("binary"):
        badges.append(html.Span("binary key", className="badge text-bg-warning"))
    return html.Div([
        html.Pre(shown(d["key"]), className="ops-cache-keyname", id="cache-key-name"),
        html.Div(badges, className="d-flex gap-1 mb-2"),
        _facts([("TTL", fmt_ttl(d["ttl"])), ("Size", size),
                ("Memory", fmt_bytes(d.get("memory_bytes"))),
                ("Encoding", d.get("encoding") or "—")]),
    ], id="cache-key-meta-body")


def _cell(item: dict[str, Any], name: str) -> html.Td:
    parts: list = [shown(str(item.get(name, "")), multiline=True)]
    if item.get(f"{name}_truncated"):
        parts.append(html.Span(f" … ({fmt_bytes(item[f'{name}_bytes'])}, first "
                               f"{ELEMENT_LIMIT:,} bytes shown)",
                               className="text-body-secondary"))
    if item.get(f"{name}_binary"):
        parts.append(html.Span(" binary", className="badge text-bg-warning ms-1"))
    return html.Td(parts, className="font-monospace ops-cache-cell")


_HEADS = {"hash": ("Field", "Value"), "list": ("Index", "Value"), "set": ("Member",),
          "zset": ("Rank", "Member", "Score"), "stream": ("Entry id", "Fields")}


def _row(type_: str, item: dict[str, Any]) -> html.Tr:
    if type_ == "hash":
        return html.Tr([_cell(item, "field"), _cell(item, "value")])
    if type_ == "list":
        return html.Tr([html.Td(f"{item['index']:,}", className="text-end"),
                        _cell(item, "value")])
    if type_ == "set":
        return html.Tr([_cell(item, "member")])
    if type_ == "zset":
        return html.Tr([html.Td(f"{item['rank']:,}", className="text-end"),
                        _cell(item, "member"), html.Td(f"{item['score']:g}",
                                                       className="text-end")])
    fields = [html.Div([html.Span(shown(f["field"]), className="fw-semibold"), " = ",
                        shown(f["value"])]) for f in item.get("fields", [])]
    return html.Tr([html.Td(item["id"], className="font-monospace text-nowrap"),
                    html.Td(fields, className="font-monospace ops-cache-cell")])


def key_value(view: dict[str, Any]) -> html.Div:
    """The loaded part of a key's value: text for strings, a table otherwise."""
    d = view["detail"]
    type_ = d["type"]
    if type_ == "string":
        text = view.get("text", "")
        fmt = d.get("format") or "text"
        note = []
        if view.get("next_cursor") is not None:
            note = [html.P(f"Showing the first {fmt_bytes(view.get('loaded_bytes', 0))} of "
                           f"{fmt_bytes(d.get('length'))}.",
                           className="small text-body-secondary mb-1")]
        label = {"json": "JSON, pretty-printed", "binary": "binary, bytes escaped as \\xNN",
                 "text": "text"}[fmt]
        return html.Div([
            html.P(label, className="small text-body-secondary mb-1", id="cache-key-format"),
            *note,
            html.Pre(shown(text, multiline=True) if fmt == "text" else text,
                     className="ops-cache-value", id="cache-key-text"),
        ])
    items = view.get("items") or []
    if type_ not in _HEADS:
        return html.P(d.get("note") or f"Values of type {type_} are not shown.",
                      className="text-body-secondary")
    if not items:
        return html.P("Empty.", className="text-body-secondary")
    heads = [html.Th(h, className="text-end" if h in ("Index", "Rank", "Score") else None)
             for h in _HEADS[type_]]
    total = d.get("length")
    count = (f"{len(items):,} of {total:,} shown" if total is not None
             else f"{len(items):,} shown")
    return html.Div([
        html.P(count, className="small text-body-secondary mb-1", id="cache-key-count"),
        html.Div(html.Table([html.Thead(html.Tr(heads)),
                             html.Tbody([_row(type_, i) for i in items])],
                            className="table table-sm mb-0 ops-table ops-cache-table",
                            id="cache-key-items"),
                 className="table-responsive"),
    ])


def clear_result(result: dict[str, Any] | None) -> Any:
    """What a dry run found: the count and a few of the keys."""
    if result is None:
        return html.P("Count the matching keys first; nothing is deleted until you "
                      "confirm.", className="small text-body-secondary mb-0")
    n = result["matched"]
    sample = result.get("sample") or []
    children: list = [html.P([html.Strong(f"{n:,} key{'s' if n != 1 else ''}"),
                              " match ", html.Code(result["pattern"]), "."],
                             className="mb-1", id="cache-clear-count-text")]
    if sample:
        children.append(html.P("For example:", className="small text-body-secondary mb-1"))
        children.append(html.Ul([html.Li(html.Code(shown(k["key"]))) for k in sample[:10]],
                                className="small mb-0 ops-cache-sample"))
    return html.Div(children)


# --------------------------------------------------------------- metrics

def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper",
                       x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _series_figure(series: list[dict], lines: list[tuple[str, str, float]],
                   yaxis: str, hover: str, percent: bool = False) -> go.Figure:
    fig = go.Figure(layout={"template": "ops_light"})
    df = pd.DataFrame(series)
    if df.empty:
        return _empty(fig, "No samples yet")
    df["time"] = pd.to_datetime(df["time"], utc=True)
    for column, name, scale in lines:
        values = pd.to_numeric(df[column], errors="coerce") * scale
        fig.add_scatter(x=df["time"], y=values, name=name, mode="lines",
                        connectgaps=False, hovertemplate=hover)
    fig.update_layout(margin={"l": 48, "r": 10, "t": 10, "b": 30}, hovermode="x unified",
                      legend={"orientation": "h", "y": 1.12, "x": 0, "xanchor": "left"},
                      yaxis_title=yaxis, showlegend=len(lines) > 1)
    if percent:
        fig.update_yaxes(range=[0, 105])
    else:
        fig.update_yaxes(rangemode="tozero")
    return fig


def hit_rate_figure(series: list[dict]) -> go.Figure:
    return _series_figure(series, [("cache_hit_rate", "@cached", 100),
                                   ("hit_rate", "Redis keyspace", 100)],
                          "hit rate %", "%{y:.1f}%", percent=True)


def ops_figure(series: list[dict]) -> go.Figure:
    return _series_figure(series, [("ops_per_sec", "ops/s", 1)], "commands / s",
                          "%{y:,.1f} ops/s")


def memory_figure(series: list[dict]) -> go.Figure:
    return _series_figure(series, [("used_memory", "used memory", 1 / (1024 * 1024))],
                          "MiB", "%{y:,.1f} MiB")


def keys_figure(series: list[dict]) -> go.Figure:
    return _series_figure(series, [("keys", "keys", 1)], "keys", "%{y:,} keys")


def metrics_notice(note: str | None) -> html.Div | None:
    if not note:
        return None
    return html.Div([
        html.Span(html.I(className="bi bi-clock-history"), className="ops-empty__icon",
                  **{"aria-hidden": "true"}),
        html.H2("No samples yet", className="ops-empty__title"),
        html.P(note, className="ops-empty__text"),
    ], className="ops-empty ops-cache-empty", id="cache-metrics-empty")
