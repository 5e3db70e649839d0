"""Background jobs from the agent (ops_agent.apscheduler) into the store,
and the console's job commands back to the host that holds the job.

- "jobs" records change one run each, named by the id the agent gave it
  (`ops_job_run.agent_run`): applying the same record twice changes
  nothing, so a batch retried after an outage is harmless.
- "schedules" records are what a process's scheduler holds (a full list),
  a heartbeat, or its withdrawal when the process stops.
- `commands()` claims the open `ops_job_command` rows of the batch's
  application meant for its process (or for any process holding the job)
  and hands them to the agent in the answer; `RESULTS["job"]` writes back
  what the host made of one.

Every text a host sent is scrubbed again here (dashapp.core.scrub) before
it is stored: the agent masks secret-named arguments by name only.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update

from dashapp.core.scrub import MASK, is_secret_name, scrub_mapping, scrub_text, scrub_value
from dashapp.store import Store
from dashapp.store.models import BackgroundJob, JobCommand, JobSchedule

logger = logging.getLogger(__name__)

STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "missed")
ORIGINS = ("schedule", "retry", "run_now")
PENDING_GRACE = timedelta(minutes=2)  # a past pending run nobody resolved is dropped
COMMANDS_PER_BATCH = 20
_CHUNK = 500


# ------------------------------------------------------------------ values

def _when(value: Any) -> datetime | None:
    """An ISO 8601 text or epoch seconds as an aware UTC datetime."""
    try:
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            return parsed.astimezone(timezone.utc)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), timezone.utc)
    except (ValueError, OverflowError, OSError):
        pass
    return None


def _text(value: Any, size: int, scrub: bool = False) -> str | None:
    if value is None:
        return None
    text = str(value)
    return (scrub_text(text) if scrub else text)[:size]


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def scrub_args(shown: Any) -> dict | None:
    """A run's argument picture from the agent, masked by the console's own
    rules: positional values by the parameter they bind to (`names`, which
    is not kept), keyword ones by name, and secret shapes in any text."""
    if not isinstance(shown, dict):
        return None
    names = shown.get("names") if isinstance(shown.get("names"), list) else []
    args = shown.get("args") if isinstance(shown.get("args"), list) else []
    kwargs = shown.get("kwargs") if isinstance(shown.get("kwargs"), dict) else {}
    return {"args": [MASK if i < len(names) and isinstance(names[i], str)
                     and is_secret_name(names[i]) else scrub_value(value)
                     for i, value in enumerate(args[:50])],
            "kwargs": scrub_mapping(dict(list(kwargs.items())[:50]))}


def redact_call(func, args: tuple, kwargs: dict) -> dict:
    """What the console stores for a call: the agent's picture of it, then
    the console's scrub (the whole path a job's arguments take)."""
    from ops_agent.job_runs import describe_call
    return scrub_args(describe_call(func, args, kwargs))


_TEXTS = {"name": (255, False), "func": (255, False), "error_type": (255, False),
          "error_message": (20_000, True), "traceback": (20_000, True),
          "progress_message": (255, True), "note": (500, True)}
_TIMES = ("time", "scheduled_at", "started_at", "finished_at")


def _values(rec: dict) -> dict[str, Any]:
    """The columns a "run" record sets (only those it names)."""
    out: dict[str, Any] = {}
    for key, (size, scrub) in _TEXTS.items():
        if key in rec:
            out[key] = _text(rec[key], size, scrub)
    for key in _TIMES:
        if key in rec and _when(rec[key]) is not None:
            out[key] = _when(rec[key])
    if rec.get("status") in STATUSES:
        out["status"] = rec["status"]
    if rec.get("origin") in ORIGINS:
        out["origin"] = rec["origin"]
    if isinstance(rec.get("attempt"), int) and 0 < rec["attempt"] < 10_000:
        out["attempt"] = rec["attempt"]
    for key in ("duration_ms", "progress"):
        if key in rec:
            out[key] = _number(rec[key])
    if isinstance(rec.get("cancel_requested"), bool):
        out["cancel_requested"] = rec["cancel_requested"]
    if "args" in rec:
        out["args"] = scrub_args(rec["args"])
    for key in ("name", "func"):
        if out.get(key) is None:
            out.pop(key, None)
    return out


# -------------------------------------------------------------------- runs

def _run_id(value: Any) -> str | None:
    return value[:32] if isinstance(value, str) and value else None


def _known(conn, app: str, ids: set[str]) -> dict[str, list]:
    """agent run id -> [row id, status, scheduled_at] for this application."""
    found: dict[str, list] = {}
    ids_list = sorted(ids)
    for i in range(0, len(ids_list), _CHUNK):
        for row in conn.execute(select(BackgroundJob.agent_run, BackgroundJob.id,
                                       BackgroundJob.status, BackgroundJob.scheduled_at)
                                .where(BackgroundJob.app == app,
                                       BackgroundJob.agent_run.in_(ids_list[i:i + _CHUNK]))):
            found[row.agent_run] = [row.id, row.status, row.scheduled_at]
    return found


def apply_jobs(store: Store, meta, records: list) -> None:
    recs = [r for r in records if isinstance(r, dict) and _run_id(r.get("run"))]
    if not recs:
        return
    ids = {_run_id(r["run"]) for r in recs} | {
        _run_id(r.get("retry_of")) for r in recs if _run_id(r.get("retry_of"))}
    with store.engine.begin() as conn:
        known = _known(conn, meta.app, ids)
        for rec in recs:
            _apply_one(conn, meta, rec, known)


def _apply_one(conn, meta, rec: dict, known: dict[str, list]) -> None:
    run = _run_id(rec["run"])
    op = rec.get("op") or "run"
    row = known.get(run)
    if op == "drop":  # announced, never ran
        if row is not None and row[1] == "pending":
            conn.execute(delete(BackgroundJob).where(BackgroundJob.id == row[0],
                                                     BackgroundJob.status == "pending"))
            del known[run]
        return
    if op == "progress":
        if row is not None and row[1] == "running":
            conn.execute(update(BackgroundJob).where(
                BackgroundJob.id == row[0], BackgroundJob.status == "running").values(
                progress=_number(rec.get("progress")),
                progress_message=_text(rec.get("message"), 255, True)))
        return
    if op == "scheduled":
        at = _when(rec.get("at"))
        if row is not None and row[2] is None and at is not None:
            conn.execute(update(BackgroundJob).where(BackgroundJob.id == row[0])
                         .values(scheduled_at=at))
            row[2] = at
        return
    if op != "run":
        return
    only = rec.get("if_status")
    if isinstance(only, list) and (row is None or row[1] not in only):
        return
    values = _values(rec)
    retry_of = known.get(_run_id(rec.get("retry_of")) or "")
    if retry_of is not None:
        values["retry_of"] = retry_of[0]
    if row is not None:
        if values:
            conn.execute(update(BackgroundJob).where(BackgroundJob.id == row[0])
                         .values(**values))
            row[1] = values.get("status", row[1])
            row[2] = values.get("scheduled_at", row[2])
        return
    job_id = _text(rec.get("job_id"), 191)
    if not job_id or "status" not in values:
        return  # a change to a run the console never saw begin: nothing to attach it to
    values.setdefault("time", values.get("finished_at") or values.get("started_at")
                      or values.get("scheduled_at") or meta.received_at)
    values.setdefault("name", job_id)
    values.setdefault("func", "")
    values.setdefault("origin", "schedule")
    values.setdefault("attempt", 1)
    values.setdefault("cancel_requested", False)
    new_id = conn.execute(insert(BackgroundJob).values(
        job_id=job_id, agent_run=run, process=meta.process, app=meta.app,
        release=meta.release, **values)).inserted_primary_key[0]
    known[run] = [new_id, values["status"], values.get("scheduled_at")]


# --------------------------------------------------------------- schedules

def apply_schedules(store: Store, meta, records: list) -> None:
    now = meta.received_at
    with store.engine.begin() as conn:
        for rec in records:
            if not isinstance(rec, dict):
                continue
            if rec.get("withdraw"):
                conn.execute(delete(JobSchedule).where(JobSchedule.process == meta.process,
                                                       JobSchedule.app == meta.app))
                conn.execute(delete(BackgroundJob).where(
                    BackgroundJob.process == meta.process, BackgroundJob.app == meta.app,
                    BackgroundJob.status == "pending", BackgroundJob.origin == "schedule"))
                continue
            if isinstance(rec.get("jobs"), list):
                _replace_schedule(conn, meta, rec["jobs"])
            elif rec.get("heartbeat"):
                conn.execute(update(JobSchedule).where(JobSchedule.process == meta.process)
                             .values(updated_at=now))
            # Past pending runs nobody resolved (coalesced runs, a lost event).
            conn.execute(delete(BackgroundJob).where(
                BackgroundJob.process == meta.process, BackgroundJob.status == "pending",
                BackgroundJob.origin == "schedule",
                BackgroundJob.scheduled_at < now - PENDING_GRACE))


def _replace_schedule(conn, meta, jobs: list) -> None:
    """This process's schedule rows become `jobs` (all refreshed now)."""
    wanted: dict[str, dict] = {}
    for job in jobs:
        if not isinstance(job, dict) or not job.get("job_id"):
            continue
        job_id = str(job["job_id"])[:191]
        wanted[job_id] = {
            "name": _text(job.get("name"), 255) or job_id,
            "func": _text(job.get("func"), 255) or "",
            "trigger": _text(job.get("trigger"), 255) or "",
            "next_run_time": _when(job.get("next_run_time")), "paused": bool(job.get("paused")),
            "wrapped": bool(job.get("wrapped")), "updated_at": meta.received_at,
            "app": meta.app, "release": meta.release}
    held = set(conn.scalars(select(JobSchedule.job_id).where(
        JobSchedule.process == meta.process)))
    gone = sorted(held - set(wanted))
    for i in range(0, len(gone), _CHUNK):
        conn.execute(delete(JobSchedule).where(JobSchedule.process == meta.process,
                                               JobSchedule.job_id.in_(gone[i:i + _CHUNK])))
    for job_id, values in wanted.items():
        if job_id in held:
            conn.execute(update(JobSchedule).where(JobSchedule.process == meta.process,
                                                   JobSchedule.job_id == job_id)
                         .values(**values))
        else:
            conn.execute(insert(JobSchedule).values(process=meta.process, job_id=job_id,
                                                    **values))


