"""Pure builders for the Profiler page: service results in, components and
figures out (see dashapp.services.profiler for what the numbers mean).
Function names and file paths are rendered as text, never as HTML."""
from __future__ import annotations

import plotly.graph_objects as go
from dash import html

from dashapp.formatting import human_bytes
from dashapp.services.profiler import OPEN, trim_tree
from dashapp.ui.components import data_grid, metric_card, metric_grid

HOTSPOT_GRID = "profiler-hotspot-grid"
COMPARE_GRID = "profiler-compare-grid"
ICICLE_NODES = 1_500
STATUS_KIND = {"requested": "warn", "running": "ok", "stopping": "warn", "done": "ok",
               "failed": "error"}


def short_path(path: str) -> str:
    """The last two parts of a file path (the full one is in the tooltip/grid)."""
    if not path:
        return ""
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


def session_label(s: dict) -> str:
    when = (s.get("started_at") or s.get("created_at") or "")[:19].replace("T", " ")
    return f"#{s['id']} · {s['status']} · {when} · {s['requests']} req"


def session_options(sessions: list[dict]) -> list[dict]:
    return [{"label": session_label(s), "value": s["id"]} for s in sessions]


def status_line(current: dict | None) -> html.Div:
    """The live status of the open session (or that none runs)."""
    if current is None:
        return html.Div([html.Span("Idle", className="badge text-bg-secondary me-2"),
                         "No profiling session is running: the monitored app's requests "
                         "are not wrapped (zero cost)."], className="profiler-status")
    elapsed = current.get("elapsed_seconds")
    bits = [f"Session #{current['id']}"]
    if elapsed is not None:
        bits.append(f"{elapsed:,.0f} s elapsed")
    if current.get("duration_requested"):
        bits.append(f"of {current['duration_requested']:,.0f} s")
    joined = len(current.get("processes") or [])
    bits.append(f"{joined} process{'es' if joined != 1 else ''} sampling")
    if current.get("endpoint"):
        bits.append(f"endpoint {current['endpoint']}")
    if current["status"] == "requested":
        bits.append("waiting for a monitored process to pick it up")
    kind = {"requested": "warning", "running": "success", "stopping": "info"}.get(
        current["status"], "secondary")
    return html.Div([html.Span(current["status"].capitalize(),
                               className=f"badge text-bg-{kind} me-2"),
                     " · ".join(bits)], className="profiler-status")


def summary_cards(s: dict) -> html.Div:
    elapsed = s.get("elapsed_seconds")
    overhead = s.get("overhead_per_request_ms")
    return metric_grid([
        metric_card("Status", s["status"], status=STATUS_KIND.get(s["status"], "muted"),
                    icon="stopwatch", footnote=s.get("error")),
        metric_card("Duration", round(elapsed, 1) if elapsed is not None else None, unit="s",
                    icon="clock"),
        metric_card("Requests profiled", s["requests"], icon="arrow-left-right",
                    footnote=f"{len(s['processes'])} process(es)"),
        metric_card("Samples", s["samples"], icon="activity",
                    footnote=f"every {s['interval'] * 1000:g} ms"),
        metric_card("Added cost per request",
                    round(overhead, 3) if overhead is not None else None, unit="ms",
                    icon="speedometer2", status="muted" if overhead is None else "ok",
                    footnote="profiler start/stop and merge"),
    ])


def hotspot_rows(hotspots: list[dict]) -> list[dict]:
    return [{"function": h["function"], "location": f"{short_path(h['file'])}:{h['line']}",
             "file": h["file"], "self_s": h["self_seconds"], "total_s": h["total_seconds"],
             "self_pct": round(h["self_share"] * 100, 2),
             "total_pct": round(h["total_share"] * 100, 2)} for h in hotspots]


