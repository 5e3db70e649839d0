"""The demo shop's two scikit-learn models, trained at start-up.

Both use datasets bundled with scikit-learn (no downloads) as stand-ins for
shop data: ``churn`` is a classifier on ``load_breast_cancer`` and ``price``
a regressor on ``load_diabetes``. Each keeps its held-out evaluation split so
the console can compute metrics and drift against it later.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split

logger = logging.getLogger("demo.ml")

RANDOM_STATE = 42
EVAL_FRACTION = 0.25
LABEL_DELAY = 20  # predictions before an outcome is reported back


@dataclass
class DemoModel:
    """A trained model plus what is needed to evaluate it again later."""

    name: str
    version: str
    task: str  # "classification" or "regression"
    model: Any
    X_eval: np.ndarray
    y_eval: np.ndarray
    feature_names: list[str]
    target_names: list[str] = field(default_factory=list)
    trained_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    train_seconds: float = 0.0
    eval_score: float = float("nan")

    @property
    def metric(self) -> str:
        """Name of ``eval_score``: accuracy for classifiers, R² for regressors."""
        return "accuracy" if self.task == "classification" else "r2"

    def evaluate(self) -> float:
        """Score the model on its held-out split."""
        predicted = self.model.predict(self.X_eval)
        if self.task == "classification":
            return float(accuracy_score(self.y_eval, predicted))
        return float(r2_score(self.y_eval, predicted))

    def outcome(self, features: list[float]) -> Any:
        """The demo world's "true" outcome for these inputs (nearest eval row)."""
        X = np.asarray(self.X_eval, dtype=float)
        scale = X.std(axis=0) + 1e-9
        nearest = int(np.argmin((((X - np.asarray(features, dtype=float)) / scale) ** 2)
                                .sum(axis=1)))
        value = self.y_eval[nearest]
        return int(value) if self.task == "classification" else float(value)

    def summary(self) -> dict:
        return {"name": self.name, "version": self.version, "task": self.task,
                "metric_name": self.metric, "metric_value": round(self.eval_score, 4),
                "n_features": len(self.feature_names),
                "n_eval": int(len(self.y_eval)),
                "trained_at": self.trained_at.isoformat(timespec="seconds"),
                "train_seconds": round(self.train_seconds, 3)}


@dataclass
class DemoModels:
    """The shop's models, by name."""

    churn: DemoModel
    price: DemoModel
    # Earlier versions, registered first so the console's history and
    # version comparison have something to show.
    earlier: list[DemoModel] = field(default_factory=list)
    _pending_labels: deque = field(default_factory=deque)

    def __iter__(self) -> Iterator[DemoModel]:
        return iter((self.churn, self.price))

    def get(self, name: str) -> DemoModel | None:
        return {m.name: m for m in self}.get(name)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self]

    def register_with(self, ml) -> None:
        """Register every version with `monitor.ml`, the oldest first."""
        for m in [*self.earlier, *self]:
            ml.register(m.name, m.model, version=m.version, task=m.task,
                        X_eval=m.X_eval, y_eval=m.y_eval, feature_names=m.feature_names)

    def observe(self, ml, model: DemoModel, row: list, prediction: Any,
                latency_ms: float) -> None:
        """Record one served prediction; its outcome "becomes known" a few
        predictions later (`ml.label`), as real outcomes do. The demo's
        stand-in for the outcome: the label of the nearest evaluation row."""
        ids = ml.record(model.name, row, [prediction], latency_ms=latency_ms)
        if ids:
            self._pending_labels.append((ml, ids[0], model.outcome(row[0])))
        while len(self._pending_labels) > LABEL_DELAY:
            pending_ml, pid, outcome = self._pending_labels.popleft()
            pending_ml.label(pid, outcome)


def _train(name: str, version: str, task: str, estimator: Any, dataset: Any,
           stratify: bool) -> DemoModel:
    started = time.perf_counter()
    X_train, X_eval, y_train, y_eval = train_test_split(
        dataset.data, dataset.target, test_size=EVAL_FRACTION,
        random_state=RANDOM_STATE, stratify=dataset.target if stratify else None)
    estimator.fit(X_train, y_train)
    model = DemoModel(
        name=name, version=version, task=task, model=estimator,
        X_eval=X_eval, y_eval=y_eval,
        feature_names=[str(f) for f in dataset.feature_names],
        target_names=[str(t) for t in getattr(dataset, "target_names", [])],
        train_seconds=time.perf_counter() - started,
    )
    model.eval_score = model.evaluate()
    logger.info("trained model %s v%s (%s) on %d rows in %.2f s: %s=%.3f",
                name, version, task, len(y_train), model.train_seconds,
                model.metric, model.eval_score)
    return model


def train_models() -> DemoModels:
    """Train both demo models deterministically (fixed random_state)."""
    churn = _train(
        "churn", "1.0.0", "classification",
        RandomForestClassifier(n_estimators=100, random_state=RANDOM_STATE, n_jobs=1),
        load_breast_cancer(), stratify=True)
    price = _train(
        "price", "1.0.0", "regression",
        GradientBoostingRegressor(n_estimators=150, max_depth=2, learning_rate=0.05,
                                  random_state=RANDOM_STATE),
        load_diabetes(), stratify=False)
    earlier_churn = _train(
        "churn", "0.9.0", "classification",
        RandomForestClassifier(n_estimators=5, max_depth=2, random_state=RANDOM_STATE,
                               n_jobs=1),
        load_breast_cancer(), stratify=True)
    return DemoModels(churn=churn, price=price, earlier=[earlier_churn])
