"""ML model metrics: evaluation, live metrics, history, importance, drift.

Every metric comes from scikit-learn's own functions (never hand-rolled).
Two sources per model version:

* ``eval``: computed once per registration with X_eval/y_eval
  (`monitor.ml.register`) from the predictions the agent ships
  (dashapp.ingest.ml), stored in ``ops_ml_evaluation``;
* ``live``: computed on request from the labelled predictions
  (``ops_ml_prediction`` rows with ``y_true``) in a time window.

Drift compares each feature's recent live inputs with the version's stored
evaluation sample: PSI over 10 quantile bins of the evaluation data and the
two-sample Kolmogorov-Smirnov test (`scipy.stats.ks_2samp`). A feature is
flagged when at least ``DRIFT_MIN_SAMPLES`` live values exist and PSI >=
``PSI_THRESHOLD`` (0.2) above PSI's own sampling noise, (10 - 1) *
(1/n_live + 1/n_eval), or the KS p-value < ``KS_P_THRESHOLD`` (0.01). (Two
small samples of one distribution have a PSI well above 0: with 57 live
and 143 eval rows it is about 0.22, so a bare PSI >= 0.2 flags noise.)
"""
from __future__ import annotations

import logging
import math
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import numpy as np
from sqlalchemy import func, select

from dashapp.store import Store
from dashapp.store.models import MlEvaluation, MlModelVersion, MlPrediction, as_utc

logger = logging.getLogger(__name__)

TASKS = ("classification", "regression")
MAX_EVAL_SAMPLE = 5_000      # eval rows kept per version as the drift reference
MAX_FEATURES = 50            # input values kept per live prediction
MAX_CURVE_POINTS = 200       # per ROC / PR curve
MAX_RESIDUALS = 500          # residual points returned
PSI_THRESHOLD = 0.2
PSI_BINS_MINUS_1 = 9         # psi() uses 10 bins
KS_P_THRESHOLD = 0.01
DRIFT_MIN_SAMPLES = 50
DRIFT_MAX_LIVE = 5_000       # newest live rows compared
LIVE_MAX_ROWS = 50_000       # labelled rows read for live metrics
MAX_MINUTES = 60 * 24 * 90


class NotFound(LookupError):
    """No such model or version."""


# ----------------------------------------------------------------- helpers

def _num(value: Any) -> float | None:
    """A float safe for JSON (NaN/inf become None)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _thin(xs: Sequence, ys: Sequence) -> tuple[list, list]:
    """At most MAX_CURVE_POINTS points of a curve, keeping both ends."""
    n = len(xs)
    if n <= MAX_CURVE_POINTS:
        idx = range(n)
    else:
        idx = sorted(set(np.linspace(0, n - 1, MAX_CURVE_POINTS).round().astype(int)))
    return [_num(xs[i]) for i in idx], [_num(ys[i]) for i in idx]


_INTEGRAL_TEXT = re.compile(r"(-?\d{1,15})\.0*")


def label_text(value: Any) -> str:
    """How a class label or value is stored and compared
    (`ops_ml_prediction.y_pred`). Labels are compared as values: an int 1, a
    float 1.0 and the text "1.0" are one class, "1" (a host that labels with
    floats what its classifier predicts as ints must still score)."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)[:64]
    if isinstance(value, str):
        whole = _INTEGRAL_TEXT.fullmatch(value)
        return str(int(whole.group(1))) if whole else value[:64]
    return str(value)[:64]


def headline(task: str, metrics: dict | None) -> dict | None:
    """The one figure a list shows: accuracy (classification) or R²."""
    if not metrics:
        return None
    key = "accuracy" if task == "classification" else "r2"
    return {"name": key, "value": metrics.get(key)}


# -------------------------------------------------------------- evaluation