# ---------------------------------------------------------------- commands

def commands(store: Store, meta) -> list[dict[str, Any]]:
    """Claim the open commands of this application for this process, or for
    any process when the command names none and this one holds the job.
    A claim is one conditional UPDATE per command: two processes of one
    application never both carry a command out."""
    from dashapp.services.jobs import COMMAND_TTL
    now = meta.received_at
    held = select(JobSchedule.job_id).where(JobSchedule.process == meta.process)
    with store.engine.begin() as conn:
        rows = conn.execute(select(JobCommand).where(
            JobCommand.app == meta.app, JobCommand.claimed_at.is_(None),
            JobCommand.created_at > now - COMMAND_TTL,
            or_(JobCommand.process == meta.process,
                and_(JobCommand.process.is_(None), JobCommand.job_id.in_(held))))
            .order_by(JobCommand.id).limit(COMMANDS_PER_BATCH)).all()
        claimed = [row for row in rows if conn.execute(
            update(JobCommand).where(JobCommand.id == row.id, JobCommand.claimed_at.is_(None))
            .values(claimed_by=meta.process, claimed_at=now)).rowcount]
        run_ids = {row.run_id for row in claimed if row.run_id is not None}
        runs = {r.id: r for r in conn.execute(
            select(BackgroundJob.id, BackgroundJob.agent_run, BackgroundJob.attempt,
                   BackgroundJob.status).where(BackgroundJob.id.in_(run_ids)))} \
            if run_ids else {}
    out = []
    for row in claimed:
        run = runs.get(row.run_id)
        out.append({"id": f"job:{row.id}", "type": "job", "action": row.action,
                    "job_id": row.job_id, "run": run.agent_run if run is not None else None,
                    "attempt": run.attempt if run is not None else None,
                    "status": run.status if run is not None else None})
    return out


