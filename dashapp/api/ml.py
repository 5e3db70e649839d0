"""/api/ml: registered models, their metrics, predictions, history,
feature importance and input drift (issue 6).

Thin: validate, call dashapp.services.ml_metrics (the same functions the ML
models page calls), jsonify. All routes only read: role viewer. An unknown
model or version answers 404 `not_found`; a store that cannot be read, 503
`store_unavailable`.
"""
from __future__ import annotations

import logging
from typing import Literal

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, SECURITY, ErrorBody, error, example,
                                guarded, store_unavailable, tidy_docs)
from dashapp.security.roles import requires
from dashapp.services import ml_metrics as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_ml", __name__, url_prefix="/api/ml",
                  abp_tags=[Tag(name="ml", description="ML models: metrics, predictions, "
                                                       "history, features, drift")])

ERRORS = {**INPUT_ERRORS, 404: ErrorBody, 503: ErrorBody}
MINUTES = Field(60 * 24, ge=1, le=svc.MAX_MINUTES, description="Window: the last N minutes")
VERSION = Field(None, min_length=1, max_length=64,
                description="A registered version; default: the newest")


class NamePath(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="The model's name")


class ListQuery(BaseModel):
    minutes: float = MINUTES


class MetricsQuery(BaseModel):
    version: str | None = VERSION
    source: Literal["eval", "live"] = Field(
        "eval", description="eval: the registration's evaluation data; live: the "
                            "labelled predictions in the window")
    minutes: float = MINUTES


class WindowQuery(BaseModel):
    version: str | None = VERSION
    minutes: float = Field(60, ge=1, le=svc.MAX_MINUTES,
                           description="Window: the last N minutes")


class HistoryQuery(BaseModel):
    minutes: float = Field(60 * 24 * 30, ge=1, le=svc.MAX_MINUTES,
                           description="Live metrics over the last N minutes")


class VersionQuery(BaseModel):
    version: str | None = VERSION


class CompareQuery(BaseModel):
    a: str = Field(min_length=1, max_length=64, description="First version")
    b: str = Field(min_length=1, max_length=64, description="Second version")


class ModelsResponse(BaseModel):
    model_config = example({'models': [{'estimator': 'RandomForestClassifier',
                                        'headline': {'name': 'accuracy', 'value': 0.958},
                                        'latest_version': '1.0.0',
                                        'n_features': 30,
                                        'name': 'churn',
                                        'predictions': 12,
                                        'registered_at': '2026-11-26T22:33:58.111154+00:00',
                                        'task': 'classification',
                                        'versions': ['0.9.0'],
                                        'window_minutes': 1440}]})
    models: list[dict] = Field(description="Per model: name, task, versions, latest_version, "
                                           "estimator, predictions (in the window), "
                                           "headline {name, value}")


# One evaluation, as GET /api/ml/models/<name>/metrics answers it.
_EVAL_EXAMPLE = {'classes': ['0'],
                  'metrics': {'accuracy': 0.958,
                              'confusion_matrix': {'labels': ['0'], 'matrix': [[49]]},
                              'f1': 0.9547,
                              'n': 143,
                              'per_class': [{'f1': 0.9423,
                                             'label': '0',
                                             'precision': 0.9608,
                                             'recall': 0.9245,
                                             'support': 53}],
                              'pr_curves': [{'average_precision': 0.9971,
                                             'label': '1',
                                             'precision': [0.6294],
                                             'recall': [1.0]}],
                              'precision': 0.9587,
                              'recall': 0.9512,
                              'roc_auc': 0.995,
                              'roc_curves': [{'auc': 0.995, 'fpr': [0.0], 'label': '1', 'tpr': [0.0]}]},
                  'name': 'churn',
                  'source': 'eval',
                  'task': 'classification',
                  'time': '2026-11-26T22:33:58.111154+00:00',
                  'version': '1.0.0'}


class ModelMetricsResponse(BaseModel):
    model_config = example(_EVAL_EXAMPLE, extra="allow")
    name: str
    version: str
    task: str
    source: str
    metrics: dict | None = Field(description="null with a message when there is nothing "
                                              "to score")


class ModelResponse(BaseModel):
    """A per-model answer; the fields are listed in the route's description."""
    model_config = example({
        "a": {**_EVAL_EXAMPLE, "version": "0.9.0",
              "metrics": {**_EVAL_EXAMPLE["metrics"], "accuracy": 0.9301}},
        "b": _EVAL_EXAMPLE,
        "name": "churn",
        "rows": [{"a": 0.9301, "b": 0.958, "change": 0.028, "metric": "accuracy"}],
        "task": "classification"}, extra="allow")
    name: str


def _failure(exc: Exception):
    if isinstance(exc, svc.NotFound):
        return error(404, "not_found", str(exc))
    return store_unavailable(exc, "ml API")


_guarded = guarded((svc.NotFound, SQLAlchemyError), _failure)


def _store():
    return current_app.extensions["ops"].store


@bp.get("/models", responses={200: ModelsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def get_models(query: ListQuery):
    """Registered models: versions, task, prediction volume, headline metric."""
    return {"models": svc.list_models(_store(), query.minutes)}


@bp.get("/model/<name>/metrics", responses={200: ModelMetricsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def get_metrics(path: NamePath, query: MetricsQuery):
    """Classification: accuracy, macro precision/recall/F1, per class, ROC AUC,
    confusion matrix, ROC and PR curves (eval only: they need probabilities).
    Regression: MAE, RMSE, R², residuals."""
    return svc.model_metrics(_store(), path.name, query.version, query.source,
                             query.minutes)


@bp.get("/model/<name>/predictions", responses={200: ModelResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def get_predictions(path: NamePath, query: WindowQuery):
    """Prediction volume and latency over time; class counts or value histogram."""
    return svc.predictions(_store(), path.name, query.version, query.minutes)


@bp.get("/model/<name>/history", responses={200: ModelResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def get_history(path: NamePath, query: HistoryQuery):
    """Metrics per evaluation and live metrics per time bucket, per version."""
    return svc.history(_store(), path.name, query.minutes)


@bp.get("/model/<name>/features", responses={200: ModelResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def get_features(path: NamePath, query: VersionQuery):
    """Feature importance and the method that measured it."""
    return svc.features(_store(), path.name, query.version)


@bp.get("/model/<name>/drift", responses={200: ModelResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def get_drift(path: NamePath, query: WindowQuery):
    """Per feature: PSI and KS test of live inputs against the evaluation data;
    flagged at PSI >= 0.2 above its sampling noise (psi_noise) or KS p < 0.01,
    with at least 50 live inputs."""
    return svc.drift(_store(), path.name, query.version, query.minutes)


@bp.get("/model/<name>/compare", responses={200: ModelResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def get_compare(path: NamePath, query: CompareQuery):
    """Two versions' evaluation metrics side by side, with the change."""
    return svc.compare(_store(), path.name, query.a, query.b)


tidy_docs(bp)
