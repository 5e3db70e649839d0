"""/api/backup: backups of the monitored application's databases, restores,
restore drills and schedules.

Thin: validate, call dashapp.services.backups (the same functions the
Backups page calls), audit, jsonify. Roles: viewer reads; operator creates
backups and runs drills; admin restores, deletes and changes schedules.
Backups and restores run inside the request (a large PostgreSQL database can
take minutes: raise your proxy's timeout, or call it from a job).
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from flask import current_app, send_file
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, MAX_ID, SECURITY, ErrorBody,
                                current_actor, error, example, file_response, guarded,
                                store_unavailable, tidy_docs)
from dashapp.config import INSTANCE_NAME
from dashapp.security.roles import requires
from dashapp.services import backups as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_backup", __name__, url_prefix="/api/backup",
                  abp_tags=[Tag(name="backups", description="Database backups, restores, drills, schedules")])

ERRORS = {**INPUT_ERRORS, 404: ErrorBody, 503: ErrorBody}
CHANGE_ERRORS = {**ERRORS, 409: ErrorBody, 422: ErrorBody, 502: ErrorBody}
TARGET = Field(min_length=1, max_length=32, pattern=INSTANCE_NAME.pattern,
               description="A target name from OPS_BACKUP_TARGETS (GET /api/backup/targets)")
NOTE = Field("", max_length=500, description="Why: kept with the record and in the audit trail")


# ------------------------------------------------------------------ models

class BackupPath(BaseModel):
    backup_id: int = Field(ge=1, le=MAX_ID, description="The backup's id")


class ListQuery(BaseModel):
    target: str | None = Field(None, max_length=32, description="Only this target")
    status: Literal["running", "succeeded", "failed", "deleted"] | None = Field(
        None, description="Only this status (default: every status but deleted)")
    kind: Literal["manual", "scheduled", "safety"] | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_ID, description="Skip this many (newest first)")


class RestoresQuery(BaseModel):
    target: str | None = Field(None, max_length=32)
    limit: int = Field(50, ge=1, le=1000)


class CreateBody(BaseModel):
    model_config = example({'target': 'shop', 'note': 'Before the 2.4 upgrade'})
    target: str = TARGET
    note: str = NOTE


class RestoreBody(BaseModel):
    model_config = example({'confirm': 'shop', 'note': 'Undo the bad migration of 26 Nov'})
    confirm: str = Field(max_length=32, description="The target's name, typed: a restore "
                                                    "replaces its whole content")
    note: str = NOTE


class ScheduleBody(BaseModel):
    model_config = example({'target': 'shop',
                            'cron': '0 3 * * *',
                            'keep_last': 14,
                            'keep_days': None,
                            'enabled': True})
    target: str = TARGET
    cron: str = Field(min_length=1, max_length=100,
                      description="5-field crontab expression in UTC, e.g. '0 3 * * *'")
    keep_last: int | None = Field(None, ge=1, le=100_000,
                                  description="Keep the newest N scheduled backups")
    keep_days: int | None = Field(None, ge=1, le=100_000,
                                  description="Keep scheduled backups younger than D days")
    enabled: bool = True


class Verify(BaseModel):
    at: datetime | None = None
    ok: bool | None = None
    message: str | None = None
    tables: int | None = None
    rows: int | None = None


class BackupResponse(BaseModel):
    model_config = example({'age_s': 0,
                            'created_by': 'admin',
                            'deleted_at': None,
                            'deleted_by': None,
                            'duration_ms': 222,
                            'engine': 'sqlite',
                            'error': None,
                            'file': 'shop-20261126T223453Z-1-manual.sqlite.gz',
                            'finished_at': '2026-11-26T22:34:53.676472+00:00',
                            'id': 1,
                            'kind': 'manual',
                            'note': 'Before the 2.4 upgrade',
                            'restores': [],
                            'sha256': '24684eae5d5250be757a52238c1e0c5eec7804a2ebde191cfde7787c68795499',
                            'size': 283966,
                            'started_at': '2026-11-26T22:34:53.453616+00:00',
                            'status': 'succeeded',
                            'target': 'shop',
                            'verify': None})
    id: int
    target: str
    engine: str
    kind: str = Field(description="manual, scheduled or safety (taken before a restore)")
    status: str = Field(description="running, succeeded, failed or deleted")
    file: str | None
    size: int | None = Field(description="Bytes on disk (compressed)")
    sha256: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    age_s: int
    created_by: str
    note: str
    error: str | None
    deleted_at: datetime | None
    deleted_by: str | None
    verify: Verify | None = Field(description="The last restore drill's result")
    restores: list[dict] | None = Field(None, description="Restores from this backup")


class BackupsResponse(BaseModel):
    model_config = example({'backups': [], 'limit': 100, 'offset': 0, 'total': 0})
    backups: list[BackupResponse]
    total: int
    limit: int
    offset: int


class RestoreResponse(BaseModel):
    model_config = example({'backup_id': 1,
                            'duration_ms': 389,
                            'error': None,
                            'finished_at': '2026-11-26T22:34:57.373569+00:00',
                            'id': 1,
                            'note': 'Undo the bad migration',
                            'requested_by': 'admin',
                            'safety_backup_id': 2,
                            'started_at': '2026-11-26T22:34:56.984058+00:00',
                            'status': 'succeeded',
                            'target': 'shop'})
    id: int
    backup_id: int
    target: str
    safety_backup_id: int | None = Field(description="The backup of the database taken "
                                                     "just before; restore it to undo")
    status: str
    requested_by: str
    note: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    error: str | None


class RestoresResponse(BaseModel):
    model_config = example({'restores': []})
    restores: list[RestoreResponse]


class VerifyResponse(BaseModel):
    model_config = example({'id': 1,
                            'message': 'Restored into a scratch database: integrity check passed, 5 '
                                       'tables, 12,589 rows.',
                            'ok': True,
                            'rows': 12589,
                            'tables': 5})
    id: int
    ok: bool
    message: str
    tables: int | None
    rows: int | None


class ScheduleResponse(BaseModel):
    model_config = example({'cron': '0 3 * * *',
                            'enabled': True,
                            'keep_days': None,
                            'keep_last': 14,
                            'last_backup_id': None,
                            'last_run_at': None,
                            'next_runs': ['2026-11-27T03:00:00+00:00'],
                            'target': 'shop',
                            'updated_at': '2026-11-26T22:34:56.962604+00:00',
                            'updated_by': 'admin'})
    target: str
    cron: str
    keep_last: int | None
    keep_days: int | None
    enabled: bool
    updated_by: str
    updated_at: datetime
    last_run_at: datetime | None
    last_backup_id: int | None
    next_runs: list[datetime] = Field(description="The next 3 run times (UTC)")


class SchedulesResponse(BaseModel):
    model_config = example({'schedules': []})
    schedules: list[ScheduleResponse]


class TargetsResponse(BaseModel):
    model_config = example({'targets': [{'due_at': None,
                                         'engine': 'sqlite',
                                         'location': '/tmp/h4capfhbmoolm/instance/demo/shop.db',
                                         'name': 'shop',
                                         'newest_good_age_s': None,
                                         'newest_good_at': None,
                                         'schedule': None,
                                         'stale': False,
                                         'tools_ok': True}],
                            'tools': {'pg_dump': True, 'pg_restore': True}})
    targets: list[dict] = Field(description="name, engine, location (no credentials), "
                                            "tools_ok, schedule, newest_good_at, "
                                            "newest_good_age_s, stale, due_at")
    tools: dict[str, bool] = Field(description="pg_dump / pg_restore found on PATH")


# ----------------------------------------------------------------- helpers

def _ops():
    return current_app.extensions["ops"]


def _failure(exc: Exception):
    """Service errors become the API's error shape (never a 500)."""
    if isinstance(exc, svc.BackupError):
        return error(exc.status, exc.code, str(exc))
    if isinstance(exc, ValueError):
        field = str(exc).split(":", 1)[0] if ":" in str(exc) else "body"
        return error(400, "invalid_request", str(exc), fields=[
            {"field": field, "message": str(exc)}])
    if isinstance(exc, SQLAlchemyError):
        return store_unavailable(exc, "backup API")
    logger.warning("backup API: file error: %s", exc)
    return error(503, "backup_folder_unavailable",
                 f"The backup folder cannot be used: {type(exc).__name__}: "
                 f"{exc.strerror or exc}")


