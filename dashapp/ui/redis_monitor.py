"""Pure builders for the Redis server page: results of
dashapp.services.redis_monitor in, components and figures out."""
from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import html

from dashapp.services import redis_monitor as svc
from dashapp.ui.components import data_grid, empty_message, metric_card, metric_grid

SAMPLE_SIZES = (1_000, 10_000, 50_000, 100_000)
DEPTHS = (1, 2, 3)
MIB = 1024 * 1024
NAMESPACES_CHARTED = 15
LABEL_CHARS = 28

_BYTES = {"function": "params.value == null ? '—' : d3.format('.3~s')(params.value) + 'B'"}
_INT = {"function": "params.value == null ? '—' : d3.format(',')(params.value)"}
_PCT = {"function": "params.value == null ? '' : d3.format('.1%')(params.value)"}
_TIME = {"function": "params.value ? params.value.slice(0, 19).replace('T', ' ') : ''"}
_DURATION = {"function": (
    "params.value == null ? '—' : params.value >= 86400 ? "
    "Math.floor(params.value / 86400) + ' d ' + Math.floor(params.value % 86400 / 3600) + ' h'"
    " : params.value >= 3600 ? Math.floor(params.value / 3600) + ' h ' + "
    "Math.floor(params.value % 3600 / 60) + ' min' : params.value >= 60 ? "
    "Math.floor(params.value / 60) + ' min ' + params.value % 60 + ' s' : params.value + ' s'")}


def _num(field: str, header: str, **extra) -> dict:
    return {"field": field, "headerName": header, "type": "rightAligned",
            "filter": "agNumberColumnFilter", "minWidth": 90, **extra}


def _grid(id: str, rows: list[dict], columns: list[dict], *, row_id: str | None = None,
          empty: str = "No rows", page_size: int = 10, csv: str | None = None,
          search: bool = True, **options) -> html.Div:
    wrapper = data_grid(id, rows, columns, page_size=page_size, search=search,
                        csv_filename=csv or f"{id}.csv", row_count=False)
    grid = wrapper.children[1]
    if row_id:
        grid.getRowId = row_id
    grid.dashGridOptions = {**grid.dashGridOptions,
                            "localeText": {"noRowsToShow": empty}, **options}
    return wrapper


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def _figure() -> go.Figure:
    return go.Figure(layout={"template": "ops_light"})


_empty = empty_message


# ------------------------------------------------------------------ health

