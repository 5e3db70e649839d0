"""In-process instrumentation of a host application (built by issue 3)."""
from __future__ import annotations


def monitor(flask_app, *, engine=None, redis=None, scheduler=None):
    """Not built yet: request/SQL/job instrumentation lands with issue 3."""
    raise NotImplementedError(
        "dashapp.monitor() is not built yet (issue 3: request and SQL instrumentation)")
