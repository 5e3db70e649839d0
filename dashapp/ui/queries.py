"""Pure builders for the SQL queries page: service results in, components out.

SQL is always rendered as text (html.Pre / html.Code children are strings,
escaped by React), never as HTML or markdown.
"""
from __future__ import annotations

from typing import Any

from dash import html

from dashapp.ui.components import data_grid, panel, unavailable_card

TABLE_ID = "queries-table"



def _duration_rules(threshold: float) -> dict:
    """cellClassRules: red at/over the slow threshold, amber over half of it."""
    return {"text-danger fw-semibold": f"params.value != null && params.value >= {threshold}",
            "text-warning-emphasis fw-semibold":
                f"params.value != null && params.value >= {threshold / 2} "
                f"&& params.value < {threshold}"}


def _ms_col(field: str, header: str, threshold: float) -> dict:
    return {"field": field, "headerName": header, "type": "rightAligned",
            "filter": "agNumberColumnFilter", "maxWidth": 130, "minWidth": 90,
            "valueFormatter": {"function": "params.value == null ? '' : "
                                           "d3.format(',.2f')(params.value)"},
            "cellClassRules": _duration_rules(threshold)}


_TREE_STYLE = {"paddingLeft": "0.9rem"}
_SQL_STYLE = {"whiteSpace": "pre-wrap", "wordBreak": "break-word", "maxHeight": "16rem",
              "overflow": "auto"}


def sql_block(sql: str, **kwargs) -> html.Pre:
    """SQL as text (never markup)."""
    cls = "ops-sql bg-body-tertiary border rounded p-2 small font-monospace " + \
        kwargs.pop("className", "")
    return html.Pre(str(sql), className=cls.strip(), style=_SQL_STYLE, **kwargs)


def _empty_notice() -> Any:
    return html.Div([
        html.P("No SQL recorded in this time range.", className="ops-empty__title mb-1"),
        html.P("Queries appear here once an application instrumented with "
               "dashapp.monitor(app, engine=...) runs SQL.",
               className="ops-empty__text mb-0"),
    ], className="ops-empty", id="queries-empty")


def table_state(stats: list[dict[str, Any]] | None, problem: Any = None) -> tuple:
    """(status children, grid rows, grid wrapper style) for the live refresh:
    the grid stays in the page (keeping the user's sort and filters) and
    only its rows change; a sentence or an unavailable card takes its place
    when there is nothing to show."""
    if problem is not None:
        return problem, [], {"display": "none"}
    if not stats:
        return _empty_notice(), [], {"display": "none"}
    return None, stats, {}


def query_table(stats: list[dict[str, Any]] | None, threshold: float,
                problem: Any = None) -> Any:
    """The per-fingerprint table (always built, hidden when there are no
    rows), with the status line that replaces it when empty or unavailable."""
    status, rows, style = table_state(stats, problem)
    columns = [
        {"field": "sql", "headerName": "SQL", "minWidth": 260, "flex": 3,
         "tooltipField": "sql", "cellClass": "font-monospace"},
        {"field": "calls", "headerName": "Calls", "type": "rightAligned", "maxWidth": 110,
         "minWidth": 80, "filter": "agNumberColumnFilter"},
        _ms_col("mean_ms", "Mean ms", threshold),
        _ms_col("p95_ms", "p95 ms", threshold),
        _ms_col("max_ms", "Max ms", threshold),
        {"field": "total_ms", "headerName": "Total ms", "type": "rightAligned",
         "maxWidth": 130, "minWidth": 90, "filter": "agNumberColumnFilter",
         "sort": "desc",
         "valueFormatter": {"function": "d3.format(',.0f')(params.value)"}},
        {"field": "rows", "headerName": "Rows", "type": "rightAligned", "maxWidth": 110,
         "minWidth": 80, "filter": "agNumberColumnFilter"},
        {"field": "fingerprint", "headerName": "Fingerprint", "hide": True},
        {"field": "last_id", "headerName": "Last id", "hide": True},
    ]
    grid = data_grid(TABLE_ID, rows, columns, page_size=25, csv_filename="sql-queries")
    grid.children[1].dashGridOptions["tooltipShowDelay"] = 400
    grid.children[1].getRowId = "'' + params.data.last_id"
    return html.Div([
        html.Div(status, id="queries-status"),
        html.Div([
            html.P(f"Colour: red at or above the slow threshold ({threshold:g} ms), amber "
                   "above half of it. Click a row for its plan and suggestions.",
                   className="ops-panel__subtitle mb-2"),
            grid,
        ], id="queries-grid-wrap", style=style),
    ])