def health_cards(stat: dict[str, Any], mem: dict[str, Any]) -> html.Div:
    """Server, memory, ops/s, hit rate, clients, evictions, keys, persistence."""
    repl = stat["replication"]
    role = "replica" if repl["role"] == "slave" else "primary"
    if repl["role"] == "slave":
        role_text = f"replica of {repl.get('master_host')}:{repl.get('master_port')} " \
                    f"(link {repl.get('master_link_status')})"
    else:
        n = repl["connected_replicas"]
        role_text = f"{role}, {n} replica{'s' if n != 1 else ''}"
    link_down = repl["role"] == "slave" and repl.get("master_link_status") != "up"

    maxmemory = mem["maxmemory"]
    ratio = mem["used_of_max"]
    mem_status = ("error" if ratio is not None and ratio >= svc.MEMORY_NEAR_LIMIT
                  and mem["maxmemory_policy"] == "noeviction"
                  else "warn" if ratio is not None and ratio >= svc.MEMORY_NEAR_LIMIT
                  or not maxmemory else "ok")
    limit = (f"{ratio:.0%} of maxmemory {mem['maxmemory_human']}" if maxmemory
             else "no maxmemory set")
    frag = mem["fragmentation_ratio"]

    lookups = stat["keyspace_hits"] + stat["keyspace_misses"]
    hit = stat["hit_rate"]
    hit_status = ("muted" if hit is None else "warn" if hit < 0.5 and lookups >= 1000
                  else "ok")

    clients, maxclients = stat["connected_clients"], stat["maxclients"]
    client_status = ("warn" if maxclients and clients >= svc.CLIENTS_WARN_RATIO * maxclients
                     else "error" if stat["rejected_connections"] else "ok")
    pers = stat["persistence"]
    pers_value = {"ok": "On", "off": "Off", "failing": "Failing", "loading": "Loading"}.get(
        pers["state"], pers["state"])
    pers_status = {"ok": "ok", "off": "muted", "failing": "error", "loading": "warn"}.get(
        pers["state"], "muted")
    dbs = " · ".join(f"db{r['db']} {r['keys']:,}" for r in stat["keyspace"][:4]) or "empty"

    return metric_grid([
        metric_card("Server", f"Redis {stat['version']}", icon="hdd-stack",
                    status="error" if link_down else "ok", id="redis-card-server",
                    footnote=f"up {stat['uptime_human']} · {role_text}"),
        metric_card("Memory used", mem["used_human"], icon="memory", status=mem_status,
                    id="redis-card-memory",
                    footnote=f"{limit} · peak {mem['peak_human']}"
                             + (f" · fragmentation {frag:.2f}" if frag is not None else "")),
        metric_card("Operations", stat["ops_per_sec"], unit="/s", icon="lightning",
                    id="redis-card-ops",
                    footnote=f"{stat['total_commands']:,} commands since start"),
        metric_card("Hit rate", round(hit * 100, 1) if hit is not None else None, unit="%",
                    icon="bullseye", status=hit_status, id="redis-card-hits",
                    footnote=f"{stat['keyspace_hits']:,} hits, "
                             f"{stat['keyspace_misses']:,} misses since start"),
        metric_card("Clients", clients, icon="people", status=client_status,
                    id="redis-card-clients",
                    footnote=(f"of maxclients {maxclients:,}" if maxclients else
                              "maxclients unknown")
                             + f" · {stat['blocked_clients']:,} blocked"),
        metric_card("Evicted keys", stat["evicted_keys"], icon="box-arrow-right",
                    status="warn" if stat["evicted_keys"] else "ok", id="redis-card-evicted",
                    footnote=f"{stat['expired_keys']:,} expired keys since start"),
        metric_card("Keys", stat["keys"], icon="key", id="redis-card-keys",
                    status="ok" if stat["keys"] else "muted", footnote=dbs),
        metric_card("Persistence", pers_value, icon="floppy", status=pers_status,
                    id="redis-card-persistence", footnote=pers["summary"]),
    ], id="redis-cards")


# ------------------------------------------------------------------ advice

_ADVICE_ICONS = {"error": "x-octagon", "warn": "exclamation-triangle", "info": "info-circle"}


def advice_cards(items: list[dict[str, Any]]) -> html.Div:
    """One card per piece of advice, errors first; a calm line when none."""
    if not items:
        return html.Div([
            html.I(className="bi bi-check-circle", **{"aria-hidden": "true"}),
            html.Span("No advice: memory, evictions, clients, slowlog and persistence "
                      "all look fine."),
        ], className="ops-redis-advice-ok", id="redis-advice-none")
    order = {"error": 0, "warn": 1, "info": 2}
    cards = []
    for item in sorted(items, key=lambda a: order.get(a["level"], 3)):
        level = item["level"] if item["level"] in _ADVICE_ICONS else "info"
        figure = item["value"]
        shown = f"{figure:,}" if isinstance(figure, int) and not isinstance(figure, bool) \
            else str(figure)
        cards.append(html.Div([
            html.Span(html.I(className=f"bi bi-{_ADVICE_ICONS[level]}"),
                      className="ops-redis-advice__icon", **{"aria-hidden": "true"}),
            html.Div([
                html.H3(item["title"], className="ops-redis-advice__title"),
                html.P(item["message"], className="ops-redis-advice__text"),
                html.Span([html.Code(item["figure"]), f" = {shown}"],
                          className="ops-redis-advice__figure"),
            ], className="ops-redis-advice__body"),
        ], className=f"ops-redis-advice ops-redis-advice--{level}",
            id={"type": "redis-advice", "rule": item["rule"]},
            role="alert" if level == "error" else None))
    return html.Div(cards, className="ops-redis-advice-list", id="redis-advice-list")


