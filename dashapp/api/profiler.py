"""/api/profiler: start and stop profiling sessions, read and export results.

Thin: validate, call dashapp.services.profiler (the same functions the
Profiler page calls), jsonify. Start and stop are rows in the store; the
agents of the monitored processes receive them in the answer to their next
batch (within about a second), sample their requests (pyinstrument when the
app has it, else the agent's standard-library sampler) and trace memory
with tracemalloc, and send their parts when the session ends. Results are
available once the session is `done`.
"""
from __future__ import annotations

import logging
from typing import Literal

from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, MAX_ID, SECURITY, ErrorBody,
                                current_actor, error, example, file_response, guarded,
                                store_unavailable, tidy_docs)
from dashapp.security.roles import requires
from dashapp.services import profiler as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_profiler", __name__, url_prefix="/api/profiler",
                  abp_tags=[Tag(name="profiler", description="Profiling sessions: CPU hotspots, memory, exports")])

ERRORS = {**INPUT_ERRORS, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody}


SPEEDSCOPE_EXAMPLE = {
    "$schema": "https://www.speedscope.app/file-format-schema.json",
    "shared": {"frames": [{"name": "list_orders", "file": "shop.py", "line": 88}]},
    "profiles": [{"type": "sampled", "name": "vm:17870", "unit": "seconds",
                  "startValue": 0, "endValue": 1.2, "samples": [[0]], "weights": [1.2]}],
    "name": "Ops Console profile #12"}


class StartBody(BaseModel):
    model_config = example({'duration': 60, 'endpoint': '/api/orders*', 'interval': 0.001, 'memory': True})
    duration: float | None = Field(None, ge=1, le=svc.MAX_DURATION,
                                   description="Seconds to profile (1-3600); omitted: until "
                                               "stopped (at most one hour)")
    endpoint: str | None = Field(None, max_length=255,
                                 description="Only requests whose route rule or path matches "
                                             "this glob, e.g. /api/orders* ; omitted: all")
    interval: float | None = Field(None, ge=svc.MIN_INTERVAL, le=svc.MAX_INTERVAL,
                                   description="Seconds between samples (0.0001-0.1; "
                                               "default 0.001)")
    memory: bool = Field(True, description="Trace allocations with tracemalloc too")
    app: str | None = Field(None, max_length=64,
                            description="Only this application's processes (its ingest "
                                        "key's name); omitted: every monitored application")


class StopBody(BaseModel):
    model_config = example({'id': 12})
    id: int | None = Field(None, ge=1, le=MAX_ID, description="The session; omitted: the open one")


class SessionPath(BaseModel):
    id: int = Field(ge=1, le=MAX_ID, description="Session id")


class ListQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500, description="Newest sessions first, this many")


class CpuQuery(BaseModel):
    limit: int = Field(100, ge=1, le=10_000, description="Hotspot rows")
    tree: bool = Field(False, description="Include the merged call tree")


class MemoryQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500, description="Sites per list")


class ExportQuery(BaseModel):
    format: Literal["speedscope", "html", "csv"] = Field(
        "speedscope", description="speedscope JSON (open in speedscope.app), a "
                                  "self-contained HTML summary, or CSV of the hotspots")


class ProcessPart(BaseModel):
    process: str
    status: str
    requests: int
    samples: int
    profiled_seconds: float
    overhead_per_request_ms: float | None
    error: str | None


class SessionResponse(BaseModel):
    model_config = example({'created_at': '2026-11-26T22:34:48.119522+00:00',
                            'duration_requested': 2.0,
                            'elapsed_seconds': None,
                            'ended_at': None,
                            'endpoint': '/products*',
                            'error': None,
                            'id': 1,
                            'app': '',
                            'interval': 0.001,
                            'memory': True,
                            'overhead_per_request_ms': None,
                            'processes': [],
                            'profiled_seconds': 0,
                            'requested_by': 'admin',
                            'requests': 0,
                            'samples': 0,
                            'started_at': None,
                            'status': 'requested',
                            'stopped_by': None})
    id: int
    status: str = Field(description="requested, running, stopping, done or failed")
    app: str = Field("", description="The application profiled; '' for every application")
    requested_by: str
    stopped_by: str | None
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    duration_requested: float | None
    elapsed_seconds: float | None
    interval: float
    endpoint: str | None
    memory: bool
    error: str | None
    requests: int
    samples: int
    profiled_seconds: float = Field(description="Time spent in the profiled requests")
    overhead_per_request_ms: float | None = Field(
        description="Added cost of profiling per request (profiler start/stop and merge)")
    processes: list[ProcessPart]


class SessionsResponse(BaseModel):
    model_config = example({'current': None, 'sessions': []})
    sessions: list[SessionResponse]
    current: SessionResponse | None


class CpuResponse(BaseModel):
    model_config = example({'hotspots': [{'file': '<built-in>',
                                          'function': 'socket.recv',
                                          'line': 0,
                                          'location': '<built-in>:0',
                                          'self_seconds': 0.0333,
                                          'self_share': 0.5708,
                                          'total_seconds': 0.0333,
                                          'total_share': 0.5708}],
                            'id': 1,
                            'total_seconds': 0.0583,
                            'tree': None,
                            'truncated': False})
    id: int
    total_seconds: float
    truncated: bool = Field(description="The call tree hit its size bound in some process")
    hotspots: list[dict] = Field(description="function, file, line, location, self_seconds, "
                                             "total_seconds, self_share, total_share")
    tree: dict | None = Field(None, description="function, file, line, self, total, children")


