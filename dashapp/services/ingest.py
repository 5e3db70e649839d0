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
from operator import itemgetter

from sqlalchemy import delete, select

from ops_agent import protocol

from dashapp.core.scrub import scrub_text
from dashapp.store import Store
from dashapp.store.models import LATENCY_BUCKETS_MS, IngestBatch, RequestTotal

logger = logging.getLogger(__name__)

FORMAT = 5
REQUEST_STRIDE = protocol.REQUEST_STRIDE  # values per request in the flat list
REQUEST_COLUMNS = ("time", "endpoint", "method", "status", "duration_ms",
                   "request_id", "exception_type", "exception_message", "process",
                   "app", "release")
QUERY_COLUMNS = ("time", "fingerprint", "sql", "duration_ms", "rows",
                 "request_id", "endpoint", "error_type", "process", "app", "release")
QUERY_STRIDE = 8  # values per statement in format 5's flat list


def pack(requests: list, queries: list) -> str:
    """The payload of one batch: an agent's requests and queries as it sent
    them (ops_agent.protocol). Format 5: requests one flat list; each
    distinct normalised SQL text once ("sql"), and the statements one flat
    list of [epoch, fingerprint, index into "sql", duration_ms, rows,
    request_id, endpoint, error type]: a busy host repeats a few dozen
    statements thousands of times, and the payload is written, read back
    and parsed by the console once each (a third fewer bytes to do it with).
    Records not in the protocol's shape are kept as sent (format 4), to be
    skipped with a warning when the batch is expanded."""
    try:
        texts: dict = {}
        flat: list = []
        extend = flat.extend
        for q in queries:
            sql = q[2]
            index = texts.get(sql)
            if index is None:
                index = texts[sql] = len(texts)
            extend((q[0], q[1], index, q[3], q[4], q[5], q[6], q[7] if len(q) > 7 else None))
    except (TypeError, IndexError, KeyError):
        return json.dumps({"format": 4, "requests": requests, "queries": queries},
                          separators=(",", ":"), default=str)
    return json.dumps({"format": FORMAT, "requests": requests, "sql": list(texts),
                       "queries": flat}, separators=(",", ":"), default=str)


# The columns' PostgreSQL types, for a binary COPY (_rows makes every value
# exactly this type or None).
PG_TYPES = {
    "ops_request": ("timestamptz", "varchar", "varchar", "int2", "float8", "varchar",
                    "varchar", "text", "varchar", "varchar", "varchar"),
    "ops_query": ("timestamptz", "varchar", "text", "float8", "int4", "varchar", "varchar",
                  "varchar", "varchar", "varchar", "varchar"),
}


def write_rows(conn, table: str, columns: tuple, rows: list) -> None:
    """Insert `rows` (tuples in `columns` order) in the caller's transaction.
    PostgreSQL through psycopg: a binary COPY, a fifth of the time per row of
    executemany's pipeline, which bounded a console's ingest rate; elsewhere
    a plain INSERT for the driver's executemany (tuples skip SQLAlchemy's
    per-row type processing)."""
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        cursor = conn.connection.driver_connection.cursor()
        try:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN "
                             "(FORMAT BINARY)") as copy:
                copy.set_types(list(PG_TYPES[table]))
                write = copy.write_row
                for row in rows:
                    write(row)
        finally:
            cursor.close()
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) "
                         f"VALUES ({', '.join([mark] * len(columns))})", rows)


def stamper(store: Store):
    """Epoch seconds -> what the store's driver takes for a UTC time."""
    if store.engine.dialect.name == "sqlite":
        def fmt(t: float) -> str:  # the text form SQLAlchemy's SQLite DateTime reads
            whole = int(t)
            return (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
                    + f".{int((t - whole) * 1e6):06d}")
        return fmt
    return lambda t: datetime.fromtimestamp(t, timezone.utc)


_STATUS = itemgetter(3)


