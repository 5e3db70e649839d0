"""ML models: registered models, their metrics (on the evaluation data or on
labelled live predictions), metrics over time per version, confusion matrix,
ROC/PR curves or residuals, prediction volume, feature importance, input
drift, and two versions side by side.

Callbacks are thin: they call dashapp.services.ml_metrics (the same
functions /api/ml calls) and hand the results to dashapp.ui.ml. The page
only reads, so any signed-in role may use it.
"""
from __future__ import annotations

import logging
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from dashapp.services import ml_metrics as svc
from dashapp.ui import ml as ui
from dashapp.ui.components import (RANGE_LABELS, chart, page_header, panel, range_picker,
                                   unavailable_card)
from dashapp.ui.placeholder import page_options

logger = logging.getLogger(__name__)

dash.register_page(__name__, **page_options("models"))

REFRESH_MS = 30_000
DEFAULT_MINUTES = 1440
MODEL = "models-model"
VERSION = "models-version"
COMPARE = "models-compare"
SOURCE = "models-source"
RANGE = "models-range"
REFRESH = "models-refresh"
INTERVAL = "models-interval"
LIST = "models-list-wrap"
STATUS = "models-status"
DETAIL = "models-detail"
NO_COMPARE = "none"


def _store():
    return current_app.extensions["ops"].store


def _minutes(value: Any) -> int:
    return value if value in RANGE_LABELS else DEFAULT_MINUTES


def _store_down(exc: Exception) -> html.Div:
    from dashapp.store import _short_error
    logger.warning("ML models page: store unavailable: %s", _short_error(exc))
    return unavailable_card("The console's store", _short_error(exc),
                            hint="The page reads model metrics from the store; press "
                                 "Refresh once it is back.")


def _select(id: str, label: str) -> html.Div:
    return html.Div([
        dbc.Label(label, html_for=id, className="small mb-1"),
        dbc.Select(id=id, options=[], size="sm", className="ops-models-select"),
    ], className="ops-models-control")


def layout(**_query) -> html.Div:
    return html.Div(className="ops-models", children=[
        page_header("ML models", "Metrics, history, feature importance and input drift "
                    "of the models the monitored app registers with monitor.ml.",
                    actions=dbc.Button([html.I(className="bi bi-arrow-clockwise me-1"),
                                        "Refresh"], id=REFRESH, n_clicks=0, size="sm",
                                       color="secondary", outline=True)),
        dcc.Interval(id=INTERVAL, interval=REFRESH_MS),
        html.Div(id=STATUS),
        html.Div(className="ops-stack", children=[
            panel(html.Div(id=LIST), title="Models", flush=False,
                  subtitle="Every registered model; the headline metric is the newest "
                           "version's on its evaluation data."),
            html.Div(className="ops-models-controls", children=[
                _select(MODEL, "Model"),
                _select(VERSION, "Version"),
                _select(COMPARE, "Compare with"),
                html.Div([
                    dbc.Label("Metrics from", className="small mb-1 d-block"),
                    dbc.RadioItems(
                        id=SOURCE, value="eval",
                        options=[{"label": "Evaluation data", "value": "eval"},
                                 {"label": "Live labels", "value": "live"}],
                        className="btn-group btn-group-sm", inputClassName="btn-check",
                        labelClassName="btn btn-outline-secondary",
                        labelCheckedClassName="active"),
                ], className="ops-models-control"),
                html.Div([
                    dbc.Label("Window", className="small mb-1 d-block"),
                    range_picker(RANGE, DEFAULT_MINUTES),
                ], className="ops-models-control"),
            ]),
            dcc.Loading(html.Div(id=DETAIL), type="default", delay_show=300),
        ]),
    ])


# ------------------------------------------------------------------ render

def render_list(current: str | None) -> tuple[Any, list[dict], Any, Any]:
    """(list grid, model options, selected model, status) for the page."""
    try:
        models = svc.list_models(_store())
    except SQLAlchemyError as exc:
        return None, [], None, _store_down(exc)
    names = [m["name"] for m in models]
    value = current if current in names else (names[0] if names else None)
    options = [{"label": n, "value": n} for n in names]
    return ui.models_grid(models), options, value, None


def render_versions(model: str | None) -> tuple[list, Any, list, Any]:
    if not model:
        return [], None, [], NO_COMPARE
    try:
        listing = {m["name"]: m for m in svc.list_models(_store())}
    except SQLAlchemyError:
        return [], None, [], NO_COMPARE
    versions = listing.get(model, {}).get("versions", [])
    options = ui.version_options(versions)
    older = versions[-2] if len(versions) > 1 else NO_COMPARE
    return (options, (versions[-1] if versions else None),
            [{"label": "No comparison", "value": NO_COMPARE}, *options], older)


