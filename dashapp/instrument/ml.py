"""`monitor.ml`: model registration and prediction recording in the host.

    mon.ml.register("churn", model, version="1.2.0", task="classification",
                    X_eval=X_test, y_eval=y_test, feature_names=names)
    ids = mon.ml.record("churn", X, y_pred, latency_ms=3.1)
    ...
    mon.ml.label(ids[0], y_true)          # when the real outcome is known

What it costs the host: `record` takes one clock read, makes one id per
row and appends one tuple to a bounded deque; `register` appends one
tuple. Everything else (converting inputs, evaluating the model with
scikit-learn, feature importance, writing rows) happens on the recorder's
own background thread. Nothing here raises into the host: bad arguments
are logged, a full buffer or a store outage drops events and counts them
(`stats()`), and a registration that could not be written is retried.
Do not modify `X` after passing it to `record` (it is read on the thread).
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any

logger = logging.getLogger(__name__)

_REG, _PRED, _LABEL = 0, 1, 2
MAX_PENDING_REGISTRATIONS = 100


class MLRecorder:
    """Buffers registrations, predictions and labels; a thread writes them."""

    def __init__(self, store, process: str, *, flush_interval: float = 1.0,
                 buffer_size: int = 100_000, batch_size: int = 2_000):
        self.store = store
        self.process = process
        self.buffer: deque = deque()
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.recorded = 0
        self.labelled = 0
        self.dropped = 0
        self._prefix = os.urandom(5).hex()
        self._counter = itertools.count(1)
        self._model_ids: dict[tuple[str, str], int] = {}
        self._versions: dict[str, str] = {}   # name -> version recorded against
        self._pending_reg: list[tuple] = []   # registrations waiting for the store
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_error_log = 0.0
        self._thread = threading.Thread(target=self._run, name="ops-ml-writer", daemon=True)
        self._thread.start()

    # ----- the host's side ----------------------------------------------------
    def register(self, name: str, model: Any, *, version: str, task: str,
                 X_eval=None, y_eval=None, feature_names=None) -> None:
        """Declare a model version; evaluation and feature importance are
        computed on the recorder's thread, once per registration."""
        try:
            from dashapp.services.ml_metrics import TASKS
            if task not in TASKS:
                logger.error("monitor.ml.register(%r): task must be one of %s, not %r",
                             name, TASKS, task)
                return
            if (X_eval is None) != (y_eval is None):
                logger.warning("monitor.ml.register(%r): X_eval and y_eval go together; "
                               "evaluation skipped", name)
                X_eval = y_eval = None
            name, version = str(name)[:128], str(version)[:64]
            self._versions[name] = version
            self.buffer.append((_REG, time.time(), name, version, task, model,
                                X_eval, y_eval, feature_names))
            self._wake.set()
        except Exception:  # noqa: BLE001 - never raise into the host
            logger.exception("monitor.ml.register(%r) failed", name)

    def record(self, name: str, X, y_pred, *, y_true=None,
               latency_ms: float | None = None) -> list[str]:
        """Record predictions (one per row of X); returns their ids, for
        `label()`. `y_true`, when known now, labels them at once."""
        try:
            if len(self.buffer) >= self.buffer_size:
                self.dropped += 1
                return []
            try:
                n = len(y_pred)
            except TypeError:  # a scalar prediction for one row
                n, y_pred = 1, [y_pred]
                if y_true is not None:
                    y_true = [y_true]
            ids = [f"{self._prefix}{next(self._counter):08x}" for _ in range(n)]
            self.buffer.append((_PRED, time.time(), name, self._versions.get(name),
                                X, y_pred, y_true, latency_ms, ids))
            if len(self.buffer) >= self.batch_size:
                self._wake.set()
            return ids
        except Exception:  # noqa: BLE001 - never raise into the host
            self.dropped += 1
            return []

    def label(self, prediction_id: str, y_true) -> None:
        """The real outcome of an earlier prediction, when it becomes known."""
        if len(self.buffer) >= self.buffer_size:
            self.dropped += 1
            return
        self.buffer.append((_LABEL, time.time(), prediction_id, y_true))

    def stats(self) -> dict:
        return {"buffered": len(self.buffer), "recorded": self.recorded,
                "labelled": self.labelled, "dropped": self.dropped,
                "pending_registrations": len(self._pending_reg)}

    # ----- the recorder's thread ---------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._write_pending()
            except Exception:  # noqa: BLE001 - the writer must never die
                logger.exception("monitor.ml: writer error")

    def _write_pending(self) -> None:
        with self._lock:
            self._retry_registrations()
            while True:
                batch = []
                try:
                    for _ in range(self.batch_size):
                        batch.append(self.buffer.popleft())
                except IndexError:
                    pass
                if not batch:
                    return
                self._write(batch)
                if len(batch) < self.batch_size:
                    return

    def _outage(self, exc: Exception, what: str) -> None:
        now = time.monotonic()
        if now - self._last_error_log > 30:
            self._last_error_log = now
            logger.warning("monitor.ml: store unavailable, %s (%d dropped so far): %s",
                           what, self.dropped, str(exc).splitlines()[0][:200])

    def _retry_registrations(self) -> None:
        pending, self._pending_reg = self._pending_reg, []
        for event in pending:
            self._register_now(event)

    def _write(self, batch: list[tuple]) -> None:
        preds, labels = [], []
        for ev in batch:
            if ev[0] == _REG:
                self._write_rows(preds, labels)  # keep the order around it
                preds, labels = [], []
                self._register_now(ev)
            elif ev[0] == _PRED:
                preds.append(ev)
            else:
                labels.append(ev)
        self._write_rows(preds, labels)

    def _register_now(self, event: tuple) -> None:
        """Evaluate, measure importance and store one registration; kept for
        a retry when the store is down."""
        _, when, name, version, task, model, X_eval, y_eval, feature_names = event
        try:
            values = _registration_values(when, name, version, task, model, X_eval,
                                          y_eval, feature_names, self.process)
        except Exception:  # noqa: BLE001 - a model we cannot evaluate
            logger.exception("monitor.ml: evaluating %s %s failed", name, version)
            return
        try:
            self._model_ids[(name, version)] = _store_registration(self.store, values)
        except Exception as exc:  # noqa: BLE001 - store down: retry later
            if len(self._pending_reg) < MAX_PENDING_REGISTRATIONS:
                self._pending_reg.append(event)
            self._outage(exc, f"registration of {name} {version} will be retried")

    def _model_id(self, name: str, version: str | None) -> int | None:
        from sqlalchemy import select

        from dashapp.store.models import MlModelVersion
        key = (name, version)
        if key in self._model_ids:
            return self._model_ids[key]
        q = select(MlModelVersion.id).where(MlModelVersion.name == name)
        q = (q.where(MlModelVersion.version == version) if version is not None
             else q.order_by(MlModelVersion.registered_at.desc()).limit(1))
        with self.store.engine.connect() as conn:
            found = conn.scalar(q)
        if found is not None:
            self._model_ids[key] = found
        return found

    def _write_rows(self, preds: list[tuple], labels: list[tuple]) -> None:
        if not preds and not labels:
            return
        from sqlalchemy import bindparam, update

        from dashapp.services.ml_metrics import MAX_FEATURES, label_text
        from dashapp.store.models import MlPrediction
        rows, unknown, unreadable = [], set(), set()
        n_events = sum(len(ev[8]) for ev in preds) + len(labels)
        try:
            for _, when, name, version, X, y_pred, y_true, ms, ids in preds:
                model_id = self._model_id(name, version)
                if model_id is None:
                    unknown.add(name)
                    self.dropped += len(ids)
                    continue
                try:
                    rows.extend(_prediction_rows(when, model_id, X, y_pred, y_true, ms,
                                                 ids, MAX_FEATURES, label_text))
                except Exception:  # noqa: BLE001 - one bad call loses only itself
                    self.dropped += len(ids)
                    unreadable.add(name)
            now = datetime.now(timezone.utc)
            label_rows = [{"b_pid": str(pid)[:32], "b_true": label_text(value),
                           "b_at": now} for _, _, pid, value in labels]
            with self.store.engine.begin() as conn:
                if rows:
                    conn.execute(MlPrediction.__table__.insert(), rows)
                if label_rows:
                    table = MlPrediction.__table__
                    conn.execute(update(table).where(table.c.pid == bindparam("b_pid"))
                                 .values(y_true=bindparam("b_true"),
                                         labelled_at=bindparam("b_at")), label_rows)
        except Exception as exc:  # noqa: BLE001 - store down: drop and count
            self.dropped += n_events
            self._outage(exc, f"dropped {n_events} predictions/labels")
            return
        if unknown:
            logger.warning("monitor.ml: predictions for unregistered model(s) %s dropped; "
                           "call monitor.ml.register first", sorted(unknown))
        if unreadable:
            logger.warning("monitor.ml: predictions of %s could not be read (X, y_pred "
                           "and y_true must have one entry per row); dropped",
                           sorted(unreadable))
        self.recorded += len(rows)
        self.labelled += len(labels) + sum(1 for r in rows if r["y_true"] is not None)

    def flush(self) -> None:
        """Write everything buffered now."""
        try:
            self._write_pending()
        except Exception as exc:  # noqa: BLE001 - never raise into the host
            logger.warning("monitor.ml: flush failed: %s", str(exc).splitlines()[0][:200])

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()


