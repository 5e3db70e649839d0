"""Overview: one live card per module, demo traffic, and the console's health."""
from __future__ import annotations

import dash
from dash import Input, Output, callback, dcc, html
from flask import current_app

from dashapp.modules import BY_KEY, MODULES
from dashapp.services.overview import overview, traffic_series
from dashapp.ui.alerts import overview_strip
from dashapp.ui.components import chart, page_header, panel
from dashapp.ui.overview import console_status, module_cards, traffic_figure

MODULE = BY_KEY["overview"]
REFRESH_MS = 5000

dash.register_page(__name__, path=MODULE.path, title="Overview · Ops Console",
                   name=MODULE.title, order=MODULES.index(MODULE))


def layout(**_query):
    cards, figure, console, alerts = render()
    return html.Div([
        page_header("Overview", "Every module at a glance, refreshed every 5 seconds."),
        html.Div(alerts, id="overview-alerts"),
        html.Div(cards, id="overview-cards-wrap"),
        html.Div(className="ops-overview-row", children=[
            panel(chart("overview-traffic", figure, height=260, filename="demo-traffic"),
                  title="Demo traffic",
                  subtitle="Requests the demo's traffic generator sent, per second"),
            html.Div(console, id="overview-console"),
        ]),
        dcc.Interval(id="overview-refresh", interval=REFRESH_MS),
    ])


def render():
    ops = current_app.extensions["ops"]
    data = overview(ops)
    return (module_cards(data), traffic_figure(traffic_series(ops.redis.client)),
            console_status(data), overview_strip(data.get("alerts")))


@callback(Output("overview-cards-wrap", "children"), Output("overview-traffic", "figure"),
          Output("overview-console", "children"), Output("overview-alerts", "children"),
          Input("overview-refresh", "n_intervals"), prevent_initial_call=True)
def refresh(_n):
    return render()
