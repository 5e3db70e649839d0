"""`monitor()`: one Monitor per application, tying the integrations to the shipper."""
from __future__ import annotations

import atexit
import logging
import threading
from typing import Any, Dict, List, Optional

from ops_agent import __version__, protocol
from ops_agent import flask as flask_hooks
from ops_agent import settings as agent_settings
from ops_agent.fingerprint import fingerprint
from ops_agent.scrub import strip_sql_values
from ops_agent.sqlalchemy import SQL_STRIDE
from ops_agent.transport import HttpSink, Shipper

logger = logging.getLogger("ops_agent")

REQ_STRIDE = protocol.REQUEST_STRIDE
_EXC_MESSAGE = flask_hooks.EXC_MESSAGE
_lock = threading.Lock()


class Monitor:
    """Hooks on one Flask app (and optional engines, scheduler, models) plus
    the shipper that sends what they record. Build it with `monitor()`."""

    def __init__(self, app: Any, *, dsn: Optional[str] = None, release: Optional[str] = None,
                 name: Optional[str] = None, engine: Any = None, scheduler: Any = None,
                 redis: Any = None, log_level: Optional[str] = None, sink: Any = None,
                 interval: float = 1.0, buffer_size: int = 100_000):
        self.app = app
        self.redis = redis
        # The @cached toolkit uses the client passed here unless configured
        # otherwise; it works whether or not anything is sent to a console.
        # Imported only for a client: without one attaching changes nothing,
        # and the package is a third of what monitor() would import.
        self.cache: Any = None
        if redis is not None:
            from ops_agent import cache
            self.cache = cache.attach(self)
        self.scheduler = scheduler
        self.enabled = False
        self.engines: List[Any] = []
        self.jobs: Any = None
        self.profiler: Any = None
        self.logs: Any = None
        self.ml: Any = None
        self._requests: List[Any] = []
        self._statements: List[Any] = []
        self._dropped_here = 0
        self.recorded_queries = 0
        self.recorded_requests = 0
        self.buffer_size = buffer_size
        self._unhook: List[Any] = []
        try:
            conf = agent_settings.load(dsn=dsn, release=release, app=name,
                                       log_level=log_level)
        except agent_settings.SettingsError as exc:
            logger.error("ops agent: %s; this application is not monitored", exc)
            return
        if conf is None and sink is None:
            logger.warning("ops agent: OPS_DSN is not set; this application is not "
                           "monitored (see the README's 'Instrumenting your app')")
            return
        self.settings = conf
        app_name = name or (conf.app if conf else getattr(app, "name", "app"))
        if sink is None:
            sink = HttpSink(conf.endpoint, conf.key, timeout=conf.timeout)
        level = conf.log_level if conf else (log_level or "INFO").upper()
        self.shipper = Shipper(sink, app=app_name,
                               release=(conf.release if conf else (release or "")),
                               interval=interval, version=__version__)
        self.enabled = True
        # Request and statement buffers hold flat values (no object per
        # event for the garbage collector to walk); each is bounded.
        self._unhook.append(flask_hooks.install(app, self._requests,
                                                buffer_size * REQ_STRIDE, self._drop))
        self.shipper.add_source(self._take, dropped=lambda: self._dropped_here)
        self.shipper.on_accepted(self._accepted)
        self.shipper.add_stats(lambda: {"recorded_requests": self.recorded_requests,
                                        "recorded_queries": self.recorded_queries})
        if engine is not None:
            self.watch_engine(engine)
        number = agent_settings.level_number(level)
        if number is not None:
            from ops_agent.logging import attach as attach_logs
            self.logs = attach_logs(self.shipper.channel("logs", 20_000), level=number,
                                    request_id=flask_hooks.current_request_id,
                                    ignore_thread=self._shipper_ident)
        self._attach_integrations(scheduler)
        app.extensions["ops_monitor"] = self
        self.shipper.start()
        atexit.register(self.close)

    def _attach_integrations(self, scheduler: Any) -> None:
        """Jobs, models and the profiler: each module wires itself to the
        shipper (channels for what it records, a handler for its commands)."""
        from ops_agent import ml, profiler
        self.ml = ml.attach(self)
        self.profiler = profiler.attach(self)
        if scheduler is not None:
            from ops_agent import apscheduler
            self.jobs = apscheduler.attach(self, scheduler)

    def _shipper_ident(self) -> Optional[int]:
        thread = self.shipper._thread
        return thread.ident if thread is not None else None

    def _drop(self) -> None:
        self._dropped_here += 1

    # ----- SQL -----------------------------------------------------------------
    def watch_engine(self, engine: Any) -> None:
        """Record every statement `engine` runs (statement text, no values).
        Flask-SQLAlchemy: call it inside `app.app_context()` with `db.engine`."""
        if not self.enabled or any(e is engine for e in self.engines):
            return
        from ops_agent.sqlalchemy import watch
        try:
            unwatch = watch(engine, self._statements, self.buffer_size * SQL_STRIDE,
                            self._drop)
        except Exception as exc:  # noqa: BLE001 - not an engine: say so, never raise
            logger.error("ops agent: cannot watch %r for SQL (%s: %s); pass a SQLAlchemy "
                         "Engine (Flask-SQLAlchemy: db.engine inside app.app_context())",
                         engine, type(exc).__name__, exc)
            return
        self._unhook.append(unwatch)
        self.engines.append(engine)

    # ----- the shipper's thread ---------------------------------------------------
    def _take(self, budget: int) -> Dict[str, List[Any]]:
        """The oldest requests and statements (at most `budget` events),
        removed from their buffers. Recorders only append at the end, so
        copying then deleting the head (each atomic under the GIL) loses and
        repeats nothing. Exception messages lose their SQL values here and
        statements are fingerprinted here, off the request path."""
        n = min(len(self._requests), budget * REQ_STRIDE)
        n -= n % REQ_STRIDE
        requests = self._requests[:n]
        del self._requests[:n]
        for i in range(_EXC_MESSAGE, len(requests), REQ_STRIDE):
            if requests[i]:
                requests[i] = strip_sql_values(requests[i])
        m = min(len(self._statements), max(budget - n // REQ_STRIDE, 0) * SQL_STRIDE)
        m -= m % SQL_STRIDE
        raw = self._statements[:m]
        del self._statements[:m]
        queries = []
        for i in range(0, len(raw), SQL_STRIDE):
            epoch, statement, ms, rows, rid, endpoint, error = raw[i:i + SQL_STRIDE]
            fp, sql = fingerprint(statement)
            queries.append([epoch, fp, sql, ms, rows if rows is not None and rows >= 0
                            else None, rid, endpoint, error])
        out: Dict[str, List[Any]] = {}
        if requests:
            out["requests"] = requests
        if queries:
            out["queries"] = queries
        return out

    def _accepted(self, events: Dict[str, List[Any]]) -> None:
        """What the console accepted counts as recorded (what it refused was
        counted as dropped): recorded + dropped + buffered adds up."""
        self.recorded_requests += len(events.get("requests", ())) // REQ_STRIDE
        self.recorded_queries += len(events.get("queries", ()))

    # ----- control -------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        """Requests and statements recorded and not sent yet."""
        return len(self._requests) // REQ_STRIDE + len(self._statements) // SQL_STRIDE

    @property
    def process(self) -> Optional[str]:
        """This process as the console names it ("host:pid")."""
        shipper = getattr(self, "shipper", None)
        return shipper.process if shipper is not None else None

    @property
    def dropped(self) -> int:
        return self.shipper.dropped() if self.enabled else 0

    def flush(self) -> bool:
        """Send everything buffered now (tests, shutdown). True when the
        console accepted it all; never raises."""
        if not self.enabled:
            return False
        if self.jobs is not None:
            self.jobs.publish()
        return self.shipper.ship()

    def stats(self) -> Dict[str, Any]:
        return {"process": self.shipper.process if self.enabled else None,
                "buffered": self.buffered, "recorded_requests": self.recorded_requests,
                "recorded_queries": self.recorded_queries, "dropped": self.dropped,
                "in_outage": self.enabled and self.shipper.in_outage}

    def close(self) -> None:
        """Send what is buffered, stop the shipper, detach the log handler."""
        if self.cache is not None:
            self.cache.close()
            self.cache = None
        if not self.enabled:
            return
        self.enabled = False
        for part in (self.jobs, self.profiler, self.ml):
            if part is not None:
                try:
                    part.close()
                except Exception:  # noqa: BLE001
                    pass
        if self.logs is not None:
            self.logs.close()
        for unhook in self._unhook:
            try:
                unhook()
            except Exception:  # noqa: BLE001
                pass
        self.shipper.stop()


def monitor(app: Any, **kwargs: Any) -> Monitor:
    """Instrument `app` (a Flask app, or a Dash app: its `server` is used).

    Keywords: dsn (else OPS_DSN), release (else OPS_RELEASE), name (the
    application's name; else the DSN's), engine (a SQLAlchemy engine),
    scheduler (an APScheduler 3 scheduler), redis (a redis-py client, for
    the cache toolkit), log_level (else OPS_LOG_CAPTURE_LEVEL; OFF: none).
    Calling it again for the same app returns the monitor already there
    (an engine passed the second time is watched too).
    """
    app = getattr(app, "server", app)
    with _lock:
        existing = app.extensions.get("ops_monitor")
        if isinstance(existing, Monitor) and existing.enabled:
            if kwargs.get("engine") is not None:
                existing.watch_engine(kwargs["engine"])
            return existing
        return Monitor(app, **kwargs)