def classification_metrics(y_true: Sequence, y_pred: Sequence,
                           y_score: np.ndarray | None = None,
                           classes: Sequence | None = None) -> dict:
    """Accuracy, macro and per-class precision/recall/F1, confusion matrix;
    with `y_score` (predict_proba columns in `classes` order) also ROC AUC
    and the ROC and precision-recall curves (one-vs-rest per class)."""
    from sklearn import metrics as skm

    y_true = [label_text(v) for v in y_true]
    y_pred = [label_text(v) for v in y_pred]
    labels = ([label_text(c) for c in classes] if classes is not None
              else sorted(set(y_true) | set(y_pred)))
    p, r, f, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    out = {
        "n": len(y_true),
        "accuracy": _num(skm.accuracy_score(y_true, y_pred)),
        "precision": _num(skm.precision_score(y_true, y_pred, labels=labels,
                                              average="macro", zero_division=0)),
        "recall": _num(skm.recall_score(y_true, y_pred, labels=labels,
                                        average="macro", zero_division=0)),
        "f1": _num(skm.f1_score(y_true, y_pred, labels=labels, average="macro",
                                zero_division=0)),
        "per_class": [{"label": lab, "precision": _num(p[i]), "recall": _num(r[i]),
                       "f1": _num(f[i]), "support": int(support[i])}
                      for i, lab in enumerate(labels)],
        "confusion_matrix": {"labels": labels, "matrix": skm.confusion_matrix(
            y_true, y_pred, labels=labels).tolist()},
        "roc_auc": None, "roc_curves": [], "pr_curves": [],
    }
    if y_score is None or len(set(y_true)) < 2:
        return out
    y_score = np.asarray(y_score, dtype=float)
    truth = np.asarray(y_true)
    try:
        if len(labels) == 2:
            positive = [labels[1]]
            out["roc_auc"] = _num(skm.roc_auc_score(truth == labels[1], y_score[:, 1]))
        else:
            positive = labels
            out["roc_auc"] = _num(skm.roc_auc_score(truth, y_score, labels=labels,
                                                    multi_class="ovr", average="macro"))
    except ValueError as exc:  # e.g. a class missing from y_true
        logger.info("ROC AUC not defined here: %s", exc)
        positive = []
    for lab in positive:
        i = labels.index(lab)
        hit = truth == lab
        if hit.all() or not hit.any():
            continue
        fpr, tpr, _ = skm.roc_curve(hit, y_score[:, i])
        prec, rec, _ = skm.precision_recall_curve(hit, y_score[:, i])
        fx, ty = _thin(fpr, tpr)
        rx, py = _thin(rec, prec)
        out["roc_curves"].append({"label": lab, "fpr": fx, "tpr": ty,
                                  "auc": _num(skm.auc(fpr, tpr))})
        out["pr_curves"].append({"label": lab, "recall": rx, "precision": py,
                                 "average_precision": _num(
                                     skm.average_precision_score(hit, y_score[:, i]))})
    return out


