"""`monitor()`: instrument a host Flask (or Dash, via `app.server`) app.

What it costs the host: per request, one wrapper call around Flask's
dispatch and one append to an in-memory deque; per SQL statement, two
`perf_counter()` calls and one append. A background thread packs the
buffered events into one JSON row per flush (`ops_ingest`); the console
expands those into indexed rows (dashapp.services.ingest). A request never
waits on the store; a store outage never raises into the host (events are
dropped and counted); the buffer is bounded. `Monitor.flush()` writes
everything buffered now and expands it.

    from dashapp import monitor
    mon = monitor(app, engine=engine, redis=redis_client, scheduler=scheduler)
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import socket
import threading
import time
from datetime import datetime, timezone
from typing import Any
from flask.globals import _cv_request

from dashapp.services.ingest import REQUEST_STRIDE  # the batch format's

logger = logging.getLogger(__name__)

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
NO_ROUTE = "<no route>"
# What one recorded event leaves in its buffer: a request is 8 values
# (epoch, endpoint, method, status, duration_ms, request_id, exception type,
# exception message), a statement 6 (epoch, statement, duration_ms, rows,
# request_id, endpoint). Flat lists of plain values: an event keeps no
# container of its own alive until the flush (a tuple each was one more
# object per request for the cyclic garbage collector to track and walk).
REQ_STRIDE, SQL_STRIDE = REQUEST_STRIDE, 6
_EXC_MESSAGE = 7  # where a request's exception message sits in its values
HEARTBEAT_SECONDS = 10.0


def _request_ids():
    """Request ids unique across processes and restarts: a random prefix per
    process and a counter (cheaper than urandom per request). A fork (gunicorn
    --preload) gives the child a new prefix."""
    import itertools
    state = {}

    def reset():
        state["prefix"] = os.urandom(5).hex()  # always 10 characters
        state["counter"] = itertools.count(1)
    reset()
    os.register_at_fork(after_in_child=reset)
    return lambda: state["prefix"] + str(next(state["counter"]))


def _request_environ() -> dict | None:
    """The WSGI environ of the Flask request being handled here, else None.
    Flask's own context variable: the monitor keeps no context of its own
    (setting and resetting one cost every request ~0.7 us)."""
    ctx = _cv_request.get(None)
    return ctx.request.environ if ctx is not None else None


def current_request_id() -> str | None:
    """The request id of the request being handled, else None."""
    environ = _request_environ()
    return environ.get("ops.request_id") if environ is not None else None


class Monitor:
    """Hooks on one Flask app (and optional SQLAlchemy engine) plus the writer."""

    def __init__(self, flask_app, *, engine=None, redis=None, scheduler=None,
                 settings=None, flush_interval: float = 1.0,
                 buffer_size: int = 100_000, batch_size: int = 5_000):
        from dashapp.config import load_settings
        from dashapp.store import Store

        self.settings = settings or load_settings()
        if self.settings.sentry_dsn:
            from dashapp.observability import init_sentry
            init_sentry(self.settings.sentry_dsn, component="host",
                        environment=self.settings.env)
        self.app = flask_app
        self.redis = redis
        self.scheduler = scheduler
        self.process = f"{socket.gethostname()}:{os.getpid()}"[:96]
        self.app_name = getattr(flask_app, "name", "app")
        self._requests: list = []    # REQ_STRIDE values per request
        self._statements: list = []  # SQL_STRIDE values per statement
        self.buffer_size = buffer_size  # events (requests + statements) held at most
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.recorded_requests = 0
        self.recorded_queries = 0
        self.dropped = 0
        self._dropped_reported = 0
        self._started_at = datetime.now(timezone.utc)
        self._process_row: int | None = None
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_error_log = 0.0
        self._last_heartbeat = float("-inf")
        self.store = Store(self.settings.store_url)
        try:
            self.store.upgrade()
        except Exception as exc:  # noqa: BLE001 - never raise into the host
            logger.warning("ops monitor: store not ready yet (%s); will retry", exc)
        self._install_flask(flask_app)
        self.engines = []
        if engine is not None:
            self.watch_engine(engine)
        # Background jobs: listeners + job wrappers + a thread of their own
        # (dashapp.instrument.jobs); the request path is not involved.
        self.jobs = None
        if scheduler is not None:
            from dashapp.instrument.jobs import attach
            self.jobs = attach(self.store, scheduler, self.process)
        # Profiling sessions commanded from the console: a poller thread of
        # its own; the request path is wrapped only while a session runs
        # (dashapp.instrument.profiler).
        from dashapp.instrument.profiler import attach as attach_profiler
        self.profiler = attach_profiler(self.store, flask_app, self.process)
        # Log capture: a handler on the root logger with a writer of its own
        # (dashapp.instrument.logs); emit() only appends to a bounded deque.
        from dashapp.instrument.logs import attach as attach_logs
        self.logs = attach_logs(self.store, self.process,
                                level=self.settings.log_capture_level,
                                request_id=current_request_id)
        # Models and predictions (`monitor.ml`): own buffer and thread
        # (dashapp.instrument.ml); the request path is not involved.
        from dashapp.instrument.ml import MLRecorder
        self.ml = MLRecorder(self.store, self.process)
        self._thread = threading.Thread(target=self._run, name="ops-monitor-writer",
                                        daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # ----- recording (the host's threads) -----------------------------------
    @property
    def buffered(self) -> int:
        """Events recorded and not written yet."""
        return len(self._requests) // REQ_STRIDE + len(self._statements) // SQL_STRIDE

    def _record(self, buf: list, values: tuple) -> None:
        """Append one event's values to `buf` (one list.extend: atomic under
        the GIL, so the writer never sees half an event)."""
        if self.buffered >= self.buffer_size:
            self.dropped += 1  # bounded: under an outage new events are dropped
            return
        buf.extend(values)
        if len(buf) >= self.batch_size * len(values):
            self._wake.set()

    def _install_flask(self, app) -> None:
        """Wrap the app's `full_dispatch_request`: one Python call around
        routing, hooks, the view and error handlers, rather than a
        before_request and an after_request hook (each costs a trip through
        Flask's hook machinery and `g`)."""
        from werkzeug.exceptions import HTTPException

        record = self._record
        requests = self._requests
        statements = self._statements
        extend = requests.extend
        perf = time.perf_counter
        # Wall-clock time from the monotonic clock: one clock read per edge.
        wall_offset = time.time() - perf()
        next_id = _request_ids()
        ok = _REQUEST_ID_OK.match
        dispatch = app.full_dispatch_request
        handle_exception = app.handle_exception
        handle_user_exception = app.handle_user_exception

        def full_dispatch_request():
            started = perf()
            req = _cv_request.get().request
            environ = req.environ
            # environ, not request.headers: a missing header there costs a
            # werkzeug exception (~10 us) on every request.
            incoming = environ.get("HTTP_X_REQUEST_ID")
            rid = incoming if incoming and ok(incoming) else next_id()
            rule = req.url_rule
            endpoint = rule.rule if rule is not None else NO_ROUTE
            environ["ops.request_id"] = rid  # for the SQL and log records
            environ["ops.endpoint"] = endpoint
            try:
                response = dispatch()
            except Exception as exc:
                # Unhandled: Flask turns it into a 500 after we return.
                ended = perf()
                record(requests, (wall_offset + ended, endpoint, req.method, 500,
                                  (ended - started) * 1000.0, rid, type(exc).__name__,
                                  str(exc)[:1000]))
                raise
            ended = perf()
            status = response.status_code
            exc = environ.get("ops.exception") if status >= 500 else None
            # _record, inlined: this runs on every request of the host.
            if len(requests) // REQ_STRIDE + len(statements) // SQL_STRIDE < self.buffer_size:
                extend((wall_offset + ended, endpoint, req.method, status,
                        (ended - started) * 1000.0, rid,
                        type(exc).__name__ if exc is not None else None,
                        str(exc)[:1000] if exc is not None else None))
                if len(requests) >= self.batch_size * REQ_STRIDE:
                    self._wake.set()
            else:
                self.dropped += 1
            headers = response.headers
            # Headers.set scans and rebuilds the list; add() alone is a third
            # of its cost. Replace only when the app set its own id.
            for key, _value in headers:
                if key.lower() == "x-request-id":
                    headers["X-Request-ID"] = rid
                    break
            else:
                headers.add("X-Request-ID", rid)
            return response

        def user_exception(e):
            # An app's own @errorhandler(Exception) turns the error into a
            # response inside dispatch: note the exception for the record.
            if not isinstance(e, HTTPException):
                _cv_request.get().request.environ["ops.exception"] = e
            return handle_user_exception(e)

        def unhandled_exception(e):
            response = handle_exception(e)
            ctx = _cv_request.get(None)
            rid = ctx.request.environ.get("ops.request_id") if ctx else None
            if rid:
                response.headers["X-Request-ID"] = rid
            return response

        app.full_dispatch_request = full_dispatch_request
        app.handle_user_exception = user_exception
        app.handle_exception = unhandled_exception
        app.extensions["ops_monitor"] = self

    def watch_engine(self, engine) -> None:
        """Record every statement `engine` runs (statement text, no values)."""
        from sqlalchemy import event

        def before(conn, cursor, statement, parameters, context, executemany):
            conn.info["_ops_t0"] = time.perf_counter()

        def after(conn, cursor, statement, parameters, context, executemany):
            started = conn.info.pop("_ops_t0", None)
            if started is None:
                return
            environ = _request_environ()
            try:
                rows = cursor.rowcount
                if rows == 0 and cursor.description is not None \
                        and "RETURNING" in statement.upper():
                    # sqlite3 counts the rows of INSERT/UPDATE ... RETURNING
                    # only as they are fetched, after this hook: unknown, not 0
                    rows = -1
            except Exception:  # noqa: BLE001 - some drivers raise here
                rows = -1
            self._record(self._statements, (
                time.time(), statement, (time.perf_counter() - started) * 1000.0, rows,
                environ.get("ops.request_id") if environ is not None else None,
                environ.get("ops.endpoint") if environ is not None else None))

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        self.engines.append(engine)

    # ----- writing (the monitor's thread) ------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._write_pending()
            except Exception:  # noqa: BLE001 - the writer must never die
                logger.exception("ops monitor: writer error")

    def _take(self, buf: list, stride: int) -> list:
        """The oldest events of `buf` (at most batch_size), removed from it.
        Recorders only append at the end, so copying then deleting the head
        (each one atomic under the GIL) loses and repeats nothing."""
        n = min(len(buf), self.batch_size * stride)
        n -= n % stride
        chunk = buf[:n]
        del buf[:n]
        return chunk

    def _write_pending(self, *, heartbeat_now: bool = False) -> None:
        with self._write_lock:
            while True:
                requests = self._take(self._requests, REQ_STRIDE)
                statements = self._take(self._statements, SQL_STRIDE)
                if requests or statements:
                    self._write(requests, statements)
                if len(requests) < self.batch_size * REQ_STRIDE and \
                        len(statements) < self.batch_size * SQL_STRIDE:
                    self._heartbeat(force=heartbeat_now)
                    return

    def _write(self, requests: list, statements: list) -> None:
        """One packed row per batch (see dashapp.services.ingest): the host
        pays for a JSON dump and one INSERT, not an indexed row per event."""
        from dashapp.core.scrub import scrub_text
        from dashapp.instrument.fingerprint import fingerprint
        from dashapp.services.ingest import pack
        from dashapp.store.models import IngestBatch

        # A 5xx's exception message (recorded as is on the request path, which
        # must stay cheap) loses its secrets and SQL values here, before it
        # leaves the host: e.g. SQLAlchemy's "[parameters: ('a@b.c', ...)]".
        for i in range(_EXC_MESSAGE, len(requests), REQ_STRIDE):
            if requests[i]:
                requests[i] = scrub_text(requests[i])
        queries = []
        for i in range(0, len(statements), SQL_STRIDE):
            epoch, statement, ms, rows, rid, endpoint = statements[i:i + SQL_STRIDE]
            fp, sql = fingerprint(statement)  # redacted here: values never leave
            queries.append((epoch, fp, sql, ms, rows if rows is not None and rows >= 0
                            else None, rid, endpoint))
        events = len(requests) // REQ_STRIDE + len(queries)
        try:
            payload = pack(requests, queries)  # requests flat, as recorded
            with self.store.engine.begin() as conn:
                conn.execute(IngestBatch.__table__.insert().values(
                    created_at=datetime.now(timezone.utc), process=self.process,
                    events=events, payload=payload))
        except Exception as exc:  # noqa: BLE001 - store down: drop and count
            self.dropped += events
            now = time.monotonic()
            if now - self._last_error_log > 30:
                self._last_error_log = now
                logger.warning("ops monitor: store unavailable, dropped %d events "
                               "(%d so far): %s", events, self.dropped,
                               str(exc).splitlines()[0][:200])
            return
        self.recorded_requests += len(requests) // REQ_STRIDE
        self.recorded_queries += len(queries)

    def _heartbeat(self, *, force: bool = False) -> None:
        """Keep this process's row (what it recorded and dropped) current:
        every HEARTBEAT_SECONDS (the console calls a process stale after
        minutes; a commit per flush doubled the writer's cost), or now."""
        from sqlalchemy import select, update

        from dashapp.store.models import MonitorProcess

        if not force and time.monotonic() - self._last_heartbeat < HEARTBEAT_SECONDS:
            return
        self._last_heartbeat = time.monotonic()
        now = datetime.now(timezone.utc)
        values = {"last_seen": now, "recorded_requests": self.recorded_requests,
                  "recorded_queries": self.recorded_queries, "dropped": self.dropped}
        try:
            with self.store.engine.begin() as conn:
                if self._process_row is None:
                    existing = conn.scalar(select(MonitorProcess.id).where(
                        MonitorProcess.process == self.process))
                    if existing is None:
                        result = conn.execute(MonitorProcess.__table__.insert().values(
                            process=self.process, app_name=self.app_name[:255],
                            started_at=self._started_at, **values))
                        existing = result.inserted_primary_key[0]
                    self._process_row = existing
                conn.execute(update(MonitorProcess).where(
                    MonitorProcess.id == self._process_row).values(**values))
        except Exception:  # noqa: BLE001 - reported on the next success
            pass

    # ----- control ----------------------------------------------------------
    def flush(self) -> None:
        """Write everything buffered now and expand the packed batches into
        rows (the console's scheduler does that every few seconds; tests and
        shutdown want it done now)."""
        from dashapp.services.ingest import ingest
        try:
            self._write_pending(heartbeat_now=True)
            ingest(self.store)
            if self.jobs is not None:
                self.jobs.flush()
            self.logs.flush()
            self.ml.flush()
        except Exception as exc:  # noqa: BLE001 - never raise into the host
            logger.warning("ops monitor: flush failed: %s", str(exc).splitlines()[0][:200])

    def stats(self) -> dict[str, Any]:
        return {"process": self.process, "buffered": self.buffered,
                "recorded_requests": self.recorded_requests,
                "recorded_queries": self.recorded_queries, "dropped": self.dropped}

    def close(self) -> None:
        """Flush, stop the writer and detach from the store."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()
        if self.jobs is not None:
            self.jobs.close()
        if self.profiler is not None:
            self.profiler.close()
        self.logs.close()
        self.ml.close()
        self.store.close()


def monitor(flask_app, *, engine=None, redis=None, scheduler=None,
            settings=None) -> Monitor:
    """Instrument `flask_app` (for Dash: `app.server`); see the module doc.

    `settings` defaults to the environment, like the console's, so the host
    and the console share one store (OPS_DATABASE_URL) and Redis (REDIS_URL).
    """
    app = getattr(flask_app, "server", flask_app)
    return Monitor(app, engine=engine, redis=redis, scheduler=scheduler,
                   settings=settings)
