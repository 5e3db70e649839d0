"""API metrics: throughput, latency percentiles and errors per endpoint.

Reads the raw request rows `monitor()` writes (`ops_request`), the SQL they
ran (`ops_query`) and the writers' heartbeats (`ops_monitor_process`). Plain
functions: each takes a `Store` and parameters and returns dicts/DataFrames;
the page and the REST API call the same ones.

How the figures are computed
----------------------------
* Windows up to EXACT_MINUTES (60): counts, 5xx `errors`, 4xx
  `client_errors`, mean and max per endpoint and method are aggregated **in
  SQL** (one GROUP BY over the window, served by `ix_request_time`), and the
  percentiles (p50/p95/p99) are **exact** over the raw rows, with
  **linear interpolation** (numpy's default `np.percentile(x, q)`, the same
  definition as PostgreSQL's `percentile_cont` and Excel's
  `PERCENTILE.INC`): the q-th percentile of n sorted values is at rank
  ``(n - 1) * q / 100``, interpolated between its two neighbours. On
  PostgreSQL the database computes them (`percentile_cont ... WITHIN
  GROUP`), so an hour of a busy host's requests never crosses the wire; on
  SQLite, which has no such function, only `(endpoint, method,
  duration_ms)` is fetched and numpy computes them per group.
* Longer endpoint summaries come from the roll-ups (`_rolled_summary`):
  whole hours from `ops_request_hour`, the edge minutes from
  `ops_request_minute`, the minutes not rolled up yet from the raw rows.
  Counts, errors, mean and max stay exact; percentiles are nearest-rank over
  merged latency histograms, within about ±9.5 % (`dashapp.services.latency`).
  A day over 1,000,000 requests answers in under 100 ms (benchmarks/).
  Roll-ups are kept `OPS_ROLLUP_RETENTION_DAYS`, so 30-day windows are whole.
* `performance()` over long windows reads the all-endpoints roll-up rows
  (endpoint "*": one per minute, or per hour for hour-sized buckets) the
  same way, and `endpoint_detail()` reads that endpoint's rows (its status
  codes and slowest requests come from the raw rows still kept).
* `error_rate` is ``errors / count`` (5xx only), a fraction from 0 to 1.
* Time series use buckets chosen by `bucket_for()` so a chart never has more
  than ~300 points (15 min and 1 h: 1-minute buckets; 24 h: 5 minutes;
  7 d: 1 hour; 30 d: 3 hours). Empty buckets are filled with zero counts and
  no percentiles.

Every function raises SQLAlchemy's `DBAPIError` (`OperationalError`, ...)
when the store is unreachable; callers turn that into a 503 / an
"unavailable" card.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, case, func, select, text

from dashapp.core.scrub import scrub_text
from dashapp.store import Store
from dashapp.services import latency
from dashapp.services.retention import ALL_ENDPOINTS
from dashapp.store.models import (MonitorProcess, QueryLog, RequestHour, RequestLog,
                                   RequestMinute, as_utc)

logger = logging.getLogger(__name__)

PERCENTILES = (50, 95, 99)
MAX_MINUTES = 30 * 24 * 60
MAX_POINTS = 300
# Windows up to this many minutes get exact percentiles from the raw rows;
# longer ones are answered from the per-minute roll-ups (histograms).
EXACT_MINUTES = 60
# Candidate bucket sizes (seconds); the smallest giving <= MAX_POINTS wins.
BUCKETS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
# A latency (p95, ms) at or above these is shown as slow / very slow.
SLOW_MS = 300.0
VERY_SLOW_MS = 1000.0
# An error rate (5xx fraction) at or above these is a warning / an error.
WARN_ERROR_RATE = 0.01
BAD_ERROR_RATE = 0.05
# A monitored process not heard from for this long is shown as stale.
STALE_AFTER = timedelta(minutes=2)

_t = RequestLog.__table__
_q = QueryLog.__table__
_p = MonitorProcess.__table__
_m = RequestMinute.__table__
_h = RequestHour.__table__


# ---------------------------------------------------------------- helpers

def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(timezone.utc)




def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat(timespec="milliseconds") if value is not None else None


def _check_minutes(minutes: int) -> int:
    minutes = int(minutes)
    if not 1 <= minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be between 1 and {MAX_MINUTES}")
    return minutes


def bucket_for(minutes: int) -> int:
    """Bucket size (seconds) for a window: at most MAX_POINTS buckets, >= 1 min."""
    span = _check_minutes(minutes) * 60
    for size in BUCKETS:
        if span / size <= MAX_POINTS:
            return size
    return BUCKETS[-1]


def percentiles(values: Any) -> dict[str, float | None]:
    """{"p50_ms", "p95_ms", "p99_ms"}: exact, numpy's linear method."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {f"p{q}_ms": None for q in PERCENTILES}
    found = np.percentile(arr, PERCENTILES)
    return {f"p{q}_ms": float(v) for q, v in zip(PERCENTILES, found)}


