"""`monitor.ml`: model registrations, live predictions and labels.

    mon.ml.register("churn", model, version="1.2.0", task="classification",
                    X_eval=X_test, y_eval=y_test, feature_names=names)
    ids = mon.ml.record("churn", X, y_pred, latency_ms=3.1)   # version=... optional
    mon.ml.label(ids[0], y_true)          # when the real outcome is known

The console computes every metric (with scikit-learn) from what this
module ships; the host ships only what it alone can produce:

- "ml_models" (durable, one record per registration): name, version, task,
  estimator class, bounded JSON-able parameters, classes, feature names,
  the model's own `feature_importances_` / `coef_` when it has them, and,
  with X_eval/y_eval, the model's predictions (and `predict_proba`) on a
  bounded slice of the evaluation set with its y_eval, a bounded sample of
  X_eval (the drift reference) and, for a model with neither importances
  nor coefficients, its predictions on that slice with each feature
  shuffled (the console turns them into permutation importance).
- "ml_predictions" (one record per row): id, model, version, time, the
  first MAX_FEATURES inputs, the prediction, the label when known, latency.
- "ml_labels": id, label, time.

What it costs the host: `register` validates and appends a reference to a
bounded queue; the model is evaluated later on the shipper's thread (one
`predict` on the evaluation slice, plus one per shuffled feature when
needed), never on a request. `record` converts its inputs once (numpy's own
`.tolist()`) and appends one small dict per row to a bounded channel.
Nothing here imports numpy or scikit-learn, and nothing raises into the
host: a call that is refused (bad input, unknown model, full buffer) is
counted (`stats()`, and in the batches' dropped count) and logged once per
cause.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
import random
import time
from collections import deque
from typing import Any, Dict, List, Optional, Tuple

logger = logging.getLogger("ops_agent")

TASKS = ("classification", "regression")
MAX_FEATURES = 50            # input values kept per row (live and drift sample)
MAX_NAMES = 1_000            # feature names / importances / classes shipped
MAX_PARAMS = 50              # model parameters shipped
MAX_PARAM_TEXT = 200
MAX_LABEL = 64
EVAL_ROWS = 5_000            # evaluation rows predicted and shipped
EVAL_VALUES = 50_000         # bound on rows x classes of predict_proba
SAMPLE_ROWS = 2_000          # drift reference rows
SAMPLE_VALUES = 50_000       # bound on rows x features of the drift reference
PERMUTATION_ROWS = 1_000
PERMUTATION_REPEATS = 5
PERMUTATION_VALUES = 50_000  # predictions on shuffled data shipped
PASS_VALUES = 300_000        # numbers prepared per shipping pass (a batch stays small)
MAX_PENDING = 100            # registrations waiting for the shipper's thread
MAX_VERSIONS = 1_000         # distinct (name, version) registered per process
MODEL_CHANNEL = 20           # prepared registrations waiting to be sent
PREDICTION_CHANNEL = 50_000
LABEL_CHANNEL = 50_000

CAUSES = {"bad_input": "bad input", "unknown_model": "unknown model",
          "buffer_full": "buffer full"}


class Refused(Exception):
    """A call the recorder cannot take; `cause` is a key of CAUSES."""

    def __init__(self, cause: str, message: str):
        super().__init__(message)
        self.cause = cause


# ----- conversion (no numpy import: the host's objects convert themselves) --------

def _tolist(value: Any) -> Any:
    to_numpy = getattr(value, "to_numpy", None)   # pandas
    if to_numpy is not None and not hasattr(value, "tolist"):
        value = to_numpy()
    tolist = getattr(value, "tolist", None)
    return tolist() if tolist is not None else value


def _plain(value: Any) -> Any:
    """A label or prediction as a JSON value (numpy scalars via .item())."""
    if value is None or isinstance(value, (bool, int, str)):
        return value if not isinstance(value, str) else value[:MAX_LABEL]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    item = getattr(value, "item", None)
    if item is not None:
        try:
            return _plain(item())
        except (TypeError, ValueError):
            pass
    return str(value)[:MAX_LABEL]


def _number(value: Any) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _values(seq: Any, what: str) -> List[Any]:
    """A sequence of labels/predictions as plain values; a scalar is one."""
    seq = _tolist(seq)
    if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
        seq = [seq]
    try:
        return [_plain(v) for v in seq]
    except TypeError:
        raise Refused("bad_input", f"{what} is not a sequence") from None


def _count(y_pred: Any) -> int:
    """How many predictions a call carries (what a refusal counts)."""
    try:
        return 1 if isinstance(y_pred, (str, bytes)) else max(1, len(y_pred))
    except TypeError:
        return 1


def _rows(X: Any, n: int) -> List[Any]:
    """Each row's first MAX_FEATURES inputs as floats (None for a value that
    is not a number); one row per prediction."""
    if X is None:
        return [None] * n
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2 and shape[1] > MAX_FEATURES:
        try:
            X = X[:, :MAX_FEATURES] if not hasattr(X, "iloc") else X.iloc[:, :MAX_FEATURES]
        except Exception:  # noqa: BLE001 - sliced below instead
            pass
    X = _tolist(X)
    if not isinstance(X, (list, tuple)):
        raise Refused("bad_input", f"X is a {type(X).__name__}, not rows of inputs")
    if X and hasattr(X[0], "tolist"):  # a list of arrays
        X = [_tolist(r) for r in X]
    if X and not isinstance(X[0], (list, tuple)):
        X = [X] if n == 1 and len(X) != 1 else [[v] for v in X]  # one row / one column
    if len(X) != n:
        raise Refused("bad_input", f"{len(X)} rows of X but {n} predictions")
    out = []
    for row in X:
        out.append([_number(v) for v in list(row)[:MAX_FEATURES]]
                   if isinstance(row, (list, tuple)) else None)
    return out


def _params(model: Any) -> Optional[Dict[str, Any]]:
    """`get_params()` (scikit-learn's convention), bounded, as JSON values."""
    get = getattr(model, "get_params", None)
    if get is None:
        return None
    try:
        raw = get()
    except Exception:  # noqa: BLE001
        return None
    out: Dict[str, Any] = {}
    for key in sorted(raw)[:MAX_PARAMS]:
        value = raw[key]
        if value is None or isinstance(value, (bool, int, str)):
            out[str(key)[:100]] = value if not isinstance(value, str) else value[:MAX_PARAM_TEXT]
        elif isinstance(value, float):
            out[str(key)[:100]] = value if math.isfinite(value) else str(value)
        elif hasattr(value, "get_params"):
            out[str(key)[:100]] = type(value).__name__
        else:
            out[str(key)[:100]] = repr(value)[:MAX_PARAM_TEXT]
    return out


def _final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def _own_importance(model: Any) -> Optional[Dict[str, Any]]:
    est = _final_estimator(model)
    for attr in ("feature_importances_", "coef_"):
        try:
            raw = getattr(est, attr, None)
        except Exception:  # noqa: BLE001 - some raise AttributeError-likes
            raw = None
        if raw is None:
            continue
        values = _tolist(raw)
        if not isinstance(values, list):
            continue
        size = sum(len(v) if isinstance(v, list) else 1 for v in values)
        if size > MAX_NAMES * 100:
            return None
        return {"method": attr, "values": values}
    return None


def _take_rows(data: Any, step: int, n: int) -> Any:
    """Every `step`-th row, at most n (numpy, pandas and lists slice alike)."""
    if step == 1 and n >= len(data):
        return data
    sliced = data.iloc[::step] if hasattr(data, "iloc") else data[::step]
    return sliced[:n] if not hasattr(sliced, "iloc") else sliced.iloc[:n]


def _shuffled(X: Any, n: int, j: int, order: List[int]) -> Any:
    """The first n rows of X with column j in `order` (same container kind)."""
    if hasattr(X, "iloc"):
        copy = X.iloc[:n].copy()
        column = copy.iloc[:, j].to_numpy()
        copy.iloc[:, j] = column[order]
        return copy
    if hasattr(X, "copy") and hasattr(X, "shape"):
        copy = X[:n].copy()
        copy[:, j] = X[:n][order, j]
        return copy
    rows = [list(r) for r in X[:n]]
    column = [rows[k][j] for k in order]
    for k, row in enumerate(rows):
        row[j] = column[k]
    return rows


def _permutation(model: Any, X: Any, width: int) -> Optional[Dict[str, Any]]:
    """Predictions on the first rows of X with each feature shuffled in turn
    (PERMUTATION_REPEATS times): only the host can make them."""
    if width < 1:
        return None
    n = min(len(X), PERMUTATION_ROWS, PERMUTATION_VALUES // (width * PERMUTATION_REPEATS))
    if n < 2:
        return None
    rng = random.Random(0)
    out = []
    for j in range(width):
        per_feature = []
        for _ in range(PERMUTATION_REPEATS):
            order = list(range(n))
            rng.shuffle(order)
            per_feature.append(_values(model.predict(_shuffled(X, n, j, order)),
                                       "predictions"))
        out.append(per_feature)
    return {"rows": n, "repeats": PERMUTATION_REPEATS, "predictions": out}


def _evaluation(model: Any, task: str, X_eval: Any, y_eval: Any,
                n_classes: int) -> Tuple[Optional[Dict[str, Any]], Any, int]:
    """(what the console scores, the evaluation slice, its width)."""
    total = len(y_eval)
    if len(X_eval) != total:
        raise ValueError(f"{len(X_eval)} rows of X_eval but {total} of y_eval")
    limit = min(EVAL_ROWS, EVAL_VALUES // max(1, n_classes))
    step = max(1, -(-total // limit))
    X = _take_rows(X_eval, step, limit)
    y_true = _values(_take_rows(y_eval, step, limit), "y_eval")
    y_pred = _values(model.predict(X), "predictions")
    proba = None
    if task == "classification" and n_classes and hasattr(model, "predict_proba"):
        try:
            proba = [[_number(p) for p in row] for row in _tolist(model.predict_proba(X))]
        except Exception as exc:  # noqa: BLE001 - some estimators refuse
            logger.info("ops agent: predict_proba of %s failed: %s", type(model).__name__, exc)
    shape = getattr(X, "shape", None)
    head = X.iloc[:SAMPLE_ROWS] if hasattr(X, "iloc") else X[:SAMPLE_ROWS]
    if shape is not None and len(shape) == 2:
        width = int(shape[1])
        if width > MAX_FEATURES:  # slice before converting: wide data stays cheap
            head = (head.iloc[:, :MAX_FEATURES] if hasattr(head, "iloc")
                    else head[:, :MAX_FEATURES])
        rows = _tolist(head)
    else:
        rows = [_tolist(r) for r in _tolist(head)]
        width = len(rows[0]) if rows and isinstance(rows[0], (list, tuple)) else 1
    kept = max(1, min(width, MAX_FEATURES))
    n_sample = min(len(rows), SAMPLE_ROWS, SAMPLE_VALUES // kept)
    sample = [[_number(v) for v in (list(r)[:kept] if isinstance(r, (list, tuple)) else [r])]
              for r in rows[:n_sample]]
    return ({"y_true": y_true, "y_pred": y_pred, "proba": proba, "sample": sample,
             "total": total, "step": step}, X, width)


def _size(record: Dict[str, Any]) -> int:
    """About how many numbers a registration carries (a batch stays bounded)."""
    ev = record.get("eval") or {}
    n = len(ev.get("y_true") or ()) * (2 + len(record.get("classes") or ()))
    n += sum(len(r) for r in ev.get("sample") or ())
    perm = record.get("permutation") or {}
    n += sum(len(p) for f in perm.get("predictions") or () for p in f)
    return n + 100


class MLRecorder:
    """`monitor.ml`. Public: register, record, label, stats."""

    def __init__(self, monitor: Any):
        shipper = monitor.shipper
        self._shipper = shipper
        self._models = shipper.channel("ml_models", MODEL_CHANNEL)
        self._predictions = shipper.channel("ml_predictions", PREDICTION_CHANNEL)
        self._labels = shipper.channel("ml_labels", LABEL_CHANNEL)
        self._pending: deque = deque()
        self._latest: Dict[str, str] = {}          # name -> version recorded against
        self._known: set = set()                    # (name, version) registered here
        self.refused: Dict[str, int] = {cause: 0 for cause in CAUSES}
        self._warned: set = set()
        self.recorded = 0
        self.labelled = 0
        self.registered = 0
        self._new_ids()
        shipper.add_source(self._prepare, dropped=lambda: sum(self.refused.values()))
        shipper.add_stats(lambda: {"ml_recorded": self.recorded,
                                   "ml_refused": sum(self.refused.values())})
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._new_ids)

    def _new_ids(self) -> None:
        self._prefix = os.urandom(5).hex()
        self._counter = itertools.count(1)

    def _refuse(self, cause: str, count: int, call: str, detail: str) -> None:
        self.refused[cause] = self.refused.get(cause, 0) + count
        if cause not in self._warned:
            self._warned.add(cause)
            logger.warning("ops agent: %s refused (%s): %s; further refusals for this "
                           "cause are only counted (monitor.ml.stats())",
                           call, CAUSES.get(cause, cause), detail)

    # ----- the host's side ------------------------------------------------------
    def register(self, name: str, model: Any, *, version: str, task: str,
                 X_eval: Any = None, y_eval: Any = None, feature_names: Any = None) -> None:
        """Declare a model version; it is evaluated on the shipper's thread."""
        call = f"monitor.ml.register({str(name)[:128]!r})"
        try:
            if task not in TASKS:
                raise Refused("bad_input", f"task must be one of {TASKS}, not {task!r}")
            if model is None or not hasattr(model, "predict"):
                raise Refused("bad_input", "the model has no predict()")
            if (X_eval is None) != (y_eval is None):
                logger.warning("ops agent: %s: X_eval and y_eval go together; evaluation "
                               "skipped", call)
                X_eval = y_eval = None
            if len(self._pending) >= MAX_PENDING:
                raise Refused("buffer_full", f"{MAX_PENDING} registrations wait already")
            name, version = str(name)[:128], str(version)[:64]
            if (name, version) not in self._known and len(self._known) >= MAX_VERSIONS:
                raise Refused("buffer_full", f"{MAX_VERSIONS} versions registered already")
            self._pending.append((time.time(), name, version, task, model, X_eval, y_eval,
                                  feature_names))
            self._known.add((name, version))
            self._latest[name] = version
            self._shipper.wake()
        except Refused as exc:
            self._refuse(exc.cause, 1, call, str(exc))
        except Exception as exc:  # noqa: BLE001 - never raise into the host
            self._refuse("bad_input", 1, call, f"{type(exc).__name__}: {exc}")

    def record(self, name: str, X: Any, y_pred: Any, *, y_true: Any = None,
               latency_ms: Optional[float] = None, version: Optional[str] = None) -> List[str]:
        """Record predictions (one per row of X); returns their ids, for
        `label()`, or [] when refused. `y_true`, when known now, labels them
        at once; `version` picks one of several versions registered here
        (default: the one registered last under `name`)."""
        call = f"monitor.ml.record({str(name)[:128]!r})"
        n = _count(y_pred)
        try:
            name = str(name)[:128]
            if version is None:
                version = self._latest.get(name)
                if version is None:
                    raise Refused("unknown_model", "no model of that name was registered in "
                                  "this process (call monitor.ml.register first)")
            else:
                version = str(version)[:64]
                if (name, version) not in self._known:
                    raise Refused("unknown_model", f"version {version!r} was not registered "
                                  "in this process")
            if y_pred is None:
                raise Refused("bad_input", "y_pred is None")
            preds = _values(y_pred, "y_pred")
            n = len(preds)
            truths = _values(y_true, "y_true") if y_true is not None else [None] * n
            if len(truths) != n:
                raise Refused("bad_input", f"{len(truths)} labels for {n} predictions")
            rows = _rows(X, n)
            if len(self._predictions.items) + n > self._predictions.limit:
                raise Refused("buffer_full", f"{self._predictions.limit} predictions wait "
                              "to be sent already")
            ms = _number(latency_ms)
            per_row = ms / n if ms is not None and n else None
            now = time.time()
            ids = [f"{self._prefix}{next(self._counter):08x}" for _ in range(n)]
            put = self._predictions.put
            for i, pid in enumerate(ids):
                put({"id": pid, "model": name, "version": version, "t": now, "x": rows[i],
                     "y": preds[i], "y_true": truths[i], "ms": per_row})
            self.recorded += n
            self.labelled += sum(1 for t in truths if t is not None)
            return ids
        except Refused as exc:
            self._refuse(exc.cause, n, call, str(exc))
        except Exception as exc:  # noqa: BLE001 - never raise into the host
            self._refuse("bad_input", n, call, f"{type(exc).__name__}: {exc}")
        return []

    def label(self, prediction_id: str, y_true: Any) -> None:
        """The real outcome of an earlier prediction, when it becomes known."""
        try:
            if y_true is None:
                raise Refused("bad_input", "y_true is None")
            if not self._labels.put({"id": str(prediction_id)[:32], "y": _plain(y_true),
                                     "t": time.time()}):
                self._labels.dropped -= 1   # counted once, as a refusal
                raise Refused("buffer_full", f"{self._labels.limit} labels wait to be "
                              "sent already")
            self.labelled += 1
        except Refused as exc:
            self._refuse(exc.cause, 1, "monitor.ml.label", str(exc))
        except Exception as exc:  # noqa: BLE001 - never raise into the host
            self._refuse("bad_input", 1, "monitor.ml.label", f"{type(exc).__name__}: {exc}")

    def stats(self) -> Dict[str, Any]:
        channels = (self._models, self._predictions, self._labels)
        return {"registered": self.registered, "recorded": self.recorded,
                "labelled": self.labelled, "refused": dict(self.refused),
                "dropped": sum(self.refused.values()) + sum(c.dropped for c in channels),
                "buffered": len(self._predictions.items) + len(self._labels.items),
                "pending_registrations": len(self._pending) + len(self._models.items)}

    # ----- the shipper's thread -------------------------------------------------
    def _prepare(self, budget: int) -> Dict[str, List[Any]]:
        """Turn waiting registrations into "ml_models" records (in the
        channel, so a failed batch gives them back); bounded per pass."""
        numbers = sum(_size(r) for r in list(self._models.items))
        while self._pending and len(self._models.items) < self._models.limit:
            if numbers and numbers >= PASS_VALUES:
                break
            event = self._pending.popleft()
            try:
                record = self._registration(*event)
            except Exception as exc:  # noqa: BLE001 - the shipper must go on
                self._refuse("bad_input", 1, f"monitor.ml.register({event[1]!r})",
                             f"{type(exc).__name__}: {exc}")
                continue
            numbers += _size(record)
            if self._models.put(record):
                self.registered += 1
        return {}

    def _registration(self, when: float, name: str, version: str, task: str, model: Any,
                      X_eval: Any, y_eval: Any, feature_names: Any) -> Dict[str, Any]:
        classes = None
        if task == "classification":
            try:
                found = getattr(model, "classes_", None)
                classes = _values(found, "classes")[:MAX_NAMES] if found is not None else None
            except Exception:  # noqa: BLE001
                classes = None
        width = getattr(model, "n_features_in_", None)
        record: Dict[str, Any] = {
            "name": name, "version": version, "task": task, "time": when,
            "estimator": type(model).__name__[:255], "params": _params(model),
            "classes": classes, "importance": None, "eval": None, "permutation": None}
        try:
            record["importance"] = _own_importance(model)
        except Exception:  # noqa: BLE001
            record["importance"] = None
        if X_eval is not None:
            try:
                record["eval"], X, width = _evaluation(model, task, X_eval, y_eval,
                                                       len(classes or ()))
                if record["importance"] is None and width <= MAX_NAMES:
                    record["permutation"] = _permutation(model, X, width)
            except Exception as exc:  # noqa: BLE001 - a model we cannot evaluate
                logger.warning("ops agent: evaluating model %s %s failed (%s: %s); "
                               "registered without evaluation", name, version,
                               type(exc).__name__, str(exc)[:200])
        names = feature_names if feature_names is not None else getattr(
            model, "feature_names_in_", None)
        try:
            record["feature_names"] = ([str(f)[:128] for f in _tolist(names)][:MAX_NAMES]
                                       if names is not None else None)
        except TypeError:
            record["feature_names"] = None
        try:
            record["n_features"] = int(width) if width is not None else None
        except (TypeError, ValueError):
            record["n_features"] = None
        return record

    def close(self) -> None:
        """Nothing of its own to stop: the shipper sends what is buffered."""


def attach(monitor: Any) -> MLRecorder:
    """The recorder for `monitor` (available as `monitor.ml`)."""
    return MLRecorder(monitor)
