"""The Profiler page's callbacks, called directly as Dash would, against a
real store and a real monitored host app."""
from __future__ import annotations

import sys

import dash
from sqlalchemy import select

from dashapp.services import profiler as svc
from dashapp.store.models import AuditEvent, ProfileSession
from tests.integration.test_jobs_page import as_user, toast_of
from tests.integration.test_profiler import exchange, host  # noqa: F401 (fixture)


def page_module():
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == "/profiler")]


def _sessions(app):
    with app.extensions["ops"].store.engine.connect() as conn:
        return conn.execute(select(ProfileSession.id)).all()


def test_viewer_cannot_start_from_the_page(app):
    page = page_module()
    with as_user(app, "viewer") as props:
        assert page.start(1, 60, None, 0.001, True, 0) is dash.no_update
        assert "needs the operator role" in toast_of(props)
        status, *_rest = page.refresh(1, 0, None, None)
        start_disabled, stop_disabled, note = _rest[3], _rest[4], _rest[5]
        assert start_disabled and stop_disabled and "operator role" in note
    assert _sessions(app) == []
    with app.extensions["ops"].store.engine.connect() as conn:
        denied = conn.execute(select(AuditEvent.action, AuditEvent.outcome,
                                     AuditEvent.details)).all()
    assert [(a, o, d["action"]) for a, o, d in denied] == [
        ("permission_denied", "denied", "profiler_start")]


def test_operator_runs_a_session_and_reads_it(app, host):  # noqa: F811
    page = page_module()
    host_app, mon = host
    with as_user(app, "operator", "otto") as props:
        assert page.start(1, 60, "", 0.001, True, 0) == 1
        assert "requested" in toast_of(props)
        exchange(mon)
        status, options, _o, selected, start_off, stop_off, _n, key = page.refresh(2, 1, None,
                                                                                   None)
        assert "Running" in str(status) and not stop_off and start_off
        for path in ["/slow", "/slow", "/alloc"]:
            host_app.test_client().get(path)
        # Results are promised, not shown, while it runs.
        assert "Results appear here when the session ends" in str(page.view(key, None,
                                                                              selected))
        assert page.stop(1, 1) == 2
        exchange(mon)
        status, options, _o, same, start_off, stop_off, _n, key = page.refresh(3, 2,
                                                                               selected, key)
        assert same is dash.no_update  # unchanged: the results are not redrawn
        assert "Idle" in str(status) and key.endswith(":done")
        body = str(page.view(key, None, selected))
        assert "deliberately_slow" in body and "profiler-icicle" in body
        assert f"/api/profiler/{selected}/export?format=speedscope" in body
        # Compare with a second session.
        assert page.start(1, 60, None, 0.001, False, 2) == 3
        exchange(mon)
        host_app.test_client().get("/fast")
        page.stop(1, 3)
        exchange(mon)
        second = svc.list_sessions(app.extensions["ops"].store)[0]["id"]
        body = str(page.view(None, selected, second))
        assert f"Compared with #{selected}" in body and "Memory tracking was off" in body