def apply_result(store: Store, meta, result: dict) -> None:
    """A host's outcome of one command it claimed."""
    try:
        command_id = int(str(result.get("id") or "").partition(":")[2])
    except ValueError:
        return
    outcome = "ok" if result.get("outcome") in ("ok", "succeeded") else "failed"
    message = _text(result.get("message") or outcome, 2000, True)
    run = _run_id(result.get("run"))
    with store.engine.begin() as conn:
        command = conn.execute(select(JobCommand.action, JobCommand.run_id).where(
            JobCommand.id == command_id, JobCommand.app == meta.app,
            JobCommand.claimed_by == meta.process)).first()
        if command is None:
            return
        made = conn.scalar(select(BackgroundJob.id).where(
            BackgroundJob.app == meta.app, BackgroundJob.agent_run == run)) if run else None
        conn.execute(update(JobCommand).where(
            JobCommand.id == command_id, JobCommand.finished_at.is_(None)).values(
            finished_at=meta.received_at, outcome=outcome, message=message,
            result_run_id=made))
        if made is not None and command.action == "retry" and command.run_id is not None:
            conn.execute(update(BackgroundJob).where(
                BackgroundJob.id == made, BackgroundJob.retry_of.is_(None),
                BackgroundJob.id != command.run_id).values(retry_of=command.run_id))


APPLIERS = {"jobs": apply_jobs, "schedules": apply_schedules}
RESULTS = {"job": apply_result}