# ------------------------------------------------------------------ memory

def memory_figure(history: pd.DataFrame | list[dict], note: str | None = None) -> go.Figure:
    """Used, RSS and peak memory over time (MiB), with maxmemory when set."""
    fig = _figure()
    df = pd.DataFrame(history) if not isinstance(history, pd.DataFrame) else history
    if not len(df):
        return _empty(fig, note or "No samples in this window yet")
    df = df.copy()
    df["time"] = pd.to_datetime(df["time"], utc=True)
    for column, name, width, dash in (("used_memory", "used", 2, None),
                                      ("used_memory_rss", "RSS", 1.5, None),
                                      ("used_memory_peak", "peak", 1, "dot")):
        fig.add_scatter(x=df["time"], y=df[column] / MIB, name=name, mode="lines",
                        line={"width": width, "dash": dash},
                        hovertemplate="%{y:,.1f} MiB")
    if "maxmemory" in df and (df["maxmemory"].fillna(0) > 0).any():
        fig.add_scatter(x=df["time"], y=df["maxmemory"].where(df["maxmemory"] > 0) / MIB,
                        name="maxmemory", mode="lines", line={"width": 1.5, "dash": "dash"},
                        hovertemplate="%{y:,.1f} MiB")
    fig.update_layout(margin={"l": 48, "r": 10, "t": 10, "b": 30}, hovermode="x unified",
                      legend={"orientation": "h", "y": 1.12, "x": 0, "xanchor": "left"},
                      yaxis_title="MiB")
    fig.update_yaxes(rangemode="tozero")
    return fig


def memory_breakdown(mem: dict[str, Any]) -> html.Div:
    """Dataset vs overhead vs fragmentation as one stacked bar, plus the facts."""
    used, rss = mem["used"] or 0, mem["rss"] or 0
    dataset, overhead = mem["dataset"], mem["overhead"]
    wasted = max(rss - used, 0)
    parts = []
    if dataset is not None and overhead is not None:
        parts = [("Dataset", dataset, "ops-redis-bar--dataset"),
                 ("Overhead", overhead, "ops-redis-bar--overhead"),
                 ("RSS beyond used", wasted, "ops-redis-bar--waste")]
    total = sum(p[1] for p in parts) or 1
    bar = html.Div([
        html.Div(className=f"progress-bar {css}", style={"width": f"{value / total * 100:.2f}%"},
                 title=f"{label}: {svc.human_bytes(value)}")
        for label, value, css in parts if value > 0
    ], className="progress-stacked ops-redis-bar", role="img",
        **{"aria-label": ", ".join(f"{label} {svc.human_bytes(v)}" for label, v, _ in parts)})
    legend = html.Ul([
        html.Li([html.Span(className=f"ops-redis-swatch {css}"), f"{label} ",
                 html.Strong(svc.human_bytes(value))])
        for label, value, css in parts
    ], className="ops-redis-legend list-unstyled")
    frag = mem["fragmentation_ratio"]
    facts = [
        ("Used", mem["used_human"]), ("Peak", mem["peak_human"]), ("RSS", mem["rss_human"]),
        ("Fragmentation ratio", f"{frag:.2f}" if frag is not None else "—"),
        ("maxmemory", mem["maxmemory_human"]),
        ("Policy", mem["maxmemory_policy"] or "—"),
        ("Allocator", mem["allocator"] or "—"),
    ]
    return html.Div([
        bar if parts else html.P("This server does not report dataset and overhead.",
                                 className="text-body-secondary small"),
        legend,
        html.Dl([item for label, value in facts
                 for item in (html.Dt(label), html.Dd(value))], className="ops-redis-facts"),
    ], id="redis-memory-facts")


