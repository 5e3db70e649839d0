"""Ops Console: `create_app()` builds the console.

Applications are instrumented by the agent (`pip install ./agent`,
`ops_agent.monitor(app)`), which sends what it records to the console over
HTTP. `dashapp.monitor()` stays for code inside the console's own process
(old code, tests): the same agent, delivering straight into this console's
store instead of over HTTP.
"""
from __future__ import annotations

__version__ = "0.2.0"
__all__ = ["create_app", "monitor", "__version__"]


def create_app(settings=None, **overrides):
    """Build the console (Flask server + Dash pages + REST API)."""
    from dashapp.factory import create_app as _create_app
    return _create_app(settings, **overrides)


def monitor(flask_app, *, engine=None, redis=None, scheduler=None, settings=None,
            name=None, release=None, **kwargs):
    """The agent's `monitor()`, delivering into the console store of
    `settings` (else the environment's) through the ingest service, and
    expanding what it sends at once. For an application in its own process,
    use `ops_agent.monitor(app)` with OPS_DSN instead."""
    import ops_agent
    from dashapp.config import load_settings
    from dashapp.ingest.service import DirectSink
    from dashapp.store import Store

    settings = settings or load_settings()
    app = getattr(flask_app, "server", flask_app)
    store = Store(settings.store_url)
    store.upgrade()
    app_name = (name or getattr(app, "name", None) or "app")[:64]
    mon = ops_agent.monitor(app, sink=DirectSink(store, app_name), name=app_name,
                            release=release, engine=engine, redis=redis,
                            scheduler=scheduler,
                            log_level=kwargs.pop("log_level", settings.log_capture_level),
                            **kwargs)
    mon.store = store
    return mon
