"""Ops agent: instrument a Flask or Dash application for Ops Console.

    import ops_agent
    ops_agent.monitor(app)          # OPS_DSN=http://<key>@console:8050/<app>

`monitor(app, engine=..., scheduler=..., redis=...)` records requests, SQL,
log records, job runs, model predictions and profiles in memory and ships
them to the console once a second over HTTP. It never raises into the
host, never makes a request wait, and depends on nothing but Flask (and the
libraries the host passes in). Imports are lazy: importing the package
costs the host nothing until `monitor()` is called.
"""
from __future__ import annotations

__version__ = "0.2.0"
__all__ = ["monitor", "current_request_id", "Monitor", "__version__"]


def monitor(app, **kwargs):
    """Instrument `app` (for Dash: `app.server`); see `ops_agent.agent.Monitor`.
    Calling it again for the same app returns the monitor already there."""
    from ops_agent.agent import monitor as _monitor
    return _monitor(app, **kwargs)


def current_request_id():
    """The id of the request being handled in this thread, else None."""
    from ops_agent.flask import current_request_id as _current
    return _current()


def __getattr__(name):
    if name == "Monitor":
        from ops_agent.agent import Monitor
        return Monitor
    raise AttributeError(name)