# ------------------------------------------------------------------ keys

def keys_note(dist: dict[str, Any]) -> html.Div:
    """How the figures were obtained: exact or estimated, from how many keys."""
    icon = "bi bi-check2-circle" if not dist["estimate"] else "bi bi-rulers"
    extra = []
    if not dist["memory_available"]:
        extra.append(" Memory per key is not available: this server refuses MEMORY USAGE.")
    extra.append(f" Read in {dist['elapsed_ms']:,.0f} ms with {dist['scan_calls']:,} "
                 f"SCAN call{'s' if dist['scan_calls'] != 1 else ''} (COUNT "
                 f"{dist['scan_count']:,}).")
    head, _sep, rest = dist["note"].partition(": ")
    return html.P([html.I(className=icon, **{"aria-hidden": "true"}), " ",
                   html.Strong(f"{head}: "), rest, *extra],
                  className="ops-redis-note", id="redis-keys-sample-note")


def namespace_figure(dist: dict[str, Any] | None) -> go.Figure:
    """Keys per namespace (estimated: with the 95 % margin as error bars)."""
    fig = _figure()
    rows = (dist or {}).get("namespaces") or []
    if not rows:
        return _empty(fig, "No keys in this database" if dist else "Not sampled yet")
    rows = sorted(rows[:NAMESPACES_CHARTED], key=lambda r: r["keys"])
    estimate = dist["estimate"]
    fig.add_bar(
        y=[_short(r["namespace"]) for r in rows], x=[r["keys"] for r in rows],
        orientation="h", name="keys",
        error_x={"type": "data", "array": [r["keys_margin"] for r in rows],
                 "visible": estimate, "thickness": 1, "width": 3},
        customdata=[[r["namespace"], r["share"], svc.human_bytes(r["memory"])
                     if r["memory"] is not None else "—", r["keys_margin"]] for r in rows],
        hovertemplate=("<b>%{customdata[0]}</b><br>" + ("≈ " if estimate else "")
                       + "%{x:,} keys" + (" (± %{customdata[3]:,})" if estimate else "")
                       + "<br>%{customdata[1]:.1%} of keys · %{customdata[2]}<extra></extra>"))
    fig.update_layout(margin={"l": 10, "r": 16, "t": 10, "b": 30}, showlegend=False,
                      xaxis_title="keys (estimated)" if estimate else "keys", bargap=0.25)
    fig.update_yaxes(automargin=True)
    return fig


def namespace_treemap(dist: dict[str, Any] | None) -> go.Figure:
    """Memory per namespace as a treemap (key counts when memory is unknown)."""
    fig = _figure()
    rows = (dist or {}).get("namespaces") or []
    if not rows:
        return _empty(fig, "No keys in this database" if dist else "Not sampled yet")
    by_memory = dist["memory_available"] and any(r["memory"] for r in rows)
    values = [(r["memory"] or 0) if by_memory else r["keys"] for r in rows]
    labels = [_short(r["namespace"]) for r in rows]
    fig.add_treemap(
        labels=labels, parents=[""] * len(rows), values=values, branchvalues="total",
        customdata=[[r["namespace"], svc.human_bytes(r["memory"]) if r["memory"] is not None
                     else "—", r["keys"]] for r in rows],
        texttemplate="%{label}<br>%{percentRoot:.0%}",
        hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]} · %{customdata[2]:,} keys"
                      "<extra></extra>",
        marker={"line": {"width": 1}}, tiling={"pad": 2}, root={"color": "rgba(0,0,0,0)"},
        pathbar={"visible": False}, sort=True)
    fig.update_layout(margin={"l": 4, "r": 4, "t": 4, "b": 4})
    return fig


