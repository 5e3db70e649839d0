"""Background jobs end to end: a real APScheduler BackgroundScheduler
instrumented with monitor(), the console's REST API on the same store
(SQLite, then PostgreSQL), and a host in a separate process."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from dashapp import monitor
from dashapp.jobs import JobCancelled, cancelled, report_progress
from tests.integration.jobs_host import running_host


def wait_until(check, timeout: float = 10.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


@pytest.fixture
def host(settings, app):
    """make() -> (scheduler, monitor): a host scheduler in this process,
    instrumented against the console's store; stopped after the test."""
    made = []

    def make(**job_defaults):
        scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": 30,
            **job_defaults})
        mon = monitor(Flask("host"), scheduler=scheduler, settings=settings)
        mon.jobs.poll_interval = 0.1
        made.append((scheduler, mon))
        return scheduler, mon

    yield make
    for scheduler, mon in made:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        mon.close()


def soon(seconds: float = 0.2) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def runs_of(client, headers, job_id: str, path: str = "runs") -> list[dict]:
    resp = client.get(f"/api/jobs/{path}", query_string={"job": job_id}, headers=headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["runs"]


def run_with(client, headers, job_id: str, status: str, path: str = "runs") -> dict | None:
    return next((r for r in runs_of(client, headers, job_id, path) if r["status"] == status),
                None)


def audit_events(client, admin, action: str) -> list[dict]:
    resp = client.get("/api/audit", query_string={"action": action}, headers=admin)
    return resp.get_json()["events"]


# ------------------------------------------------------------------ runs

def test_succeeding_and_failing_runs_are_recorded(host, client, admin, viewer):
    scheduler, mon = host()

    def nightly_report(day, api_key=None, *, source=""):
        report_progress(0.5, "halfway")
        return day

    def broken_import():
        raise ValueError("row 17: price is not a number")

    scheduler.add_job(nightly_report, "interval", hours=1, args=["monday", "k-123456"],
                      kwargs={"source": "postgresql://app:pa55word@db/shop"}, id="report",
                      name="Nightly report", next_run_time=soon())
    scheduler.add_job(broken_import, "interval", hours=1, id="import", name="Import prices",
                      next_run_time=soon())
    scheduler.start()

    done = wait_until(lambda: run_with(client, viewer, "report", "succeeded", "completed"))
    failed = wait_until(lambda: run_with(client, viewer, "import", "failed", "failed"))
    assert done["name"] == "Nightly report" and done["attempt"] == 1
    assert done["duration_ms"] is not None and done["progress"] == 1.0
    assert done["started_at"] and done["finished_at"]

    detail = client.get(f"/api/jobs/{done['id']}", headers=viewer).get_json()
    # Secrets are redacted: by parameter name (positional too) and inside URLs.
    assert detail["args"] == {"args": ["monday", "***"],
                              "kwargs": {"source": "postgresql://app:***@db/shop"}}
    assert "pa55word" not in str(detail) and "k-123456" not in str(detail)

    detail = client.get(f"/api/jobs/{failed['id']}", headers=viewer).get_json()
    assert detail["error_type"] == "ValueError"
    assert detail["error_message"] == "row 17: price is not a number"
    assert "in broken_import" in detail["traceback"]
    assert 'raise ValueError("row 17' in detail["traceback"]
    assert detail["can_retry"] is True and detail["can_cancel"] is False

    # The failed run is not in /completed, and filters narrow the lists.
    assert all(r["job_id"] == "report" for r in runs_of(client, viewer, "report", "completed"))
    assert run_with(client, viewer, "import", "failed", "completed") is None
    future = client.get("/api/jobs/failed", headers=viewer,
                        query_string={"since": (soon(3600)).isoformat()}).get_json()
    assert future["runs"] == [] and future["total"] == 0
    summary = client.get("/api/jobs/summary", headers=viewer).get_json()
    assert summary["succeeded"] >= 1 and summary["failed"] >= 1

    # /pending: the next run of each job, with the pending run's id.
    mon.flush()
    pending = client.get("/api/jobs/pending", headers=viewer).get_json()["jobs"]
    by_id = {j["job_id"]: j for j in pending}
    assert set(by_id) == {"report", "import"}
    assert by_id["report"]["trigger"] == "interval[1:00:00]"
    assert by_id["report"]["run_id"] is not None and by_id["report"]["paused"] is False
    assert by_id["report"]["process"] == mon.shipper.process


def test_retry_runs_again_with_the_real_arguments(host, client, admin, operator, viewer):
    scheduler, mon = host()
    calls = []

    def sync_partner(partner, token=None):
        calls.append((partner, token))
        if len(calls) == 1:
            raise ConnectionError("partner API timed out")
        return partner

    scheduler.add_job(sync_partner, "interval", hours=1, args=["acme"],
                      kwargs={"token": "tok-REAL-9f8e"}, id="sync", name="Sync partner",
                      next_run_time=soon())
    scheduler.start()
    failed = wait_until(lambda: run_with(client, viewer, "sync", "failed"))
    stored = client.get(f"/api/jobs/{failed['id']}", headers=viewer).get_json()["args"]
    assert stored == {"args": ["acme"], "kwargs": {"token": "***"}}

    # Viewers may not retry; it is refused and audited as denied.
    assert client.post(f"/api/jobs/{failed['id']}/retry", headers=viewer).status_code == 403

    resp = client.post(f"/api/jobs/{failed['id']}/retry", headers=operator)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "done" and body["outcome"] == "ok"
    new_id = body["run_id"]
    assert new_id and new_id != failed["id"]

    retried = wait_until(lambda: (lambda r: r if r["status"] == "succeeded" else None)(
        client.get(f"/api/jobs/{new_id}", headers=viewer).get_json()))
    assert retried["attempt"] == 2 and retried["retry_of"] == failed["id"]
    assert retried["origin"] == "retry"
    assert calls[1] == ("acme", "tok-REAL-9f8e")  # the real token, not "***"
    original = client.get(f"/api/jobs/{failed['id']}", headers=viewer).get_json()
    assert original["retries"] == [{"id": new_id, "status": "succeeded", "attempt": 2}]

    # Retrying a run that succeeded is a conflict; an unknown run is 404.
    again = client.post(f"/api/jobs/{new_id}/retry", headers=operator)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "not_retryable"
    assert client.post("/api/jobs/999999/retry", headers=operator).status_code == 404

    events = audit_events(client, admin, "job_retry")
    outcomes = {(e["actor"], e["outcome"]) for e in events}
    assert ("otto", "success") in outcomes and ("otto", "failure") in outcomes
    assert all("tok-REAL" not in str(e) for e in events)


def test_cancel_a_running_job_cooperatively(host, client, operator, viewer, admin):
    scheduler, mon = host()
    started = threading.Event()

    def rebuild_index(items=400):
        started.set()
        for i in range(items):
            if cancelled():
                raise JobCancelled(f"stopped after {i} items")
            report_progress(i / items, f"{i} of {items} items")
            time.sleep(0.05)

    scheduler.add_job(rebuild_index, "interval", hours=1, id="index", name="Rebuild index",
                      next_run_time=soon())
    scheduler.start()
    assert started.wait(10)
    running = wait_until(lambda: (lambda r: r if r and (r["progress"] or 0) > 0 else None)(
        run_with(client, viewer, "index", "running", "active")))
    assert 0 < running["progress"] < 1 and "items" in running["progress_message"]
    mon.flush()  # the process's heartbeat lands after its batch's runs: read again
    assert client.get(f"/api/jobs/{running['id']}", headers=viewer).get_json()[
        "process_alive"] is True

    resp = client.post(f"/api/jobs/{running['id']}/cancel", headers=operator)
    assert resp.status_code == 200 and resp.get_json()["outcome"] == "ok", resp.get_json()
    run = wait_until(lambda: (lambda r: r if r["status"] != "running" else None)(
        client.get(f"/api/jobs/{running['id']}", headers=viewer).get_json()))
    assert run["status"] == "cancelled"
    assert run["cancel_requested"] is True and run["note"].startswith("stopped after")
    assert run["progress"] < 1
    # A run that has ended cannot be cancelled again.
    again = client.post(f"/api/jobs/{running['id']}/cancel", headers=operator)
    assert again.status_code == 409
    assert any(e["outcome"] == "success" and e["target"] == f"job-run:{running['id']}"
               for e in audit_events(client, admin, "job_cancel"))


def test_closing_the_monitor_stops_a_job_that_checks(host, client, viewer):
    """A process shutting down (monitor.close(), as on SIGTERM) does not wait
    for a long job that checks cancelled(): it stops at its next check and
    the run says why."""
    scheduler, mon = host()
    started, ended = threading.Event(), threading.Event()

    def rebuild_index(items=400):
        started.set()
        try:
            for i in range(items):
                if cancelled():
                    raise JobCancelled(f"stopped after {i} items")
                time.sleep(0.05)
        finally:
            ended.set()

    scheduler.add_job(rebuild_index, "interval", hours=1, id="index", name="Rebuild index",
                      next_run_time=soon())
    scheduler.start()
    assert started.wait(10)
    running = wait_until(lambda: run_with(client, viewer, "index", "running", "active"))
    scheduler.shutdown(wait=False)
    mon.close()
    assert ended.wait(2), "the job ran on after its monitor closed"
    run = wait_until(lambda: (lambda r: r if r["status"] != "running" else None)(
        client.get(f"/api/jobs/{running['id']}", headers=viewer).get_json()))
    assert run["status"] == "cancelled" and run["cancel_requested"] is False
    assert run["note"] == "Stopped: its process was shutting down."


def test_a_job_that_never_checks_is_not_called_cancelled(host, client, operator, viewer):
    scheduler, mon = host()
    release = threading.Event()

    def stubborn():
        release.wait(10)

    scheduler.add_job(stubborn, "interval", hours=1, id="stubborn", next_run_time=soon())
    scheduler.start()
    running = wait_until(lambda: run_with(client, viewer, "stubborn", "running", "active"))
    mon.flush()  # the schedule is published (the console knows the process is alive)
    resp = client.post(f"/api/jobs/{running['id']}/cancel", headers=operator)
    assert resp.get_json().get("outcome") == "ok", resp.get_json()
    release.set()
    run = wait_until(lambda: (lambda r: r if r["status"] != "running" else None)(
        client.get(f"/api/jobs/{running['id']}", headers=viewer).get_json()))
    assert run["status"] == "succeeded" and run["cancel_requested"] is True
    assert "without checking cancelled()" in run["note"]


def test_cancel_a_pending_run_skips_it(host, client, operator, viewer):
    scheduler, mon = host()
    ran = []
    first = soon(3600)
    scheduler.add_job(lambda: ran.append(1), "interval", hours=1, id="hourly",
                      name="Hourly", next_run_time=first)
    scheduler.start()
    mon.flush()
    job = next(j for j in client.get("/api/jobs/pending", headers=viewer).get_json()["jobs"]
               if j["job_id"] == "hourly")
    assert job["run_id"] is not None
    resp = client.post(f"/api/jobs/{job['run_id']}/cancel", headers=operator)
    assert resp.status_code == 200 and resp.get_json()["outcome"] == "ok", resp.get_json()
    run = client.get(f"/api/jobs/{job['run_id']}", headers=viewer).get_json()
    assert run["status"] == "cancelled" and run["note"] == "Cancelled before it started."
    # The scheduler skips that run: the next one is an hour after it.
    assert scheduler.get_job("hourly").next_run_time == first + timedelta(hours=1)
    mon.flush()
    job = next(j for j in client.get("/api/jobs/pending", headers=viewer).get_json()["jobs"]
               if j["job_id"] == "hourly")
    assert job["run_id"] not in (None, run["id"])
    assert ran == []


def test_pause_resume_and_run_now(host, client, operator, viewer, admin):
    scheduler, mon = host()
    ran = []

    def cleanup(limit):
        ran.append(limit)
        return limit

    scheduler.add_job(cleanup, "interval", hours=1, args=[50], id="jobs/cleanup",
                      name="Cleanup", next_run_time=soon(3600))
    scheduler.start()
    mon.flush()
    base = "/api/jobs/scheduled/jobs/cleanup"
    assert client.post(f"{base}/pause", headers=viewer).status_code == 403
    resp = client.post(f"{base}/pause", headers=operator)
    assert resp.status_code == 200 and resp.get_json()["outcome"] == "ok", resp.get_json()
    assert scheduler.get_job("jobs/cleanup").next_run_time is None
    mon.flush()
    job = next(j for j in client.get("/api/jobs/pending", headers=viewer).get_json()["jobs"]
               if j["job_id"] == "jobs/cleanup")
    assert job["paused"] is True and job["next_run_time"] is None and job["run_id"] is None

    # Run now works while paused and leaves the schedule alone.
    resp = client.post(f"{base}/run-now", headers=operator)
    assert resp.status_code == 200 and resp.get_json()["outcome"] == "ok", resp.get_json()
    run_id = resp.get_json()["run_id"]
    run = wait_until(lambda: (lambda r: r if r["status"] == "succeeded" else None)(
        client.get(f"/api/jobs/{run_id}", headers=viewer).get_json()))
    assert run["origin"] == "run_now" and ran == [50]
    assert scheduler.get_job("jobs/cleanup").next_run_time is None

    resp = client.post(f"{base}/resume", headers=operator)
    assert resp.status_code == 200 and resp.get_json()["outcome"] == "ok"
    assert scheduler.get_job("jobs/cleanup").next_run_time is not None
    actions = {e["action"] for e in client.get(
        "/api/audit", headers=admin).get_json()["events"] if e["actor"] == "otto"}
    assert {"job_pause", "job_resume", "job_run_now"} <= actions

    # A job no live process holds: 409, and the command is never created.
    resp = client.post("/api/jobs/scheduled/no-such-job/pause", headers=operator)
    assert resp.status_code == 409
    assert resp.get_json()["error"]["code"] == "no_live_process"


def test_missed_runs_are_recorded(host, client, viewer):
    scheduler, mon = host(misfire_grace_time=1)
    ran = []
    scheduler.add_job(lambda: ran.append(1), "interval", hours=1, id="late", name="Late job",
                      next_run_time=datetime.now(timezone.utc) - timedelta(minutes=5))
    scheduler.start()
    missed = wait_until(lambda: run_with(client, viewer, "late", "missed", "completed"))
    assert ran == [] and "missed" in missed["note"]
    assert missed["scheduled_at"] is not None


def test_actions_need_the_operator_role(client, viewer, operator, admin):
    for url in ("/api/jobs/1/retry", "/api/jobs/1/cancel", "/api/jobs/scheduled/x/pause",
                "/api/jobs/scheduled/x/resume", "/api/jobs/scheduled/x/run-now"):
        resp = client.post(url, headers=viewer)
        assert resp.status_code == 403, url
        assert resp.get_json()["error"]["code"] == "forbidden"
    denied = audit_events(client, admin, "permission_denied")
    assert sum(e["actor"] == "vera" for e in denied) >= 5
    # Bad input names the field.
    resp = client.get("/api/jobs/runs", query_string={"status": "exploded"}, headers=viewer)
    assert resp.status_code == 400 and "status" in resp.get_json()["error"]["message"]


def test_a_host_in_another_process_is_seen_and_reached(settings, client, viewer, operator):
    with running_host(settings.store_url, settings.instance_dir) as proc:
        slow = wait_until(lambda: (lambda r: r if r and r["progress"] else None)(
            run_with(client, viewer, "host_slow", "running", "active")), timeout=20)
        assert slow["process"].endswith(f":{proc.pid}")
        failed = wait_until(lambda: run_with(client, viewer, "host_flaky", "failed"),
                            timeout=20)
        pending = wait_until(lambda: [j for j in client.get(
            "/api/jobs/pending", headers=viewer).get_json()["jobs"]
            if j["job_id"] == "host_report"])
        assert pending[0]["process"] == slow["process"]

        # Retry reaches the other process in its ingest answer: it runs the job
        # again there with the real token (the store only has "***").
        resp = client.post(f"/api/jobs/{failed['id']}/retry", headers=operator)
        assert resp.status_code == 200 and resp.get_json()["outcome"] == "ok", resp.get_json()
        retried = wait_until(lambda: (lambda r: r if r["status"] == "succeeded" else None)(
            client.get(f"/api/jobs/{resp.get_json()['run_id']}", headers=viewer).get_json()))
        assert retried["process"] == slow["process"] and retried["retry_of"] == failed["id"]
        assert retried["progress_message"] == "called with the real token"

        # Cancel reaches the running job there; it stops at its next check.
        resp = client.post(f"/api/jobs/{slow['id']}/cancel", headers=operator)
        assert resp.status_code == 200 and resp.get_json()["outcome"] == "ok", resp.get_json()
        run = wait_until(lambda: (lambda r: r if r["status"] != "running" else None)(
            client.get(f"/api/jobs/{slow['id']}", headers=viewer).get_json()))
        assert run["status"] == "cancelled" and run["note"].startswith("stopped at step")
    # A host that stopped withdraws what it held: nothing pending from it.
    assert not [j for j in client.get("/api/jobs/pending", headers=viewer).get_json()["jobs"]
                if j["process"] == slow["process"]]
    resp = client.post("/api/jobs/scheduled/host_report/run-now", headers=operator)
    assert resp.status_code == 409


def test_job_events_survive_a_console_outage(host, client, viewer):
    """While the console's store is down the host's job runs and returns
    normally, and what the agent recorded of it is kept: once the store is
    back, the run arrives complete."""
    from apscheduler.events import EVENT_JOB_EXECUTED
    from dashapp.store import Store
    scheduler, mon = host()
    sink = mon.shipper.sink  # the DirectSink: accept() into the console's store
    real, broken = sink.store, Store("postgresql+psycopg://nobody@127.0.0.1:1/gone")
    sink.store = broken  # refused: every batch fails
    executed = threading.Event()
    scheduler.add_listener(lambda event: executed.set(), EVENT_JOB_EXECUTED)
    results = []

    def steady(day="monday", password="pa55-word"):
        results.append(report_progress(0.5, "halfway") and not cancelled())
        return day

    try:
        scheduler.add_job(steady, "interval", hours=1, id="steady", name="Steady",
                          next_run_time=soon())
        scheduler.start()
        assert executed.wait(10)
        assert results == [True]
        assert mon.flush() is False and mon.shipper.in_outage
        assert runs_of(client, viewer, "steady", "completed") == []
    finally:
        sink.store = real
        broken.close()
    assert mon.flush() is True and not mon.shipper.in_outage
    done = run_with(client, viewer, "steady", "succeeded", "completed")
    assert done is not None and done["name"] == "Steady" and done["progress"] == 1.0
    assert done["started_at"] and done["finished_at"] and done["duration_ms"] is not None
    detail = client.get(f"/api/jobs/{done['id']}", headers=viewer).get_json()
    assert detail["args"] == {"args": [], "kwargs": {}}
    assert mon.shipper.channels["jobs"].dropped == 0
    # Retried batches are applied once: one run, and the next one pending.
    assert [r["status"] for r in runs_of(client, viewer, "steady", "completed")] == \
        ["succeeded"]
    pending = client.get("/api/jobs/pending", headers=viewer).get_json()["jobs"]
    assert [j["run_id"] is not None for j in pending if j["job_id"] == "steady"] == [True]


def test_a_command_reaches_the_host_and_its_outcome_comes_back(host, app):
    """A command the console creates is in the answer to the host's next
    batch (the agent sends one a second), is carried out on the live
    scheduler, and its outcome is written back; a command for another
    application is never handed to this host."""
    from apscheduler.events import EVENT_JOB_MODIFIED
    from sqlalchemy import insert, select
    from dashapp.services import jobs as svc
    from dashapp.store.models import JobCommand
    store = app.extensions["ops"].store
    scheduler, mon = host()
    scheduler.add_job(lambda: None, "interval", hours=1, id="nightly", name="Nightly",
                      next_run_time=soon(3600))
    scheduler.start()
    mon.flush()
    with store.engine.begin() as conn:
        other = conn.execute(insert(JobCommand).values(
            action="pause", job_id="nightly", app="another-app", requested_by="x",
            created_at=datetime.now(timezone.utc))).inserted_primary_key[0]
    paused_at = []
    scheduler.add_listener(lambda event: paused_at.append(time.monotonic())
                           if scheduler.get_job("nightly").next_run_time is None else None,
                           EVENT_JOB_MODIFIED)
    began = time.monotonic()
    result = svc.perform(store, "pause", actor="otto", job_id="nightly", wait=5)
    answered = time.monotonic() - began
    assert result["status"] == "done" and result["outcome"] == "ok", result
    assert result["message"].startswith("Paused")
    assert paused_at and paused_at[0] - began < 2.0, "the command reached the host late"
    assert answered < 3.5
    assert scheduler.get_job("nightly").next_run_time is None
    [command] = result["commands"]
    assert command["claimed_by"] == mon.shipper.process and command["status"] == "done"
    mon.flush()
    with store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(JobCommand))}
    assert rows[command["id"]].app == "host"
    assert rows[other].claimed_at is None and rows[other].outcome is None


def test_jobs_in_a_persistent_store_are_recorded_from_events(host, client, viewer, tmp_path):
    """A job in a SQLAlchemyJobStore is not wrapped (the store pickles a
    reference to its function): its runs come from the scheduler's events."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    scheduler, mon = host()
    scheduler.add_jobstore(SQLAlchemyJobStore(url=f"sqlite:///{tmp_path / 'jobs.db'}"))
    scheduler.add_job("tests.integration.jobs_host:host_report", "interval", hours=1,
                      id="stored", name="Stored job", next_run_time=soon(),
                      replace_existing=True)
    scheduler.start()
    done = wait_until(lambda: run_with(client, viewer, "stored", "succeeded", "completed"))
    assert done["finished_at"] and done["scheduled_at"] is not None
    assert done["process"] == mon.shipper.process
    mon.flush()
    # One run: its submission event may come after its end (a quick job),
    # and is not taken for a second run.
    assert sorted(r["status"] for r in runs_of(client, viewer, "stored")) == \
        ["pending", "succeeded"]  # the run, and the next one
    job = next(j for j in client.get("/api/jobs/pending", headers=viewer).get_json()["jobs"]
               if j["job_id"] == "stored")
    assert job["wrapped"] is False and job["run_id"] is not None
