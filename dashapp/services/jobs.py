"""Background jobs as the console sees them: runs, schedules and the
commands (retry, cancel, pause, resume, run now) that reach the host
processes through the store.

The hosts' agents (ops_agent.apscheduler) send their runs and what their
schedulers hold; dashapp.ingest.jobs writes them to `ops_job_run` and
`ops_job_schedule` (refreshed every few seconds; a process whose rows stopped
being refreshed is treated as gone). An action is a row in `ops_job_command`
for the job's application: the ingest answer of the process holding the job
claims it, the agent carries it out on its live scheduler and sends the
outcome back; `perform()` creates it, waits a few seconds for the outcome
and audits it. The REST routes and the Jobs page both call these
functions.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update

from dashapp.store import Store
from dashapp.store.models import (BackgroundJob, JobCommand, JobSchedule, MonitorProcess,
                                   as_utc)

STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "missed")
FINISHED = ("succeeded", "failed", "cancelled", "missed")
RETRYABLE = ("failed", "cancelled", "missed")
KINDS = {"active": ("running",), "completed": ("succeeded", "cancelled", "missed"),
         "failed": ("failed",), "all": STATUSES}
ACTIONS = ("retry", "cancel", "pause", "resume", "run_now")
ACTION_LABELS = {"retry": "Retry", "cancel": "Cancel", "pause": "Pause",
                 "resume": "Resume", "run_now": "Run now"}
LIVE = timedelta(seconds=30)        # a host refreshes its rows every 5 s
DEAD_RUN_AFTER = timedelta(minutes=2)
# A command reaches its host in the answer to the host's next batch (one a
# second) and the outcome comes back in the batch after: about 1-2 s.
WAIT_SECONDS = 5.0
COMMAND_TTL = timedelta(seconds=60)  # older unclaimed commands are left to expire
MAX_PER_PAGE = 500


class JobsError(Exception):
    """A request the service refuses; `status` is the HTTP status it means."""
    status = 400
    code = "invalid_request"


class NotFound(JobsError):
    status = 404
    code = "not_found"


class Conflict(JobsError):
    status = 409

    def __init__(self, message: str, code: str = "conflict"):
        super().__init__(message)
        self.code = code


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat(timespec="milliseconds") if value is not None else None


# ------------------------------------------------------------------- reads

def live_processes(conn, now: datetime | None = None) -> set[str]:
    """Processes that refreshed their schedule rows or their monitor
    heartbeat lately."""
    cutoff = (now or utcnow()) - LIVE
    live = set(conn.scalars(select(JobSchedule.process).where(
        JobSchedule.updated_at > cutoff).distinct()))
    live |= set(conn.scalars(select(MonitorProcess.process).where(
        MonitorProcess.last_seen > cutoff)))
    return live


def run_dict(row, live: set[str] | None = None, detail: bool = False) -> dict[str, Any]:
    out = {
        "id": row.id, "job_id": row.job_id, "name": row.name, "func": row.func,
        "status": row.status, "origin": row.origin, "process": row.process,
        "scheduled_at": _iso(row.scheduled_at), "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "duration_ms": None if row.duration_ms is None else round(row.duration_ms, 2),
        "attempt": row.attempt, "retry_of": row.retry_of,
        "error_type": row.error_type,
        "error_message": (row.error_message or "")[:300] if not detail else row.error_message,
        "progress": row.progress, "progress_message": row.progress_message,
        "cancel_requested": bool(row.cancel_requested), "note": row.note,
    }
    if live is not None:
        out["process_alive"] = row.process in live
    if detail:
        out["args"] = row.args
        out["traceback"] = row.traceback
    return out


def _window(query, since: datetime | None, until: datetime | None):
    if since is not None:
        query = query.where(BackgroundJob.time >= since)
    if until is not None:
        query = query.where(BackgroundJob.time < until)
    return query


def list_runs(store: Store, kind: str = "all", *, statuses: list[str] | None = None,
              job_id: str | None = None, since: datetime | None = None,
              until: datetime | None = None, page: int = 1, per_page: int = 50,
              search: str | None = None) -> dict[str, Any]:
    """One page of runs, newest first. `kind`: active, completed, failed or
    all; `statuses` narrows it further."""
    if kind not in KINDS:
        raise JobsError(f"kind must be one of {', '.join(KINDS)}")
    bad = [s for s in statuses or () if s not in STATUSES]
    if bad:
        raise JobsError(f"status: unknown status {bad[0]!r}; one of {', '.join(STATUSES)}")
    wanted = [s for s in (statuses or KINDS[kind]) if s in KINDS[kind]]
    page = max(1, int(page))
    per_page = min(MAX_PER_PAGE, max(1, int(per_page)))
    where = [BackgroundJob.status.in_(wanted or ["-"])]
    if job_id:
        where.append(BackgroundJob.job_id == job_id)
    if search:
        like = f"%{search.strip()[:100]}%"
        where.append(or_(BackgroundJob.name.ilike(like), BackgroundJob.job_id.ilike(like),
                         BackgroundJob.error_message.ilike(like)))
    with store.engine.connect() as conn:
        base = _window(select(BackgroundJob).where(*where), since, until)
        total = conn.scalar(_window(select(func.count()).select_from(BackgroundJob)
                                    .where(*where), since, until))
        rows = conn.execute(base.order_by(BackgroundJob.time.desc(), BackgroundJob.id.desc())
                            .offset((page - 1) * per_page).limit(per_page)).all()
        live = live_processes(conn)
    return {"runs": [run_dict(r, live) for r in rows], "total": total or 0, "page": page,
            "per_page": per_page, "kind": kind}


def get_run(store: Store, run_id: int) -> dict[str, Any]:
    """A run with its arguments (redacted), traceback, and the runs that
    retried it."""
    with store.engine.connect() as conn:
        row = conn.execute(select(BackgroundJob).where(BackgroundJob.id == run_id)).first()
        if row is None:
            raise NotFound(f"No job run {run_id}.")
        retries = conn.execute(select(BackgroundJob.id, BackgroundJob.status,
                                      BackgroundJob.attempt)
                               .where(BackgroundJob.retry_of == run_id)
                               .order_by(BackgroundJob.id)).all()
        live = live_processes(conn)
        holders = _holders(conn, row.job_id, live, row.app)
    out = run_dict(row, live, detail=True)
    out["retries"] = [{"id": r.id, "status": r.status, "attempt": r.attempt} for r in retries]
    out["can_retry"] = row.status in RETRYABLE and bool(holders or row.process in live)
    out["can_cancel"] = row.status in ("pending", "running") and row.process in live
    return out


def _holders(conn, job_id: str, live: set[str], app: str | None = None) -> list[str]:
    """Live processes whose scheduler holds `job_id` (of application `app`)."""
    return [process for process, _app in _holding(conn, job_id, live, app)]


def _holding(conn, job_id: str, live: set[str],
             app: str | None = None) -> list[tuple[str, str]]:
    """(process, application) of the live processes holding `job_id`."""
    query = select(JobSchedule.process, JobSchedule.app).where(JobSchedule.job_id == job_id)
    if app is not None:
        query = query.where(JobSchedule.app == app)
    return sorted((r.process, r.app) for r in conn.execute(query) if r.process in live)


def schedule(store: Store) -> list[dict[str, Any]]:
    """Every job the live host processes hold, with its next run (and the
    id of that pending run, which can be cancelled), soonest first."""
    now = utcnow()
    with store.engine.connect() as conn:
        rows = conn.execute(select(JobSchedule).where(
            JobSchedule.updated_at > now - LIVE)).all()
        pending = {(r.process, r.job_id): r for r in conn.execute(
            select(BackgroundJob.id, BackgroundJob.process, BackgroundJob.job_id,
                   BackgroundJob.scheduled_at)
            .where(BackgroundJob.status == "pending", BackgroundJob.origin == "schedule"))}
    out = []
    for r in rows:
        next_run = as_utc(r.next_run_time)
        run = pending.get((r.process, r.job_id))
        out.append({
            "job_id": r.job_id, "name": r.name, "func": r.func, "trigger": r.trigger,
            "next_run_time": _iso(next_run), "paused": bool(r.paused),
            "process": r.process, "wrapped": bool(r.wrapped),
            "run_id": run.id if run is not None and as_utc(run.scheduled_at) == next_run
            else None,
            "updated_at": _iso(r.updated_at)})
    far = "9999"
    out.sort(key=lambda j: (j["paused"], j["next_run_time"] or far, j["job_id"]))
    return out


def counts(store: Store, minutes: int = 1440) -> dict[str, Any]:
    """Runs per status in the window, plus what runs and waits now."""
    now = utcnow()
    since = now - timedelta(minutes=minutes)
    with store.engine.connect() as conn:
        live = live_processes(conn, now)
        done = dict(conn.execute(
            select(BackgroundJob.status, func.count())
            .where(BackgroundJob.status.in_(FINISHED), BackgroundJob.time >= since)
            .group_by(BackgroundJob.status)).all())
        running = conn.execute(select(BackgroundJob.process, func.count())
                               .where(BackgroundJob.status == "running")
                               .group_by(BackgroundJob.process)).all()
    jobs = schedule(store)
    return {
        "minutes": minutes,
        "running": sum(n for p, n in running if p in live),
        "stale_running": sum(n for p, n in running if p not in live),
        "scheduled": sum(1 for j in jobs if not j["paused"]),
        "paused": sum(1 for j in jobs if j["paused"]),
        "processes": len({j["process"] for j in jobs}),
        **{status: int(done.get(status, 0)) for status in FINISHED},
    }


def timeline(store: Store, minutes: int = 1440, job_id: str | None = None,
             limit: int = 5000) -> list[dict[str, Any]]:
    """Finished runs in the window (oldest first): time, job, status and
    duration, for the durations-and-failures chart."""
    since = utcnow() - timedelta(minutes=minutes)
    query = select(BackgroundJob.time, BackgroundJob.job_id, BackgroundJob.name,
                   BackgroundJob.status, BackgroundJob.duration_ms, BackgroundJob.id) \
        .where(BackgroundJob.status.in_(FINISHED), BackgroundJob.time >= since)
    if job_id:
        query = query.where(BackgroundJob.job_id == job_id)
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(BackgroundJob.time.desc()).limit(limit)).all()
    return [{"time": _iso(r.time), "job_id": r.job_id, "name": r.name, "status": r.status,
             "duration_ms": r.duration_ms, "id": r.id} for r in reversed(rows)]


def job_ids(store: Store, days: int = 30) -> list[str]:
    """Job ids seen lately (for filters)."""
    since = utcnow() - timedelta(days=days)
    with store.engine.connect() as conn:
        ids = set(conn.scalars(select(BackgroundJob.job_id).where(
            BackgroundJob.time >= since).distinct()))
        ids |= set(conn.scalars(select(JobSchedule.job_id).distinct()))
    return sorted(ids)


# ----------------------------------------------------------------- actions

def command_dict(row, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    if row.finished_at is not None:
        status = "done"
    elif row.claimed_at is not None:
        status = "running"
    elif as_utc(row.created_at) < now - COMMAND_TTL:
        status = "expired"
    else:
        status = "queued"
    return {"id": row.id, "action": row.action, "job_id": row.job_id, "run_id": row.run_id,
            "process": row.process, "requested_by": row.requested_by,
            "created_at": _iso(row.created_at), "claimed_by": row.claimed_by,
            "claimed_at": _iso(row.claimed_at), "finished_at": _iso(row.finished_at),
            "status": status, "outcome": row.outcome, "message": row.message,
            "result_run_id": row.result_run_id}


def get_command(store: Store, command_id: int) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(select(JobCommand).where(JobCommand.id == command_id)).first()
    if row is None:
        raise NotFound(f"No job command {command_id}.")
    return command_dict(row)


def _plan(conn, action: str, run_id: int | None, job_id: str | None) -> tuple[str, list]:
    """(job id, [(target process or None, run id, application)]) for an
    action, or raises NotFound / Conflict before anything is asked of a host.
    A command goes to the application that holds the job: only its agents'
    batches are answered with it."""
    now = utcnow()
    live = live_processes(conn, now)
    if action in ("retry", "cancel"):
        row = conn.execute(select(BackgroundJob).where(BackgroundJob.id == run_id)).first()
        if row is None:
            raise NotFound(f"No job run {run_id}.")
        if action == "retry":
            if row.status not in RETRYABLE:
                raise Conflict(f"Run {run_id} is {row.status}: only failed, cancelled or "
                               "missed runs can be retried.", "not_retryable")
            holders = _holders(conn, row.job_id, live, row.app)
            if not holders and row.process not in live:
                raise Conflict(f"No live process holds job {row.job_id!r}, so nothing can "
                               "run it again.", "no_live_process")
            # The run's own process has its real arguments in memory.
            target = row.process if row.process in live else None
            return row.job_id, [(target, row.id, row.app)]
        if row.status not in ("pending", "running"):
            raise Conflict(f"Run {run_id} is already {row.status}.", "not_cancellable")
        if row.process not in live:
            raise Conflict(f"The process that holds run {run_id} ({row.process}) is not "
                           "running any more.", "no_live_process")
        return row.job_id, [(row.process, row.id, row.app)]
    holders = _holding(conn, job_id, live)
    if not holders:
        raise Conflict(f"No live process holds job {job_id!r}.", "no_live_process")
    if action == "run_now":  # any one process of the (first) application holding it
        return job_id, [(None, None, holders[0][1])]
    return job_id, [(process, None, app) for process, app in holders]  # every copy


def perform(store: Store, action: str, *, actor: str, run_id: int | None = None,
            job_id: str | None = None, wait: float = WAIT_SECONDS,
            via: str = "api") -> dict[str, Any]:
    """Ask the host(s) to carry out `action`, wait up to `wait` seconds for
    the outcome, and audit it (success or failure). Returns
    {"status": "done"|"queued", "outcome": "ok"|"failed"|None, "message",
    "run_id" (the run it made or acted on), "commands": [...]}; raises
    NotFound / Conflict (audited as failures too)."""
    from dashapp.security import audit
    if action not in ACTIONS:
        raise JobsError(f"action must be one of {', '.join(ACTIONS)}")
    target = f"job-run:{run_id}" if run_id is not None else f"job:{job_id}"
    details: dict[str, Any] = {"via": via, "run_id": run_id, "job_id": job_id}
    # The audit row first: no command is queued unless it is written.
    entry = audit.begin(store, actor=actor, action=f"job_{action}", target=target,
                        details=details)
    try:
        with store.engine.begin() as conn:
            job_id, plan = _plan(conn, action, run_id, job_id)
            now = utcnow()
            ids = [conn.execute(insert(JobCommand).values(
                action=action, job_id=job_id, run_id=rid, process=process, app=app,
                requested_by=actor[:64], created_at=now)).inserted_primary_key[0]
                for process, rid, app in plan]
        details["job_id"] = job_id
        result = wait_for(store, ids, wait)
    except Exception as exc:
        entry.finish("failure", {**details, "error": str(exc)[:300]})
        raise
    details.update(command_ids=ids, outcome=result["outcome"] or result["status"],
                   message=(result["message"] or "")[:300])
    entry.finish("failure" if result["outcome"] == "failed" else "success", details)
    return {"action": action, "job_id": job_id, **result}


def wait_for(store: Store, ids: list[int], wait: float) -> dict[str, Any]:
    """Poll the commands until all are done or `wait` seconds passed."""
    deadline = time.monotonic() + wait
    while True:
        with store.engine.connect() as conn:
            rows = conn.execute(select(JobCommand).where(JobCommand.id.in_(ids))
                                .order_by(JobCommand.id)).all()
        commands = [command_dict(r) for r in rows]
        done = all(c["status"] == "done" for c in commands)
        if done or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if not done:
        return {"status": "queued", "outcome": None, "commands": commands, "run_id": None,
                "message": "A host process holds the job but has not answered yet; "
                           "follow the command to see its outcome."}
    failed = [c for c in commands if c["outcome"] != "ok"]
    outcome = "failed" if failed else "ok"
    messages = [c["message"] for c in (failed or commands) if c["message"]]
    result_run = next((c["result_run_id"] for c in commands if c["result_run_id"]), None)
    return {"status": "done", "outcome": outcome, "commands": commands, "run_id": result_run,
            "message": " ".join(dict.fromkeys(messages)) or outcome}


# ------------------------------------------------------------- retention

def reap(store: Store, now: datetime | None = None) -> dict[str, int]:
    """Tidy what hosts that stopped left behind: their `running` runs are
    failed ("the process stopped"), their pending runs and schedule rows go."""
    now = now or utcnow()
    dead_after = now - DEAD_RUN_AFTER
    with store.engine.begin() as conn:
        live = live_processes(conn, now)
        stale = [p for p in conn.scalars(select(BackgroundJob.process).where(
            BackgroundJob.status.in_(("running", "pending"))).distinct()) if p not in live]
        failed = pending = 0
        for process in stale:
            failed += conn.execute(update(BackgroundJob).where(
                BackgroundJob.process == process, BackgroundJob.status == "running",
                BackgroundJob.time < dead_after).values(
                status="failed", finished_at=now, time=now, error_type="ProcessGone",
                error_message=f"The process {process} stopped reporting while the "
                              "job was running.")).rowcount
            pending += conn.execute(delete(BackgroundJob).where(
                BackgroundJob.process == process,
                BackgroundJob.status == "pending")).rowcount
        schedules = conn.execute(delete(JobSchedule).where(
            JobSchedule.updated_at < dead_after)).rowcount
    return {"runs_failed": failed, "pending_dropped": pending, "schedules_dropped": schedules}


def purge_commands(store: Store, cutoff: datetime) -> int:
    with store.engine.begin() as conn:
        return conn.execute(delete(JobCommand).where(JobCommand.created_at < cutoff)).rowcount


__all__ = ["ACTIONS", "Conflict", "FINISHED", "JobsError", "KINDS", "NotFound", "STATUSES",
           "counts", "get_command", "get_run", "job_ids", "list_runs", "perform", "reap",
           "schedule", "timeline"]