def _rate(errors: int, count: int) -> float:
    return errors / count if count else 0.0


def health_of(p95_ms: float | None, error_rate: float) -> str:
    """"ok", "warn" or "error" for an endpoint, from its p95 and 5xx rate."""
    if error_rate >= BAD_ERROR_RATE or (p95_ms or 0) >= VERY_SLOW_MS:
        return "error"
    if error_rate >= WARN_ERROR_RATE or (p95_ms or 0) >= SLOW_MS:
        return "warn"
    return "ok"


def _window(minutes: int, now: datetime | None) -> tuple[datetime, datetime]:
    end = _now(now)
    return end - timedelta(minutes=_check_minutes(minutes)), end


def _epoch_seconds(times: pd.Series) -> np.ndarray:
    """Datetimes (naive = UTC, or aware) as float seconds since the epoch."""
    if not len(times):
        return np.array([])
    stamps = pd.to_datetime(times, utc=True)  # resolution varies (us/ns): divide
    return ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()


def _series(groups: dict[int, tuple], start: datetime, end: datetime,
            bucket: int) -> pd.DataFrame:
    """Per-bucket count, errors, client errors and percentiles; every bucket
    of the window present. `groups` maps a bucket's start (epoch seconds) to
    (count, errors, client_errors, {"p50_ms", "p95_ms", "p99_ms"})."""
    first = int(start.timestamp()) // bucket * bucket
    last = int(end.timestamp()) // bucket * bucket
    records = []
    for b in range(first, last + bucket, bucket):
        count, errors, client, pct = groups.get(b) or (0, 0, 0, percentiles([]))
        records.append({
            "time": datetime.fromtimestamp(b, timezone.utc),
            "count": count, "errors": errors, "client_errors": client,
            "error_rate": _rate(errors, count),
            "rps": count / bucket, **pct})
    return pd.DataFrame(records, columns=[
        "time", "count", "errors", "client_errors", "error_rate", "rps",
        "p50_ms", "p95_ms", "p99_ms"])


def _pct_of(values) -> dict[str, float | None]:
    """{"p50_ms", ...} from percentile_cont's array (None when no rows)."""
    if values is None:
        return percentiles([])
    return {f"p{q}_ms": (None if v is None else float(v))
            for q, v in zip(PERCENTILES, values)}


def _sql_error_counts() -> tuple:
    """SUM expressions counting server (5xx) and client (4xx) errors."""
    return (func.sum(case((_t.c.status >= 500, 1), else_=0)),
            func.sum(case(((_t.c.status >= 400) & (_t.c.status < 500), 1), else_=0)))


def _error_counts(status: np.ndarray) -> tuple[int, int]:
    """(server 5xx, client 4xx) counts of an array of status codes."""
    return int((status >= 500).sum()), int(((status >= 400) & (status < 500)).sum())


def _pg_percentiles():
    """PostgreSQL's exact p50/p95/p99 of the request durations, as one array:
    percentile_cont(ARRAY[...]) WITHIN GROUP (ORDER BY duration_ms)."""
    from sqlalchemy.dialects.postgresql import array
    return func.percentile_cont(array([q / 100 for q in PERCENTILES])) \
        .within_group(_t.c.duration_ms).label("pct")