_guarded = guarded((svc.BackupError, ValueError, SQLAlchemyError, OSError), _failure)


def _audit(action: str, target: str, **details):
    return svc.audited(_ops().store, actor=current_actor(), action=action,
                       target=f"backup:{target}"[:255], details=details)


# ------------------------------------------------------------------ routes

@bp.get("/targets", responses={200: TargetsResponse, **INPUT_ERRORS, 503: ErrorBody},
        security=SECURITY)
@requires("viewer")
@_guarded
def targets():
    """The databases that may be backed up (names, engines, where, without
    credentials), their schedule, newest good backup, and `stale` when that
    backup is older than the schedule promises."""
    ops = _ops()
    return {"targets": svc.target_overview(ops.store, ops.settings),
            "tools": svc.tools_status()}


@bp.post("/create", responses={201: BackupResponse, **CHANGE_ERRORS}, security=SECURITY)
@requires("operator")
@_guarded
def create(body: CreateBody):
    """Back up a target now: a compressed file in OPS_BACKUP_DIR, its sha256
    and size recorded with who and why. Operator; audited. 409 when the
    target is already being backed up or restored; 503 `tool_missing` when
    pg_dump is not installed."""
    ops = _ops()
    with _audit("backup_create", body.target, note=body.note, kind="manual") as info:
        result = svc.create_backup(ops.store, ops.settings, body.target, actor=current_actor(),
                                   note=body.note)
        info["backup_id"] = result["id"]
    return result, 201