def _prediction_rows(when, model_id, X, y_pred, y_true, ms, ids, max_features,
                     label_text) -> list[dict]:
    import numpy as np
    time_ = datetime.fromtimestamp(when, timezone.utc)
    try:
        matrix = np.asarray(X, dtype=float)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1) if len(ids) == 1 else matrix.reshape(-1, 1)
    except (TypeError, ValueError):  # non-numeric inputs: keep the prediction only
        matrix = None
    if matrix is not None and len(matrix) != len(ids):
        raise ValueError(f"{len(matrix)} rows of X but {len(ids)} predictions")
    inputs = ([[float(v) if np.isfinite(v) else None for v in row[:max_features]]
               for row in matrix] if matrix is not None else [None] * len(ids))
    truths = list(y_true) if y_true is not None else [None] * len(ids)
    per_row_ms = float(ms) / len(ids) if ms is not None and len(ids) else None
    now = datetime.now(timezone.utc)
    return [{"pid": pid, "model_id": model_id, "time": time_,
             "features": inputs[i] if i < len(inputs) else None,
             "y_pred": label_text(y_pred[i]),
             "y_true": label_text(truths[i]) if i < len(truths) and truths[i] is not None
             else None,
             "labelled_at": now if i < len(truths) and truths[i] is not None else None,
             "latency_ms": per_row_ms}
            for i, pid in enumerate(ids)]