def regression_metrics(y_true: Sequence, y_pred: Sequence) -> dict:
    """MAE, RMSE, R² and (a sample of) the residuals."""
    from sklearn import metrics as skm

    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    residuals = t - p
    step = max(1, len(t) // MAX_RESIDUALS)
    return {
        "n": int(len(t)),
        "mae": _num(skm.mean_absolute_error(t, p)),
        "rmse": _num(skm.root_mean_squared_error(t, p)),
        "r2": _num(skm.r2_score(t, p)) if len(t) >= 2 else None,
        "residuals": {"y_true": [_num(v) for v in t[::step]],
                      "y_pred": [_num(v) for v in p[::step]],
                      "residual": [_num(v) for v in residuals[::step]]},
    }


# ------------------------------------------------------------------- drift

def psi(reference: np.ndarray, live: np.ndarray, bins: int = 10) -> float:
    """Population stability index over quantile bins of `reference`."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # a constant feature: compare "same value" vs not
        ref_n = np.array([np.sum(reference == edges[0]), np.sum(reference != edges[0])])
        live_n = np.array([np.sum(live == edges[0]), np.sum(live != edges[0])])
    else:
        inner = edges[1:-1]
        ref_n = np.bincount(np.searchsorted(inner, reference, side="right"),
                            minlength=len(edges) - 1)
        live_n = np.bincount(np.searchsorted(inner, live, side="right"),
                             minlength=len(edges) - 1)
    # Half a count added to every bin (Laplace smoothing): an empty bin in a
    # small sample must not make the index explode (log of ~0).
    ref_p = (ref_n + 0.5) / (ref_n.sum() + 0.5 * len(ref_n))
    live_p = (live_n + 0.5) / (live_n.sum() + 0.5 * len(live_n))
    return float(np.sum((live_p - ref_p) * np.log(live_p / ref_p)))


def drift_table(reference: np.ndarray, live: np.ndarray,
                feature_names: list[str]) -> list[dict]:
    """Per feature: PSI, KS statistic and p-value, means, and the flag."""
    from scipy.stats import ks_2samp

    rows = []
    for i, name in enumerate(feature_names):
        ref = reference[:, i] if len(reference) else np.array([])
        cur = live[:, i] if len(live) else np.array([])
        ref = ref[np.isfinite(ref)]
        cur = cur[np.isfinite(cur)]
        row = {"feature": name, "n_reference": int(len(ref)), "n_live": int(len(cur)),
               "psi": None, "psi_noise": None, "ks_statistic": None, "ks_pvalue": None,
               "reference_mean": _num(ref.mean()) if len(ref) else None,
               "live_mean": _num(cur.mean()) if len(cur) else None,
               "drifted": False, "enough_data": len(cur) >= DRIFT_MIN_SAMPLES}
        if len(ref) and len(cur):
            row["psi"] = _num(psi(ref, cur))
            ks = ks_2samp(ref, cur)
            row["ks_statistic"] = _num(ks.statistic)
            row["ks_pvalue"] = _num(ks.pvalue)
            # PSI of two samples from one distribution is about
            # (bins - 1)(1/n_live + 1/n_ref), not 0: judged above that noise.
            row["psi_noise"] = _num(PSI_BINS_MINUS_1 * (1 / len(cur) + 1 / len(ref)))
            row["drifted"] = bool(row["enough_data"] and (
                (row["psi"] or 0) >= PSI_THRESHOLD + row["psi_noise"]
                or (row["ks_pvalue"] is not None and row["ks_pvalue"] < KS_P_THRESHOLD)))
        rows.append(row)
    rows.sort(key=lambda r: (not r["drifted"], -(r["psi"] or 0.0)))
    return rows


# ------------------------------------------------------------ store reads

def _since(minutes: float, now: datetime | None = None) -> datetime:
    return (now or datetime.now(timezone.utc)) - timedelta(minutes=minutes)


def _versions(session, name: str) -> list[MlModelVersion]:
    rows = list(session.scalars(select(MlModelVersion).where(MlModelVersion.name == name)
                                .order_by(MlModelVersion.registered_at, MlModelVersion.id)))
    if not rows:
        raise NotFound(f"No model called {name!r} has been registered")
    return rows


def _version(session, name: str, version: str | None) -> MlModelVersion:
    """The named version, else the newest registered one."""
    rows = _versions(session, name)
    if version is None:
        return rows[-1]
    for row in rows:
        if row.version == version:
            return row
    raise NotFound(f"Model {name!r} has no version {version!r}; known: "
                   + ", ".join(r.version for r in rows))


def _latest_eval(session, model_id: int) -> MlEvaluation | None:
    return session.scalars(select(MlEvaluation).where(MlEvaluation.model_id == model_id)
                           .order_by(MlEvaluation.time.desc(), MlEvaluation.id.desc())
                           .limit(1)).first()


def list_models(store: Store, minutes: float = 60 * 24) -> list[dict]:
    """Every registered model: versions, task, prediction volume in the
    window, and the newest version's headline evaluation metric."""
    since = _since(minutes)
    with store.session() as s:
        versions = list(s.scalars(select(MlModelVersion)
                                  .order_by(MlModelVersion.registered_at, MlModelVersion.id)))
        counts = dict(s.execute(
            select(MlPrediction.model_id, func.count()).where(MlPrediction.time >= since)
            .group_by(MlPrediction.model_id)).all())
        by_name: dict[str, list[MlModelVersion]] = {}
        for v in versions:
            by_name.setdefault(v.name, []).append(v)
        out = []
        for name, rows in sorted(by_name.items()):
            newest = rows[-1]
            ev = _latest_eval(s, newest.id)
            out.append({
                "name": name, "task": newest.task, "latest_version": newest.version,
                "versions": [r.version for r in rows],
                "estimator": newest.estimator,
                "registered_at": as_utc(newest.registered_at).isoformat(),
                "n_features": len(newest.feature_names or []),
                "predictions": int(sum(counts.get(r.id, 0) for r in rows)),
                "window_minutes": minutes,
                "headline": headline(newest.task, ev.metrics if ev else None),
            })
    return out


def _live_rows(session, model_id: int, since: datetime, labelled: bool,
               limit: int) -> list[tuple]:
    q = select(MlPrediction.time, MlPrediction.y_pred, MlPrediction.y_true,
               MlPrediction.latency_ms, MlPrediction.features).where(
        MlPrediction.model_id == model_id, MlPrediction.time >= since)
    if labelled:
        q = q.where(MlPrediction.y_true.is_not(None))
    return list(session.execute(q.order_by(MlPrediction.time.desc()).limit(limit)))


def _live_metrics(task: str, classes: list | None, pairs: list[tuple[str, str]]) -> dict:
    y_true = [t for _, t in pairs]
    y_pred = [p for p, _ in pairs]
    if task == "regression":
        return regression_metrics([float(v) for v in y_true], [float(v) for v in y_pred])
    return classification_metrics(y_true, y_pred, None, classes)


def model_metrics(store: Store, name: str, version: str | None = None,
                  source: str = "eval", minutes: float = 60 * 24) -> dict:
    """Full metrics of one version: from its evaluation (`eval`) or from the
    labelled live predictions of the last `minutes` (`live`)."""
    with store.session() as s:
        mv = _version(s, name, version)
        base = {"name": name, "version": mv.version, "task": mv.task, "source": source,
                "classes": mv.classes}
        if source == "eval":
            ev = _latest_eval(s, mv.id)
            if ev is None:
                return {**base, "time": None, "metrics": None,
                        "message": "This version was registered without X_eval/y_eval"}
            return {**base, "time": as_utc(ev.time).isoformat(), "metrics": ev.metrics}
        rows = _live_rows(s, mv.id, _since(minutes), True, LIVE_MAX_ROWS)
    base["window_minutes"] = minutes
    if not rows:
        return {**base, "time": None, "metrics": None,
                "message": "No labelled predictions in this window"}
    pairs = [(r.y_pred, r.y_true) for r in rows]
    try:
        metrics = _live_metrics(mv.task, mv.classes, pairs)
    except ValueError as exc:  # e.g. a non-numeric label for a regressor
        return {**base, "time": None, "metrics": None,
                "message": f"Live labels cannot be scored: {exc}"}
    return {**base, "time": datetime.now(timezone.utc).isoformat(), "metrics": metrics}


def _bucket_seconds(minutes: float) -> int:
    for seconds in (60, 300, 900, 3600, 6 * 3600, 86400):
        if minutes * 60 / seconds <= 120:
            return seconds
    return 86400


def predictions(store: Store, name: str, version: str | None = None,
                minutes: float = 60) -> dict:
    """Volume and latency over time, and the distribution of predictions
    (counts per class, or a histogram of predicted values), all versions
    unless `version` is given."""
    since = _since(minutes)
    bucket = _bucket_seconds(minutes)
    with store.session() as s:
        versions = _versions(s, name)
        if version is not None:
            versions = [_version(s, name, version)]
        ids = {v.id: v.version for v in versions}
        task = versions[-1].task
        rows = list(s.execute(
            select(MlPrediction.model_id, MlPrediction.time, MlPrediction.y_pred,
                   MlPrediction.latency_ms, MlPrediction.y_true)
            .where(MlPrediction.model_id.in_(ids), MlPrediction.time >= since)
            .order_by(MlPrediction.time)))
    series: dict[tuple, dict] = {}
    latencies = []
    for model_id, when, _, ms, _ in rows:
        ts = int(as_utc(when).timestamp()) // bucket * bucket
        g = series.setdefault((ts, ids[model_id]), {"count": 0, "lat": []})
        g["count"] += 1
        if ms is not None:
            g["lat"].append(ms)
            latencies.append(ms)
    volume = [{"time": datetime.fromtimestamp(ts, timezone.utc).isoformat(),
               "version": ver, "count": g["count"],
               "latency_ms_mean": _num(np.mean(g["lat"])) if g["lat"] else None,
               "latency_ms_p95": _num(np.percentile(g["lat"], 95)) if g["lat"] else None}
              for (ts, ver), g in sorted(series.items())]
    if task == "classification":
        counts = Counter(label_text(r[2]) for r in rows)
        distribution = {"kind": "classes", "labels": sorted(counts),
                        "counts": [counts[k] for k in sorted(counts)]}
    else:
        values = np.array([float(r[2]) for r in rows]) if rows else np.array([])
        if len(values):
            hist, edges = np.histogram(values, bins=min(30, max(1, len(values))))
            distribution = {"kind": "histogram", "edges": [_num(e) for e in edges],
                            "counts": hist.tolist()}
        else:
            distribution = {"kind": "histogram", "edges": [], "counts": []}
    return {"name": name, "task": task, "window_minutes": minutes,
            "since": since.isoformat(), "until": datetime.now(timezone.utc).isoformat(),
            "bucket_seconds": bucket, "total": len(rows),
            "labelled": sum(1 for r in rows if r[4] is not None),
            "latency_ms_mean": _num(np.mean(latencies)) if latencies else None,
            "latency_ms_p95": _num(np.percentile(latencies, 95)) if latencies else None,
            "volume": volume, "distribution": distribution}


HISTORY_METRICS = {"classification": ("accuracy", "precision", "recall", "f1", "roc_auc"),
                   "regression": ("mae", "rmse", "r2")}


def history(store: Store, name: str, minutes: float = 60 * 24 * 30) -> dict:
    """Metrics per evaluation (every registration with eval data) and live
    metrics of labelled predictions per time bucket, per version: a
    regression between versions shows as a step down."""
    since = _since(minutes)
    bucket = _bucket_seconds(minutes)
    with store.session() as s:
        versions = _versions(s, name)
        task = versions[-1].task
        keys = HISTORY_METRICS[task]
        evaluations = []
        for v in versions:
            for ev in s.scalars(select(MlEvaluation).where(MlEvaluation.model_id == v.id)
                                .order_by(MlEvaluation.time)):
                evaluations.append({"version": v.version,
                                    "time": as_utc(ev.time).isoformat(), "n": ev.n,
                                    **{k: ev.metrics.get(k) for k in keys}})
        live = []
        for v in versions:
            rows = _live_rows(s, v.id, since, True, LIVE_MAX_ROWS)
            groups: dict[int, list] = {}
            for r in rows:
                ts = int(as_utc(r.time).timestamp()) // bucket * bucket
                groups.setdefault(ts, []).append((r.y_pred, r.y_true))
            for ts, pairs in sorted(groups.items()):
                try:
                    m = _live_metrics(task, v.classes, pairs)
                except ValueError:
                    continue
                live.append({"version": v.version, "n": len(pairs),
                             "time": datetime.fromtimestamp(ts, timezone.utc).isoformat(),
                             **{k: m.get(k) for k in keys}})
    # Grouped by version (in the order versions were first registered), then
    # by time: a restart that registers every version again does not
    # interleave them.
    return {"name": name, "task": task, "metrics": list(keys), "bucket_seconds": bucket,
            "since": since.isoformat(), "until": datetime.now(timezone.utc).isoformat(),
            "evaluations": evaluations, "live": live}


def features(store: Store, name: str, version: str | None = None) -> dict:
    """The version's stored feature importance and how it was measured."""
    with store.session() as s:
        mv = _version(s, name, version)
        return {"name": name, "version": mv.version, "method": mv.importance_method,
                "importance": mv.importance or [],
                "message": None if mv.importance else
                "No importance: the model has neither feature_importances_ nor coef_ "
                "and was registered without X_eval/y_eval"}


def drift(store: Store, name: str, version: str | None = None,
          minutes: float = 60) -> dict:
    """Per feature, live inputs of the last `minutes` against the version's
    evaluation sample (see the module doc for the thresholds)."""
    with store.session() as s:
        mv = _version(s, name, version)
        rows = _live_rows(s, mv.id, _since(minutes), False, DRIFT_MAX_LIVE)
        reference = mv.eval_sample
        names = list(mv.feature_names or [])[:MAX_FEATURES]
    base = {"name": name, "version": mv.version, "window_minutes": minutes,
            "thresholds": {"psi": PSI_THRESHOLD, "ks_pvalue": KS_P_THRESHOLD,
                           "min_samples": DRIFT_MIN_SAMPLES}}
    if not reference:
        return {**base, "features": [], "drifted": 0, "n_live": len(rows),
                "message": "No evaluation data stored for this version: drift needs X_eval"}
    width = len(names)
    ref = np.array([r[:width] for r in reference], dtype=float)
    live_list = [r.features[:width] for r in rows
                 if r.features is not None and len(r.features) >= width]
    live = np.array(live_list, dtype=float) if live_list else np.empty((0, width))
    table = drift_table(ref, live, names)
    return {**base, "features": table, "drifted": sum(r["drifted"] for r in table),
            "n_live": int(len(live)),
            "message": None if len(live) >= DRIFT_MIN_SAMPLES else
            f"Only {len(live)} live inputs in this window; drift is judged from "
            f"{DRIFT_MIN_SAMPLES}"}


def compare(store: Store, name: str, version_a: str, version_b: str) -> dict:
    """Two versions' evaluation metrics side by side, with the change."""
    a = model_metrics(store, name, version_a)
    b = model_metrics(store, name, version_b)
    keys = HISTORY_METRICS[a["task"]]
    rows = []
    for k in keys:
        va = (a["metrics"] or {}).get(k)
        vb = (b["metrics"] or {}).get(k)
        rows.append({"metric": k, "a": va, "b": vb,
                     "change": _num(vb - va) if va is not None and vb is not None else None})
    return {"name": name, "task": a["task"], "a": a, "b": b, "rows": rows}


def purge_predictions(store: Store, cutoff: datetime) -> int:
    """Delete live predictions older than `cutoff` (raw retention)."""
    from dashapp.services.retention import purge
    return purge(store, MlPrediction, cutoff)