NAMESPACE_COLUMNS: list[dict] = [
    {"field": "namespace", "headerName": "Namespace", "minWidth": 160, "flex": 2,
     "cellClass": "font-monospace"},
    _num("keys", "Keys", valueFormatter=_INT, sort="desc"),
    _num("keys_margin", "± (95 %)", valueFormatter=_INT),
    _num("share", "Share", valueFormatter=_PCT),
    _num("memory", "Memory", valueFormatter=_BYTES),
    _num("avg_memory", "Avg per key", valueFormatter=_BYTES),
    _num("sampled_keys", "Sampled", valueFormatter=_INT),
    {"field": "types_text", "headerName": "Types", "minWidth": 140},
]

BIGKEY_COLUMNS: list[dict] = [
    {"field": "key", "headerName": "Key", "minWidth": 200, "flex": 3,
     "cellClass": "font-monospace", "tooltipField": "key"},
    {"field": "type", "headerName": "Type", "minWidth": 80, "maxWidth": 110},
    _num("memory", "Memory", valueFormatter=_BYTES, sort="desc"),
    _num("length", "Length", valueFormatter=_INT,
         headerTooltip="Elements of a collection, bytes of a string"),
    _num("ttl_s", "TTL", valueFormatter=_DURATION),
    {"field": "namespace", "headerName": "Namespace", "minWidth": 120},
]

def namespace_rows(dist: dict[str, Any] | None) -> list[dict]:
    rows = []
    for r in (dist or {}).get("namespaces") or []:
        rows.append({**{k: v for k, v in r.items() if k != "types"},
                     "types_text": ", ".join(f"{k} {v:,}" for k, v in r["types"].items())})
    return rows


def namespace_grid(rows: list[dict]) -> html.Div:
    return _grid("redis-namespaces", rows, NAMESPACE_COLUMNS, row_id="params.data.namespace",
                 empty="No keys sampled", csv="redis-namespaces.csv")


def bigkey_grid(rows: list[dict]) -> html.Div:
    return _grid("redis-bigkeys", rows, BIGKEY_COLUMNS, row_id="params.data.key",
                 empty="No keys sampled", csv="redis-biggest-keys.csv")


def db_table(rows: list[dict] | None) -> html.Div:
    """Keys per database (INFO keyspace): a handful of rows, so a plain table."""
    if not rows:
        return html.P("No keys in any database." if rows is not None else "",
                      className="ops-redis-note", id="redis-dbs")
    head = html.Thead(html.Tr([html.Th(t, scope="col") for t in
                               ("Db", "Keys", "With a TTL", "Average TTL")]))
    body = html.Tbody([html.Tr([
        html.Td(f"db{r['db']}"), html.Td(f"{r['keys']:,}"), html.Td(f"{r['expires']:,}"),
        html.Td(svc.human_duration(r["avg_ttl_ms"] / 1000) if r["avg_ttl_ms"] else "—"),
    ]) for r in rows])
    return html.Div(html.Table([head, body], className="table table-sm ops-redis-table mb-0"),
                    className="table-responsive", id="redis-dbs")


# ------------------------------------------------------------------ clients

CLIENT_COLUMNS: list[dict] = [
    _num("id", "Id", minWidth=80, maxWidth=110,
         cellClassRules={"fw-semibold": "params.data.own"}),
    {"field": "name", "headerName": "Name", "minWidth": 170, "tooltipField": "name",
     "valueFormatter": {"function": "params.data.own ? (params.value ? params.value + "
                                    "' (this console)' : 'this console') : "
                                    "(params.value ? params.value : '—')"}},
    {"field": "addr", "headerName": "Address", "minWidth": 160, "cellClass": "font-monospace",
     "tooltipField": "addr"},
    _num("age", "Age", valueFormatter=_DURATION),
    _num("idle", "Idle", valueFormatter=_DURATION),
    {"field": "cmd", "headerName": "Last command", "minWidth": 120,
     "cellClass": "font-monospace"},
    _num("db", "Db", minWidth=60, maxWidth=80),
    {"field": "flags", "headerName": "Flags", "minWidth": 80, "maxWidth": 100},
    {"field": "user", "headerName": "User", "minWidth": 90},
    _num("tot_mem", "Memory", valueFormatter=_BYTES),
    {"field": "lib_name", "headerName": "Library", "minWidth": 100,
     "valueFormatter": {"function": "params.value ? params.value + (params.data.lib_ver ? "
                                    "' ' + params.data.lib_ver : '') : '—'"}},
]


