"""A standalone Dash app that shows every shared component once, for the
browser tests in test_components.py (no product page uses grids, modals or
toasts yet, so this is their only real-browser coverage).

It is built the way dashapp/factory.py builds the console (the real assets
folder, the shell's index template with the theme boot script in <head>,
``build_shell``), but without pages, sign-in, Redis or a database. The
page's own callbacks are registered on the app (``app.callback``); the
components' and the shell's clientside callbacks are the product's own,
registered when their modules are imported.

    python -m tests.browser.components_app   # http://127.0.0.1:8060 to look at it
"""
from __future__ import annotations

import importlib
import itertools
import threading
from pathlib import Path

import dash
import plotly.graph_objects as go
from dash import Input, Output, ctx, html

from dashapp.ui import components as ui
from dashapp.ui import shell

ROOT = Path(__file__).resolve().parents[2]
ASSETS_DIR = ROOT / "assets"

GRID = "cmp-grid"
CHART = "cmp-chart"
METRIC = "cmp-metric"
MODAL = "cmp-modal"
MODAL_OPEN = "cmp-open-modal"
MODAL_CLOSE = "cmp-modal-close"
CONFIRM = "cmp-delete"
CONFIRM_OPEN = "cmp-open-confirm"
CONFIRM_WORD = "DELETE"
DELETED_COUNT = "cmp-deleted-count"
TOAST_BUTTON = "cmp-toast"

CSV_FILENAME = "components.csv"
XSS_TEXT = "<img src=x onerror=alert(1)>"
FORMULA_TEXT = "=cmd|' /C calc'!A0"
TOAST_TEXT = "Saved <b>3 keys</b> <img src=x onerror=alert(2)>"
SERVICES = ("api", "billing", "search")
N_ROWS = 150


def _rows() -> list[dict]:
    """150 rows; row 1 carries markup, row 2 a spreadsheet formula. Latency
    is a permutation of 0.5 .. 149.5 so sorting moves a known row first."""
    rows = []
    for i in range(N_ROWS):
        note = XSS_TEXT if i == 0 else FORMULA_TEXT if i == 1 else f"note {i + 1}"
        rows.append({
            "id": i + 1,
            "service": SERVICES[i % len(SERVICES)],
            "latency_ms": ((i * 37 + 11) % N_ROWS) + 0.5,
            "note": note,
        })
    return rows


ROWS = _rows()


def _figure() -> go.Figure:
    fig = go.Figure(layout={"template": "ops_light", "title": "Latency (ms)"})
    fig.add_scatter(x=[r["id"] for r in ROWS], y=[r["latency_ms"] for r in ROWS],
                    mode="lines", name="latency")
    return fig


def _ensure_shared_callbacks() -> None:
    """Dash hands the callbacks registered at import time (``dash.callback``,
    ``dash.clientside_callback``) to the *first* app that serves a request and
    then forgets them. When another app in this process (an earlier test's
    ``create_app()``) already took the components' and shell's callbacks,
    import those modules again so this app gets them too."""
    from dash import _callback

    def pending(marker: str) -> bool:
        return any(marker in key for key in _callback.GLOBAL_CALLBACK_MAP)

    if not pending(f'"{ui.GRID_EXPORT}"'):
        importlib.reload(ui)
    if not pending(f"{shell.PAGE_TITLE}."):
        importlib.reload(shell)


def _page() -> html.Div:
    actions = [
        html.Button("Open modal", id=MODAL_OPEN, n_clicks=0, type="button",
                    className="btn btn-outline-secondary"),
        html.Button("Show toast", id=TOAST_BUTTON, n_clicks=0, type="button",
                    className="btn btn-outline-secondary"),
        html.Button("Delete…", id=CONFIRM_OPEN, n_clicks=0, type="button",
                    className="btn btn-danger"),
    ]
    return html.Div([
        ui.page_header("Components", "Every shared component, once.", actions=actions),
        html.Div([
            ui.metric_grid([
                ui.metric_card("Requests / min", 1284, id=METRIC, delta="+4.2%", status="ok",
                               icon="graph-up", footnote="Last 5 minutes"),
            ]),
            html.P(["Deleted: ", html.Span("0", id=DELETED_COUNT)]),
            ui.panel(ui.chart(CHART, _figure(), height=300), title="Latency", flush=True),
            ui.panel(ui.data_grid(GRID, ROWS, csv_filename=CSV_FILENAME, page_size=25),
                     title="Requests"),
        ], className="ops-stack"),
        ui.modal(MODAL, "Key details", html.P("A modal with a body and a footer."),
                 footer=html.Button("Close", id=MODAL_CLOSE, n_clicks=0, type="button",
                                    className="btn btn-primary")),
        ui.confirm_dialog(CONFIRM, "Delete everything?",
                          "This removes every key. It cannot be undone.",
                          confirm_label="Delete", typed_confirmation=CONFIRM_WORD),
    ])


def build_app() -> dash.Dash:
    """The component gallery as a Dash app (serve ``app.server``)."""
    _ensure_shared_callbacks()
    app = dash.Dash(__name__, assets_folder=str(ASSETS_DIR), use_pages=False,
                    title="Components · Ops Console", serve_locally=True, update_title=None)
    app.index_string = shell.index_string(app.get_asset_url("00-theme-boot.js"))
    ids = ui.confirm_ids(CONFIRM)
    app.layout = shell.build_shell(_page(), username=None, role=None)

    @app.callback(Output(MODAL, "is_open"), Input(MODAL_OPEN, "n_clicks"),
                  Input(MODAL_CLOSE, "n_clicks"), prevent_initial_call=True)
    def toggle_modal(_open, _close):
        return ctx.triggered_id == MODAL_OPEN

    @app.callback(Output(ids.modal, "is_open"), Input(CONFIRM_OPEN, "n_clicks"),
                  prevent_initial_call=True)
    def open_confirm(_):
        return True

    # Counts server-side runs (not clicks): a double run would show 2.
    runs = itertools.count(1)
    lock = threading.Lock()

    @app.callback(Output(DELETED_COUNT, "children"), Input(ids.confirm, "n_clicks"),
                  prevent_initial_call=True)
    def delete(_):
        with lock:
            return str(next(runs))

    @app.callback(Input(TOAST_BUTTON, "n_clicks"), prevent_initial_call=True)
    def toast(_):
        ui.push_toast(TOAST_TEXT, kind="info")

    return app


if __name__ == "__main__":
    build_app().run(host="127.0.0.1", port=8060, debug=False)