def render_detail(model: str | None, version: str | None, source: str, minutes: int,
                  compare_with: str | None) -> Any:
    """Everything below the controls for one model version."""
    if not model:
        return html.Div(className="ops-empty", id="models-empty", children=[
            html.I(className="bi bi-cpu ops-empty__icon"),
            html.P("No model registered yet", className="ops-empty__title"),
            html.P("Register one in the monitored app: monitor.ml.register(name, model, "
                   "version=..., task=..., X_eval=..., y_eval=...), then record "
                   "predictions with monitor.ml.record(...).", className="ops-empty__text"),
        ])
    store = _store()
    try:
        result = svc.model_metrics(store, model, version, source, minutes)
        version = result["version"]
        preds = svc.predictions(store, model, version, minutes)
        hist = svc.history(store, model, minutes)
        feats = svc.features(store, model, version)
        drift = svc.drift(store, model, version, minutes)
        cmp = (svc.compare(store, model, compare_with, version)
               if compare_with and compare_with not in (version, NO_COMPARE) else None)
    except svc.NotFound as exc:
        return dbc.Alert(str(exc), color="warning", id="models-not-found")
    except SQLAlchemyError as exc:
        return _store_down(exc)
    metrics = result.get("metrics")
    notice = (dbc.Alert(result["message"], color="info", className="mb-0",
                        id="models-notice") if result.get("message") else None)
    window = RANGE_LABELS.get(minutes, f"{minutes} min")
    if result["task"] == "classification":
        quality = [
            panel(chart("models-confusion", ui.confusion_figure(metrics), height=320),
                  title="Confusion matrix"),
            panel(chart("models-roc", ui.roc_figure(metrics), height=320),
                  title="ROC curve", subtitle="One-vs-rest per class; evaluation data"),
            panel(chart("models-pr", ui.pr_figure(metrics), height=320),
                  title="Precision-recall curve"),
            panel(ui.per_class_grid(metrics), title="Per class"),
        ]
    else:
        quality = [
            panel(chart("models-residuals", ui.residuals_figure(metrics), height=320),
                  title="Residuals"),
            panel(chart("models-actual", ui.actual_vs_predicted_figure(metrics),
                        height=320), title="Predicted against true"),
        ]
    return html.Div(className="ops-stack", children=[c for c in [
        notice,
        ui.metric_cards(result, preds, drift),
        html.Div(className="ops-cols", children=[
            panel(chart("models-versions", ui.versions_figure(hist), height=320),
                  title="Metrics per version",
                  subtitle="Each evaluation on the version's evaluation data, oldest "
                           "first"),
            panel(chart("models-live", ui.live_history_figure(hist), height=320),
                  title="Live metrics over time",
                  subtitle="Labelled live predictions, per time bucket and version"),
            panel(chart("models-volume", ui.volume_figure(preds), height=320),
                  title="Prediction volume", subtitle=f"Per version, last {window}; "
                                                      "line: p95 latency"),
        ]),
        html.Div(className="ops-cols", children=[
            *quality,
            panel(chart("models-distribution", ui.distribution_figure(preds), height=320),
                  title="Prediction distribution", subtitle=f"Last {window}"),
        ]),
        html.Div(className="ops-cols", children=[
            panel(chart("models-importance", ui.importance_figure(feats), height=420),
                  title="Feature importance",
                  subtitle=f"Method: {feats['method'] or 'none'}"),
            panel(ui.drift_grid(drift), title="Input drift",
                  subtitle=f"Live inputs of the last {window} against the evaluation "
                           f"data; flagged at PSI ≥ {svc.PSI_THRESHOLD} + its sampling "
                           f"noise or KS "
                           f"p < {svc.KS_P_THRESHOLD} with ≥ {svc.DRIFT_MIN_SAMPLES} "
                           "inputs"),
        ]),
        panel(ui.compare_grid(cmp), title="Compare versions",
              subtitle=(f"v{compare_with} against v{version}, evaluation data"
                        if cmp else "Evaluation metrics of two versions side by side")),
    ] if c is not None])


# --------------------------------------------------------------- callbacks

@callback(Output(LIST, "children"), Output(MODEL, "options"), Output(MODEL, "value"),
          Output(STATUS, "children"),
          Input(INTERVAL, "n_intervals"), Input(REFRESH, "n_clicks"), State(MODEL, "value"))
def refresh_list(_n, _clicks, current):
    grid, options, value, status = render_list(current)
    return (grid if grid is not None else no_update), options, value, status


@callback(Output(VERSION, "options"), Output(VERSION, "value"),
          Output(COMPARE, "options"), Output(COMPARE, "value"), Input(MODEL, "value"))
def choose_model(model):
    return render_versions(model)


@callback(Output(DETAIL, "children"), Input(MODEL, "value"), Input(VERSION, "value"),
          Input(SOURCE, "value"), Input(RANGE, "value"), Input(COMPARE, "value"),
          Input(REFRESH, "n_clicks"))
def show_detail(model, version, source, minutes, compare_with, _clicks):
    source = source if source in ("eval", "live") else "eval"
    return render_detail(model, version, source, _minutes(minutes), compare_with)
