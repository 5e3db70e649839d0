"""The console's store: one SQLAlchemy engine, sessions, and migrations."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from dashapp.config import ROOT

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = ROOT / "migrations"
MIGRATION_LOCK_KEY = 0x0B5C0A50  # pg advisory lock id for schema upgrades


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the console read while the instrumentation writes; the busy
    # timeout turns brief lock contention into a short wait, not an error.
    # synchronous=NORMAL: in WAL mode a commit no longer waits for an fsync
    # (the checkpoints still do); the file cannot be corrupted, and only a
    # power cut, not a crash of the process, can lose the last commits. The
    # hosts' writers commit every second: an fsync each was their main cost.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _create_private(path: Path) -> None:
    """Create the SQLite file owner-only (0600, like the secret key) before
    SQLite does (it would use 0644): SQLite gives its -wal and -shm files the
    mode of the database file, so they are owner-only too. An existing file
    keeps the mode its operator gave it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)                 # whatever the umask
    finally:
        os.close(fd)


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" \
                and not parsed.database.startswith("file:"):
            _create_private(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                         connect_args={"connect_timeout": 5}
                         if parsed.get_backend_name() == "postgresql" else {})


def alembic_config(url: str):
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class Store:
    """The console's database: engine, session factory and schema upgrades."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        sess = self.Session()
        try:
            yield sess
            sess.commit()
        except BaseException:
            sess.rollback()
            raise
        finally:
            sess.close()

    def upgrade(self, revision: str = "head") -> None:
        """Upgrade the schema; safe when several workers start at once."""
        from alembic import command
        cfg = alembic_config(self.url)
        with self._migration_lock():
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Held until this transaction ends: one migrator at a time.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": MIGRATION_LOCK_KEY})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)

    @contextmanager
    def _migration_lock(self):
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            from dashapp.store.locks import file_lock
            with file_lock(Path(url.database + ".migrate.lock")):
                yield
        else:
            yield

    def downgrade(self, revision: str) -> None:
        from alembic import command
        cfg = alembic_config(self.url)
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)

    def ping(self) -> dict:
        """{"ok": bool, "backend": ..., "latency_ms" | "error"} — never raises."""
        import time
        backend = self.engine.url.get_backend_name()
        start = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return {"ok": False, "backend": backend, "error": _short_error(exc)}
        return {"ok": True, "backend": backend,
                "latency_ms": round((time.perf_counter() - start) * 1000, 2)}

    def close(self) -> None:
        self.engine.dispose()


def _short_error(exc: Exception) -> str:
    """The first line of an error, without connection secrets."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {msg}"[:300]
