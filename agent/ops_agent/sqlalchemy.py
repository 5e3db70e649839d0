"""SQL statements of a SQLAlchemy engine (1.4 and 2.x).

Per statement: two clock reads and one `list.extend` of raw values; the
shipper's thread fingerprints the text (values never leave the host). A
statement that raises is recorded too, with its error type, from the
engine's `handle_error` event: the statement behind a 500 is the one an
operator looks for first.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from ops_agent.flask import request_environ

SQL_STRIDE = 7  # epoch, statement, duration_ms, rows, request_id, endpoint, error type


def _rows(cursor: Any, statement: str) -> int:
    try:
        rows = cursor.rowcount
        if rows == 0 and cursor.description is not None and "RETURNING" in statement.upper():
            # sqlite3 counts the rows of INSERT/UPDATE ... RETURNING only as
            # they are fetched, after this hook: unknown, not 0
            return -1
        return rows
    except Exception:  # noqa: BLE001 - some drivers raise here
        return -1


def watch(engine: Any, statements: list, limit: int,
          on_drop: Callable[[], None]) -> Callable[[], None]:
    """Record every statement `engine` runs into `statements`. Returns
    `unwatch()`. Each watch keeps its start time under a key of its own: a
    second monitor of the same engine must not find it taken by the first."""
    from sqlalchemy import event

    extend = statements.extend
    perf = time.perf_counter
    key = ("ops_agent.t0", id(statements))

    def record(statement: str, started: float, rows: int, error: Any) -> None:
        if len(statements) >= limit:
            on_drop()
            return
        environ = request_environ()
        extend((time.time(), statement, (perf() - started) * 1000.0, rows,
                environ.get("ops.request_id") if environ is not None else None,
                environ.get("ops.endpoint") if environ is not None else None,
                error))

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info[key] = perf()

    def after(conn, cursor, statement, parameters, context, executemany):
        started = conn.info.pop(key, None)
        if started is not None:
            record(statement, started, _rows(cursor, statement), None)

    def failed(ctx):
        conn = ctx.connection
        started = conn.info.pop(key, None) if conn is not None else None
        if started is None or not ctx.statement:
            return  # not a statement's failure (connect, rollback): no record
        error = ctx.original_exception
        record(ctx.statement, started, -1, type(error).__name__ if error else "Error")

    listeners = (("before_cursor_execute", before), ("after_cursor_execute", after),
                 ("handle_error", failed))
    for name, fn in listeners:
        event.listen(engine, name, fn)

    def unwatch() -> None:
        for name, fn in listeners:
            try:
                if event.contains(engine, name, fn):
                    event.remove(engine, name, fn)
            except Exception:  # noqa: BLE001 - closing must not raise
                pass
    return unwatch