def unavailable(message: str) -> Any:
    return unavailable_card("The console's store", message)


def issues_panel(data: dict[str, Any] | None) -> Any:
    """N+1 and duplicate findings per endpoint."""
    if data is None:
        return html.Div()
    items = []
    for kind, label, badge in (("n_plus_one", "N+1", "danger"),
                               ("duplicates", "Duplicate", "warning")):
        for f in data.get(kind, []):
            items.append(html.Li([
                html.Div([
                    html.Span(label, className=f"badge text-bg-{badge} me-2"),
                    html.Code(f["endpoint"]),
                    html.Span(f" runs this up to {f['max_per_request']}× per request "
                              f"(median {f['median_per_request']:g}) in "
                              f"{f['requests']} request{'s' if f['requests'] != 1 else ''}",
                              className="text-body-secondary"),
                ]),
                sql_block(f["sql"], className="my-1"),
                html.Small(["Example request id: ", html.Code(f["example_request_id"])],
                           className="text-body-secondary"),
            ], className="ops-issue border-bottom pb-2 mb-2"))
    defs = data.get("definitions", {})
    note = html.P(f"N+1: {defs.get('n_plus_one', '')}. Duplicate: "
                  f"{defs.get('duplicates', '')}.", className="ops-panel__subtitle")
    if not items:
        body = [html.P("No N+1 or duplicate queries in this time range.",
                       className="mb-1", id="queries-no-issues"), note]
    else:
        body = [note, html.Ul(items, className="list-unstyled mb-0 ops-issues")]
    return panel(body, title="Issues", subtitle="Queries repeated within one request",
                 id="queries-issues")


def _node(node: dict[str, Any]) -> html.Li:
    facts = []
    if node.get("cost") is not None:
        facts.append(f"cost {node['cost']:,.2f}")
    if node.get("rows") is not None:
        facts.append(f"rows {node['rows']:,}")
    if node.get("actual_rows") is not None:
        facts.append(f"actual rows {node['actual_rows']:,}")
    if node.get("actual_ms") is not None:
        facts.append(f"{node['actual_ms']:,.3f} ms")
    if node.get("loops") not in (None, 1):
        facts.append(f"loops {node['loops']}")
    parts: list = [html.Span(node["label"], className="ops-plan__label fw-semibold me-2")]
    if facts:
        parts.append(html.Span(" · ".join(facts), className="ops-plan__facts text-body-secondary small"))
    for key, value in (node.get("detail") or {}).items():
        parts.append(html.Div([html.Span(f"{key}: "), html.Code(str(value))],
                              className="ops-plan__detail small"))
    if node.get("reasons"):
        parts.append(html.Div([html.I(className="bi bi-exclamation-triangle me-1",
                                     **{"aria-hidden": "true"}), "; ".join(node["reasons"])],
                              className="ops-plan__why text-danger-emphasis small"))
    children = node.get("children") or []
    if children:
        parts.append(html.Ul([_node(c) for c in children], className="ops-plan list-unstyled mb-0",
                             style=_TREE_STYLE))
    cls = "ops-plan__node border-start border-3 ps-2 py-1 mt-1 " + (
        "ops-plan__node--expensive border-danger bg-danger-subtle rounded-end"
        if node.get("expensive") else "border-secondary-subtle")
    return html.Li(parts, className=cls)