def _registration_values(when, name, version, task, model, X_eval, y_eval,
                         feature_names, process) -> dict:
    import numpy as np

    from dashapp.services import ml_metrics as svc
    X = np.asarray(X_eval, dtype=float) if X_eval is not None else None
    y = np.asarray(y_eval) if y_eval is not None else None
    width = X.shape[1] if X is not None and X.ndim == 2 else getattr(
        model, "n_features_in_", 0)
    names = [str(f)[:128] for f in (feature_names if feature_names is not None else
                                   getattr(model, "feature_names_in_", []))]
    if len(names) != width:
        names = [f"x{i}" for i in range(int(width))]
    metrics = svc.evaluate_model(model, task, X, y) if X is not None else None
    importance, method = svc.feature_importance(model, X, y, names)
    sample = None
    if X is not None:
        step = max(1, len(X) // svc.MAX_EVAL_SAMPLE)
        sample = [[float(v) for v in row[:svc.MAX_FEATURES]]
                  for row in X[::step][:svc.MAX_EVAL_SAMPLE]]
    classes = getattr(model, "classes_", None)
    return {"name": name, "version": version, "task": task,
            "estimator": type(model).__name__[:255],
            "registered_at": datetime.fromtimestamp(when, timezone.utc),
            "feature_names": names,
            "classes": [svc.label_text(c) for c in classes]
            if classes is not None and task == "classification" else None,
            "eval_sample": sample, "importance": importance,
            "importance_method": method, "process": process[:96],
            "metrics": metrics, "n": int(len(y)) if y is not None else 0}


def _store_registration(store, values: dict) -> int:
    """Insert or refresh the version row; add an evaluation row."""
    from sqlalchemy import select

    from dashapp.store.models import MlEvaluation, MlModelVersion
    values = dict(values)
    metrics, n = values.pop("metrics"), values.pop("n")
    with store.session() as s:
        row = s.scalars(select(MlModelVersion).where(
            MlModelVersion.name == values["name"],
            MlModelVersion.version == values["version"])).first()
        if row is None:
            row = MlModelVersion(**values)
            s.add(row)
        else:  # re-registered (a restart): keep history, refresh the rest
            for key, value in values.items():
                if key != "registered_at" and (value is not None or key == "importance"):
                    setattr(row, key, value)
        s.flush()
        last = s.scalars(select(MlEvaluation).where(MlEvaluation.model_id == row.id)
                         .order_by(MlEvaluation.time.desc()).limit(1)).first()
        # The same version evaluated again with the same result (a restart):
        # no new history point.
        if metrics is not None and (last is None or last.n != n or last.metrics != metrics):
            s.add(MlEvaluation(model_id=row.id, time=values["registered_at"], n=n,
                               metrics=metrics))
        return row.id