@bp.get("/list", responses={200: BackupsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def list_backups(query: ListQuery):
    """Backups, newest first (deleted ones only with status=deleted)."""
    return svc.list_backups(_ops().store, target=query.target, status=query.status,
                            kind=query.kind, limit=query.limit, offset=query.offset)


@bp.get("/restores", responses={200: RestoresResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def restores(query: RestoresQuery):
    """Restores, newest first: who, when, from which backup, the safety
    backup taken before, the outcome and why it failed."""
    return {"restores": svc.list_restores(_ops().store, target=query.target,
                                          limit=query.limit)}


@bp.get("/schedule", responses={200: SchedulesResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def get_schedule():
    """Every target's schedule with its next three run times (UTC)."""
    return {"schedules": svc.list_schedules(_ops().store)}


@bp.post("/schedule", responses={200: ScheduleResponse, **CHANGE_ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def post_schedule(body: ScheduleBody):
    """Create or replace a target's schedule: a 5-field cron expression (UTC)
    run by the console's scheduler, and retention for its scheduled backups
    (keep the newest `keep_last` and/or those younger than `keep_days`).
    Admin; audited."""
    ops = _ops()
    with _audit("backup_schedule", body.target, cron=body.cron, keep_last=body.keep_last,
                keep_days=body.keep_days, enabled=body.enabled):
        return svc.save_schedule(ops.store, ops.settings, target=body.target, cron=body.cron,
                                 keep_last=body.keep_last, keep_days=body.keep_days,
                                 enabled=body.enabled, actor=current_actor())


@bp.get("/<int:backup_id>", responses={200: BackupResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def get_backup(path: BackupPath):
    """One backup's metadata, its last drill and the restores made from it."""
    return svc.get_backup(_ops().store, path.backup_id)


@bp.get("/<int:backup_id>/download", responses={
    200: file_response("The backup file", "application/octet-stream", binary=True),
    206: file_response("The requested byte range", "application/octet-stream",
                       binary=True),
    304: {"description": "Not modified (If-None-Match / If-Modified-Since)"},
    **ERRORS, 409: ErrorBody},
        security=SECURITY)
@requires("viewer")
@_guarded
def download(path: BackupPath):
    """The backup file, streamed from disk (conditional requests and ranges
    supported). 404 when the file is gone."""
    ops = _ops()
    with ops.store.session() as sess:
        row = sess.get(svc.BackupHistory, path.backup_id)
    if row is None:
        raise svc.BackupNotFound(f"No backup #{path.backup_id}.")
    if row.status != "succeeded":
        raise svc.NotRestorable(f"Backup #{row.id} is {row.status}; it has no file.")
    file = svc.file_path(ops.settings, row.file)
    if not file.is_file():
        raise svc.FileMissing(f"The file of backup #{row.id} is missing from the backup "
                              "folder.")
    return send_file(file, as_attachment=True, download_name=row.file, conditional=True,
                     mimetype="application/octet-stream", etag=row.sha256)


@bp.post("/<int:backup_id>/restore", responses={200: RestoreResponse, **CHANGE_ERRORS},
         security=SECURITY)
@requires("admin")
@_guarded
def restore(path: BackupPath, body: RestoreBody):
    """Restore a backup into its target. `confirm` must be the target's name.

    Never loses data: the file's sha256 is checked first (409
    `checksum_mismatch`), a safety backup of the current database is taken,
    then the restore is all-or-nothing (SQLite: one write transaction on the
    live file; PostgreSQL: pg_restore --single-transaction). On failure (422
    `restore_failed`) the database is exactly as before and the message says
    why. Admin; audited."""
    ops = _ops()
    row = svc.get_backup(ops.store, path.backup_id)
    if body.confirm != row["target"]:
        return error(400, "invalid_request",
                     f"confirm: type the target's name ({row['target']!r}) to restore",
                     fields=[{"field": "confirm", "message": "must be the target's name"}])
    with _audit("backup_restore", row["target"], backup_id=row["id"],
                note=body.note) as info:
        result = svc.restore_backup(ops.store, ops.settings, path.backup_id, actor=current_actor(),
                                    note=body.note)
        info["safety_backup_id"] = result["safety_backup_id"]
        info["restore_id"] = result["id"]
    return result


@bp.post("/<int:backup_id>/verify", responses={200: VerifyResponse, **CHANGE_ERRORS},
         security=SECURITY)
@requires("operator")
@_guarded
def verify(path: BackupPath):
    """A restore drill: restore into a scratch database (never the target),
    run the integrity check, count tables and rows; the result is recorded
    on the backup. A damaged backup answers 200 with ok false. Operator;
    audited."""
    ops = _ops()
    row = svc.get_backup(ops.store, path.backup_id)
    with _audit("backup_verify", row["target"], backup_id=row["id"]) as info:
        result = svc.verify_backup(ops.store, ops.settings, path.backup_id)
        info["ok"] = result["ok"]
    return result


@bp.delete("/<int:backup_id>", responses={200: BackupResponse, **CHANGE_ERRORS},
           security=SECURITY)
@requires("admin")
@_guarded
def delete(path: BackupPath):
    """Delete a backup's file; its record stays (status deleted, by whom).
    Admin; audited."""
    ops = _ops()
    row = svc.get_backup(ops.store, path.backup_id)
    with _audit("backup_delete", row["target"], backup_id=row["id"], file=row["file"]):
        return svc.delete_backup(ops.store, ops.settings, path.backup_id, actor=current_actor())


tidy_docs(bp)
