"""Expand the packed batches `monitor()` writes into indexed rows.

A monitored process writes one `ops_ingest` row per flush: a JSON document
with its requests and (already fingerprinted, redacted) statements. Inserting
thousands of indexed rows costs the host ~7 µs each on SQLite, and that work
competes with its requests for the GIL; one row per flush costs it almost
nothing. The console's scheduler calls `ingest()` every few seconds, and
`Monitor.flush()` calls it too (tests, shutdown).

Claiming is a DELETE ... RETURNING inside the transaction that inserts the
expanded rows: a batch is expanded exactly once even when several console
workers ingest at the same time (PostgreSQL: SKIP LOCKED; SQLite: one writer).
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

from sqlalchemy import delete, select

from dashapp.core.scrub import scrub_text
from dashapp.store import Store
from dashapp.store.models import LATENCY_BUCKETS_MS, IngestBatch, RequestTotal

logger = logging.getLogger(__name__)

FORMAT = 3
REQUEST_STRIDE = 8  # values per request in a batch's flat "requests" list
REQUEST_COLUMNS = ("time", "endpoint", "method", "status", "duration_ms",
                   "request_id", "exception_type", "exception_message", "process")
QUERY_COLUMNS = ("time", "fingerprint", "sql", "duration_ms", "rows",
                 "request_id", "endpoint", "process")


def pack(requests: list, queries: list) -> str:
    """The payload of one batch. requests: one flat list, REQUEST_STRIDE
    values per request (epoch, endpoint, method, status, duration_ms,
    request_id, exception_type, exception_message), exactly as monitor()
    recorded them: packing allocates nothing per request; queries: [epoch,
    fingerprint, redacted sql, duration_ms, rows, request_id, endpoint]."""
    return json.dumps({"format": FORMAT, "requests": requests, "queries": queries},
                      separators=(",", ":"), default=str)


def insert_sql(store: Store, table: str, columns: tuple) -> str:
    """A plain INSERT for the driver's executemany (tuples skip SQLAlchemy's
    per-row type processing)."""
    mark = "?" if store.engine.dialect.paramstyle == "qmark" else "%s"
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))})")


def stamper(store: Store):
    """Epoch seconds -> what the store's driver takes for a UTC time."""
    if store.engine.dialect.name == "sqlite":
        def fmt(t: float) -> str:  # the text form SQLAlchemy's SQLite DateTime reads
            whole = int(t)
            return (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
                    + f".{int((t - whole) * 1e6):06d}")
        return fmt
    return lambda t: datetime.fromtimestamp(t, timezone.utc)


def _rows(payload: str, process: str, stamp) -> tuple[list, list]:
    doc = json.loads(payload)
    fmt = doc.get("format")
    if fmt == FORMAT:
        flat = doc.get("requests", ())
        if len(flat) % REQUEST_STRIDE:
            raise ValueError(f"{len(flat)} request values are not whole requests")
        recorded = zip(*[iter(flat)] * REQUEST_STRIDE)
    elif fmt == 2:  # hosts still running the previous release: [kind, *values]
        recorded = (r[1:] for r in doc.get("requests", ()))
    else:
        raise ValueError(f"unknown batch format {fmt!r}")
    # Hosts scrub exception messages before they send them; a host on an
    # older release did not, so the console scrubs them again (cheap: most
    # are None, and a message without a hint word is returned as is).
    requests = [(stamp(r[0]), str(r[1])[:255], str(r[2])[:10], int(r[3]), float(r[4]),
                 str(r[5])[:64], r[6], r[7] and scrub_text(r[7]), process) for r in recorded]
    queries = [(stamp(q[0]), q[1], q[2], float(q[3]), q[4], q[5], q[6], process)
               for q in doc.get("queries", ())]
    return requests, queries


def ingest(store: Store, *, batches: int = 20, max_rounds: int = 500) -> int:
    """Expand pending batches, oldest first; returns the events written."""
    t = IngestBatch.__table__
    stamp = stamper(store)
    req_sql = insert_sql(store, "ops_request", REQUEST_COLUMNS)
    query_sql = insert_sql(store, "ops_query", QUERY_COLUMNS)
    written = 0
    for _ in range(max_rounds):
        claim = select(t.c.id).order_by(t.c.id).limit(batches)
        if store.engine.dialect.name == "postgresql":
            claim = claim.with_for_update(skip_locked=True)
        with store.engine.begin() as conn:
            claimed = conn.execute(delete(t).where(t.c.id.in_(claim))
                                   .returning(t.c.id, t.c.process, t.c.payload)).all()
            if not claimed:
                break
            requests, queries = [], []
            for batch_id, process, payload in claimed:
                try:
                    r, q = _rows(payload, process, stamp)
                except (ValueError, TypeError, IndexError, KeyError) as exc:
                    logger.warning("ingest: skipped unreadable batch %s from %s: %s",
                                   batch_id, process, exc)
                    continue
                requests += r
                queries += q
            if requests:
                conn.exec_driver_sql(req_sql, requests)
                add_totals(conn, requests)
            if queries:
                conn.exec_driver_sql(query_sql, queries)
        written += len(requests) + len(queries)
        if len(claimed) < batches:
            break
    return written


def _totals(requests: list) -> dict[tuple[str, str, str], list]:
    """{(endpoint, method, "2xx"): [count, sum_ms, per-bucket counts...]}."""
    from bisect import bisect_left
    found: dict[tuple[str, str, str], list] = {}
    nb = len(LATENCY_BUCKETS_MS)
    for row in requests:
        key = (row[1], row[2], f"{row[3] // 100}xx")
        acc = found.get(key)
        if acc is None:
            acc = found[key] = [0, 0.0] + [0] * nb
        duration = row[4]
        acc[0] += 1
        acc[1] += duration
        slot = bisect_left(LATENCY_BUCKETS_MS, duration)
        if slot < nb:
            acc[2 + slot] += 1
    return found


def add_totals(conn, requests: list) -> None:
    """Add expanded requests to `ops_request_total` (the /metrics counters),
    in the caller's transaction: counted exactly once, with the rows."""
    totals = _totals(requests)
    if not totals:
        return
    t = RequestTotal.__table__
    bucket_cols = [f"le_{b}" for b in LATENCY_BUCKETS_MS]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    rows = [{"endpoint": e, "method": m, "status_class": c, "count": acc[0],
             "sum_ms": acc[1], **dict(zip(bucket_cols, acc[2:]))}
            for (e, m, c), acc in sorted(totals.items())]
    stmt = insert(t)
    stmt = stmt.on_conflict_do_update(
        index_elements=["endpoint", "method", "status_class"],
        set_={name: t.c[name] + stmt.excluded[name]
              for name in ("count", "sum_ms", *bucket_cols)})
    conn.execute(stmt, rows)


def pending(store: Store) -> int:
    """Events waiting in packed batches (the console's ingest backlog)."""
    from sqlalchemy import func
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.coalesce(func.sum(IngestBatch.events), 0))))