def _rows(payload: str, process: str, app: str, release: str,
          stamp) -> tuple[list, list]:
    doc = json.loads(payload)
    fmt = doc.get("format")
    if fmt in (3, 4, FORMAT):
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
    # Every value is exactly its column's type or None (a binary COPY
    # takes nothing else).
    requests = [(stamp(r[0]), str(r[1])[:255], str(r[2])[:10], int(r[3]), float(r[4]),
                 str(r[5])[:64], str(r[6])[:255] if r[6] else None,
                 scrub_text(str(r[7])) if r[7] else None,
                 process, app, release) for r in recorded]
    if requests and not (-32768 <= min(map(_STATUS, requests))
                         and max(map(_STATUS, requests)) <= 32767):
        raise ValueError("a request status out of range")  # the batch, not the run, fails
    if fmt == FORMAT:
        texts = [str(sql) for sql in doc.get("sql", ())]
        flat = doc.get("queries", ())
        if len(flat) % QUERY_STRIDE:
            raise ValueError(f"{len(flat)} statement values are not whole statements")
        queries = [(stamp(q[0]), str(q[1])[:16], texts[q[2]], float(q[3]),
                    q[4] if isinstance(q[4], int) and -2**31 <= q[4] < 2**31 else None,
                    str(q[5])[:64] if q[5] else None, str(q[6])[:255] if q[6] else None,
                    str(q[7])[:100] if q[7] else None, process, app, release)
                   for q in zip(*[iter(flat)] * QUERY_STRIDE)]
        return requests, queries
    # Format 3 (hosts of the previous release) had no error type.
    queries = [(stamp(q[0]), str(q[1])[:16], str(q[2]), float(q[3]),
                q[4] if isinstance(q[4], int) and -2**31 <= q[4] < 2**31 else None,
                str(q[5])[:64] if q[5] else None, str(q[6])[:255] if q[6] else None,
                str(q[7])[:100] if len(q) > 7 and q[7] else None, process, app, release)
               for q in doc.get("queries", ())]
    return requests, queries


def _refused(exc: BaseException) -> bool:
    """A value the driver or the database refuses (a lone surrogate or a NUL
    character in a string, a number out of range): the batch's fault, not
    the store's. Looks through SQLAlchemy's wrapping."""
    from sqlalchemy.exc import DataError, StatementError
    while exc is not None:
        if isinstance(exc, (UnicodeError, ValueError, DataError)) or any(
                c.__name__ == "DataError" and c.__module__.startswith("psycopg")
                for c in type(exc).__mro__):
            return True
        exc = exc.orig if isinstance(exc, StatementError) else None
    return False


def ingest(store: Store, *, batches: int = 20, max_rounds: int = 500) -> int:
    """Expand pending batches, oldest first; returns the events written.
    A batch holding a value the store refuses is dropped with a warning
    (found by retrying its round one batch a transaction): it must not
    stop every later batch from being expanded."""
    t = IngestBatch.__table__
    stamp = stamper(store)
    written = 0
    for _ in range(max_rounds):
        claim = select(t.c.id).order_by(t.c.id).limit(batches)
        if store.engine.dialect.name == "postgresql":
            claim = claim.with_for_update(skip_locked=True)
        ids: list = []
        try:
            with store.engine.begin() as conn:
                claimed = conn.execute(delete(t).where(t.c.id.in_(claim))
                                       .returning(t.c.id, t.c.process, t.c.app, t.c.release,
                                                  t.c.payload)).all()
                if not claimed:
                    break
                ids = [row[0] for row in claimed]
                requests, queries = [], []
                for batch_id, process, app, release, payload in claimed:
                    try:
                        r, q = _rows(payload, process, app or "", release or "", stamp)
                    except (ValueError, TypeError, IndexError, KeyError) as exc:
                        logger.warning("ingest: skipped unreadable batch %s from %s: %s",
                                       batch_id, process, exc)
                        continue
                    requests += r
                    queries += q
                if requests:
                    write_rows(conn, "ops_request", REQUEST_COLUMNS, requests)
                    add_totals(conn, requests)
                if queries:
                    write_rows(conn, "ops_query", QUERY_COLUMNS, queries)
        except Exception as exc:
            if not ids or not _refused(exc):
                raise
            if len(ids) > 1:
                batches = 1  # rolled back: find the batch at fault, one at a time
                continue
            logger.warning("ingest: dropped batch %s: the store refuses a value in it (%s)",
                           ids[0], str(exc).splitlines()[0][:200])
            with store.engine.begin() as conn:
                conn.execute(delete(t).where(t.c.id == ids[0]))
            continue
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
