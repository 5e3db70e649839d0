"""Trivial host apps for benchmarks/monitor_overhead.py (one endpoint each).

    bare: nothing attached
    ours: dashapp.monitor() (store from the environment, e.g. OPS_INSTANCE_DIR)
    fmd:  Flask-MonitoringDashboard with its default settings (only importable
          where that package is installed; it is not a project dependency)
"""
from __future__ import annotations

from flask import Flask


def make_app() -> Flask:
    app = Flask("bench")

    @app.get("/ping")
    def ping():
        return "ok"

    return app


def bare() -> Flask:
    return make_app()


def ours() -> Flask:
    from dashapp import monitor
    app = make_app()
    app.config["OPS_MONITOR"] = monitor(app)
    return app


def fmd() -> Flask:
    import flask_monitoringdashboard as dashboard
    app = make_app()
    dashboard.bind(app)
    return app


# gunicorn entry points: benchmarks.hosts:bare_app etc.
def __getattr__(name: str):
    factories = {"bare_app": bare, "ours_app": ours, "fmd_app": fmd}
    if name in factories:
        value = factories[name]()
        globals()[name] = value
        return value
    raise AttributeError(name)