def _num(field: str, header: str, decimals: int = 4, **extra) -> dict:
    return {"field": field, "headerName": header, "type": "rightAligned",
            "filter": "agNumberColumnFilter", "minWidth": 100,
            "valueFormatter": {"function": f"params.value == null ? '' : "
                                           f"d3.format(',.{decimals}f')(params.value)"},
            **extra}


def hotspot_grid(hotspots: list[dict]) -> html.Div:
    columns = [{"field": "function", "headerName": "Function", "minWidth": 160},
               {"field": "location", "headerName": "File:line", "minWidth": 170,
                "tooltipField": "file"},
               _num("self_s", "Self s"), _num("total_s", "Total s"),
               _num("self_pct", "Self %", 1, sort="desc"), _num("total_pct", "Total %", 1)]
    return data_grid(HOTSPOT_GRID, hotspot_rows(hotspots), columns, page_size=25,
                     csv_filename="profile-hotspots.csv")


def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def icicle_figure(tree: dict | None) -> go.Figure:
    """The merged call tree as a Plotly icicle (flame summary): width is
    total time; hover shows self time and file:line."""
    fig = go.Figure(layout={"template": "ops_light", "margin": {"l": 4, "r": 4, "t": 8,
                                                                  "b": 4}})
    if not tree or not tree.get("children"):
        return _empty(fig, "No samples in this session")
    tree = trim_tree(tree, ICICLE_NODES)
    ids, labels, parents, values, self_s, where = [], [], [], [], [], []

    def walk(node: dict, node_id: str, parent: str) -> float:
        index = len(ids)
        ids.append(node_id)
        labels.append(node["function"])
        parents.append(parent)
        values.append(0.0)
        self_s.append(node["self"])
        where.append(f"{short_path(node['file'])}:{node['line']}" if node["file"] else "")
        inner = sum(walk(child, f"{node_id}/{i}", node_id)
                    for i, child in enumerate(node["children"]))
        # branchvalues="total": a parent must be at least its children's sum
        # (rounding and trimmed nodes could break that): a hair above it.
        values[index] = max(node["total"], inner * (1 + 1e-9) + 1e-12)
        return values[index]

    walk(tree, "root", "")
    labels[0] = "all requests"
    total = values[0] or 1.0
    fig.add_trace(go.Icicle(
        ids=ids, labels=labels, parents=parents, values=values, branchvalues="total",
        customdata=[[s, w, v / total * 100] for s, w, v in zip(self_s, where, values)],
        hovertemplate="<b>%{label}</b><br>%{customdata[1]}<br>total %{value:.4f} s "
                      "(%{customdata[2]:.1f}%)<br>self %{customdata[0]:.4f} s<extra></extra>",
        tiling={"orientation": "v", "flip": "y"}, maxdepth=12,
        marker={"colorscale": "YlOrRd", "colors": [s / total for s in self_s],
                "cmin": 0, "cmax": max(max(self_s) / total, 1e-9)},
        textinfo="label"))
    return fig


def memory_figure(sites: list[dict], field: str, title: str, limit: int = 12) -> go.Figure:
    """Horizontal bars of allocation sites (file:line) by `field` bytes."""
    fig = go.Figure(layout={"template": "ops_light", "margin": {"l": 8, "r": 8, "t": 30,
                                                                  "b": 8},
                            "title": {"text": title, "font": {"size": 13}}})
    rows = [s for s in sites if s.get(field, 0) > 0][:limit]
    if not rows:
        return _empty(fig, "No allocations recorded")
    rows = rows[::-1]
    fig.add_trace(go.Bar(
        x=[r[field] for r in rows],
        y=[f"{short_path(r['file'])}:{r['line']}" for r in rows],
        orientation="h",
        customdata=[[human_bytes(r[field]), r.get("count_diff", r.get("count", 0)), r["file"]]
                    for r in rows],
        hovertemplate="%{customdata[2]}:%{y}<br>%{customdata[0]} in %{customdata[1]:,} "
                      "blocks<extra></extra>"))
    fig.update_xaxes(title_text="bytes")
    fig.update_yaxes(automargin=True)
    return fig


