"""/api/jobs: background job runs, schedules, retry/cancel/pause/resume/run-now.

Thin: validate, call dashapp.services.jobs (the same functions the Jobs page
calls), jsonify. Runs are recorded by the host processes' `monitor(app,
scheduler=...)`; actions are commands the host holding the job carries out
on its live scheduler. An action route waits up to 5 s for that host:
200 with the outcome when it answered, 202 with the command (status
"queued"; follow it at GET /api/jobs/commands/<id>) when a live host holds
the job but has not answered yet, 409 when no live process holds it.
Viewers read; operators act; every action is audited.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, MAX_BIG_ID, MAX_ID, SECURITY, ErrorBody,
                                current_actor, error, example, guarded,
                                store_unavailable, tidy_docs)
from dashapp.security.roles import requires
from dashapp.services import jobs as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_jobs", __name__, url_prefix="/api/jobs",
                  abp_tags=[Tag(name="jobs", description="Background job runs, schedules, retry/cancel")])

ERRORS = {**INPUT_ERRORS, 404: ErrorBody, 503: ErrorBody}
ACTION_ERRORS = {**ERRORS, 409: ErrorBody}


# ------------------------------------------------------------------ models

class RunsQuery(BaseModel):
    job: str | None = Field(None, max_length=191, description="Only runs of this job id")
    status: str | None = Field(None, max_length=100, description=(
        "Comma-separated statuses to narrow the list to: pending, running, succeeded, "
        "failed, cancelled, missed"))
    since: datetime | None = Field(None, description="ISO 8601; naive times are UTC")
    until: datetime | None = Field(None, description="ISO 8601; naive times are UTC")
    minutes: int | None = Field(None, ge=1, le=525_600,
                                description="The last N minutes (instead of since)")
    q: str | None = Field(None, max_length=100,
                          description="Text in the job id, name or error message")
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(50, ge=1, le=svc.MAX_PER_PAGE)

    @field_validator("status")
    @classmethod
    def _statuses(cls, value):
        if value is None:
            return value
        parts = [p.strip() for p in value.split(",") if p.strip()]
        bad = [p for p in parts if p not in svc.STATUSES]
        if bad:
            raise ValueError(f"unknown status {bad[0]!r}; one of {', '.join(svc.STATUSES)}")
        return ",".join(parts) or None


class WindowQuery(BaseModel):
    minutes: int = Field(1440, ge=1, le=525_600, description="Window: the last N minutes")
    job: str | None = Field(None, max_length=191, description="Only this job id")


class RunPath(BaseModel):
    run_id: int = Field(ge=1, le=MAX_BIG_ID, description="A run id (ops_job_run)")


class JobPath(BaseModel):
    job_id: str = Field(min_length=1, max_length=191, description="The scheduler's job id")


class CommandPath(BaseModel):
    command_id: int = Field(ge=1, le=MAX_ID, description="An action's command id")


class Run(BaseModel):
    id: int
    job_id: str
    name: str
    func: str
    status: str = Field(description="pending, running, succeeded, failed, cancelled, missed")
    origin: str = Field(description="schedule, retry or run_now")
    process: str = Field(description="host:pid of the process that ran it")
    process_alive: bool | None = None
    scheduled_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_ms: float | None
    attempt: int
    retry_of: int | None = Field(description="The run this one retried")
    error_type: str | None
    error_message: str | None
    progress: float | None = Field(description="0..1, from report_progress()")
    progress_message: str | None
    cancel_requested: bool
    note: str | None = Field(description="e.g. that a cancel came too late")


class RunDetail(Run):
    model_config = example({'args': None,
                            'attempt': 1,
                            'can_cancel': True,
                            'can_retry': False,
                            'cancel_requested': False,
                            'duration_ms': None,
                            'error_message': None,
                            'error_type': None,
                            'finished_at': None,
                            'func': 'dashapp.demo.jobs:rebuild_search_index',
                            'id': 10,
                            'job_id': 'search_index',
                            'name': 'Rebuild search index',
                            'note': None,
                            'origin': 'schedule',
                            'process': 'vm:22070',
                            'process_alive': True,
                            'progress': None,
                            'progress_message': None,
                            'retries': [],
                            'retry_of': None,
                            'scheduled_at': '2026-11-26T22:37:17.916+00:00',
                            'started_at': None,
                            'status': 'pending',
                            'traceback': None})
    args: dict | None = Field(description="Arguments as recorded, secrets redacted")
    traceback: str | None
    retries: list[dict] = Field(description="Runs that retried this one")
    can_retry: bool
    can_cancel: bool


class RunsResponse(BaseModel):
    model_config = example({'kind': 'active', 'page': 1, 'per_page': 50, 'runs': [], 'total': 0})
    runs: list[Run]
    total: int
    page: int
    per_page: int
    kind: str


class ScheduledJob(BaseModel):
    job_id: str
    name: str
    func: str
    trigger: str
    next_run_time: str | None = Field(description="null when paused")
    paused: bool
    process: str
    wrapped: bool = Field(description="false: recorded from scheduler events only "
                                      "(persistent job store): no progress, no cancel")
    run_id: int | None = Field(description="The pending run's id (cancel it by this id)")
    updated_at: str | None


class PendingResponse(BaseModel):
    model_config = example({'jobs': [{'func': 'dashapp.demo.jobs:reconcile_payments',
                                      'job_id': 'reconcile_payments',
                                      'name': 'Reconcile payments',
                                      'next_run_time': '2026-11-26T22:34:57.916+00:00',
                                      'paused': False,
                                      'process': 'vm:22070',
                                      'run_id': 9,
                                      'trigger': 'interval[0:00:45]',
                                      'updated_at': '2026-11-26T22:34:45.925+00:00',
                                      'wrapped': True}]})
    jobs: list[ScheduledJob]


class SummaryResponse(BaseModel):
    model_config = example({'cancelled': 0,
                            'failed': 0,
                            'minutes': 1440,
                            'missed': 0,
                            'paused': 0,
                            'processes': 1,
                            'running': 0,
                            'scheduled': 6,
                            'stale_running': 0,
                            'succeeded': 5})
    minutes: int
    running: int
    stale_running: int = Field(description="Running rows of processes no longer seen")
    scheduled: int
    paused: int
    processes: int
    succeeded: int
    failed: int
    cancelled: int
    missed: int


class TimelineResponse(BaseModel):
    model_config = example({'minutes': 1440,
                            'runs': [{'duration_ms': 573.8741,
                                      'id': 1,
                                      'job_id': 'cache_refresh',
                                      'name': 'Refresh product cache',
                                      'status': 'succeeded',
                                      'time': '2026-11-26T22:34:00.513+00:00'}]})
    minutes: int
    runs: list[dict] = Field(description="time, job_id, name, status, duration_ms, id")


# One command, as the job routes answer it.
_COMMAND_EXAMPLE = {'action': 'pause',
                     'claimed_at': '2026-11-26T22:34:59.992+00:00',
                     'claimed_by': 'vm:22070',
                     'created_at': '2026-11-26T22:34:59.541+00:00',
                     'finished_at': '2026-11-26T22:35:00.004+00:00',
                     'id': 1,
                     'job_id': 'cache_refresh',
                     'message': 'Paused: no run starts until it is resumed.',
                     'outcome': 'ok',
                     'process': 'vm:22070',
                     'requested_by': 'admin',
                     'result_run_id': None,
                     'run_id': None,
                     'status': 'done'}


class Command(BaseModel):
    model_config = example(_COMMAND_EXAMPLE)
    id: int
    action: str
    job_id: str
    run_id: int | None
    process: str | None
    requested_by: str
    created_at: str | None
    claimed_by: str | None
    claimed_at: str | None
    finished_at: str | None
    status: str = Field(description="queued, running, done or expired")
    outcome: str | None = Field(description="ok or failed, once done")
    message: str | None
    result_run_id: int | None


class ActionResponse(BaseModel):
    model_config = example({'action': 'pause',
                            'commands': [_COMMAND_EXAMPLE],
                            'job_id': 'cache_refresh',
                            'message': 'Paused: no run starts until it is resumed.',
                            'outcome': 'ok',
                            'run_id': None,
                            'status': 'done'})
    action: str
    job_id: str
    status: str = Field(description="done, or queued when the host has not answered yet")
    outcome: str | None = Field(description="ok or failed (done only)")
    message: str
    run_id: int | None = Field(description="The run started (retry, run_now) or acted on")
    commands: list[Command]


# ----------------------------------------------------------------- helpers

def _store():
    return current_app.extensions["ops"].store


def _failure(exc: Exception):
    """Service refusals and store outages as the API's error shape."""
    if isinstance(exc, svc.JobsError):
        return error(exc.status, exc.code, str(exc))
    return store_unavailable(exc, "jobs API")