def _exact_window(conn, cond, start: datetime, end: datetime,
                  bucket: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Totals (count, errors, client_errors, mean_ms, max_ms, exact
    percentiles) and the per-bucket series of the raw rows matching `cond`.

    On PostgreSQL the database computes both with percentile_cont (the same
    linear interpolation as numpy) in one scan, GROUP BY ROLLUP(bucket): a row
    per bucket and one for the whole window (its bucket NULL), so only those
    rows cross the wire, however many requests the window holds; elsewhere
    (SQLite, the single-process embedded store) the rows are read and numpy
    computes them.
    """
    if conn.dialect.name == "postgresql":
        # date_part() is double precision; extract() is numeric since
        # PostgreSQL 14, and numeric arithmetic and sorting on 180,000 rows
        # took half of this query's time (benchmarks/exact_window.py).
        b = (func.floor(func.date_part("epoch", _t.c.time) / bucket) * bucket).label("b")
        groups, total = {}, None
        for r in conn.execute(select(
                b, func.count(), *_sql_error_counts(), _pg_percentiles(), func.sum(_t.c.duration_ms), func.max(_t.c.duration_ms),
        ).where(cond).group_by(func.rollup(b))):
            if r[0] is None:  # the window's row (a bucket is never NULL: time is required)
                total = r
            else:
                groups[int(r[0])] = (int(r[1]), int(r[2] or 0), int(r[3] or 0), _pct_of(r[4]))
        count = int(total[1]) if total is not None else 0
        return ({"count": count, "errors": int(total[2] or 0) if count else 0,
                 "client_errors": int(total[3] or 0) if count else 0,
                 "mean_ms": float(total[5]) / count if count else None,
                 "max_ms": float(total[6]) if count else None,
                 **_pct_of(total[4] if count else None)},
                _series(groups, start, end, bucket))
    rows = conn.execute(select(_t.c.time, _t.c.status, _t.c.duration_ms).where(cond)).all()
    # plain tuples: pandas builds a frame from Row objects several times slower
    df = pd.DataFrame([tuple(r) for r in rows], columns=["time", "status", "duration_ms"])
    groups = {}
    if len(df):
        df["bucket"] = (_epoch_seconds(df["time"]) // bucket * bucket).astype("int64")
        for key, g in df.groupby("bucket"):
            groups[int(key)] = (int(len(g)), *_error_counts(g["status"].to_numpy()),
                                percentiles(g["duration_ms"].to_numpy()))
    durations = df["duration_ms"].to_numpy(dtype=float)
    errors, client_errors = _error_counts(df["status"].to_numpy(dtype=int))
    count = len(df)
    return ({"count": count, "errors": errors, "client_errors": client_errors,
             "mean_ms": float(durations.mean()) if count else None,
             "max_ms": float(durations.max()) if count else None,
             **percentiles(durations)},
            _series(groups, start, end, bucket))


def _series_records(df: pd.DataFrame) -> list[dict]:
    out = []
    for row in df.to_dict("records"):
        row["time"] = row["time"].isoformat()
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            if row[key] is not None and row[key] != row[key]:  # NaN
                row[key] = None
        out.append(row)
    return out


# ---------------------------------------------------------------- queries

SUMMARY_COLUMNS = ["endpoint", "method", "count", "errors", "client_errors", "error_rate",
                   "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms", "health"]


def endpoint_summary(store: Store, minutes: int = 60, *,
                     now: datetime | None = None) -> pd.DataFrame:
    """One row per (endpoint, method) seen in the last `minutes`.

    Columns: endpoint, method, count, errors (5xx), client_errors (4xx),
    error_rate, mean_ms, p50_ms, p95_ms, p99_ms, max_ms, health; busiest
    first. `df.attrs["percentiles"]` says how the percentiles were found:
    "exact" (windows up to EXACT_MINUTES, from the raw durations) or
    "histogram" (longer windows, see `_rolled_summary`).
    """
    start, end = _window(minutes, now)
    if minutes <= EXACT_MINUTES:
        df = _exact_summary(store, start, end)
        df.attrs["percentiles"] = "exact"
    else:
        df = _rolled_summary(store, start, end)
        df.attrs["percentiles"] = "histogram"
    return df


def _summary_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if not len(df):
        return df
    return df.sort_values(["count", "endpoint", "method"],
                          ascending=[False, True, True]).reset_index(drop=True)


def _summary_row(endpoint, method, count, errors, client_errors, total_ms, max_ms,
                 pct) -> dict:
    rate = _rate(errors, count)
    return {"endpoint": endpoint, "method": method, "count": count, "errors": errors,
            "client_errors": client_errors, "error_rate": rate,
            "mean_ms": total_ms / count if count else 0.0, **pct, "max_ms": max_ms,
            "health": health_of(pct["p95_ms"], rate)}


def _exact_summary(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    """Counts and mean/max from one GROUP BY; percentiles from the raw
    durations of the window (see the module doc)."""
    in_window = (_t.c.time >= start) & (_t.c.time <= end)
    agg = (select(_t.c.endpoint, _t.c.method,
                  func.count().label("count"),
                  *(e.label(name) for e, name in zip(_sql_error_counts(),
                                                      ("errors", "client_errors"))),
                  func.sum(_t.c.duration_ms).label("total_ms"),
                  func.max(_t.c.duration_ms).label("max_ms"))
           .where(in_window).group_by(_t.c.endpoint, _t.c.method))
    postgres = store.engine.dialect.name == "postgresql"
    if postgres:  # exact percentiles computed by the database (see _exact_window)
        agg = agg.add_columns(_pg_percentiles())
    raw = select(_t.c.endpoint, _t.c.method, _t.c.duration_ms).where(in_window)
    with store.engine.connect() as conn:
        groups = conn.execute(agg).all()
        durations = conn.execute(raw).all() if groups and not postgres else []
    by_group: dict[tuple[str, str], list[float]] = {}
    for endpoint, method, duration in durations:
        by_group.setdefault((endpoint, method), []).append(duration)
    return _summary_frame([
        _summary_row(g.endpoint, g.method, int(g.count), int(g.errors or 0),
                     int(g.client_errors or 0), float(g.total_ms), float(g.max_ms),
                     _pct_of(g.pct) if postgres else
                     percentiles(by_group.get((g.endpoint, g.method), [])))
        for g in groups])


def _hist_sql(dialect: str, table: str, column: str) -> str:
    """Per (endpoint, method, bucket) sums of roll-up histograms, merged in
    the database (json_each) so no histogram crosses the wire."""
    each = "json_each(m.hist)" if dialect == "sqlite" else "json_each_text(m.hist)"
    return (f"SELECT m.endpoint, m.method, CAST(j.key AS INTEGER) AS k, "
            f"SUM(CAST(j.value AS BIGINT)) AS n "
            f"FROM {table} AS m, {each} AS j "
            f"WHERE m.{column} >= :lo AND m.{column} < :hi "
            f"AND m.endpoint NOT IN ('', '{ALL_ENDPOINTS}') "
            f"GROUP BY m.endpoint, m.method, CAST(j.key AS INTEGER)")


class _Acc:
    """Counts, sums and a dense latency histogram for one group."""
    __slots__ = ("count", "errors", "client_errors", "total_ms", "max_ms", "hist")

    def __init__(self):
        self.count = self.errors = self.client_errors = 0
        self.total_ms = self.max_ms = 0.0
        self.hist = np.zeros(latency.MAX_BUCKET + 1, np.int64)

    def add(self, count, errors, client, total, mx) -> None:
        self.count += int(count or 0)
        self.errors += int(errors or 0)
        self.client_errors += int(client or 0)
        self.total_ms += float(total or 0)
        self.max_ms = max(self.max_ms, float(mx or 0))

    def add_raw(self, status: np.ndarray, ms: np.ndarray) -> None:
        self.add(len(ms), *_error_counts(status), ms.sum(), ms.max() if len(ms) else 0)
        self.hist += latency.dense_of(ms)

    def percentiles(self) -> dict[str, float | None]:
        qs = latency.quantiles_dense(self.hist, [q / 100 for q in PERCENTILES])
        return {f"p{q}_ms": v for q, v in zip(PERCENTILES, qs)}


def _rollup_ranges(conn, start: datetime, end: datetime, hours_ok: bool = True):
    """How a window splits over the stores of figures: [(table, column, lo,
    hi)] of roll-ups, and where the raw rows take over (the first minute not
    rolled up). Whole hours come from `ops_request_hour` when `hours_ok`."""
    first = start.replace(second=0, microsecond=0)
    hour = timedelta(hours=1)
    last_minute = as_utc(conn.scalar(select(func.max(_m.c.minute))))
    split = first if last_minute is None else \
        min(max(last_minute + timedelta(minutes=1), first), end)
    ranges = []
    last_hour = as_utc(conn.scalar(select(func.max(_h.c.hour)))) if hours_ok else None
    floor = first.replace(minute=0)
    hours_lo = floor if floor == first else floor + hour
    hours_hi = hours_lo if last_hour is None else \
        max(hours_lo, min(last_hour + hour, split.replace(minute=0, second=0, microsecond=0)))
    if hours_hi > hours_lo:
        ranges += [(_m, "minute", first, hours_lo), (_h, "hour", hours_lo, hours_hi),
                   (_m, "minute", hours_hi, split)]
    else:
        ranges.append((_m, "minute", first, split))
    return [r for r in ranges if r[3] > r[2]], split


def _rolled_summary(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    """A long window from the roll-ups plus the raw rows of the minutes not
    rolled up yet: whole hours from `ops_request_hour`, the minutes at the
    edges from `ops_request_minute`, the newest minutes from `ops_request`.

    Whole minutes: the window starts at the minute `start` falls in. Counts,
    errors, mean and max are exact; p50/p95/p99 come from the merged latency
    histograms (dashapp.services.latency: within about ±9.5 %, nearest rank).
    Roll-ups outlive the raw rows (OPS_ROLLUP_RETENTION_DAYS), so a 30-day
    window covers 30 days even with a 7-day raw retention.
    """
    groups: dict[tuple[str, str], _Acc] = {}

    def group(endpoint, method) -> _Acc:
        g = groups.get((endpoint, method))
        if g is None:
            g = groups[(endpoint, method)] = _Acc()
        return g

    with store.engine.connect() as conn:
        ranges, split = _rollup_ranges(conn, start, end)
        for table, column, lo, hi in ranges:
            col = table.c[column]
            sums = conn.execute(
                select(table.c.endpoint, table.c.method, func.sum(table.c.count),
                       func.sum(table.c.errors), func.sum(table.c.client_errors),
                       func.sum(table.c.total_ms), func.max(table.c.max_ms))
                .where(col >= lo, col < hi, table.c.endpoint.notin_(("", ALL_ENDPOINTS)))
                .group_by(table.c.endpoint, table.c.method)).all()
            for endpoint, method, *figures in sums:
                group(endpoint, method).add(*figures)
            hist = text(_hist_sql(store.engine.dialect.name, table.name, column)).bindparams(
                bindparam("lo", type_=col.type), bindparam("hi", type_=col.type))
            for endpoint, method, k, n in conn.execute(hist, {"lo": lo, "hi": hi}):
                group(endpoint, method).hist[min(max(int(k), 0), latency.MAX_BUCKET)] += int(n)
        raw = conn.execute(select(_t.c.endpoint, _t.c.method, _t.c.status, _t.c.duration_ms)
                           .where(_t.c.time >= split, _t.c.time <= end)).all()
    if raw:
        df = pd.DataFrame(raw, columns=["endpoint", "method", "status", "duration_ms"])
        for (endpoint, method), part in df.groupby(["endpoint", "method"]):
            group(endpoint, method).add_raw(part["status"].to_numpy(),
                                            part["duration_ms"].to_numpy())
    return _summary_frame([
        _summary_row(endpoint, method, g.count, g.errors, g.client_errors, g.total_ms,
                     g.max_ms, g.percentiles())
        for (endpoint, method), g in groups.items() if g.count])


def _rolled_performance(store: Store, start: datetime, end: datetime, bucket: int,
                        endpoint: str = ALL_ENDPOINTS,
                        method: str | None = None) -> tuple[_Acc, pd.DataFrame]:
    """A long window's series from roll-up rows (per minute, or per hour for
    hour-sized buckets) plus the raw rows not rolled up yet: the
    all-endpoints rows for performance(), one endpoint's rows (all its
    methods, or `method`) for endpoint_detail()."""
    total = _Acc()
    buckets: dict[int, _Acc] = {}
    with store.engine.connect() as conn:
        ranges, split = _rollup_ranges(conn, start, end, hours_ok=bucket % 3600 == 0)
        for table, column, lo, hi in ranges:
            col = table.c[column]
            cond = (table.c.endpoint == endpoint) & (col >= lo) & (col < hi)
            if method and endpoint != ALL_ENDPOINTS:
                cond = cond & (table.c.method == method)
            rows = conn.execute(
                select(col, table.c.count, table.c.errors, table.c.client_errors,
                       table.c.total_ms, table.c.max_ms, table.c.hist).where(cond)).all()
            for when, count, errors, client, total_ms, mx, hist in rows:
                b = int(as_utc(when).timestamp()) // bucket * bucket
                acc = buckets.get(b) or buckets.setdefault(b, _Acc())
                dense = latency.dense(hist)
                for target in (acc, total):
                    target.add(count, errors, client, total_ms, mx)
                    target.hist += dense
        raw_cond = (_t.c.time >= split) & (_t.c.time <= end)
        if endpoint != ALL_ENDPOINTS:
            raw_cond = raw_cond & (_t.c.endpoint == endpoint)
            if method:
                raw_cond = raw_cond & (_t.c.method == method)
        raw = conn.execute(select(_t.c.time, _t.c.status, _t.c.duration_ms)
                           .where(raw_cond)).all()
    if raw:
        df = pd.DataFrame(raw, columns=["time", "status", "duration_ms"])
        df["bucket"] = (_epoch_seconds(df["time"]) // bucket * bucket).astype("int64")
        for b, part in df.groupby("bucket"):
            status, ms = part["status"].to_numpy(), part["duration_ms"].to_numpy()
            acc = buckets.get(int(b)) or buckets.setdefault(int(b), _Acc())
            acc.add_raw(status, ms)
            total.add_raw(status, ms)
    first = int(start.timestamp()) // bucket * bucket
    last = int(end.timestamp()) // bucket * bucket
    records = []
    for b in range(first, last + bucket, bucket):
        acc = buckets.get(b) or _Acc()
        records.append({"time": datetime.fromtimestamp(b, timezone.utc),
                        "count": acc.count, "errors": acc.errors,
                        "client_errors": acc.client_errors,
                        "error_rate": _rate(acc.errors, acc.count),
                        "rps": acc.count / bucket, **acc.percentiles()})
    return total, pd.DataFrame(records, columns=[
        "time", "count", "errors", "client_errors", "error_rate", "rps",
        "p50_ms", "p95_ms", "p99_ms"])


def totals(summary: pd.DataFrame) -> dict[str, Any]:
    """Requests, 5xx, 4xx and error rate over all endpoints of a summary."""
    count = int(summary["count"].sum()) if len(summary) else 0
    errors = int(summary["errors"].sum()) if len(summary) else 0
    client = int(summary["client_errors"].sum()) if len(summary) else 0
    return {"count": count, "errors": errors, "client_errors": client,
            "error_rate": _rate(errors, count)}


def endpoint_exists(store: Store, endpoint: str) -> bool:
    """True when any raw row (any time) names `endpoint`."""
    with store.engine.connect() as conn:
        return conn.execute(select(_t.c.id).where(_t.c.endpoint == endpoint)
                            .limit(1)).first() is not None


def endpoint_detail(store: Store, endpoint: str, method: str | None = None,
                    minutes: int = 60, *, slow_limit: int = 10,
                    now: datetime | None = None) -> dict[str, Any] | None:
    """One endpoint (all methods, or `method`) over the last `minutes`.

    Returns None when the endpoint was never recorded. Otherwise: totals and
    percentiles for the window; `series` per bucket (see `bucket_for`) with
    count, errors, client_errors, error_rate and p50/p95/p99; `status_codes`
    (status -> count); `slowest`, its `slow_limit` slowest requests in the
    window with their request ids (to look up the SQL they ran); `methods`.
    Like endpoint_summary(), windows over EXACT_MINUTES take their totals,
    series and (histogram) percentiles from the roll-ups, so the detail
    agrees with the summary row it was opened from; status codes and the
    slowest requests always come from the raw rows still kept.
    """
    start, end = _window(minutes, now)
    bucket = bucket_for(minutes)
    method = method.upper() if method else None
    cond = (_t.c.endpoint == endpoint) & (_t.c.time >= start) & (_t.c.time <= end)
    if method:
        cond = cond & (_t.c.method == method)
    rolled = minutes > EXACT_MINUTES
    with store.engine.connect() as conn:
        known = conn.execute(select(_t.c.id).where(_t.c.endpoint == endpoint).limit(1)).first()
        if known is None:
            known = conn.execute(select(_m.c.id).where(_m.c.endpoint == endpoint)
                                 .limit(1)).first()
        if known is None:
            return None
        exact = None if rolled else _exact_window(conn, cond, start, end, bucket)
        statuses = conn.execute(select(_t.c.status, func.count().label("count"))
                                .where(cond).group_by(_t.c.status)
                                .order_by(_t.c.status)).all()
        slowest = conn.execute(
            select(_t.c.request_id, _t.c.time, _t.c.method, _t.c.status,
                   _t.c.duration_ms, _t.c.exception_type)
            .where(cond).order_by(_t.c.duration_ms.desc(), _t.c.id.desc())
            .limit(slow_limit)).all()
        methods = set(conn.execute(select(_t.c.method).where(_t.c.endpoint == endpoint)
                                   .where(_t.c.time >= start).distinct()).scalars())
        if rolled:
            methods |= set(conn.execute(select(_m.c.method).where(
                _m.c.endpoint == endpoint, _m.c.minute >= start).distinct()).scalars())
    if rolled:
        total, series = _rolled_performance(store, start, end, bucket, endpoint, method)
        figures = {"count": total.count, "errors": total.errors,
                   "client_errors": total.client_errors,
                   "error_rate": _rate(total.errors, total.count),
                   "mean_ms": total.total_ms / total.count if total.count else None,
                   "max_ms": total.max_ms if total.count else None,
                   **total.percentiles(), "percentiles": "histogram"}
    else:
        figures, series = exact
        figures = {**figures, "error_rate": _rate(figures["errors"], figures["count"]),
                   "percentiles": "exact"}
    return {
        "endpoint": endpoint, "method": method,
        "methods": sorted(methods), "minutes": minutes, "bucket_seconds": bucket,
        **figures,
        "series": _series_records(series),
        "status_codes": [{"status": int(s.status), "count": int(s.count)} for s in statuses],
        "slowest": [{"request_id": r.request_id, "time": _iso(r.time), "method": r.method,
                     "status": int(r.status), "duration_ms": float(r.duration_ms),
                     "exception_type": r.exception_type} for r in slowest],
    }


def recent_errors(store: Store, minutes: int = 60, limit: int = 100, *,
                  kind: str = "all", now: datetime | None = None) -> pd.DataFrame:
    """Failed requests of the window, newest first (at most `limit`).

    `kind`: "all" (status >= 400), "server" (5xx) or "client" (4xx). 5xx rows
    carry the exception type and message the host raised (when it raised).
    """
    start, end = _window(minutes, now)
    cond = (_t.c.time >= start) & (_t.c.time <= end)
    if kind == "server":
        cond = cond & (_t.c.status >= 500)
    elif kind == "client":
        cond = cond & (_t.c.status >= 400) & (_t.c.status < 500)
    elif kind == "all":
        cond = cond & (_t.c.status >= 400)
    else:
        raise ValueError("kind must be all, server or client")
    query = (select(_t.c.time, _t.c.status, _t.c.method, _t.c.endpoint, _t.c.request_id,
                    _t.c.duration_ms, _t.c.exception_type, _t.c.exception_message)
             .where(cond).order_by(_t.c.time.desc(), _t.c.id.desc()).limit(int(limit)))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    columns = ["time", "status", "method", "endpoint", "request_id", "duration_ms",
               "exception_type", "exception_message"]
    records = []
    for r in rows:
        server = r.status >= 500
        records.append({"time": _iso(r.time), "status": int(r.status), "method": r.method,
                        "endpoint": r.endpoint, "request_id": r.request_id,
                        "duration_ms": float(r.duration_ms),
                        "exception_type": r.exception_type if server else None,
                        # scrubbed again on the way out: rows stored by a
                        # release that kept SQL values must not show them
                        "exception_message": scrub_text(r.exception_message)
                        if server and r.exception_message else None})
    return pd.DataFrame(records, columns=columns)


def performance(store: Store, minutes: int = 60, bucket: int | None = None, *,
                now: datetime | None = None) -> dict[str, Any]:
    """All endpoints together over time: throughput, p50/p95/p99, error rate.

    `bucket` (seconds) defaults to `bucket_for(minutes)`; an explicit one
    must leave at most 1,000 points. Returns the window's totals and
    percentiles plus `series` (see `_series`: count, rps, errors,
    client_errors, error_rate, p50/p95/p99 per bucket).
    """
    start, end = _window(minutes, now)
    if bucket is None:
        bucket = bucket_for(minutes)
    bucket = int(bucket)
    if bucket < 1 or minutes * 60 / bucket > 1000:
        raise ValueError("bucket must be at least 1 second and leave at most "
                         "1000 points in the window")
    if minutes > EXACT_MINUTES and bucket % 60 == 0:
        total, series = _rolled_performance(store, start, end, bucket)
        return {"minutes": minutes, "bucket_seconds": bucket, "count": total.count,
                "errors": total.errors, "client_errors": total.client_errors,
                "error_rate": _rate(total.errors, total.count),
                "rps": total.count / (minutes * 60), **total.percentiles(),
                "percentiles": "histogram", "series": _series_records(series)}
    with store.engine.connect() as conn:
        figures, series = _exact_window(conn, (_t.c.time >= start) & (_t.c.time <= end),
                                        start, end, bucket)
    count = figures["count"]
    return {"minutes": minutes, "bucket_seconds": bucket, "count": count,
            "errors": figures["errors"], "client_errors": figures["client_errors"],
            "error_rate": _rate(figures["errors"], count), "rps": count / (minutes * 60),
            **{k: figures[k] for k in ("p50_ms", "p95_ms", "p99_ms")},
            "percentiles": "exact", "series": _series_records(series)}


def requests_sql(store: Store, request_id: str) -> dict[str, Any]:
    """The request with id `request_id` and the SQL it ran, in order.

    `request` is None when no request row has that id (the SQL may still be
    there: rows are written in batches); `queries` are ordered by time then
    insertion, with position, sql (parameters redacted), duration, rows.
    """
    with store.engine.connect() as conn:
        req = conn.execute(select(_t.c.endpoint, _t.c.method, _t.c.status, _t.c.time,
                                  _t.c.duration_ms, _t.c.exception_type)
                           .where(_t.c.request_id == request_id)
                           .order_by(_t.c.id).limit(1)).first()
        queries = conn.execute(select(_q.c.time, _q.c.fingerprint, _q.c.sql,
                                      _q.c.duration_ms, _q.c.rows, _q.c.error_type)
                               .where(_q.c.request_id == request_id)
                               .order_by(_q.c.time, _q.c.id)).all()
    request = None
    if req is not None:
        request = {"endpoint": req.endpoint, "method": req.method,
                   "status": int(req.status), "time": _iso(req.time),
                   "duration_ms": float(req.duration_ms),
                   "exception_type": req.exception_type}
    items = [{"position": i + 1, "time": _iso(q.time), "fingerprint": q.fingerprint,
              "sql": q.sql, "duration_ms": float(q.duration_ms), "rows": q.rows,
              "error_type": q.error_type}
             for i, q in enumerate(queries)]
    return {"request_id": request_id, "request": request, "queries": items,
            "count": len(items),
            "total_ms": float(sum(q["duration_ms"] for q in items))}


def monitor_health(store: Store, *, now: datetime | None = None) -> dict[str, Any]:
    """The processes running `monitor()`: when each was last heard from, what
    it recorded and dropped (events lost while the store was unreachable or
    the buffer full), and the totals the page shows."""
    current = _now(now)
    with store.engine.connect() as conn:
        rows = conn.execute(select(_p).order_by(_p.c.last_seen.desc())).all()
    processes = []
    for r in rows:
        last_seen = as_utc(r.last_seen)
        processes.append({
            "process": r.process, "app_name": r.app_name,
            "started_at": _iso(r.started_at), "last_seen": _iso(last_seen),
            "alive": last_seen is not None and current - last_seen <= STALE_AFTER,
            "recorded_requests": int(r.recorded_requests),
            "recorded_queries": int(r.recorded_queries), "dropped": int(r.dropped)})
    return {"processes": processes,
            "alive": sum(1 for p in processes if p["alive"]),
            "dropped": sum(p["dropped"] for p in processes),
            "recorded_requests": sum(p["recorded_requests"] for p in processes),
            "recorded_queries": sum(p["recorded_queries"] for p in processes)}


def summary_records(df: pd.DataFrame) -> list[dict]:
    """A summary DataFrame as JSON-ready dicts (NaN -> None)."""
    records = df.to_dict("records")
    for row in records:
        for key, value in row.items():
            if isinstance(value, float) and value != value:
                row[key] = None
    return records


__all__ = ["bucket_for", "endpoint_detail", "endpoint_exists", "endpoint_summary",
           "health_of", "monitor_health", "percentiles", "performance",
           "recent_errors", "requests_sql", "summary_records", "totals"]
