"""The Jobs page's callbacks, called directly as Dash would, against a real
store fed by a real instrumented scheduler."""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

import dash
from dash._callback_context import context_value
from dash._utils import AttributeDict
from flask import g

from dashapp.security.auth import Principal
from tests.integration.test_jobs import host, soon, wait_until  # noqa: F401 (fixture)


def page_module():
    """The page module Dash loaded (importing it again would register twice)."""
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == "/jobs")]


@contextmanager
def as_user(app, role: str, username: str = "pat"):
    """A request of the Jobs page signed in with `role`, inside a Dash
    callback context whose set_props (toasts) the test can read."""
    token = context_value.set(AttributeDict(updated_props={}, triggered_inputs=[]))
    try:
        with app.test_request_context("/jobs"):
            g.ops_principal = Principal(1, username, role, "x")
            yield context_value.get().updated_props
    finally:
        context_value.reset(token)


def toast_of(props: dict) -> str:
    return ((props.get("shell-toast-store") or {}).get("data") or {}).get("message", "")


def test_page_shows_counts_progress_history_and_traceback(app, host):  # noqa: F811
    page = page_module()
    scheduler, mon = host()
    release = threading.Event()

    def long_export():
        from dashapp.jobs import report_progress
        report_progress(0.4, "40 of 100 files")
        release.wait(10)

    def nightly():
        raise KeyError("customer 42")

    scheduler.add_job(long_export, "interval", hours=1, id="export", name="Export files",
                      next_run_time=soon())
    scheduler.add_job(nightly, "interval", hours=1, id="nightly", name="Nightly",
                      next_run_time=soon())
    scheduler.start()
    try:
        with as_user(app, "viewer"):
            wait_until(lambda: "40 of 100 files" in str(page.render_live(1440, False)[3]))
            mon.flush()
            status, style, cards, running, schedule = page.render_live(1440, False)
            assert status is None and style == {}
            assert "Export files" in str(running) and "value=40.0" in str(running)
            assert "Nightly" in str(schedule) and "Export files" in str(schedule)
            # A viewer's buttons are disabled, with the reason.
            assert "Needs the operator role" in str(running)
            rows, info, durations, outcomes = wait_until(
                lambda: (lambda h: h if h[0] else None)(page.render_history(None, None, 60)))
            failed = next(r for r in rows if r["status"] == "failed")
            assert failed["error"] == "KeyError: 'customer 42'"
            assert len(outcomes.data) >= 1
            body, no_retry, no_cancel, title, status = page.detail_view(failed["id"], False)
            assert "KeyError" in str(body) and "in nightly" in str(body)
            assert no_retry is True  # a viewer cannot retry
            body, no_retry, _, _, _ = page.detail_view(failed["id"], True)
            assert no_retry is False
    finally:
        release.set()


def test_page_actions_check_the_role_and_report_back(app, host):  # noqa: F811
    page = page_module()
    from dashapp.services import jobs as svc
    scheduler, mon = host()
    calls = []

    def flaky(secret_key="k-real"):
        calls.append(secret_key)
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    scheduler.add_job(flaky, "interval", hours=1, id="flaky", name="Flaky",
                      next_run_time=soon())
    scheduler.start()
    store = app.extensions["ops"].store
    failed = wait_until(lambda: svc.list_runs(store, "failed")["runs"])[0]
    mon.flush()
    with as_user(app, "viewer", "vic") as props:
        pending, text = page.ask("retry", run_id=failed["id"])
        assert pending is None and "needs the operator role" in toast_of(props)
        assert page.perform({"action": "retry", "run_id": failed["id"]}) is None
    with as_user(app, "operator", "opal") as props:
        pending, text = page.ask("retry", run_id=failed["id"])
        assert pending == {"action": "retry", "run_id": failed["id"], "job_id": None}
        assert "new attempt" in text
        result = page.perform(pending)
        assert result["outcome"] == "ok" and "Retry started" in toast_of(props)
    retried = wait_until(lambda: (lambda r: r if r["status"] == "succeeded" else None)(
        svc.get_run(store, result["run_id"])))
    assert retried["attempt"] == 2 and calls == ["k-real", "k-real"]
    with as_user(app, "operator", "opal") as props:
        assert page.perform({"action": "retry", "run_id": retried["id"]}) is None
        assert "only failed, cancelled or missed" in toast_of(props)
    from sqlalchemy import select
    from dashapp.store.models import AuditEvent
    with store.session() as sess:
        events = sess.execute(select(AuditEvent.actor, AuditEvent.action, AuditEvent.outcome)
                              ).all()
    assert ("vic", "permission_denied", "denied") in events
    assert ("opal", "job_retry", "success") in events
    assert ("opal", "job_retry", "failure") in events


def test_page_says_when_the_store_is_down(app):
    page = page_module()
    from dashapp.store import Store
    ops = app.extensions["ops"]
    real = ops.store
    ops.store = Store("postgresql+psycopg://nobody@127.0.0.1:1/gone")
    try:
        with as_user(app, "viewer"):
            status, style, *_ = page.render_live(1440, False)
            assert "is unavailable" in str(status) and style == {"display": "none"}
            rows, info, *_ = page.render_history(None, None, 60)
            assert rows == [] and "cannot be read" in info
    finally:
        ops.store.close()
        ops.store = real
