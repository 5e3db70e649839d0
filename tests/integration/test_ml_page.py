"""The ML models page's callbacks, called directly as Dash would, against a
real store that `monitor.ml` filled."""
from __future__ import annotations

import json
import sys

import dash
from plotly.utils import PlotlyJSONEncoder
import pytest
from flask import Flask, g
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.model_selection import train_test_split

from dashapp import monitor
from dashapp.security.auth import Principal


def page_module():
    """The page module Dash loaded (importing it again would register twice)."""
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == "/models")]


def text_of(component) -> str:
    """Every string in a rendered component tree (figures included)."""
    return json.dumps(component, cls=PlotlyJSONEncoder, ensure_ascii=False)


@pytest.fixture
def filled(settings, app):
    data = load_breast_cancer()
    X_tr, X_ev, y_tr, y_ev = train_test_split(data.data, data.target, random_state=0)
    old = RandomForestClassifier(n_estimators=2, max_depth=1, random_state=0).fit(X_tr, y_tr)
    new = RandomForestClassifier(n_estimators=15, random_state=0).fit(X_tr, y_tr)
    reg_data = load_diabetes()
    reg = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(
        reg_data.data[:300], reg_data.target[:300])
    mon = monitor(Flask("host"), settings=settings)
    try:
        mon.ml.register("churn", old, version="0.9", task="classification", X_eval=X_ev,
                        y_eval=y_ev, feature_names=list(data.feature_names))
        mon.ml.register("churn", new, version="1.0", task="classification", X_eval=X_ev,
                        y_eval=y_ev, feature_names=list(data.feature_names))
        mon.ml.register("price", reg, version="3", task="regression",
                        X_eval=reg_data.data[300:], y_eval=reg_data.target[300:])
        ids = mon.ml.record("churn", X_ev, new.predict(X_ev), latency_ms=40.0)
        for pid, y in zip(ids[:70], y_ev[:70]):
            mon.ml.label(pid, y)
        mon.ml.record("price", reg_data.data[300:360], reg.predict(reg_data.data[300:360]))
        mon.flush()
        yield app
    finally:
        mon.close()


def signed_in(app):
    ctx = app.test_request_context("/models")
    ctx.push()
    g.ops_principal = Principal(1, "vera", "viewer", "x")
    return ctx


def test_page_lists_models_and_shows_a_classifier(filled):
    page = page_module()
    ctx = signed_in(filled)
    try:
        grid, options, value, status = page.refresh_list(None, 0, None)
        assert [o["value"] for o in options] == ["churn", "price"] and value == "churn"
        assert status is None and "RandomForestClassifier" in text_of(grid)
        v_opts, version, c_opts, other = page.choose_model("churn")
        assert version == "1.0" and other == "0.9"
        assert [o["value"] for o in v_opts] == ["1.0", "0.9"]
        detail = text_of(page.show_detail("churn", "1.0", "eval", 1440, "0.9", 0))
        for needle in ("models-card-accuracy", "Confusion matrix", "ROC curve",
                       "Precision-recall curve", "feature_importances_", "Input drift",
                       "Compare versions", "better", "v0.9"):
            assert needle in detail, needle
        live = text_of(page.show_detail("churn", "1.0", "live", 60, None, 0))
        assert "70 rows · labelled live predictions" in live
        assert "Choose a second version" in live
    finally:
        ctx.pop()


def test_page_shows_a_regressor_and_readable_problems(filled):
    page = page_module()
    ctx = signed_in(filled)
    try:
        detail = text_of(page.show_detail("price", None, "eval", 60, None, 0))
        assert "Residuals" in detail and "models-card-rmse" in detail
        assert "Confusion matrix" not in detail
        missing = text_of(page.show_detail("gone", None, "eval", 60, None, 0))
        assert "No model called" in missing
        unknown = text_of(page.show_detail("churn", "7.7", "eval", 60, None, 0))
        assert "no version" in unknown and "0.9" in unknown
        empty = text_of(page.show_detail(None, None, "eval", 60, None, 0))
        assert "No model registered yet" in empty
    finally:
        ctx.pop()


def test_page_with_the_store_down_shows_a_card(filled):
    page = page_module()
    ops = filled.extensions["ops"]
    ctx = signed_in(filled)
    real = ops.store.engine
    from sqlalchemy import create_engine
    ops.store.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none",
                                     connect_args={"connect_timeout": 1})
    ops.store.Session.configure(bind=ops.store.engine)
    try:
        grid, options, value, status = page.refresh_list(None, 0, None)
        assert "unavailable" in text_of(status).lower() and options == []
        assert "unavailable" in text_of(
            page.show_detail("churn", None, "eval", 60, None, 0)).lower()
    finally:
        ops.store.engine.dispose()
        ops.store.engine = real
        ops.store.Session.configure(bind=real)
        ctx.pop()
