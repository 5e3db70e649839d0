"""Trivial host apps for benchmarks/monitor_overhead.py (one endpoint each).

    bare: nothing attached
    ours: the agent, `ops_agent.monitor(app)`, sending to the console named
          by OPS_DSN (the benchmark starts one and makes the key). Only
          ops_agent is imported: a host never imports the console's code.
    fmd:  Flask-MonitoringDashboard with its default settings (only importable
          where that package is installed; it is not a project dependency)
"""
from __future__ import annotations

import os

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
    import ops_agent
    app = make_app()
    app.config["OPS_MONITOR"] = ops_agent.monitor(app, dsn=os.environ["OPS_DSN"])
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