class ProfileMemoryResponse(BaseModel):
    model_config = example({'by_count': [{'count': 115,
                                          'file': '/root/.pyenv/versions/3.11.7/lib/python3.11/dataclasses.py',
                                          'line': 433,
                                          'location': '/root/.pyenv/versions/3.11.7/lib/python3.11/dataclasses.py:433',
                                          'size': 11558}],
                            'by_size': [{'count': 33,
                                         'file': '/work/main/.venv/lib/python3.11/site-packages/sqlalchemy/sql/schema.py',
                                         'line': 2395,
                                         'location': '/work/main/.venv/lib/python3.11/site-packages/sqlalchemy/sql/schema.py:2395',
                                         'size': 14080}],
                            'enabled': True,
                            'growth': [{'count': 33,
                                        'count_diff': 33,
                                        'file': '/work/main/.venv/lib/python3.11/site-packages/sqlalchemy/sql/schema.py',
                                        'line': 2395,
                                        'location': '/work/main/.venv/lib/python3.11/site-packages/sqlalchemy/sql/schema.py:2395',
                                        'size': 14080,
                                        'size_diff': 14080}],
                            'growth_total': 237577,
                            'id': 1,
                            'note': None,
                            'peak': 10762396,
                            'total_size': 237577})
    id: int
    enabled: bool
    note: str | None
    by_size: list[dict]
    by_count: list[dict]
    growth: list[dict] = Field(description="Growth between start and stop, by line")
    total_size: int
    growth_total: int
    peak: int


def _store():
    return current_app.extensions["ops"].store


def _failure(exc: Exception):
    if isinstance(exc, svc.SessionNotFound):
        return error(404, "not_found", str(exc))
    if isinstance(exc, svc.SessionBusy):
        return error(409, "session_open", str(exc))
    if isinstance(exc, svc.NotFinished):
        return error(409, "not_finished", str(exc))
    if isinstance(exc, ValueError):
        return error(400, "invalid_request", str(exc))
    return store_unavailable(exc, "profiler API")


_guarded = guarded((SQLAlchemyError, OSError, svc.ProfilerError, ValueError), _failure)


@bp.post("/start", responses={201: SessionResponse, **ERRORS}, security=SECURITY)
@requires("operator")
@_guarded
def start(body: StartBody):
    """Start a profiling session (operator; audited). 409 while one is open.

    The monitored processes join within about a second; `status` goes
    requested -> running -> stopping -> done (or failed when no process
    took part)."""
    details = body.model_dump()
    actor = current_actor()
    result = svc.audited(_store(), actor, "profiler_start", "profiler", details,
                         lambda: svc.start_session(_store(), actor=actor, **details))
    return result, 201


@bp.post("/stop", responses={200: SessionResponse, **ERRORS}, security=SECURITY)
@requires("operator")
@_guarded
def stop(body: StopBody):
    """Stop the open session (or the one named); processes write their parts
    within about a second. Operator; audited. 404 when none is open."""
    target = f"profile:{body.id}" if body.id else "profiler"
    actor = current_actor()
    return svc.audited(_store(), actor, "profiler_stop", target, {"id": body.id},
                       lambda: svc.stop_session(_store(), actor=actor, session_id=body.id))


class ProfileDeletedResponse(BaseModel):
    model_config = example({'deleted': True, 'id': 1})
    id: int
    deleted: bool


@bp.delete("/<int:id>", responses={200: ProfileDeletedResponse, **ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def delete(path: SessionPath):
    """Delete an ended session and its results (admin; audited). 409 while it
    is open: stop it first."""
    return svc.audited(_store(), current_actor(), "profiler_delete", f"profile:{path.id}",
                       {"id": path.id}, lambda: svc.delete_session(_store(), path.id))


@bp.get("/sessions", responses={200: SessionsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def sessions(query: ListQuery):
    """Earlier and current sessions, newest first; `current` is the open one."""
    rows = svc.list_sessions(_store(), query.limit)
    current = next((r for r in rows if r["status"] in svc.OPEN), None)
    return {"sessions": rows, "current": current}


@bp.get("/<int:id>/results", responses={200: SessionResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def results(path: SessionPath):
    """Summary: status, duration, requests, samples, added cost per request,
    and each process's part."""
    return svc.results(_store(), path.id)


@bp.get("/<int:id>/cpu", responses={200: CpuResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def cpu(path: SessionPath, query: CpuQuery):
    """CPU hotspots by self time: function, file:line, self and total seconds,
    share of all sampled time. 409 until the session has ended."""
    data = svc.cpu(_store(), path.id, query.limit)
    if not query.tree:
        data["tree"] = None
    return data


@bp.get("/<int:id>/memory", responses={200: ProfileMemoryResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def memory(path: SessionPath, query: MemoryQuery):
    """Top allocation sites by size and by count at stop, and the growth
    between start and stop (tracemalloc, by line). 409 until it has ended."""
    return svc.memory(_store(), path.id, query.limit)


@bp.get("/<int:id>/export", responses={
    200: file_response("speedscope JSON, an HTML summary or CSV, by `format`",
                       "application/json", "text/html", "text/csv",
                       examples={"application/json": SPEEDSCOPE_EXAMPLE,
                                 "text/csv": "function,file,line,self_s,total_s\n"
                                             "list_orders,shop.py,88,0.41,1.20\n"}),
    **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def export(path: SessionPath, query: ExportQuery):
    """Download: speedscope JSON, a self-contained HTML summary, or CSV."""
    content, mimetype, filename = svc.export(_store(), path.id, query.format)
    return Response(content, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


tidy_docs(bp)

__all__ = ["bp"]