def client_rows(data: dict[str, Any] | None) -> list[dict]:
    return list((data or {}).get("clients") or [])


def clients_grid(rows: list[dict]) -> html.Div:
    return _grid("redis-clients", rows, CLIENT_COLUMNS, row_id="'' + params.data.id",
                 empty="No clients connected", csv="redis-clients.csv",
                 rowSelection={"mode": "singleRow", "checkboxes": False,
                               "enableClickSelection": True},
                 rowStyle={"cursor": "pointer"})


# ------------------------------------------------------------------ slowlog

SLOWLOG_COLUMNS: list[dict] = [
    {"field": "time", "headerName": "Time (UTC)", "minWidth": 170, "valueFormatter": _TIME},
    _num("duration_ms", "Duration ms", sort="desc", minWidth=155, valueFormatter={
        "function": "d3.format(',.2f')(params.value)"},
        cellClassRules={"text-danger fw-semibold": "params.value >= 100",
                        "text-warning-emphasis": "params.value >= 10 && params.value < 100"}),
    {"field": "command", "headerName": "Command", "minWidth": 100, "maxWidth": 140},
    {"field": "text", "headerName": "Command line", "minWidth": 260, "flex": 3,
     "cellClass": "font-monospace", "tooltipField": "text"},
    {"field": "client_addr", "headerName": "Client", "minWidth": 150,
     "cellClass": "font-monospace"},
    {"field": "client_name", "headerName": "Client name", "minWidth": 110},
    _num("id", "Entry", minWidth=80, maxWidth=100),
]


def slowlog_grid(rows: list[dict]) -> html.Div:
    return _grid("redis-slowlog", rows, SLOWLOG_COLUMNS, row_id="'' + params.data.id",
                 empty="The slowlog is empty", csv="redis-slowlog.csv")


def slowlog_summary(data: dict[str, Any] | None) -> str:
    if not data:
        return ""
    threshold = data["threshold_us"]
    limit = (f"slower than {threshold / 1000:g} ms" if threshold is not None and threshold >= 0
             else "threshold unknown (CONFIG refused)")
    keep = f", keeps the newest {data['max_len']:,}" if data.get("max_len") else ""
    return (f"{data['length']:,} entr{'y' if data['length'] == 1 else 'ies'} · logs commands "
            f"{limit}{keep}. Passwords are redacted, long arguments cut.")


# ------------------------------------------------------------------ commands

COMMAND_COLUMNS: list[dict] = [
    {"field": "command", "headerName": "Command", "minWidth": 130, "flex": 2,
     "cellClass": "font-monospace"},
    _num("calls", "Calls", valueFormatter=_INT),
    _num("usec", "Total ms", valueFormatter={
        "function": "d3.format(',.1f')(params.value / 1000)"}, sort="desc"),
    _num("usec_per_call", "µs per call", valueFormatter={
        "function": "d3.format(',.2f')(params.value)"}),
    _num("time_share", "Time share", valueFormatter=_PCT),
    _num("failed_calls", "Failed", valueFormatter=_INT),
    _num("rejected_calls", "Rejected", valueFormatter=_INT),
]


def commands_grid(rows: list[dict]) -> html.Div:
    return _grid("redis-commands", rows, COMMAND_COLUMNS, row_id="params.data.command",
                 empty="No commands recorded", csv="redis-commandstats.csv")
