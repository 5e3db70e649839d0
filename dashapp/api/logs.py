"""/api/logs: log files and captured records: sources, tail, filter, stats,
export and a live stream (Server-Sent Events).

Thin: validate, call dashapp.services.logs (the same functions the Logs page
calls), jsonify. `source` is "captured" (records monitor() stored) or a log
file: its path (absolute, or relative to one of OPS_LOG_DIRS) as listed by
GET /api/logs/sources. A path outside the configured folders (or, with
OPS_LOG_DIRS unset, a file OPS_LOG_FILES does not name) is refused with 400
`outside_log_folders`, a file with more than one hard link with 400
`hard_linked`; reading is for every signed-in role (viewer).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Literal

from flask import Response, current_app, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, SECURITY, ErrorBody, current_actor, error,
                                example, guarded, store_unavailable, tidy_docs)
from dashapp.security.roles import requires
from dashapp.services import logs as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_logs", __name__, url_prefix="/api/logs",
                  abp_tags=[Tag(name="logs", description="Log files and captured records: tail, filter, stats, live stream")])

ERRORS = {**INPUT_ERRORS, 404: ErrorBody, 503: ErrorBody}
STREAM_ERRORS = {**ERRORS, 429: ErrorBody}
EXPORT_EXAMPLE = {"time": "2026-11-26T22:31:53.282+00:00", "level": "ERROR",
                  "logger": "shop.payments", "request_id": "360aa0dd6f000083",
                  "message": "payment gateway timed out after 2000 ms",
                  "extra": {"process": "vm:17870"}}
SSE_EVENT = {"type": "object", "description": "One event of the stream", "properties": {
    "event": {"type": "string", "description": "hello, reset, or absent for a record"},
    "data": {"type": "string", "description": "JSON: a Record, or the hello/reset details"},
    "id": {"type": "string", "description": "Position to resume from (Last-Event-ID)"},
    "retry": {"type": "integer"}}}
SOURCE = Field(None, max_length=1024, description=(
    "'captured' or a log file (a path from GET /api/logs/sources, or a name "
    "relative to one of OPS_LOG_DIRS). Default: the first configured file"))


# ------------------------------------------------------------------ models

class FilterFields(BaseModel):
    source: str | None = SOURCE
    level: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z, ]*$",
                              description="Comma-separated levels to keep, e.g. "
                                          "ERROR,CRITICAL (WARN and FATAL accepted)")
    q: str | None = Field(None, max_length=500, description="Text to search for (or a "
                                                           "regular expression with regex=true)")
    regex: bool = Field(False, description="q is a regular expression (Python syntax, "
                                            "run by RE2 in linear time: no look-around "
                                            "or backreferences)")
    case: bool = Field(False, description="Case-sensitive search")
    logger: str | None = Field(None, max_length=255,
                               description="A logger and its children, e.g. demo")
    request_id: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    since: datetime | None = Field(None, description="ISO time; records at or after")
    until: datetime | None = Field(None, description="ISO time; records at or before")


class SourceQuery(BaseModel):
    source: str | None = SOURCE


class TailQuery(FilterFields):
    lines: int = Field(200, ge=1, le=svc.MAX_TAIL,
                       description="How many of the last lines to read (1-5000)")


class FilterQuery(FilterFields):
    cursor: str | None = Field(None, max_length=40,
                               description="The previous page's next_cursor")
    limit: int = Field(100, ge=1, le=svc.MAX_PAGE, description="Records per page (1-1000)")
    rotated: bool = Field(True, description="Go on into the rotated files "
                                            "(name.1, name.2, ...) after the file")


class StatsQuery(FilterFields):
    minutes: int = Field(60, ge=1, le=43200, description="Window: the last N minutes")


class StreamQuery(FilterFields):
    backlog: int = Field(100, ge=0, le=1000,
                         description="Send the last N matching lines first (0: none)")


class ExportQuery(FilterFields):
    format: Literal["json", "txt"] = Field("json")
    limit: int = Field(svc.MAX_EXPORT, ge=1, le=svc.MAX_EXPORT,
                       description="At most this many of the newest matching records")


class Record(BaseModel):
    time: str | None
    level: str | None = Field(description="DEBUG, INFO, WARNING, ERROR or CRITICAL; "
                                          "null for a line that is not a record's start")
    logger: str | None
    message: str
    request_id: str | None
    extra: dict | None = Field(description="Other fields (JSON lines), process")
    offset: int | None = Field(None, description="Files: byte offset of the line")
    file: str | None = Field(None, description="Files: which file (rotated ones too)")
    id: int | None = Field(None, description="Captured records: their id")
    marks: list[list[int]] | None = Field(
        None, description="Stream: where the search matched the message, as "
                          "[start, end] JavaScript string indexes (for highlighting)")


class SourcesResponse(BaseModel):
    model_config = example({'folders': ['/tmp/h4capfhbmoolm/instance/demo/logs'],
                            'sources': [{'kind': 'file',
                                         'modified': '2026-11-26T22:34:42.537305+00:00',
                                         'name': 'shop.log',
                                         'size': 2310,
                                         'source': '/tmp/h4capfhbmoolm/instance/demo/logs/shop.log'}]})
    sources: list[dict] = Field(description="source, kind (file|captured), name, size, "
                                            "modified")
    folders: list[str] = Field(description="The only folders files are read from")


class TailResponse(BaseModel):
    model_config = example({'position': '2172047:2310',
                            'records': [{'extra': None,
                                         'level': 'ERROR',
                                         'logger': 'demo.shop',
                                         'message': 'GET /flaky failed: payment gateway timed out after '
                                                    '2000 ms',
                                         'offset': 0,
                                         'request_id': None,
                                         'time': '2026-11-26T22:34:16.158000+00:00'}],
                            'size': 2310,
                            'source': '/tmp/h4capfhbmoolm/instance/demo/logs/shop.log'})
    source: str
    records: list[Record] = Field(description="Oldest first")
    size: int | None = None
    position: str | int | None = Field(None, description="Where a stream would go on from")


class FilterResponse(BaseModel):
    model_config = example({'files': ['shop.log'],
                            'highlight': None,
                            'next_cursor': None,
                            'records': [{'extra': None,
                                         'file': 'shop.log',
                                         'level': None,
                                         'logger': None,
                                         'message': 'RuntimeError: payment gateway timed out after 2000 '
                                                    'ms',
                                         'offset': 2256,
                                         'request_id': None,
                                         'time': None}],
                            'source': '/tmp/h4capfhbmoolm/instance/demo/logs/shop.log'})
    source: str
    records: list[Record] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass back as cursor; null on the last page")
    partial: bool = Field(False, description="The scan stopped after about 10 s (a slow "
                                             "pattern over a big file): fewer records "
                                             "than limit, go on with next_cursor")
    files: list[str] | None = None
    highlight: dict | None = Field(None, description="The search as a browser RegExp")


class LogStatsResponse(BaseModel):
    model_config = example({'bucket_seconds': 60,
                            'complete': True,
                            'series': [{'count': 3,
                                        'level': 'ERROR',
                                        'time': '2026-11-26T22:34:00+00:00'}],
                            'since': '2026-11-26T21:34:46.535954+00:00',
                            'source': '/tmp/h4capfhbmoolm/instance/demo/logs/shop.log',
                            'top_errors': [{'count': 3,
                                            'last': '2026-11-26T22:34:42.539000+00:00',
                                            'message': 'GET /flaky failed: payment gateway timed out '
                                                       'after # ms'}],
                            'top_loggers': [{'count': 3, 'logger': 'demo.shop'}],
                            'totals': {'CRITICAL': 0, 'DEBUG': 0, 'ERROR': 3, 'INFO': 0, 'WARNING': 0},
                            'until': '2026-11-26T22:34:46.535954+00:00'})
    source: str
    since: str
    until: str
    bucket_seconds: int
    complete: bool = Field(description="False when only the newest 32 MiB of a file "
                                       "were read and the window reaches further back")
    totals: dict
    series: list[dict] = Field(description="time, level, count per bucket")
    top_loggers: list[dict]
    top_errors: list[dict] = Field(description="message (digits as #), count, last")


# ----------------------------------------------------------------- helpers

def _settings():
    return current_app.extensions["ops"].settings


def _store():
    return current_app.extensions["ops"].store


def _slots() -> svc.StreamSlots:
    ext = current_app.extensions
    if "ops_log_streams" not in ext:
        ext["ops_log_streams"] = svc.StreamSlots(_settings().log_max_streams,
                                                 _settings().log_streams_per_user)
    return ext["ops_log_streams"]


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def filters_from(query: FilterFields) -> svc.Filters:
    levels = tuple(p.strip() for p in (query.level or "").split(",") if p.strip())
    bad = [p for p in levels if svc.normalize_level(p) is None]
    if bad:
        raise svc.BadFilter(f"unknown level {bad[0]!r}; use "
                            + ", ".join(svc.LEVELS), "level")
    return svc.Filters(levels=levels, text=query.q or None, regex=query.regex,
                       case_sensitive=query.case, logger=query.logger or None,
                       request_id=query.request_id or None,
                       since=_utc(query.since), until=_utc(query.until))


def _failure(exc: Exception):
    if isinstance(exc, svc.LogAccessError):
        status = 404 if exc.code == "not_found" else 400
        return error(status, exc.code, str(exc), fields=[{"field": exc.field,
                                                          "message": str(exc)}])
    if isinstance(exc, svc.BadFilter):
        return error(400, "invalid_request", f"{exc.field}: {exc}",
                     fields=[{"field": exc.field, "message": str(exc)}])
    if isinstance(exc, svc.TooManyStreams):
        return error(429, "too_many_streams", f"{exc}; close another stream or retry later")
    if isinstance(exc, SQLAlchemyError):
        return store_unavailable(exc, "logs API")
    if isinstance(exc, PermissionError):
        return error(503, "log_unreadable", "The console may not read that log file "
                                            "(permission denied)")
    if isinstance(exc, OSError):
        return error(503, "log_unreadable", f"The log file cannot be read: "
                                            f"{type(exc).__name__}")
    raise exc


_guarded = guarded((svc.LogAccessError, svc.BadFilter, svc.TooManyStreams,
                    SQLAlchemyError, OSError), _failure)


# ------------------------------------------------------------------ routes

@bp.get("/sources", summary="Log files that may be read, and the captured records",
        responses={200: SourcesResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def sources():
    settings = _settings()
    return {"sources": svc.list_sources(settings),
            "folders": [str(f) for f in settings.log_folders]}


@bp.get("/tail", summary="The last lines of a log (cost independent of its size)",
        responses={200: TailResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def tail(query: TailQuery):
    filters = filters_from(query)
    return svc.tail(_settings(), _store(), query.source, query.lines,
                    filters if filters.active else None)


@bp.get("/filter", summary="Matching records, newest first, paged",
        responses={200: FilterResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def filter_(query: FilterQuery):
    return svc.filter_records(_settings(), _store(), query.source, filters_from(query),
                              cursor=query.cursor, limit=query.limit,
                              rotated=query.rotated)


@bp.get("/stats", summary="Counts per level over time, top loggers, top errors",
        responses={200: LogStatsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def stats(query: StatsQuery):
    return svc.stats(_settings(), _store(), query.source, query.minutes,
                     filters=filters_from(query))


@bp.get("/export", summary="The matching records as a JSON or TXT download",
        responses={200: {"description": "A download: the records as a JSON array "
                                   "(format=json) or one line each (format=txt)",
                    "content": {"application/json": {
                                    "schema": {"type": "array", "items": {"type": "object"}},
                                    "example": [EXPORT_EXAMPLE]},
                                "text/plain": {
                                    "schema": {"type": "string"},
                                    "example": "2026-11-26 22:31:53,282 ERROR shop.payments "
                                               "payment gateway timed out after 2000 ms\n"}}},
                   **ERRORS},
        security=SECURITY)
@requires("viewer")
@_guarded
def export(query: ExportQuery):
    text, name = svc.export(_settings(), _store(), query.source, filters_from(query),
                            query.format, query.limit)
    mime = "application/json" if query.format == "json" else "text/plain; charset=utf-8"
    return Response(text, mimetype=mime,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/stream", summary="Live records as Server-Sent Events (text/event-stream)",
        description="Sends the last `backlog` matching lines, then each new matching "
                    "line within about a second, following rotation and truncation. "
                    "Events: `hello` (source, highlight), unnamed (one record each, "
                    "id = a position to resume from with Last-Event-ID), `reset` "
                    "(rotated or truncated). A comment every 15 s keeps proxies open. "
                    "Beyond OPS_LOG_MAX_STREAMS open streams in the process, or "
                    "OPS_LOG_STREAMS_PER_USER of one user: 429.",
        responses={200: {"description": "Server-Sent Events, one record each",
                    "content": {"text/event-stream": {"schema": SSE_EVENT}}},
                   **STREAM_ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def stream(query: StreamQuery):
    events = svc.stream(_settings(), _store(), query.source, filters_from(query),
                        _slots(), backlog=query.backlog,
                        last_event_id=request.headers.get("Last-Event-ID"),
                        user=current_actor())
    # No stream_with_context: the generator needs nothing from the request
    # (all it reads was taken above), and closing the response closes it.
    return Response(events, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


tidy_docs(bp)
