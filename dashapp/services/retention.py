"""Roll-ups and retention for the instrumentation tables.

`rollup_requests` folds finished minutes of raw request rows into
`ops_request_minute` (counts, errors, total/max and a latency histogram);
`rollup_hours` folds whole hours of those into `ops_request_hour`.
A unique key on (minute, endpoint, method) makes it safe when several
console workers run it at once: a duplicate run fails its insert and
changes nothing.

`purge` deletes old rows in small batches by primary key, one short
transaction each, so cleanup never holds a long lock and never loads the
table into memory (django-silk's cleanup times out on big tables). Raw
request rows are only purged once they are rolled up.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from dashapp.services import latency
from dashapp.store import Store
from dashapp.store.models import (QueryLog, RedisSample, RequestHour, RequestLog,
                                   RequestMinute, as_utc)

logger = logging.getLogger(__name__)

# The endpoint and method of the per-minute/hour rows that total every
# endpoint (URL rules start with "/", so no real endpoint is called this).
ALL_ENDPOINTS = "*"
ROLLUP_LAG = timedelta(minutes=2)   # late rows (slow flushes) still make it
ROLLUP_MAX_SPAN = timedelta(hours=6)  # per run: bounded work




def _floor_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def _watermark(conn) -> datetime | None:
    """The first minute not rolled up yet (None: no requests at all)."""
    last = as_utc(conn.scalar(select(func.max(RequestMinute.minute))))
    if last is not None:
        return last + timedelta(minutes=1)
    first = as_utc(conn.scalar(select(func.min(RequestLog.time))))
    return None if first is None else _floor_minute(first)


def rollup_requests(store: Store, now: datetime | None = None,
                    start: datetime | None = None) -> int:
    """Roll up finished minutes not rolled up yet; returns rows written.

    `start` overrides the watermark (what another worker read a moment ago).
    """
    now = now or datetime.now(timezone.utc)
    end = _floor_minute(now - ROLLUP_LAG)
    with store.engine.connect() as conn:
        if start is None:
            start = _watermark(conn)
            if start is None:
                return 0
        end = min(end, start + ROLLUP_MAX_SPAN)
        if start >= end:
            return 0
        result = conn.execute(
            select(RequestLog.time, RequestLog.endpoint, RequestLog.method,
                   RequestLog.status, RequestLog.duration_ms)
            .where(RequestLog.time >= start, RequestLog.time < end))
        groups: dict[tuple, dict] = defaultdict(
            lambda: {"count": 0, "errors": 0, "client_errors": 0, "total_ms": 0.0,
                     "max_ms": 0.0, "hist": {}})
        for when, endpoint, method, status, ms in result:
            minute = _floor_minute(as_utc(when))
            k = latency.bucket_of(ms)
            # Each request counts in its endpoint's row and in the minute's
            # all-endpoints row (what the throughput chart reads).
            for g in (groups[(minute, endpoint, method)],
                      groups[(minute, ALL_ENDPOINTS, ALL_ENDPOINTS)]):
                g["count"] += 1
                g["errors"] += status >= 500
                g["client_errors"] += 400 <= status < 500
                g["total_ms"] += ms
                g["max_ms"] = max(g["max_ms"], ms)
                g["hist"][k] = g["hist"].get(k, 0) + 1
    rows = [{"minute": minute, "endpoint": endpoint, "method": method, **values,
             "hist": {str(k): n for k, n in values["hist"].items()}}
            for (minute, endpoint, method), values in groups.items()]
    return _write_rollups(store, RequestMinute, "minute", rows, start, end,
                          end - timedelta(minutes=1))


HOUR = timedelta(hours=1)
HOURS_MAX_SPAN = timedelta(days=7)


def _floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def rollup_hours(store: Store) -> int:
    """Fold whole hours of per-minute roll-ups into `ops_request_hour`;
    returns rows written. Same watermark and duplicate-safety as minutes."""
    m = RequestMinute
    with store.engine.connect() as conn:
        last = as_utc(conn.scalar(select(func.max(RequestHour.hour))))
        if last is not None:
            start = last + HOUR
        else:
            first = as_utc(conn.scalar(select(func.min(m.minute))))
            if first is None:
                return 0
            start = _floor_hour(first)
        minutes_until = rolled_up_until(store)
        if minutes_until is None:
            return 0
        end = min(_floor_hour(minutes_until), start + HOURS_MAX_SPAN)
        if start >= end:
            return 0
        result = conn.execute(
            select(m.minute, m.endpoint, m.method, m.count, m.errors, m.client_errors,
                   m.total_ms, m.max_ms, m.hist)
            .where(m.minute >= start, m.minute < end, m.endpoint != ""))
        groups: dict[tuple, dict] = {}
        for minute, endpoint, method, count, errors, client, total, mx, hist in result:
            key = (_floor_hour(as_utc(minute)), endpoint, method)
            g = groups.get(key)
            if g is None:
                g = groups[key] = {"count": 0, "errors": 0, "client_errors": 0,
                                   "total_ms": 0.0, "max_ms": 0.0, "hist": {}}
            g["count"] += count
            g["errors"] += errors
            g["client_errors"] += client
            g["total_ms"] += total
            g["max_ms"] = max(g["max_ms"], mx)
            for k, n in hist.items():
                g["hist"][k] = g["hist"].get(k, 0) + n
    rows = [{"hour": hour, "endpoint": endpoint, "method": method, **values}
            for (hour, endpoint, method), values in groups.items()]
    return _write_rollups(store, RequestHour, "hour", rows, start, end, end - HOUR)


def _write_rollups(store: Store, model, period: str, rows: list[dict], start: datetime,
                   end: datetime, last_period: datetime) -> int:
    """Insert one run's roll-up rows; returns how many. An empty stretch
    still moves the watermark: a marker row (endpoint "") for its last
    period. A duplicate run (another worker was first) fails on the unique
    key and writes nothing."""
    if not rows:
        rows = [{period: last_period, "endpoint": "", "method": "", "count": 0,
                 "errors": 0, "client_errors": 0, "total_ms": 0.0, "max_ms": 0.0,
                 "hist": {}}]
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(model), rows)
    except IntegrityError:
        logger.info("%s roll-up for %s..%s already written by another worker",
                    model.__tablename__, start, end)
        return 0
    return len(rows)


def rolled_up_until(store: Store) -> datetime | None:
    """Raw rows before this time are rolled up."""
    with store.engine.connect() as conn:
        last = as_utc(conn.scalar(select(func.max(RequestMinute.minute))))
    return None if last is None else last + timedelta(minutes=1)


def purge(store: Store, table, cutoff: datetime, *, time_column=None,
          batch: int = 5_000, max_batches: int = 200, pause: float = 0.02) -> int:
    """Delete rows older than `cutoff` in batches of `batch` ids; returns count."""
    time_column = time_column if time_column is not None else table.time
    total = 0
    for _ in range(max_batches):
        ids = select(table.id).where(time_column < cutoff).order_by(table.id).limit(batch)
        with store.engine.begin() as conn:
            ids_list = list(conn.scalars(ids))
            if not ids_list:
                break
            conn.execute(delete(table).where(table.id.in_(ids_list)))
        total += len(ids_list)
        if len(ids_list) < batch:
            break
        time.sleep(pause)  # let the writers in between batches
    return total


def apply_retention(store: Store, retention_days: int, rollup_days: int,
                    now: datetime | None = None) -> dict[str, int]:
    """Purge raw rows past the window (only once rolled up) and old roll-ups."""
    now = now or datetime.now(timezone.utc)
    raw_cutoff = now - timedelta(days=retention_days)
    rolled = rolled_up_until(store)
    request_cutoff = min(raw_cutoff, rolled) if rolled else None
    return {
        "requests": purge(store, RequestLog, request_cutoff) if request_cutoff else 0,
        "queries": purge(store, QueryLog, raw_cutoff),
        "log_records": _purge_logs(store, raw_cutoff),
        "rollups": purge(store, RequestMinute, now - timedelta(days=rollup_days),
                         time_column=RequestMinute.minute),
        "hourly_rollups": purge(store, RequestHour, now - timedelta(days=rollup_days),
                                time_column=RequestHour.hour),
        "redis_samples": purge(store, RedisSample, now - timedelta(days=rollup_days)),
        **_purge_jobs(store, now - timedelta(days=rollup_days), now),
        "ml_predictions": _purge_ml(store, raw_cutoff),
    }


def _purge_jobs(store: Store, cutoff: datetime, now: datetime) -> dict[str, int]:
    """Job runs and commands are kept as long as roll-ups; runs and pending
    rows of host processes that stopped are tidied first."""
    from dashapp.services import jobs
    from dashapp.store.models import BackgroundJob, JobCommand
    return {**jobs.reap(store, now),
            "job_runs": purge(store, BackgroundJob, cutoff),
            "job_commands": purge(store, JobCommand, cutoff,
                                  time_column=JobCommand.created_at)}


def _purge_ml(store: Store, cutoff: datetime) -> int:
    """Live model predictions go with the raw retention (OPS_RETENTION_DAYS);
    model versions and their evaluations are kept."""
    from dashapp.services.ml_metrics import purge_predictions
    return purge_predictions(store, cutoff)


def _purge_logs(store: Store, cutoff: datetime) -> int:
    """Captured log records are raw rows: kept OPS_RETENTION_DAYS."""
    from dashapp.store.models import LogRecord
    return purge(store, LogRecord, cutoff)