_guarded = guarded((svc.JobsError, SQLAlchemyError), _failure)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _runs(kind: str, query: RunsQuery):
    since = _utc(query.since)
    if query.minutes is not None:
        since = datetime.now(timezone.utc) - timedelta(minutes=query.minutes)
    return svc.list_runs(_store(), kind, statuses=query.status.split(",") if query.status
                         else None, job_id=query.job, since=since, until=_utc(query.until),
                         page=query.page, per_page=query.per_page, search=query.q)


def _act(action: str, **target):
    result = svc.perform(_store(), action, actor=current_actor(), **target)
    return result, 200 if result["status"] == "done" else 202


# ------------------------------------------------------------------ routes

@bp.get("/active", responses={200: RunsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def active(query: RunsQuery):
    """Runs running now, with their progress; `process_alive` false marks a
    run whose process stopped reporting (it is failed after 2 minutes)."""
    return _runs("active", query)


@bp.get("/pending", responses={200: PendingResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def pending():
    """The next run of every job the live host processes hold (paused jobs
    last, with no next run). `run_id` is the pending run, which
    POST /api/jobs/<run_id>/cancel skips."""
    return {"jobs": svc.schedule(_store())}


@bp.get("/completed", responses={200: RunsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def completed(query: RunsQuery):
    """Runs that ended without an error (succeeded, cancelled, missed), newest
    first; paged, filterable by job, status, time and text."""
    return _runs("completed", query)


@bp.get("/failed", responses={200: RunsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def failed(query: RunsQuery):
    """Failed runs, newest first; paged, filterable by job, time and text."""
    return _runs("failed", query)


@bp.get("/runs", responses={200: RunsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def runs(query: RunsQuery):
    """Every run in any status (the page's history), newest first."""
    return _runs("all", query)


@bp.get("/summary", responses={200: SummaryResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def summary(query: WindowQuery):
    """Runs per final status in the window, plus running, scheduled and
    paused jobs now."""
    return svc.counts(_store(), query.minutes)


@bp.get("/timeline", responses={200: TimelineResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def timeline(query: WindowQuery):
    """Finished runs in the window (at most 5,000, oldest first): what the
    page's durations and failures chart draws."""
    return {"minutes": query.minutes, "runs": svc.timeline(_store(), query.minutes, query.job)}


@bp.get("/commands/<int:command_id>", responses={200: Command, **ERRORS},
        security=SECURITY)
@requires("viewer")
@_guarded
def command(path: CommandPath):
    """Follow an action: queued, running (claimed by a host), done (with its
    outcome) or expired (no host claimed it within 60 s)."""
    return svc.get_command(_store(), path.command_id)


@bp.get("/<int:run_id>", responses={200: RunDetail, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def get_run(path: RunPath):
    """One run: times, status, redacted arguments, error and traceback, the
    runs that retried it, and whether it can be retried or cancelled now."""
    return svc.get_run(_store(), path.run_id)


@bp.post("/<int:run_id>/retry", responses={200: ActionResponse, 202: ActionResponse,
                                            **ACTION_ERRORS}, security=SECURITY)
@requires("operator")
@_guarded
def retry(path: RunPath):
    """Run a failed, cancelled or missed run again as a new attempt linked to
    it (`retry_of`), with the same real arguments (the host keeps them; the
    stored ones are redacted). Operator; audited. 409 `not_retryable` for
    other statuses, `no_live_process` when no live host holds the job."""
    return _act("retry", run_id=path.run_id)


@bp.post("/<int:run_id>/cancel", responses={200: ActionResponse, 202: ActionResponse,
                                             **ACTION_ERRORS}, security=SECURITY)
@requires("operator")
@_guarded
def cancel(path: RunPath):
    """Cancel a run. Pending: the host skips that run (the job's next run
    follows its schedule) and records it `cancelled`. Running: the host
    asks it to stop, `dashapp.jobs.cancelled()` returns True inside it, and
    its final status says what happened (`cancelled` if it stopped,
    `succeeded` with a note if it finished without checking). Operator;
    audited. 409 when the run has ended or its process is gone."""
    return _act("cancel", run_id=path.run_id)


@bp.post("/scheduled/<path:job_id>/pause", responses={200: ActionResponse, 202: ActionResponse,
                                                      **ACTION_ERRORS}, security=SECURITY)
@requires("operator")
@_guarded
def pause(path: JobPath):
    """Pause a scheduled job in every live process that holds it. Operator;
    audited."""
    return _act("pause", job_id=path.job_id)


@bp.post("/scheduled/<path:job_id>/resume", responses={200: ActionResponse, 202: ActionResponse,
                                                       **ACTION_ERRORS}, security=SECURITY)
@requires("operator")
@_guarded
def resume(path: JobPath):
    """Resume a paused job (its next run follows its trigger from now).
    Operator; audited."""
    return _act("resume", job_id=path.job_id)


@bp.post("/scheduled/<path:job_id>/run-now", responses={200: ActionResponse,
                                                        202: ActionResponse,
                                                        **ACTION_ERRORS},
         security=SECURITY)
@requires("operator")
@_guarded
def run_now(path: JobPath):
    """Run a job once now, with its current arguments, in one process that
    holds it; its schedule is unchanged (works for paused jobs too). Refused
    (outcome failed) while the job already runs max_instances times.
    Operator; audited."""
    return _act("run_now", job_id=path.job_id)


tidy_docs(bp)
