"""Models, predictions and labels an agent shipped -> ops_ml_model,
ops_ml_evaluation, ops_ml_prediction.

The agent (ops_agent.ml) ships what only the host can compute: a model's
predictions (and probabilities) on its evaluation rows with y_eval, its own
importances or coefficients, its predictions on rows with one feature
shuffled, a sample of its evaluation inputs. Here the console scores them
with scikit-learn (dashapp.services.ml_metrics), so every metric is computed
in one place, whatever the host has installed. Every row keeps the batch's
application and release.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from sqlalchemy import bindparam, select, update

from dashapp.services import ml_metrics as svc
from dashapp.store import Store
from dashapp.store.models import MlEvaluation, MlModelVersion, MlPrediction

logger = logging.getLogger(__name__)

MAX_PARAMS = 50
MAX_NAMES = 1_000
_warned_unknown: set = set()   # (app, model, version) already logged in this process


def _time(value: Any, default: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return default


def _list(value: Any) -> list | None:
    return value if isinstance(value, list) else None


def _params(value: Any) -> dict | None:
    if not isinstance(value, dict):
        return None
    out = {}
    for key in list(value)[:MAX_PARAMS]:
        v = value[key]
        if isinstance(v, float):
            v = svc._num(v)
        elif not (v is None or isinstance(v, (bool, int, str))):
            v = str(v)
        out[str(key)[:100]] = v[:200] if isinstance(v, str) else v
    return out


def _feature_names(rec: dict, sample: list | None) -> list[str]:
    """The names the host gave (or the model's own), else x0, x1, ...: one
    per input the model takes."""
    width = rec.get("n_features")
    if sample and isinstance(sample[0], list):
        width = len(sample[0]) if width is None else width
    names = _list(rec.get("feature_names"))
    if not isinstance(width, int) or width < 0:
        width = len(names) if names is not None else 0
    width = min(width, MAX_NAMES)
    if names is not None and len(names) == width:
        return [str(n)[:128] for n in names]
    return [f"x{i}" for i in range(width)]


def shipped_metrics(task: str, y_true: Sequence, y_pred: Sequence,
                    proba: Sequence | None, classes: Sequence | None) -> dict:
    """Score a version from what its host shipped at registration: the
    model's predictions (and predict_proba) on the evaluation rows."""
    if task == "regression":
        return svc.regression_metrics(y_true, y_pred)
    score = None
    if proba is not None and classes:
        score = np.asarray(proba, dtype=float)
        if score.ndim != 2 or score.shape != (len(y_true), len(classes)):
            logger.info("ingest: predict_proba of shape %s ignored", score.shape)
            score = None
    return svc.classification_metrics(y_true, y_pred, score, classes or None)


def _score(task: str, y_true: Sequence, y_pred: Sequence) -> float:
    """What scikit-learn's permutation_importance scores by default (the
    estimator's own `score`): accuracy, or R²."""
    from sklearn import metrics as skm
    if task == "regression":
        return float(skm.r2_score(np.asarray(y_true, dtype=float),
                                  np.asarray(y_pred, dtype=float)))
    return float(skm.accuracy_score([svc.label_text(v) for v in y_true],
                                    [svc.label_text(v) for v in y_pred]))


def shipped_importance(task: str, feature_names: list[str], own: dict | None,
                       permutation: dict | None, y_true: Sequence | None,
                       y_pred: Sequence | None) -> tuple[list[dict] | None, str | None]:
    """(importance rows sorted high to low, method) from a registration:
    the model's own `feature_importances_`, its `coef_` (mean |coefficient|
    over classes), or permutation importance: the drop in score when one
    feature is shuffled, from the host's predictions on shuffled rows."""
    values, std, method = None, None, None
    if own and own.get("values") is not None:
        raw = np.asarray(own["values"], dtype=float)
        if own.get("method") == "feature_importances_" and raw.ndim == 1:
            values, method = raw, "feature_importances_"
        elif own.get("method") == "coef_" and raw.ndim in (1, 2):
            values = np.abs(np.atleast_2d(raw)).mean(axis=0)
            method = "coef_ (mean |coefficient|)"
        if values is not None and len(values) != len(feature_names):
            values, method = None, None
    if values is None and permutation and y_true is not None and y_pred is not None:
        n = int(permutation.get("rows") or 0)
        shuffled = permutation.get("predictions") or []
        if 2 <= n <= len(y_true) and len(shuffled) == len(feature_names):
            base = _score(task, y_true[:n], y_pred[:n])
            drops = np.array([[base - _score(task, y_true[:n], p) for p in per_feature]
                              for per_feature in shuffled], dtype=float)
            values, std = drops.mean(axis=1), drops.std(axis=1)
            method = f"permutation ({drops.shape[1]} repeats, {n} rows)"
    if values is None:
        return None, None
    rows = [{"feature": name, "importance": svc._num(values[i]),
             "std": svc._num(std[i]) if std is not None else None}
            for i, name in enumerate(feature_names)]
    rows.sort(key=lambda r: -(r["importance"] or 0.0))
    return rows, method


def _evaluation(task: str, ev: dict | None, classes: list | None
                ) -> tuple[dict | None, int, list | None, list | None]:
    """(metrics, n, y_true, y_pred) of what the host predicted on its
    evaluation rows; no metrics when there is nothing scorable."""
    if not isinstance(ev, dict):
        return None, 0, None, None
    y_true, y_pred = _list(ev.get("y_true")), _list(ev.get("y_pred"))
    if not y_true or y_pred is None or len(y_true) != len(y_pred):
        return None, 0, None, None
    try:
        metrics = shipped_metrics(task, y_true, y_pred, _list(ev.get("proba")), classes)
    except (ValueError, TypeError) as exc:  # e.g. a non-numeric target for a regressor
        logger.info("ingest: evaluation not scorable: %s", str(exc)[:200])
        return None, 0, y_true, y_pred
    return metrics, len(y_true), y_true, y_pred


def _sample(ev: dict | None) -> list | None:
    rows = _list(ev.get("sample")) if isinstance(ev, dict) else None
    if not rows:
        return None
    step = max(1, -(-len(rows) // svc.MAX_EVAL_SAMPLE))
    return [[svc._num(v) if isinstance(v, (int, float)) else None
             for v in row[:svc.MAX_FEATURES]]
            for row in rows[::step] if isinstance(row, list)]


def registration_values(meta, rec: dict) -> tuple[dict, dict | None, int] | None:
    """(model row values, evaluation metrics, n) of one "ml_models" record;
    None when it is not one."""
    name, version, task = rec.get("name"), rec.get("version"), rec.get("task")
    if not name or not version or task not in svc.TASKS:
        return None
    ev = rec.get("eval") if isinstance(rec.get("eval"), dict) else None
    sample = _sample(ev)
    names = _feature_names(rec, sample)
    classes = _list(rec.get("classes"))
    classes = ([svc.label_text(c) for c in classes[:MAX_NAMES]]
               if classes and task == "classification" else None)
    metrics, n, y_true, y_pred = _evaluation(task, ev, classes)
    try:
        importance, method = shipped_importance(
            task, names, rec.get("importance") if isinstance(rec.get("importance"), dict)
            else None, rec.get("permutation") if isinstance(rec.get("permutation"), dict)
            else None, y_true, y_pred)
    except (ValueError, TypeError) as exc:
        logger.info("ingest: importance of %s %s not readable: %s", name, version, exc)
        importance, method = None, None
    values = {"name": str(name)[:128], "version": str(version)[:64], "task": task,
              "estimator": str(rec.get("estimator") or "")[:255],
              "registered_at": _time(rec.get("time"), meta.received_at),
              "feature_names": names, "classes": classes, "eval_sample": sample,
              "importance": importance,
              "importance_method": method[:64] if method else None,
              "process": meta.process[:96], "params": _params(rec.get("params")),
              "app": meta.app, "release": meta.release}
    return values, metrics, n


def store_registration(store: Store, values: dict, metrics: dict | None, n: int) -> int:
    """Insert or refresh the version row; add an evaluation row unless the
    same version was evaluated with the same result (a restart)."""
    with store.session() as s:
        row = s.scalars(select(MlModelVersion).where(
            MlModelVersion.name == values["name"],
            MlModelVersion.version == values["version"])).first()
        if row is None:
            row = MlModelVersion(**values)
            s.add(row)
        else:  # registered again (a restart): keep history, refresh the rest
            for key, value in values.items():
                if key != "registered_at" and (value is not None or key == "importance"):
                    setattr(row, key, value)
        s.flush()
        last = s.scalars(select(MlEvaluation).where(MlEvaluation.model_id == row.id)
                         .order_by(MlEvaluation.time.desc(), MlEvaluation.id.desc())
                         .limit(1)).first()
        if metrics is not None and (last is None or last.n != n or last.metrics != metrics):
            s.add(MlEvaluation(model_id=row.id, time=values["registered_at"], n=n,
                               metrics=metrics))
        return row.id


def apply_models(store: Store, meta, records: list) -> None:
    for rec in records:
        if not isinstance(rec, dict):
            continue
        try:
            found = registration_values(meta, rec)
        except Exception:  # noqa: BLE001 - one unreadable record loses only itself
            logger.exception("ingest: a model registration from %s is unreadable",
                             meta.process)
            continue
        if found is None:
            logger.warning("ingest: %s sent a model registration without name, version "
                           "or a known task; ignored", meta.process)
            continue
        store_registration(store, *found)  # a store error fails the batch: retried


def _model_ids(store: Store, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    names = {name for name, _ in keys}
    with store.engine.connect() as conn:
        rows = conn.execute(select(MlModelVersion.id, MlModelVersion.name,
                                   MlModelVersion.version)
                            .where(MlModelVersion.name.in_(names))).all()
    return {(r.name, r.version): r.id for r in rows}


def apply_predictions(store: Store, meta, records: list) -> None:
    recs = [r for r in records if isinstance(r, dict) and r.get("id") is not None]
    keys = {(str(r.get("model"))[:128], str(r.get("version"))[:64]) for r in recs}
    if not keys:
        return
    ids = _model_ids(store, keys)
    rows, unknown = [], {}
    for r in recs:
        key = (str(r.get("model"))[:128], str(r.get("version"))[:64])
        model_id = ids.get(key)
        if model_id is None:
            unknown[key] = unknown.get(key, 0) + 1
            continue
        x = r.get("x")
        truth = r.get("y_true")
        rows.append({
            "pid": str(r["id"])[:32], "model_id": model_id,
            "time": _time(r.get("t"), meta.received_at),
            "features": ([svc._num(v) if isinstance(v, (int, float)) else None
                          for v in x[:svc.MAX_FEATURES]] if isinstance(x, list) else None),
            "y_pred": svc.label_text(r.get("y")),
            "y_true": svc.label_text(truth) if truth is not None else None,
            "labelled_at": meta.received_at if truth is not None else None,
            "latency_ms": svc._num(r["ms"]) if isinstance(r.get("ms"), (int, float)) else None,
            "app": meta.app, "release": meta.release})
    if rows:
        with store.engine.begin() as conn:
            conn.execute(MlPrediction.__table__.insert(), rows)
    for (name, version), count in unknown.items():
        seen = (meta.app, name, version)
        if seen not in _warned_unknown and len(_warned_unknown) < 1_000:
            _warned_unknown.add(seen)
            logger.warning("ingest: %d predictions of %s for model %s version %s dropped: "
                           "no such version is registered (its registration failed or "
                           "was lost)", count, meta.app, name, version)


def apply_labels(store: Store, meta, records: list) -> None:
    table = MlPrediction.__table__
    rows = [{"b_pid": str(r["id"])[:32], "b_true": svc.label_text(r.get("y")),
             "b_at": meta.received_at}
            for r in records
            if isinstance(r, dict) and r.get("id") is not None and r.get("y") is not None]
    if not rows:
        return
    with store.engine.begin() as conn:
        conn.execute(update(table).where(table.c.pid == bindparam("b_pid"),
                                         table.c.app == meta.app)
                     .values(y_true=bindparam("b_true"), labelled_at=bindparam("b_at")),
                     rows)


APPLIERS = {"ml_models": apply_models, "ml_predictions": apply_predictions,
            "ml_labels": apply_labels}
RESULTS: dict = {}
