"""Requests of a Flask (or Dash, via `app.server`) application.

One Python call wraps Flask's `full_dispatch_request` (routing, hooks, the
view and error handlers) rather than a before_request and an after_request
hook, each a trip through Flask's hook machinery and `g`. Per request: two
clock reads, one `list.extend` onto a flat buffer, one header. Nothing else
happens on the request path; the shipper thread does the rest.
"""
from __future__ import annotations

import itertools
import os
import re
import time
from typing import Any, Callable, Optional

from flask.globals import _cv_request

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
NO_ROUTE = "<no route>"
EXC_MESSAGE = 7  # where a request's exception message sits in its values


def request_environ() -> Optional[dict]:
    """The WSGI environ of the Flask request being handled here, else None
    (Flask's own context variable: no context of the agent's own)."""
    ctx = _cv_request.get(None)
    return ctx.request.environ if ctx is not None else None


def current_request_id() -> Optional[str]:
    """The request id of the request being handled, else None."""
    environ = request_environ()
    return environ.get("ops.request_id") if environ is not None else None


def _request_ids() -> Callable[[], str]:
    """Ids unique across processes and restarts: a random prefix per process
    and a counter (cheaper than urandom per request); a fork gets a new prefix."""
    state: dict = {}

    def reset() -> None:
        state["prefix"] = os.urandom(5).hex()
        state["counter"] = itertools.count(1)
    reset()
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=reset)
    return lambda: state["prefix"] + str(next(state["counter"]))


def install(app: Any, requests: list, limit: int,
            on_drop: Callable[[], None]) -> Callable[[], None]:
    """Record every request of `app` into `requests` (8 flat values each)
    while it holds fewer than `limit` values; otherwise count it with `on_drop()`.
    Returns `uninstall()`: a closed monitor's hooks step aside (pass-through,
    removed when nothing wrapped them since), so monitoring the app again
    records each request once, under one request id."""
    from werkzeug.exceptions import HTTPException

    active = [True]

    extend = requests.extend
    perf = time.perf_counter
    wall_offset = time.time() - perf()  # wall clock from the monotonic one
    next_id = _request_ids()
    ok = _REQUEST_ID_OK.match
    dispatch = app.full_dispatch_request
    handle_exception = app.handle_exception
    handle_user_exception = app.handle_user_exception

    def full_dispatch_request():
        if not active[0]:
            return dispatch()
        started = perf()
        req = _cv_request.get().request
        environ = req.environ
        # environ, not request.headers: a missing header there costs a
        # werkzeug exception (~10 us) on every request.
        incoming = environ.get("HTTP_X_REQUEST_ID")
        rid = incoming if incoming and ok(incoming) else next_id()
        rule = req.url_rule
        endpoint = rule.rule if rule is not None else NO_ROUTE
        environ["ops.request_id"] = rid  # for the SQL and log records
        environ["ops.endpoint"] = endpoint
        try:
            response = dispatch()
        except Exception as exc:
            ended = perf()  # unhandled: Flask makes it a 500 after we return
            if len(requests) < limit:
                extend((wall_offset + ended, endpoint, req.method, 500,
                        (ended - started) * 1000.0, rid, type(exc).__name__,
                        str(exc)[:1000]))
            else:
                on_drop()
            raise
        ended = perf()
        status = response.status_code
        exc = environ.get("ops.exception") if status >= 500 else None
        if len(requests) < limit:
            extend((wall_offset + ended, endpoint, req.method, status,
                    (ended - started) * 1000.0, rid,
                    type(exc).__name__ if exc is not None else None,
                    str(exc)[:1000] if exc is not None else None))
        else:
            on_drop()
        headers = response.headers
        # Headers.set scans and rebuilds the list; add() alone is a third of
        # its cost. Replace only when the app set its own id.
        for key, _value in headers:
            if key.lower() == "x-request-id":
                headers["X-Request-ID"] = rid
                break
        else:
            headers.add("X-Request-ID", rid)
        return response

    def user_exception(e):
        # An app's own @errorhandler(Exception) turns the error into a
        # response inside dispatch: note the exception for the record.
        if active[0] and not isinstance(e, HTTPException):
            _cv_request.get().request.environ["ops.exception"] = e
        return handle_user_exception(e)

    def unhandled_exception(e):
        response = handle_exception(e)
        ctx = _cv_request.get(None)
        rid = ctx.request.environ.get("ops.request_id") if ctx else None
        if rid and active[0]:
            response.headers["X-Request-ID"] = rid
        return response

    hooks = (("full_dispatch_request", full_dispatch_request, dispatch),
             ("handle_user_exception", user_exception, handle_user_exception),
             ("handle_exception", unhandled_exception, handle_exception))
    for name, ours, _original in hooks:
        setattr(app, name, ours)

    def uninstall() -> None:
        active[0] = False
        for name, ours, original in hooks:
            if app.__dict__.get(name) is ours:
                setattr(app, name, original)
    return uninstall