def plan_tree(plan: dict[str, Any] | None, error: str | None = None) -> Any:
    if plan is None:
        return html.P(error or "No plan.", className="text-body-secondary",
                      id="queries-plan-error")
    head = [f"{plan['dialect']}"]
    if plan.get("total_cost") is not None:
        head.append(f"total cost {plan['total_cost']:,.2f}")
    if plan.get("substituted"):
        head.append(plan["substituted"])
    return html.Div([
        html.Small(" · ".join(head), className="text-body-secondary"),
        html.Ul([_node(n) for n in plan["plan"]], className="ops-plan ops-plan--root list-unstyled mb-0", style=_TREE_STYLE,
                id="queries-plan"),
    ])


def suggestions_list(items: list[dict[str, Any]]) -> Any:
    if not items:
        return html.P("No suggestions: nothing in the plan or the request data stands out.",
                      className="text-body-secondary")
    out = []
    for s in items:
        evidence = ", ".join(f"{k}: {v}" for k, v in (s.get("evidence") or {}).items())
        parts: list = [html.Strong(s["message"]), html.P(s["why"], className="mb-1"),
                       html.Small(["Evidence: ", evidence], className="text-body-secondary")]
        if s.get("sql"):
            parts.append(sql_block(s["sql"], className="mt-1 mb-0"))
        out.append(html.Li(parts, className=f"ops-suggestion ops-suggestion--{s['kind']} "
                                            "border rounded p-2 mb-2"))
    return html.Ul(out, className="list-unstyled ops-suggestions mb-0",
                   id="queries-suggestions")


def requests_list(requests: list[dict[str, Any]]) -> Any:
    if not requests:
        return html.P("Not run inside a recorded request (background work).",
                      className="text-body-secondary")
    rows = [html.Tr([html.Td(html.Code(r["request_id"])), html.Td(r.get("method") or ""),
                     html.Td(r["endpoint"] or ""), html.Td(str(r.get("status") or "")),
                     html.Td(f"{r['times_run']}", className="text-end"),
                     html.Td(f"{r['query_ms']:,.2f}", className="text-end")])
            for r in requests[:20]]
    head = html.Thead(html.Tr([html.Th("Request id"), html.Th("Method"), html.Th("Endpoint"),
                               html.Th("Status"), html.Th("Times", className="text-end"),
                               html.Th("Query ms", className="text-end")]))
    return html.Div(html.Table([head, html.Tbody(rows)],
                               className="table table-sm mb-0 ops-table"),
                    className="table-responsive")


def detail_body(detail: dict[str, Any], optimized: dict[str, Any] | None,
                optimize_error: str | None = None) -> Any:
    st = detail["fingerprint_stats"]
    plan = optimized.get("plan") if optimized else None
    plan_error = (optimized or {}).get("plan_error") or optimize_error
    return html.Div([
        html.H3("SQL", className="h6 mt-0"),
        sql_block(detail["sql"], id="queries-detail-sql"),
        html.P(f"Fingerprint {detail['fingerprint']} · {st['calls']} calls in the last "
               f"{st['minutes'] / 60:g} h · mean {st['mean_ms']:,.2f} ms · p95 "
               f"{st['p95_ms']:,.2f} ms · max {st['max_ms']:,.2f} ms",
               className="text-body-secondary small"),
        html.H3("Plan", className="h6 mt-3"),
        plan_tree(plan, plan_error),
        html.H3("Suggestions", className="h6 mt-3"),
        suggestions_list((optimized or {}).get("suggestions", [])) if optimized
        else html.P(optimize_error or "", className="text-body-secondary"),
        html.H3("Requests that ran it", className="h6 mt-3"),
        requests_list(detail["requests"]),
    ])
