"""ML model metrics: `monitor.ml` recording into a real store, the metrics
equal scikit-learn's own on known data, drift, history, the REST API, and
recording through a store outage."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from flask import Flask
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsRegressor

from dashapp import monitor
from dashapp.services import ml_metrics as svc


@pytest.fixture
def mon(settings):
    m = monitor(Flask("host"), settings=settings)
    yield m
    m.close()


def split(dataset, seed=0):
    return train_test_split(dataset.data, dataset.target, test_size=0.3, random_state=seed)


def binary_model():
    X_tr, X_ev, y_tr, y_ev = split(load_breast_cancer())
    model = RandomForestClassifier(n_estimators=15, random_state=0).fit(X_tr, y_tr)
    return model, X_ev, y_ev


def test_binary_classification_metrics_equal_sklearn(mon, client, viewer):
    model, X_ev, y_ev = binary_model()
    names = list(load_breast_cancer().feature_names)
    mon.ml.register("churn", model, version="1.0", task="classification",
                    X_eval=X_ev, y_eval=y_ev, feature_names=names)
    mon.flush()
    body = client.get("/api/ml/model/churn/metrics", headers=viewer).get_json()
    m = body["metrics"]
    pred = model.predict(X_ev)
    proba = model.predict_proba(X_ev)[:, 1]
    assert body["version"] == "1.0" and body["task"] == "classification"
    assert m["n"] == len(y_ev)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_ev, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y_ev, pred, average="macro"))
    assert m["recall"] == pytest.approx(skm.recall_score(y_ev, pred, average="macro"))
    assert m["f1"] == pytest.approx(skm.f1_score(y_ev, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y_ev, proba))
    assert m["confusion_matrix"]["labels"] == ["0", "1"]
    assert m["confusion_matrix"]["matrix"] == skm.confusion_matrix(y_ev, pred).tolist()
    per_class = {row["label"]: row for row in m["per_class"]}
    assert per_class["1"]["recall"] == pytest.approx(skm.recall_score(y_ev, pred))
    assert per_class["0"]["support"] == int((y_ev == 0).sum())
    (roc,), (pr,) = m["roc_curves"], m["pr_curves"]
    assert roc["auc"] == pytest.approx(skm.roc_auc_score(y_ev, proba))
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1
    assert pr["average_precision"] == pytest.approx(skm.average_precision_score(y_ev, proba))

    features = client.get("/api/ml/model/churn/features", headers=viewer).get_json()
    assert features["method"] == "feature_importances_"
    top = features["importance"][0]
    assert top["feature"] == names[int(np.argmax(model.feature_importances_))]
    assert top["importance"] == pytest.approx(model.feature_importances_.max())

    listing = client.get("/api/ml/models", headers=viewer).get_json()["models"]
    assert [(r["name"], r["versions"], r["task"]) for r in listing] == [
        ("churn", ["1.0"], "classification")]
    assert listing[0]["headline"] == {"name": "accuracy", "value": m["accuracy"]}


def test_multiclass_metrics_and_coefficient_importance(mon):
    X_tr, X_ev, y_tr, y_ev = split(load_iris(), seed=3)
    model = LogisticRegression(max_iter=500).fit(X_tr, y_tr)
    mon.ml.register("iris", model, version="2", task="classification",
                    X_eval=X_ev, y_eval=y_ev)
    mon.flush()
    m = svc.model_metrics(mon.store, "iris")["metrics"]
    pred = model.predict(X_ev)
    assert m["f1"] == pytest.approx(skm.f1_score(y_ev, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(
        y_ev, model.predict_proba(X_ev), multi_class="ovr", average="macro"))
    assert len(m["roc_curves"]) == 3 and len(m["confusion_matrix"]["matrix"]) == 3
    feats = svc.features(mon.store, "iris")
    assert feats["method"].startswith("coef_")
    assert [r["feature"] for r in feats["importance"]][0] in {"x0", "x1", "x2", "x3"}


def test_regression_metrics_and_permutation_importance(mon, client, viewer):
    data = load_diabetes()
    X_tr, X_ev, y_tr, y_ev = split(data)
    model = KNeighborsRegressor(n_neighbors=7).fit(X_tr, y_tr)
    mon.ml.register("price", model, version="1.0", task="regression", X_eval=X_ev,
                    y_eval=y_ev, feature_names=data.feature_names)
    mon.flush()
    m = client.get("/api/ml/model/price/metrics", headers=viewer).get_json()["metrics"]
    pred = model.predict(X_ev)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y_ev, pred))
    assert m["rmse"] == pytest.approx(skm.root_mean_squared_error(y_ev, pred))
    assert m["r2"] == pytest.approx(skm.r2_score(y_ev, pred))
    assert m["residuals"]["residual"][0] == pytest.approx(y_ev[0] - pred[0])
    feats = client.get("/api/ml/model/price/features", headers=viewer).get_json()
    assert feats["method"].startswith("permutation")
    assert {r["feature"] for r in feats["importance"]} == set(data.feature_names)


def test_live_metrics_from_labels_that_arrive_later(mon, client, viewer):
    model, X_ev, y_ev = binary_model()
    mon.ml.register("churn", model, version="1.0", task="classification")
    pred = model.predict(X_ev[:60])
    ids = mon.ml.record("churn", X_ev[:60], pred, latency_ms=6.0)
    assert len(ids) == 60 and len(set(ids)) == 60
    mon.flush()
    nothing = client.get("/api/ml/model/churn/metrics?source=live",
                         headers=viewer).get_json()
    assert nothing["metrics"] is None and "No labelled" in nothing["message"]
    # Flip some labels so the live figures differ from a perfect score.
    truth = y_ev[:60].copy()
    truth[:10] = 1 - truth[:10]
    for pid, y in zip(ids[:40], truth[:40]):
        mon.ml.label(pid, y)
    mon.flush()
    live = client.get("/api/ml/model/churn/metrics?source=live",
                      headers=viewer).get_json()["metrics"]
    assert live["n"] == 40
    assert live["accuracy"] == pytest.approx(skm.accuracy_score(truth[:40], pred[:40]))
    assert live["recall"] == pytest.approx(skm.recall_score(truth[:40], pred[:40],
                                                            average="macro"))
    assert live["roc_auc"] is None  # no probabilities recorded for live rows

    preds = client.get("/api/ml/model/churn/predictions", headers=viewer).get_json()
    assert preds["total"] == 60 and preds["labelled"] == 40
    assert preds["latency_ms_mean"] == pytest.approx(0.1)  # 6 ms over 60 rows
    counts = dict(zip(preds["distribution"]["labels"], preds["distribution"]["counts"]))
    assert counts == {"0": int((pred == 0).sum()), "1": int((pred == 1).sum())}
    assert sum(v["count"] for v in preds["volume"]) == 60


def test_drift_flags_a_shifted_feature_and_not_an_unshifted_one(mon, client, viewer):
    rng = np.random.default_rng(7)
    X_ev = rng.normal(0, 1, size=(1000, 3))
    y_ev = (X_ev[:, 0] + X_ev[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X_ev, y_ev)
    mon.ml.register("risk", model, version="1", task="classification", X_eval=X_ev,
                    y_eval=y_ev, feature_names=["amount", "age", "score"])
    live = rng.normal(0, 1, size=(400, 3))
    live[:, 0] += 1.0  # "amount" shifted by one standard deviation
    mon.ml.record("risk", live[:30], model.predict(live[:30]))
    mon.flush()
    few = client.get("/api/ml/model/risk/drift", headers=viewer).get_json()
    assert few["drifted"] == 0 and few["n_live"] == 30  # too few to judge yet
    mon.ml.record("risk", live[30:], model.predict(live[30:]))
    mon.flush()
    body = client.get("/api/ml/model/risk/drift", headers=viewer).get_json()
    rows = {r["feature"]: r for r in body["features"]}
    assert body["n_live"] == 400 and body["thresholds"]["psi"] == 0.2
    assert rows["amount"]["drifted"] is True
    assert rows["amount"]["psi"] >= 0.2 and rows["amount"]["ks_pvalue"] < 0.01
    assert rows["age"]["drifted"] is False and rows["score"]["drifted"] is False
    assert rows["age"]["psi"] < 0.1
    assert rows["amount"]["psi"] >= 0.2 + rows["amount"]["psi_noise"]
    assert body["features"][0]["feature"] == "amount"  # drifted first


def test_history_shows_a_regression_between_versions(mon, client, viewer):
    X_tr, X_ev, y_tr, y_ev = split(load_breast_cancer())
    good = RandomForestClassifier(n_estimators=15, random_state=0).fit(X_tr, y_tr)
    bad = RandomForestClassifier(n_estimators=1, max_depth=1, random_state=0).fit(
        X_tr[:, 20:], y_tr)
    mon.ml.register("churn", good, version="1.0", task="classification",
                    X_eval=X_ev, y_eval=y_ev)
    mon.ml.register("churn", bad, version="1.1", task="classification",
                    X_eval=X_ev[:, 20:], y_eval=y_ev)
    mon.flush()
    # Registered again with the same data (a restart): no new history point.
    mon.ml.register("churn", good, version="1.0", task="classification",
                    X_eval=X_ev, y_eval=y_ev)
    mon.flush()
    hist = client.get("/api/ml/model/churn/history", headers=viewer).get_json()
    assert len(hist["evaluations"]) == 2
    by_version = {e["version"]: e for e in hist["evaluations"]}
    assert list(by_version) == ["1.0", "1.1"]
    assert by_version["1.1"]["accuracy"] < by_version["1.0"]["accuracy"]
    assert "recall" in hist["metrics"]
    cmp = client.get("/api/ml/model/churn/compare?a=1.0&b=1.1", headers=viewer).get_json()
    acc = {r["metric"]: r for r in cmp["rows"]}["accuracy"]
    assert acc["change"] == pytest.approx(acc["b"] - acc["a"]) and acc["change"] < 0
    # The newest version is the default; an older one can be asked for.
    assert client.get("/api/ml/model/churn/metrics",
                      headers=viewer).get_json()["version"] == "1.1"
    assert client.get("/api/ml/model/churn/metrics?version=1.0",
                      headers=viewer).get_json()["version"] == "1.0"


def test_api_errors_are_readable(mon, client, viewer):
    model, X_ev, y_ev = binary_model()
    mon.ml.register("churn", model, version="1.0", task="classification")
    mon.flush()
    resp = client.get("/api/ml/model/nope/metrics", headers=viewer)
    assert resp.status_code == 404 and "nope" in resp.get_json()["error"]["message"]
    resp = client.get("/api/ml/model/churn/metrics?version=9", headers=viewer)
    assert resp.status_code == 404 and "1.0" in resp.get_json()["error"]["message"]
    resp = client.get("/api/ml/model/churn/metrics?source=bogus", headers=viewer)
    assert resp.status_code == 400 and "source" in resp.get_json()["error"]["message"]
    resp = client.get("/api/ml/model/churn/drift?minutes=0", headers=viewer)
    assert resp.status_code == 400 and "minutes" in resp.get_json()["error"]["message"]
    assert client.get("/api/ml/models").status_code == 401
    # Registered without eval data: a message, not an error.
    body = client.get("/api/ml/model/churn/drift", headers=viewer).get_json()
    assert body["features"] == [] and "X_eval" in body["message"]


def test_host_mistakes_never_raise(mon):
    mon.ml.register("x", object(), version="1", task="clustering")  # refused, logged
    assert mon.ml.record("unregistered", [[1.0]], [0]) == []  # refused: unknown model
    assert mon.ml.record("x", object(), None) == []  # "x" was refused: unknown too
    mon.ml.register("ok", LogisticRegression().fit([[0.0], [1.0]], [0, 1]), version="1",
                    task="classification")
    assert mon.ml.record("ok", [[0.0], [1.0]], [0]) == []  # one prediction for two rows
    assert mon.ml.record("ok", "not rows", [0, 1]) == []
    assert len(mon.ml.record("ok", [[0.0], [1.0]], [0, 1])) == 2
    mon.ml.label("no-such-id", 1)  # nothing to label: harmless
    mon.flush()
    stats = mon.ml.stats()
    assert stats["refused"] == {"bad_input": 4, "unknown_model": 2, "buffer_full": 0}
    assert stats["dropped"] == 6 and stats["recorded"] == 2
    assert [r["name"] for r in svc.list_models(mon.store)] == ["ok"]
    assert svc.predictions(mon.store, "ok")["total"] == 2


def test_recording_survives_a_store_outage(settings, tmp_path):
    from sqlalchemy import select

    from dashapp.store import Store
    from dashapp.store.models import MlPrediction
    from tests.integration.test_monitor import outage_controls
    model, X_ev, y_ev = binary_model()
    with outage_controls(settings.store_url, tmp_path) as (url, cut, restore):
        s = settings.model_copy(update={"database_url": url})
        Store(s.store_url).upgrade()
        m = monitor(Flask("host"), settings=s)
        predictions = m.shipper.channel("ml_predictions")
        try:
            m.ml.register("churn", model, version="1.0", task="classification")
            m.ml.record("churn", X_ev[:5], model.predict(X_ev[:5]))
            assert m.flush()
            assert svc.predictions(m.store, "churn")["total"] == 5
            cut()
            predictions.limit = 50
            for i in range(200):  # more than the buffer holds; none raises
                m.ml.record("churn", X_ev[i % 100:i % 100 + 1],
                            model.predict(X_ev[i % 100:i % 100 + 1]))
                assert len(predictions.items) <= 50
            m.ml.register("churn", model, version="1.1", task="classification",
                          X_eval=X_ev, y_eval=y_ev)
            assert not m.flush()  # the console's store is down: not accepted
            # (the shipper's thread may have emptied the buffer once meanwhile)
            assert m.ml.stats()["refused"]["buffer_full"] >= 50
            restore()
            ids = m.ml.record("churn", X_ev[:3], model.predict(X_ev[:3]))
            assert len(ids) == 3
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if m.flush() and m.ml.stats()["pending_registrations"] == 0:
                    break
                time.sleep(0.2)
            # Recording resumed, and the registration made during the outage
            # was retried rather than lost.
            assert m.ml.stats()["pending_registrations"] == 0
            with m.store.engine.connect() as conn:
                stored = set(conn.scalars(select(MlPrediction.pid)))
            assert set(ids) <= stored
        finally:
            m.close()
    store = Store(settings.store_url)
    listing = svc.list_models(store)
    assert listing[0]["versions"] == ["1.0", "1.1"]
    assert svc.model_metrics(store, "churn", "1.1")["metrics"]["n"] == len(y_ev)


def test_old_predictions_go_with_raw_retention(mon):
    from dashapp.services.retention import apply_retention
    model, X_ev, _ = binary_model()
    mon.ml.register("churn", model, version="1.0", task="classification")
    mon.ml.record("churn", X_ev[:4], model.predict(X_ev[:4]))
    mon.flush()
    removed = apply_retention(mon.store, retention_days=7, rollup_days=30,
                              now=datetime.now(timezone.utc) + timedelta(days=8))
    assert removed["ml_predictions"] == 4
    assert svc.list_models(mon.store)[0]["versions"] == ["1.0"]  # versions kept


def test_small_samples_of_one_distribution_are_not_flagged():
    """PSI of two small samples of one distribution sits well above 0; the
    flag allows for that noise instead of crying drift."""
    rng = np.random.default_rng(11)
    reference = rng.normal(size=(143, 8))
    live = rng.normal(size=(57, 8))
    rows = svc.drift_table(reference, live, [f"f{i}" for i in range(8)])
    assert max(r["psi"] for r in rows) > 0.1  # noise a bare PSI threshold would see
    assert not any(r["drifted"] for r in rows)
    shifted = live + 1.5
    assert all(r["drifted"] for r in svc.drift_table(reference, shifted,
                                                      [f"f{i}" for i in range(8)]))


def test_int_and_float_labels_are_one_class(mon, client, viewer):
    """A classifier predicting ints, labelled with floats (and the other way
    round): 1 and 1.0 are one class, so live metrics score."""
    assert svc.label_text(1) == svc.label_text(1.0) == svc.label_text(np.float64(1.0)) \
        == svc.label_text(np.int64(1)) == svc.label_text("1.0") == "1"
    assert svc.label_text(2.5) == "2.5" and svc.label_text("yes") == "yes"
    model, X_ev, y_ev = binary_model()
    mon.ml.register("churn", model, version="1.0", task="classification")
    pred = model.predict(X_ev[:40])  # numpy ints
    ids = mon.ml.record("churn", X_ev[:20], pred[:20],
                        y_true=[float(v) for v in y_ev[:20]])  # floats at once
    later = mon.ml.record("churn", X_ev[20:40], [float(v) for v in pred[20:40]])
    for pid, y in zip(later, y_ev[20:40]):
        mon.ml.label(pid, int(y))  # ints later, for float predictions
    mon.flush()
    assert len(ids) == 20
    live = client.get("/api/ml/model/churn/metrics?source=live",
                      headers=viewer).get_json()["metrics"]
    assert live["n"] == 40
    assert live["accuracy"] == pytest.approx(skm.accuracy_score(y_ev[:40], pred))
    assert live["confusion_matrix"]["labels"] == ["0", "1"]
    counts = svc.predictions(mon.store, "churn")["distribution"]
    assert counts["labels"] == ["0", "1"]  # one class each, not "1" and "1.0"


def test_two_versions_recorded_side_by_side(mon):
    X_tr, X_ev, y_tr, y_ev = split(load_breast_cancer())
    a = RandomForestClassifier(n_estimators=5, random_state=0).fit(X_tr, y_tr)
    b = RandomForestClassifier(n_estimators=3, max_depth=2, random_state=1).fit(X_tr, y_tr)
    mon.ml.register("churn", a, version="1.0", task="classification")
    mon.ml.register("churn", b, version="2.0", task="classification")
    old = mon.ml.record("churn", X_ev[:7], a.predict(X_ev[:7]), version="1.0")
    new = mon.ml.record("churn", X_ev[:11], b.predict(X_ev[:11]))  # the latest: 2.0
    assert len(old) == 7 and len(new) == 11
    assert mon.ml.record("churn", X_ev[:2], [0, 1], version="3.0") == []  # not registered
    for pid, y in zip(old, y_ev[:7]):
        mon.ml.label(pid, y)
    mon.flush()
    assert svc.predictions(mon.store, "churn", version="1.0")["total"] == 7
    assert svc.predictions(mon.store, "churn", version="2.0")["total"] == 11
    both = svc.predictions(mon.store, "churn")
    assert both["total"] == 18 and {v["version"] for v in both["volume"]} == {"1.0", "2.0"}
    live_old = svc.model_metrics(mon.store, "churn", "1.0", source="live")["metrics"]
    assert live_old["n"] == 7
    assert svc.model_metrics(mon.store, "churn", "2.0", source="live")["metrics"] is None
    assert mon.ml.stats()["refused"]["unknown_model"] == 2  # both predictions counted


def test_a_refused_record_is_counted_and_warned_once(mon, caplog):
    from sqlalchemy import select

    from dashapp.store.models import MonitorProcess
    model, X_ev, _ = binary_model()
    mon.ml.register("churn", model, version="1.0", task="classification")
    caplog.set_level("WARNING", logger="ops_agent")
    for _ in range(3):
        assert mon.ml.record("nope", X_ev[:2], [0, 1]) == []
        assert mon.ml.record("churn", X_ev[:3], [0, 1]) == []  # 3 rows, 2 predictions
    predictions = mon.shipper.channel("ml_predictions")
    predictions.limit = 3
    for _ in range(2):  # 4 rows never fit a buffer of 3
        assert mon.ml.record("churn", X_ev[:4], model.predict(X_ev[:4])) == []
    predictions.limit = 1_000
    assert len(mon.ml.record("churn", X_ev[:4], model.predict(X_ev[:4]))) == 4
    warnings = [r.getMessage() for r in caplog.records if r.name == "ops_agent"]
    assert len(warnings) == 3, warnings  # one per cause, not one per call
    assert sum("unknown model" in w for w in warnings) == 1
    assert sum("bad input" in w for w in warnings) == 1
    assert sum("buffer full" in w for w in warnings) == 1
    stats = mon.ml.stats()
    assert stats["refused"] == {"bad_input": 6, "unknown_model": 6, "buffer_full": 8}
    assert mon.flush()
    # Counted where the console sees it too: the process's dropped events.
    with mon.store.engine.connect() as conn:
        dropped = conn.scalar(select(MonitorProcess.dropped).where(
            MonitorProcess.process == mon.shipper.process))
    assert dropped == 20
    assert svc.predictions(mon.store, "churn")["total"] == 4


def test_the_agent_imports_neither_numpy_nor_sklearn():
    """The recorder lives in hosts that may have neither: the model object
    brings numpy along, the agent never imports it."""
    import subprocess
    import sys
    code = ("import sys, ops_agent.ml; "
            "assert not {'numpy', 'sklearn'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