def memory_cards(mem: dict) -> html.Div:
    if mem.get("note"):
        return html.P(mem["note"], className="text-body-secondary mb-2")
    return metric_grid([
        metric_card("Growth start → stop", human_bytes(mem["growth_total"]), icon="graph-up"),
        metric_card("Traced at stop", human_bytes(mem["total_size"]), icon="memory"),
        metric_card("Peak traced", human_bytes(mem["peak"]), icon="bar-chart"),
    ])


def compare_rows(a: list[dict], b: list[dict], limit: int = 200) -> list[dict]:
    """Hotspots of two sessions side by side, by function and file:line,
    with the change in share of sampled time (B − A)."""
    def keyed(rows):
        return {(r["function"], r["file"], r["line"]): r for r in rows}
    ka, kb = keyed(a), keyed(b)
    out = []
    for key in list(ka) + [k for k in kb if k not in ka]:
        ra, rb = ka.get(key), kb.get(key)
        share_a = ra["self_share"] * 100 if ra else 0.0
        share_b = rb["self_share"] * 100 if rb else 0.0
        out.append({"function": key[0], "location": f"{short_path(key[1])}:{key[2]}",
                    "a_pct": round(share_a, 2), "b_pct": round(share_b, 2),
                    "delta_pct": round(share_b - share_a, 2),
                    "a_self_s": ra["self_seconds"] if ra else 0.0,
                    "b_self_s": rb["self_seconds"] if rb else 0.0})
    out.sort(key=lambda r: -abs(r["delta_pct"]))
    return out[:limit]


def compare_grid(rows: list[dict], a_id: int, b_id: int) -> html.Div:
    columns = [{"field": "function", "headerName": "Function", "minWidth": 160},
               {"field": "location", "headerName": "File:line", "minWidth": 160},
               _num("a_pct", f"#{a_id} self %", 1), _num("b_pct", f"#{b_id} self %", 1),
               _num("delta_pct", "Change (pts)", 1),
               _num("a_self_s", f"#{a_id} self s"), _num("b_self_s", f"#{b_id} self s")]
    return data_grid(COMPARE_GRID, rows, columns, page_size=10,
                     csv_filename=f"profile-{a_id}-vs-{b_id}.csv")


def export_links(session_id: int) -> html.Div:
    def link(fmt: str, label: str, icon: str):
        return html.A([html.I(className=f"bi bi-{icon} me-1", **{"aria-hidden": "true"}), label],
                      href=f"/api/profiler/{session_id}/export?format={fmt}",
                      className="btn btn-sm btn-outline-secondary", download="",
                      id=f"profiler-export-{fmt}")
    return html.Div([link("speedscope", "Speedscope", "filetype-json"),
                     link("html", "HTML", "filetype-html"),
                     link("csv", "CSV", "filetype-csv")], className="d-flex flex-wrap gap-2")


def process_table(summary: dict) -> html.Div:
    """Each process's part: what it profiled and what profiling cost it."""
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "Process", "Status", "Requests", "Samples", "Profiled s", "Added ms/request")]))
    rows = [html.Tr([html.Td(p["process"], className="font-monospace"), html.Td(p["status"]),
                     html.Td(f"{p['requests']:,}"), html.Td(f"{p['samples']:,}"),
                     html.Td(f"{p['profiled_seconds']:.3f}"),
                     html.Td("—" if p["overhead_per_request_ms"] is None
                             else f"{p['overhead_per_request_ms']:.3f}")],
                    title=p.get("error") or None) for p in summary["processes"]]
    if not rows:
        rows = [html.Tr(html.Td("No process took part.", colSpan=6))]
    return html.Div(html.Table([head, html.Tbody(rows)],
                               className="table table-sm mb-0 mt-3"),
                    className="table-responsive")


def is_open(summary: dict | None) -> bool:
    return bool(summary) and summary["status"] in OPEN
