"""The bundled demo application: a small shop API plus traffic to watch.

``DemoApp`` seeds the shop's SQLite database, trains its models, serves the
shop over HTTP in a background thread, runs its scheduled jobs and drives it
with a traffic generator, so every console page has live data with zero
setup. Its code doubles as the example of wiring a real Flask app.
"""
from __future__ import annotations

import errno
import logging
import logging.handlers
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from ops_agent.cache import configure as configure_cache
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .data import Order, open_shop_database
from .jobs import create_scheduler
from .shop import Catalog, create_shop_app
from .traffic import TrafficGenerator

if TYPE_CHECKING:  # scikit-learn is imported when the demo starts, not on import
    from .ml import DemoModels

__all__ = ["DemoApp"]

logger = logging.getLogger("demo")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


DEMO_APP = "demo-shop"      # the demo's application name on the console
DEMO_RELEASE = "1.0.0"


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without one access-log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class DemoApp:
    """Run the demo shop, its jobs and its traffic next to the console."""

    def __init__(self, data_dir: Path, redis_client: redis.Redis | None, *,
                 port: int = 8051, rps: float = 3.0, host: str = "127.0.0.1",
                 instrument: bool = True, settings=None, dsn: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.redis = redis_client
        self.host = host
        self.port = port
        self.rps = rps
        self.engine: Engine | None = None
        self.models: DemoModels | None = None
        self.app: Flask | None = None
        self.catalog: Catalog | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.traffic: TrafficGenerator | None = None
        self.timings: dict[str, float] = {}
        self.instrument = instrument
        self.settings = settings
        self.dsn = dsn  # else OPS_DSN, as for any application
        self.monitor = None
        self._server: BaseWSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self._log_handler: logging.Handler | None = None
        self._previous_level: int | None = None
        self._lock = threading.Lock()

    # ----- where things are ---------------------------------------------------
    @property
    def url(self) -> str:
        port = self._server.port if self._server is not None else self.port
        return f"http://{self.host}:{port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "shop.db"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "shop.log"

    @property
    def running(self) -> bool:
        return self._server_thread is not None and self._server_thread.is_alive()

    # ----- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        """Seed, train, serve, schedule and start traffic. Raises RuntimeError
        when the port is taken; a failed start leaves nothing running."""
        with self._lock:
            if self._server is not None:
                return
            self._check_port_free()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._attach_log_handler()
            started = time.perf_counter()
            try:
                self._start_components()
            except BaseException:
                self._stop_components()
                self._detach_log_handler()
                raise
            self.timings["start_s"] = time.perf_counter() - started
            logger.info("demo shop running at %s (started in %.2f s)",
                        self.url, self.timings["start_s"])

    def _start_components(self) -> None:
        t0 = time.perf_counter()
        self.engine = open_shop_database(self.db_path)
        t1 = time.perf_counter()
        from .ml import train_models  # scikit-learn takes a second or two to import
        self.models = train_models()
        t2 = time.perf_counter()
        self.timings.update(database_s=t1 - t0, training_s=t2 - t1)

        # The caching toolkit: this Redis, the console's key prefix (so the
        # Cache page sees the shop's namespaces) and the shop's warmers.
        configure_cache(client=self.redis,
                  prefix=self.settings.cache_prefix if self.settings is not None else None)
        self.app = create_shop_app(self.engine, self.redis, self.models)
        self.catalog = self.app.extensions["shop_catalog"]
        self.catalog.register_warmers()
        self.scheduler = create_scheduler(self.engine, self.redis, self.catalog)
        # The agent, wired in before serving exactly as the README's
        # "Instrumenting your app" tells a user: one setting (the DSN with
        # the demo's ingest key, which the console made for it; passed in
        # because the console knows it), one line. It reaches the console
        # over HTTP like any other application.
        if self.instrument:
            import ops_agent
            self.monitor = ops_agent.monitor(self.app, dsn=self.dsn, engine=self.engine,
                                             redis=self.redis, scheduler=self.scheduler,
                                             release=DEMO_RELEASE)
            # The models, with their evaluation data: metrics, feature
            # importance and the drift reference (the ML models page).
            if self.monitor.ml is not None and self.monitor.enabled:
                self.models.register_with(self.monitor.ml)

        try:
            self._server = make_server(self.host, self.port, self.app, threaded=True,
                                       request_handler=_QuietRequestHandler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise self._port_in_use_error() from exc
            raise
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name="demo-http", daemon=True)
        self._server_thread.start()
        self.scheduler.start()
        if self.rps > 0:
            self.traffic = TrafficGenerator(self.url, rps=self.rps, redis_client=self.redis)
            self.traffic.start()

    def stop(self) -> None:
        """Stop traffic, jobs and the server; safe to call more than once."""
        with self._lock:
            was_running = self._server is not None
            self._stop_components()
            if was_running:
                logger.info("demo shop stopped")
            self._detach_log_handler()

    def _stop_components(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
            self.traffic = None
        if self.scheduler is not None:
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if self.catalog is not None:
            self.catalog.unregister_warmers()  # stops the toolkit's warm worker
            self.catalog = None
        if self._server is not None:
            if self._server_thread is not None and self._server_thread.is_alive():
                self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._server_thread is not None:
            self._server_thread.join(5)
            self._server_thread = None
        if self.monitor is not None:
            self.monitor.close()  # flushes what the last requests recorded
            self.monitor = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def _port_in_use_error(self) -> RuntimeError:
        return RuntimeError(f"demo port {self.port} is in use; set OPS_DEMO_PORT "
                            "to a free port (or OPS_DEMO=0 to run without the demo)")

    def _check_port_free(self) -> None:
        """Fail before seeding and training when the port is obviously taken."""
        if self.port == 0:
            return
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise self._port_in_use_error() from exc
                raise

    # ----- logging -----------------------------------------------------------
    def _attach_log_handler(self) -> None:
        """Write the ``demo`` loggers to a rotating file; the root logger is untouched."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            self.log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS,
            encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        demo_logger = logging.getLogger("demo")
        if demo_logger.level == logging.NOTSET:
            self._previous_level = logging.NOTSET
            demo_logger.setLevel(logging.INFO)
        demo_logger.addHandler(handler)
        self._log_handler = handler

    def _detach_log_handler(self) -> None:
        if self._log_handler is None:
            return
        demo_logger = logging.getLogger("demo")
        demo_logger.removeHandler(self._log_handler)
        self._log_handler.close()
        self._log_handler = None
        if self._previous_level is not None:
            demo_logger.setLevel(self._previous_level)
            self._previous_level = None

    # ----- what the console shows -------------------------------------------
    def _db_bytes(self) -> int:
        """Size of the database including its write-ahead log."""
        files = (self.db_path, self.db_path.with_name(self.db_path.name + "-wal"))
        return sum(f.stat().st_size for f in files if f.exists())

    def stats(self) -> dict[str, Any]:
        """Traffic counters, order count, database size, models and jobs.

        A part that is not running is None, so readers can say so.
        """
        orders = None
        if self.engine is not None:
            try:
                with Session(self.engine) as session:
                    orders = session.scalar(select(func.count()).select_from(Order))
            except Exception as exc:  # noqa: BLE001 - stats must not raise
                logger.warning("could not count orders: %s", exc)
        jobs = None
        if self.scheduler is not None:
            jobs = []
            for job in self.scheduler.get_jobs():
                next_run = job.next_run_time
                jobs.append({"id": job.id, "name": job.name,
                             "next_run_time": next_run.isoformat(timespec="seconds")
                             if next_run else None})
        return {
            "running": self.running,
            "url": self.url,
            "traffic": self.traffic.counters() if self.traffic is not None else None,
            "database": None if self.engine is None else {
                "url": self.database_url, "orders": orders, "size_bytes": self._db_bytes()},
            "log": {"path": str(self.log_file),
                    "size_bytes": self.log_file.stat().st_size if self.log_file.exists() else 0},
            "models": [m.summary() for m in self.models] if self.models else [],
            "jobs": jobs,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }
