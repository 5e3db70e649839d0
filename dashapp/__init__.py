"""Ops Console: `create_app()` builds the console, `monitor()` instruments a host.

Imports are lazy so that `import dashapp` costs the host application nothing.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["create_app", "monitor", "__version__"]


def create_app(settings=None, **overrides):
    """Build the console (Flask server + Dash pages + REST API)."""
    from dashapp.factory import create_app as _create_app
    return _create_app(settings, **overrides)


def monitor(flask_app, *, engine=None, redis=None, scheduler=None, settings=None):
    """Instrument a host Flask (or Dash, via `app.server`) application."""
    from dashapp.instrument import monitor as _monitor
    return _monitor(flask_app, engine=engine, redis=redis, scheduler=scheduler,
                    settings=settings)
