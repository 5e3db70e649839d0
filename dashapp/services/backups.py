"""Backups of the monitored application's databases, restores that never
lose data, restore drills, schedules and retention.

Targets come from OPS_BACKUP_TARGETS (default: the demo shop's SQLite file).

* SQLite: the online backup API copies a consistent snapshot while the
  application keeps writing (WAL); the snapshot is gzip-compressed into
  OPS_BACKUP_DIR, its sha256 computed while writing, and renamed into place
  only when complete. A restore decompresses into a scratch file, checks it
  (PRAGMA integrity_check), then copies it INTO the live database with the
  backup API in reverse: SQLite holds one write transaction on the live file
  for the whole copy, so other connections stay valid and see either the old
  or the new content, never a mix; on any error the copy is rolled back.
* PostgreSQL: `pg_dump -Fc` (compressed already) and `pg_restore
  --single-transaction --clean --if-exists --no-owner`, so a failing restore
  rolls back completely. The password travels in PGPASSWORD in the child's
  environment only, never on a command line, in a log or in an error.

Every restore first checks the file's sha256 against the one recorded when
it was made and takes a safety backup of the current database (removed again
when the restore fails, since a failed restore changed nothing). Backup files
and their temporary files are owner-only (0600), whatever the umask. One backup or
restore per target at a time (a row in `ops_backup_lock`, shared by every
worker). The functions here are what both /api/backup and the Backups page
call; auditing is the caller's (see `audited`).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dashapp.security.audit import audited  # noqa: F401  (re-exported for callers)
from dashapp.store import _short_error
from dashapp.store.models import (BackupHistory, BackupLock, BackupRestore, BackupSchedule,
                                  as_utc, utcnow)

logger = logging.getLogger(__name__)

KINDS = ("manual", "scheduled", "safety")
STATUSES = ("running", "succeeded", "failed", "deleted")
CHUNK = 1024 * 1024                # bytes per read/write while compressing or hashing
RESTORE_PAGES = 256                # pages copied per step into a live SQLite file
DUMP_TIMEOUT_S = 3600              # pg_dump / pg_restore / a SQLite copy, at most
LOCK_TTL_S = 2 * DUMP_TIMEOUT_S + 600  # a lock older than this was left by a dead worker
SAFETY_KEEP_DAYS = 7               # safety backups are kept at least this long
STALE_GRACE = timedelta(minutes=30)  # how late a scheduled backup may be before a warning
SCHEDULER_ACTOR = "scheduler"
PG_TOOLS_HINT = ("install the Debian package postgresql-client "
                 "(apt-get install postgresql-client) on the console's machine")


# ----------------------------------------------------------------- errors

class BackupError(Exception):
    """A backup operation refused or failed; `status`/`code` are the REST
    answer, the message is for a person (never holds a password)."""
    status = 400
    code = "backup_error"


class TargetNotFound(BackupError):
    status, code = 404, "unknown_target"


class BackupNotFound(BackupError):
    status, code = 404, "not_found"


class Busy(BackupError):
    status, code = 409, "busy"


class NotRestorable(BackupError):
    status, code = 409, "not_restorable"


class ChecksumMismatch(BackupError):
    status, code = 409, "checksum_mismatch"


class FileMissing(BackupError):
    status, code = 404, "file_missing"


class ToolMissing(BackupError):
    status, code = 503, "tool_missing"


class TargetUnavailable(BackupError):
    status, code = 503, "target_unavailable"


class BackupFailed(BackupError):
    status, code = 502, "backup_failed"


class RestoreFailed(BackupError):
    status, code = 422, "restore_failed"


# ---------------------------------------------------------------- targets

@dataclass(frozen=True)
class Target:
    """A database that may be backed up. `url` may carry a password: only
    `location` is ever shown."""
    name: str
    url: str

    @property
    def engine(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def sqlite_path(self) -> Path:
        return Path(make_url(self.url).database)

    @property
    def location(self) -> str:
        """Where it is, without credentials."""
        url = make_url(self.url)
        if self.engine == "sqlite":
            return str(self.sqlite_path)
        host = url.host or "localhost"
        port = f":{url.port}" if url.port else ""
        user = f"{url.username}@" if url.username else ""
        return f"{user}{host}{port}/{url.database}"


def targets(settings) -> dict[str, Target]:
    return {name: Target(name, url) for name, url in settings.backup_target_urls.items()}


def get_target(settings, name: str) -> Target:
    found = targets(settings)
    if name not in found:
        known = ", ".join(found) or "none configured (OPS_BACKUP_TARGETS)"
        raise TargetNotFound(f"No backup target called {name!r}; known: {known}.")
    return found[name]


def tools_status() -> dict[str, bool]:
    """Whether pg_dump and pg_restore are on PATH."""
    return {tool: shutil.which(tool) is not None for tool in ("pg_dump", "pg_restore")}


# ------------------------------------------------------------------ files

def backup_folder(settings) -> Path:
    folder = Path(settings.backups_folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _private(path: Path) -> io.BufferedWriter:
    """A file opened for writing that only the console's user can read
    (0600 whatever the umask, like the secret key); never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                 | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)             # a file left behind by a crash, too
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def file_path(settings, name: str | None) -> Path:
    """The path of a stored backup file name, refusing anything that is not
    a plain name inside the backup folder (a stored value is never trusted)."""
    folder = backup_folder(settings).resolve()
    if not name or not SAFE_NAME.match(name) or ".." in name:
        raise FileMissing(f"The recorded file name {name!r} is not a plain file name "
                          "inside the backup folder; refused.")
    path = (folder / name).resolve()
    if path.parent != folder:
        raise FileMissing(f"The recorded file {name!r} is outside the backup folder; refused.")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


class _HashingWriter:
    """A binary file that counts and hashes what is written through it."""

    def __init__(self, fh):
        self.fh, self.size, self.digest = fh, 0, hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def _publish(partial: Path, final: Path) -> None:
    """fsync `partial`, then rename it to `final` (atomic on one filesystem)."""
    with open(partial, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, final)


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _deadline(timeout_s: float, what: str):
    """A sqlite3 backup progress callback that aborts the copy (which rolls
    it back) once `timeout_s` has passed; remembers how far it got."""
    end = time.monotonic() + timeout_s
    state = {"remaining": None, "total": None}

    def progress(_status: int, remaining: int, total: int) -> None:
        state["remaining"], state["total"] = remaining, total
        if remaining and time.monotonic() > end:
            raise TimeoutError(f"{what} took longer than {timeout_s:g} s "
                               f"({total - remaining:,} of {total:,} pages copied)")
    progress.state = state  # type: ignore[attr-defined]
    return progress


# ----------------------------------------------------------------- SQLite

def _sqlite_connect(path: Path, timeout_s: float = 10.0) -> sqlite3.Connection:
    """An existing SQLite file (never creates one)."""
    if not path.exists():
        raise TargetUnavailable(f"The SQLite database {path} does not exist.")
    try:
        return sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=timeout_s)
    except sqlite3.Error as exc:
        raise TargetUnavailable(f"Cannot open the SQLite database {path}: {exc}") from None


def _dump_sqlite(target: Target, dest: Path, timeout_s: float) -> tuple[int, str]:
    """Snapshot with the online backup API into a temp file beside `dest`,
    gzip it into `dest` while hashing. Returns (size, sha256)."""
    snapshot = dest.with_name(f".{dest.name}.snapshot")
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        source = _sqlite_connect(target.sqlite_path)
        try:
            # An empty 0600 file first: SQLite keeps its mode (and gives it to
            # the snapshot's journal), where it would create one with 0644.
            _private(snapshot).close()
            copy = sqlite3.connect(snapshot)
            try:
                # One step (-1): one read transaction, so the snapshot is
                # consistent even while the application writes (WAL).
                source.backup(copy, pages=-1, sleep=0.1,
                              progress=_deadline(timeout_s, "The SQLite snapshot"))
            finally:
                copy.close()
        finally:
            source.close()
        with _private(partial) as raw:
            writer = _HashingWriter(raw)
            with gzip.GzipFile(fileobj=writer, mode="wb", compresslevel=6, mtime=0) as gz, \
                    open(snapshot, "rb") as fh:
                while block := fh.read(CHUNK):
                    gz.write(block)
        _publish(partial, dest)
        return writer.size, writer.digest.hexdigest()
    except (sqlite3.Error, TimeoutError) as exc:
        raise BackupFailed(f"The SQLite backup failed: {exc}") from None
    finally:
        _remove(snapshot, partial, snapshot.with_name(snapshot.name + "-wal"),
                snapshot.with_name(snapshot.name + "-shm"))


def _decompress(path: Path, dest: Path) -> None:
    try:
        with gzip.open(path, "rb") as gz, _private(dest) as out:
            while block := gz.read(CHUNK):
                out.write(block)
    except (OSError, EOFError, zlib.error) as exc:
        raise RestoreFailed(f"The backup file cannot be decompressed ({exc}); it is "
                            "damaged.") from None


def _check_sqlite_file(path: Path) -> sqlite3.Connection:
    """Open a decompressed backup, refuse it unless integrity_check says ok."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        result = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise RestoreFailed(f"The backup does not hold a usable SQLite database: {exc}.") \
            from None
    if result != ["ok"]:
        conn.close()
        raise RestoreFailed("The backup's database fails SQLite's integrity check: "
                            + "; ".join(result[:3]))
    return conn


def _sqlite_counts(conn: sqlite3.Connection) -> tuple[int, int]:
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    rows = sum(conn.execute(f'SELECT count(*) FROM "{t.replace(chr(34), chr(34) * 2)}"')
               .fetchone()[0] for t in tables)
    return len(tables), rows


def _restore_sqlite(target: Target, path: Path, scratch: Path, timeout_s: float) -> None:
    db = scratch / "restore.db"
    _decompress(path, db)
    source = _check_sqlite_file(db)
    try:
        live_path = target.sqlite_path
        if not live_path.exists():
            # Nothing to replace (the file was lost): put the checked copy in place.
            source.close()
            live_path.parent.mkdir(parents=True, exist_ok=True)
            staged = live_path.with_name(f".{live_path.name}.restoring")
            shutil.copyfile(db, staged)
            _publish(staged, live_path)
            return
        live = _sqlite_connect(live_path, timeout_s=min(timeout_s, 30))
        try:
            page_size = live.execute("PRAGMA page_size").fetchone()[0]
            if source.execute("PRAGMA page_size").fetchone()[0] != page_size:
                # The backup API cannot change the page size of a WAL database.
                source.execute(f"PRAGMA page_size={int(page_size)}")
                source.execute("VACUUM")
            progress = _deadline(timeout_s, "Copying into the live database")
            try:
                source.backup(live, pages=RESTORE_PAGES, sleep=0.1, progress=progress)
            except (sqlite3.Error, TimeoutError) as exc:
                raise RestoreFailed(
                    f"Copying into the live database failed: {exc}. SQLite rolled the "
                    "copy back; the database is exactly as it was.") from None
        finally:
            live.close()
    finally:
        source.close()


def _drill_sqlite(path: Path, scratch: Path) -> tuple[int, int]:
    db = scratch / "drill.db"
    _decompress(path, db)
    conn = _check_sqlite_file(db)
    try:
        return _sqlite_counts(conn)
    finally:
        conn.close()


# ------------------------------------------------------------- PostgreSQL

def _pg_args(url: str) -> tuple[str, dict[str, str]]:
    """(libpq URI without the password, environment with PGPASSWORD)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    uri = parsed.set(drivername="postgresql", password=None) \
        .render_as_string(hide_password=False)
    return uri, env


def _sa_url(url: str, database: str | None = None) -> str:
    """The target as a SQLAlchemy URL on the psycopg driver, optionally on
    another database of the same server."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _scrub(message: str, url: str) -> str:
    password = make_url(url).password
    if password:
        message = message.replace(str(password), "***")
    return message


def _run_pg(tool: str, args: list[str], url: str, timeout_s: float) -> str:
    """Run pg_dump/pg_restore; returns stderr; raises with its last lines."""
    binary = shutil.which(tool)
    if binary is None:
        raise ToolMissing(f"{tool} is not installed: {PG_TOOLS_HINT}.")
    _uri, env = _pg_args(url)
    try:
        done = subprocess.run([binary, *args], env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"{tool} took longer than {timeout_s:g} s and was stopped") \
            from None
    stderr = _scrub(done.stderr.strip(), url)
    if done.returncode != 0:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        raise subprocess.CalledProcessError(done.returncode, tool,
                                            stderr="\n".join(lines[-4:])[:1000])
    return stderr


def _pg_failure(exc: Exception) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        return f"{exc.cmd} exited with {exc.returncode}: {exc.stderr or 'no message'}"
    return str(exc)


def _dump_pg(target: Target, dest: Path, timeout_s: float) -> tuple[int, str]:
    partial = dest.with_name(f".{dest.name}.partial")
    uri, _env = _pg_args(target.url)
    try:
        _private(partial).close()        # pg_dump writes into it, keeping its 0600
        _run_pg("pg_dump", ["--format=custom", "--no-password", f"--file={partial}",
                            f"--dbname={uri}"], target.url, timeout_s)
        size, digest = partial.stat().st_size, sha256_of(partial)
        _publish(partial, dest)
        return size, digest
    except (subprocess.CalledProcessError, TimeoutError) as exc:
        raise BackupFailed(f"pg_dump failed: {_pg_failure(exc)}") from None
    finally:
        _remove(partial)


def _check_dump(path: Path, url: str) -> None:
    """pg_restore --list reads the whole table of contents: a damaged or
    foreign file is refused before the database is touched."""
    try:
        _run_pg("pg_restore", ["--list", str(path)], url, 120)
    except (subprocess.CalledProcessError, TimeoutError) as exc:
        raise RestoreFailed(f"The file is not a readable pg_dump archive: "
                            f"{_pg_failure(exc)}") from None


def _restore_pg(target: Target, path: Path, timeout_s: float) -> None:
    _check_dump(path, target.url)
    uri, _env = _pg_args(target.url)
    try:
        _run_pg("pg_restore", ["--single-transaction", "--clean", "--if-exists",
                               "--no-owner", "--no-password", f"--dbname={uri}", str(path)],
                target.url, timeout_s)
    except (subprocess.CalledProcessError, TimeoutError) as exc:
        raise RestoreFailed(f"pg_restore failed, so the whole restore was rolled back and "
                            f"the database is exactly as it was: {_pg_failure(exc)}") from None


def _pg_counts(url: str) -> tuple[int, int]:
    engine = create_engine(_sa_url(url), connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            tables = conn.execute(text(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) "
                "FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                "AND table_schema NOT IN ('pg_catalog', 'information_schema')")).scalars().all()
            rows = sum(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                       for t in tables)
        return len(tables), rows
    finally:
        engine.dispose()


def _drill_pg(target: Target, path: Path, timeout_s: float) -> tuple[int, int]:
    """Restore into a scratch database on the same server, count, drop it."""
    _check_dump(path, target.url)
    base = make_url(target.url).database
    scratch = f"{base[:40]}_drill_{secrets.token_hex(4)}"
    admin = create_engine(_sa_url(target.url), isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 10})
    try:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{scratch}"'))
        except SQLAlchemyError as exc:
            raise TargetUnavailable(
                "Cannot create a scratch database for the drill (the target's user "
                f"needs CREATEDB): {_scrub(_short_error(exc), target.url)}") from None
        scratch_url = _sa_url(target.url, scratch)
        try:
            uri, _env = _pg_args(scratch_url)
            try:
                _run_pg("pg_restore", ["--no-owner", "--exit-on-error", "--no-password",
                                       f"--dbname={uri}", str(path)], scratch_url, timeout_s)
            except (subprocess.CalledProcessError, TimeoutError) as exc:
                raise RestoreFailed(f"The dump does not restore: {_pg_failure(exc)}") from None
            return _pg_counts(scratch_url)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
    finally:
        admin.dispose()


# ------------------------------------------------------------------ locks

@contextmanager
def target_lock(store, target: str, operation: str, actor: str) -> Iterator[None]:
    """One backup/restore/delete per target at a time, across every worker:
    a row in ops_backup_lock. Raises Busy (409) when another holds it."""
    holder = f"{actor[:48]}#{secrets.token_hex(6)}"
    now = utcnow()
    values = {"operation": operation, "holder": holder, "acquired_at": now,
              "expires_at": now + timedelta(seconds=LOCK_TTL_S)}
    try:
        with store.session() as sess:
            sess.add(BackupLock(target=target, **values))
    except IntegrityError:
        with store.session() as sess:
            taken = sess.execute(update(BackupLock).where(
                BackupLock.target == target, BackupLock.expires_at < now).values(**values))
            if taken.rowcount != 1:
                busy = sess.get(BackupLock, target)
                what = (f"a {busy.operation} started by {busy.holder.rsplit('#', 1)[0]} at "
                        f"{as_utc(busy.acquired_at):%Y-%m-%d %H:%M:%S} UTC") if busy else \
                    "another operation"
                raise Busy(f"{target} is busy: {what} is still running. Try again when "
                           "it has finished.") from None
    try:
        yield
    finally:
        with store.session() as sess:
            sess.query(BackupLock).filter(BackupLock.target == target,
                                          BackupLock.holder == holder).delete()


# ---------------------------------------------------------------- history

def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None


def backup_info(row: BackupHistory, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    started = as_utc(row.started_at)
    finished = as_utc(row.finished_at)
    return {
        "id": row.id, "target": row.target, "engine": row.engine, "kind": row.kind,
        "status": row.status, "file": row.file, "size": row.size, "sha256": row.sha256,
        "started_at": _iso(started), "finished_at": _iso(finished),
        "duration_ms": row.duration_ms,
        "age_s": int((now - (finished or started)).total_seconds()),
        "created_by": row.created_by, "note": row.note, "error": row.error,
        "deleted_at": _iso(row.deleted_at), "deleted_by": row.deleted_by,
        "verify": None if row.verified_at is None else {
            "at": _iso(row.verified_at), "ok": row.verify_ok, "message": row.verify_message,
            "tables": row.verify_tables, "rows": row.verify_rows},
    }


def restore_info(row: BackupRestore) -> dict[str, Any]:
    return {"id": row.id, "backup_id": row.backup_id, "target": row.target,
            "safety_backup_id": row.safety_backup_id, "status": row.status,
            "requested_by": row.requested_by, "note": row.note,
            "started_at": _iso(row.started_at), "finished_at": _iso(row.finished_at),
            "duration_ms": row.duration_ms, "error": row.error}


def list_backups(store, *, target: str | None = None, status: str | None = None,
                 kind: str | None = None, include_deleted: bool = False,
                 limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """Newest first, with the total matching (for paging)."""
    query = select(BackupHistory)
    if target:
        query = query.where(BackupHistory.target == target)
    if status:
        query = query.where(BackupHistory.status == status)
    elif not include_deleted:
        query = query.where(BackupHistory.status != "deleted")
    if kind:
        query = query.where(BackupHistory.kind == kind)
    with store.session() as sess:
        total = sess.scalar(select(func.count()).select_from(query.subquery()))
        rows = sess.scalars(query.order_by(BackupHistory.started_at.desc(),
                                           BackupHistory.id.desc())
                            .limit(limit).offset(offset)).all()
    now = utcnow()
    return {"backups": [backup_info(r, now) for r in rows], "total": total,
            "limit": limit, "offset": offset}


def _row(store, backup_id: int) -> BackupHistory:
    with store.session() as sess:
        row = sess.get(BackupHistory, backup_id)
    if row is None:
        raise BackupNotFound(f"No backup #{backup_id}.")
    return row


def get_backup(store, backup_id: int) -> dict[str, Any]:
    """One backup's metadata with the restores made from it."""
    row = _row(store, backup_id)
    with store.session() as sess:
        restores = sess.scalars(select(BackupRestore).where(
            (BackupRestore.backup_id == backup_id)
            | (BackupRestore.safety_backup_id == backup_id))
            .order_by(BackupRestore.started_at.desc())).all()
    return {**backup_info(row), "restores": [restore_info(r) for r in restores]}


def list_restores(store, *, target: str | None = None, limit: int = 50) -> list[dict]:
    query = select(BackupRestore)
    if target:
        query = query.where(BackupRestore.target == target)
    with store.session() as sess:
        rows = sess.scalars(query.order_by(BackupRestore.started_at.desc(),
                                           BackupRestore.id.desc()).limit(limit)).all()
    return [restore_info(r) for r in rows]


def _update(store, model, row_id: int, **values) -> None:
    with store.session() as sess:
        sess.execute(update(model).where(model.id == row_id).values(**values))


def _elapsed_ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)


# ----------------------------------------------------------------- create

def create_backup(store, settings, target_name: str, *, actor: str, note: str = "",
                  kind: str = "manual", timeout_s: float = DUMP_TIMEOUT_S) -> dict[str, Any]:
    """Back up a target now (blocking). Raises Busy when the target is busy,
    BackupFailed (the failed attempt is recorded) when the copy fails."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    target = get_target(settings, target_name)
    with target_lock(store, target.name, "backup", actor):
        return _create_locked(store, settings, target, actor=actor, note=note, kind=kind,
                              timeout_s=timeout_s)


def _create_locked(store, settings, target: Target, *, actor: str, note: str, kind: str,
                   timeout_s: float) -> dict[str, Any]:
    started_at, start = utcnow(), time.perf_counter()
    with store.session() as sess:
        row = BackupHistory(target=target.name, engine=target.engine, kind=kind,
                            status="running", started_at=started_at, created_by=actor[:64],
                            note=(note or "")[:500])
        sess.add(row)
        sess.flush()
        backup_id = row.id
    suffix = "sqlite.gz" if target.engine == "sqlite" else "dump"
    name = f"{target.name}-{started_at:%Y%m%dT%H%M%SZ}-{backup_id}-{kind}.{suffix}"
    try:
        dest = file_path(settings, name)
        if target.engine == "sqlite":
            size, digest = _dump_sqlite(target, dest, timeout_s)
        else:
            size, digest = _dump_pg(target, dest, timeout_s)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, BackupError) else \
            f"{type(exc).__name__}: {_scrub(str(exc), target.url)[:500]}"
        _update(store, BackupHistory, backup_id, status="failed", error=message,
                finished_at=utcnow(), duration_ms=_elapsed_ms(start))
        logger.warning("backup #%d of %s failed: %s", backup_id, target.name, message)
        if isinstance(exc, BackupError):
            raise
        if isinstance(exc, Exception):
            raise BackupFailed(f"The backup of {target.name} failed: {message}") from None
        raise
    _update(store, BackupHistory, backup_id, status="succeeded", file=name, size=size,
            sha256=digest, finished_at=utcnow(), duration_ms=_elapsed_ms(start))
    logger.info("backup #%d of %s: %s, %d bytes", backup_id, target.name, name, size)
    return get_backup(store, backup_id)


# ---------------------------------------------------------------- restore

def checked_file(settings, row: BackupHistory) -> Path:
    """The backup's file after checking it exists and its sha256 matches the
    one recorded when it was made."""
    if row.status != "succeeded":
        raise NotRestorable(f"Backup #{row.id} is {row.status}; only a succeeded backup "
                            "can be used.")
    path = file_path(settings, row.file)
    if not path.is_file():
        raise FileMissing(f"The file of backup #{row.id} ({row.file}) is missing from the "
                          "backup folder.")
    actual = sha256_of(path)
    if actual != row.sha256:
        raise ChecksumMismatch(
            f"Backup #{row.id} is damaged or was changed: its sha256 is {actual[:12]}…, "
            f"but {(row.sha256 or '?')[:12]}… was recorded when it was made. Refused; "
            "nothing was changed.")
    return path


def restore_backup(store, settings, backup_id: int, *, actor: str, note: str = "",
                   timeout_s: float = DUMP_TIMEOUT_S) -> dict[str, Any]:
    """Restore a backup into its target, never losing data: checksum first,
    then a safety backup of the current database, then an all-or-nothing
    restore. Returns the restore record (with `safety_backup_id`)."""
    row = _row(store, backup_id)
    target = get_target(settings, row.target)
    with target_lock(store, target.name, "restore", actor):
        path = checked_file(settings, row)
        start = time.perf_counter()
        with store.session() as sess:
            record = BackupRestore(backup_id=row.id, target=target.name, status="running",
                                   requested_by=actor[:64], note=(note or "")[:500],
                                   started_at=utcnow())
            sess.add(record)
            sess.flush()
            restore_id = record.id
        safety_id = None
        try:
            if target.engine == "sqlite" and not target.sqlite_path.exists():
                logger.warning("restore of %s: the database file is missing; no safety "
                               "backup", target.name)
            else:
                try:
                    safety = _create_locked(store, settings, target, actor=actor,
                                            kind="safety", timeout_s=timeout_s,
                                            note=f"before restoring backup #{row.id}")
                except BackupError as exc:
                    raise RestoreFailed(f"The safety backup of the current database failed, "
                                        f"so nothing was restored: {exc}") from None
                safety_id = safety["id"]
                _update(store, BackupRestore, restore_id, safety_backup_id=safety_id)
            if target.engine == "sqlite":
                with tempfile.TemporaryDirectory(prefix=".restore-",
                                                 dir=backup_folder(settings)) as scratch:
                    _restore_sqlite(target, path, Path(scratch), timeout_s)
            else:
                _restore_pg(target, path, timeout_s)
        except BaseException as exc:
            message = str(exc) if isinstance(exc, BackupError) else \
                f"{type(exc).__name__}: {_scrub(str(exc), target.url)[:500]}"
            if safety_id is not None and isinstance(exc, Exception):
                message += _discard_safety(store, settings, safety_id, actor)
            _update(store, BackupRestore, restore_id, status="failed", error=message,
                    finished_at=utcnow(), duration_ms=_elapsed_ms(start))
            if not isinstance(exc, Exception):
                raise
            if isinstance(exc, BackupError):
                raise type(exc)(message) from None
            raise RestoreFailed(f"The restore failed: {message}") from None
        _update(store, BackupRestore, restore_id, status="succeeded", finished_at=utcnow(),
                duration_ms=_elapsed_ms(start))
    logger.info("restored backup #%d into %s (safety backup #%s)", row.id, target.name,
                safety_id)
    with store.session() as sess:
        return restore_info(sess.get(BackupRestore, restore_id))


def _discard_safety(store, settings, safety_id: int, actor: str) -> str:
    """Remove the safety backup of a restore that failed: the restore changed
    nothing (SQLite and pg_restore roll the whole copy back), so the copy
    would only pile up. The row stays as history, marked deleted. Returns
    what to add to the restore's error."""
    try:
        row = _row(store, safety_id)
        if row.file:
            _remove(file_path(settings, row.file))
        _update(store, BackupHistory, safety_id, status="deleted", deleted_at=utcnow(),
                deleted_by=actor[:64])
    except Exception as exc:  # noqa: BLE001 - never hide the restore's own error
        logger.warning("safety backup #%d of a failed restore not removed: %s", safety_id, exc)
        return f" The safety backup #{safety_id} taken before the restore is kept."
    return (f" The safety backup #{safety_id} taken before the restore was removed, since "
            "the database was not changed.")


# ------------------------------------------------------------------ drill

def verify_backup(store, settings, backup_id: int, *,
                  timeout_s: float = DUMP_TIMEOUT_S) -> dict[str, Any]:
    """A restore drill: restore into a scratch database (never the target),
    run the integrity check, count tables and rows, record the result on the
    backup. A bad backup is a result (ok false), not an error; a drill that
    cannot run (tool missing, no CREATEDB) raises."""
    row = _row(store, backup_id)
    target = get_target(settings, row.target) if row.engine == "postgresql" else None
    tables = rows = None
    try:
        path = checked_file(settings, row)
        if row.engine == "sqlite":
            with tempfile.TemporaryDirectory(prefix=".drill-",
                                             dir=backup_folder(settings)) as scratch:
                tables, rows = _drill_sqlite(path, Path(scratch))
        else:
            tables, rows = _drill_pg(target, path, timeout_s)
        ok, message = True, (f"Restored into a scratch database: integrity check passed, "
                             f"{tables:,} tables, {rows:,} rows.")
    except (ChecksumMismatch, FileMissing, RestoreFailed) as exc:
        ok, message = False, str(exc)
    except NotRestorable:
        raise
    _update(store, BackupHistory, row.id, verified_at=utcnow(), verify_ok=ok,
            verify_message=message[:2000], verify_tables=tables, verify_rows=rows)
    return {"id": row.id, "ok": ok, "message": message, "tables": tables, "rows": rows}


# ----------------------------------------------------------------- delete

def delete_backup(store, settings, backup_id: int, *, actor: str) -> dict[str, Any]:
    """Remove a backup's file and mark its row deleted (the row stays as
    history). Refused while its target is being backed up or restored."""
    row = _row(store, backup_id)
    if row.status == "deleted":
        raise BackupNotFound(f"Backup #{backup_id} was already deleted.")
    if row.status == "running":
        raise Busy(f"Backup #{backup_id} is still running.")
    with target_lock(store, row.target, "delete", actor):
        if row.file:
            _remove(file_path(settings, row.file))
        _update(store, BackupHistory, row.id, status="deleted", deleted_at=utcnow(),
                deleted_by=actor[:64])
    return get_backup(store, backup_id)


# -------------------------------------------------------------- schedules

def parse_cron(expression: str):
    """A 5-field crontab expression as an APScheduler CronTrigger (UTC);
    ValueError saying what is wrong."""
    from apscheduler.triggers.cron import CronTrigger
    expression = " ".join((expression or "").split())
    if not expression:
        raise ValueError("cron: give a 5-field crontab expression, e.g. '0 3 * * *'")
    try:
        return CronTrigger.from_crontab(expression, timezone=timezone.utc)
    except ValueError as exc:
        raise ValueError(f"cron: {exc}") from None


def next_runs(expression: str, count: int = 3, after: datetime | None = None) -> list[datetime]:
    trigger = parse_cron(expression)
    moment = after or utcnow()
    found: list[datetime] = []
    previous = None
    for _ in range(count):
        nxt = trigger.get_next_fire_time(previous, moment)
        if nxt is None:
            break
        found.append(nxt)
        previous = moment = nxt
    return found


def schedule_info(row: BackupSchedule, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    return {"target": row.target, "cron": row.cron, "keep_last": row.keep_last,
            "keep_days": row.keep_days, "enabled": row.enabled,
            "updated_by": row.updated_by, "updated_at": _iso(row.updated_at),
            "last_run_at": _iso(row.last_run_at), "last_backup_id": row.last_backup_id,
            "next_runs": [t.isoformat() for t in next_runs(row.cron, 3, now)]
            if row.enabled else []}


def list_schedules(store) -> list[dict[str, Any]]:
    with store.session() as sess:
        rows = sess.scalars(select(BackupSchedule).order_by(BackupSchedule.target)).all()
    now = utcnow()
    return [schedule_info(r, now) for r in rows]


def save_schedule(store, settings, *, target: str, cron: str, keep_last: int | None,
                  keep_days: int | None, enabled: bool, actor: str) -> dict[str, Any]:
    """Create or replace the schedule of a target (one per target)."""
    get_target(settings, target)
    cron = " ".join(cron.split())
    trigger = parse_cron(cron)
    for name, value in (("keep_last", keep_last), ("keep_days", keep_days)):
        if value is not None and not 1 <= value <= 100_000:
            raise ValueError(f"{name}: must be 1 or more (or empty for no limit)")
    now = utcnow()
    values = {"cron": cron, "keep_last": keep_last, "keep_days": keep_days,
              "enabled": enabled, "updated_by": actor[:64], "updated_at": now,
              "next_run_at": trigger.get_next_fire_time(None, now) if enabled else None}
    with store.session() as sess:
        row = sess.scalar(select(BackupSchedule).where(BackupSchedule.target == target))
        if row is None:
            row = BackupSchedule(target=target, **values)
            sess.add(row)
        else:
            for key, value in values.items():
                setattr(row, key, value)
        sess.flush()
        return schedule_info(row, now)


def _claim(store, row: BackupSchedule, now: datetime) -> bool:
    """Move the schedule's next run forward iff nobody else did: the one
    worker whose UPDATE matches runs it."""
    upcoming = parse_cron(row.cron).get_next_fire_time(None, now + timedelta(seconds=1))
    with store.session() as sess:
        result = sess.execute(update(BackupSchedule).where(
            BackupSchedule.id == row.id, BackupSchedule.next_run_at == row.next_run_at)
            .values(next_run_at=upcoming, last_run_at=now))
        return result.rowcount == 1


def run_due_schedules(store, settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """Run every enabled schedule whose time has come (once, whatever the
    number of workers calling this), then apply its retention. Returns what
    each run did. Called every minute by the console's scheduler."""
    from dashapp.security import audit
    now = now or utcnow()
    mark_interrupted(store, now)
    with store.session() as sess:
        due = sess.scalars(select(BackupSchedule).where(
            BackupSchedule.enabled.is_(True), BackupSchedule.next_run_at <= now)).all()
    results = []
    for row in due:
        if not _claim(store, row, now):
            continue
        outcome: dict[str, Any] = {"target": row.target, "cron": row.cron}
        try:
            with audited(store, actor=SCHEDULER_ACTOR, action="backup_create",
                         target=f"backup:{row.target}",
                         details={"kind": "scheduled", "cron": row.cron}) as info:
                backup = create_backup(store, settings, row.target, actor=SCHEDULER_ACTOR,
                                       kind="scheduled", note=f"schedule {row.cron}")
                info["backup_id"] = outcome["backup_id"] = backup["id"]
            _update(store, BackupSchedule, row.id, last_backup_id=backup["id"])
        except (BackupError, audit.AuditUnavailable) as exc:
            outcome["error"] = str(exc)
            logger.warning("scheduled backup of %s failed: %s", row.target, exc)
        try:
            removed = apply_retention(store, settings, row.target, row.keep_last,
                                      row.keep_days, now=now)
        except audit.AuditUnavailable as exc:
            removed = []
            logger.warning("retention of %s not applied: %s", row.target, exc)
        outcome["retention_deleted"] = removed
        results.append(outcome)
    return results


def mark_interrupted(store, now: datetime | None = None) -> int:
    """Backups and restores still "running" long after any could (their
    worker died) are marked failed, so the history never claims a run that
    is not happening."""
    cutoff = (now or utcnow()) - timedelta(seconds=LOCK_TTL_S)
    message = "Interrupted: the console process running it stopped."
    with store.session() as sess:
        found = sum(sess.execute(update(model).where(
            model.status == "running", model.started_at < cutoff)
            .values(status="failed", error=message)).rowcount
            for model in (BackupHistory, BackupRestore))
    return found


def retention_victims(rows: list[BackupHistory], keep_last: int | None,
                      keep_days: int | None, now: datetime) -> list[int]:
    """Which of a target's succeeded backups retention removes.

    Only scheduled and safety backups are candidates (manual ones were made
    on purpose; an admin deletes those). The newest good backup of the target
    is never removed. Scheduled: kept when among the newest `keep_last`
    scheduled ones OR younger than `keep_days` (a rule left empty keeps
    nothing by itself; both empty: nothing is removed). Safety: kept for
    SAFETY_KEEP_DAYS days."""
    good = sorted((r for r in rows if r.status == "succeeded"),
                  key=lambda r: (as_utc(r.started_at), r.id), reverse=True)
    if not good:
        return []
    newest = good[0].id
    victims = []
    scheduled = [r for r in good if r.kind == "scheduled"]
    if keep_last is not None or keep_days is not None:
        for index, r in enumerate(scheduled):
            by_count = keep_last is not None and index < keep_last
            by_age = keep_days is not None and \
                now - as_utc(r.started_at) < timedelta(days=keep_days)
            if not (by_count or by_age) and r.id != newest:
                victims.append(r.id)
    for r in good:
        if r.kind == "safety" and r.id != newest and \
                now - as_utc(r.started_at) >= timedelta(days=SAFETY_KEEP_DAYS):
            victims.append(r.id)
    return victims


def apply_retention(store, settings, target: str, keep_last: int | None,
                    keep_days: int | None, now: datetime | None = None) -> list[int]:
    """Delete the target's backups past their retention; returns their ids.
    Audited first: AuditUnavailable, and nothing deleted, when it cannot be."""
    now = now or utcnow()
    with store.session() as sess:
        rows = sess.scalars(select(BackupHistory).where(
            BackupHistory.target == target, BackupHistory.status == "succeeded")).all()
    victims = retention_victims(list(rows), keep_last, keep_days, now)
    if not victims:
        return []
    removed = []
    with audited(store, actor=SCHEDULER_ACTOR, action="backup_retention",
                 target=f"backup:{target}", details={"due": list(victims)}) as info:
        for backup_id in victims:
            try:
                delete_backup(store, settings, backup_id, actor=SCHEDULER_ACTOR)
                removed.append(backup_id)
            except BackupError as exc:
                logger.warning("retention could not delete backup #%d: %s", backup_id, exc)
        info["deleted"] = removed
    return removed


# ---------------------------------------------------------------- overview

def freshness(schedule: BackupSchedule | None, newest_good_at: datetime | None,
              now: datetime) -> dict[str, Any] | None:
    """Is the newest good backup older than the schedule promises? The run
    due after the newest good backup (or after the schedule was saved) should
    have produced one within STALE_GRACE."""
    if schedule is None or not schedule.enabled:
        return None
    since = as_utc(newest_good_at) or as_utc(schedule.updated_at)
    due = parse_cron(schedule.cron).get_next_fire_time(None, since + timedelta(microseconds=1))
    stale = due is not None and due + STALE_GRACE < now
    return {"stale": stale, "due_at": due.isoformat() if due else None}


def target_overview(store, settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per target: engine, location (no credentials), tools, schedule, the
    newest good backup, and whether it is older than the schedule promises."""
    now = now or utcnow()
    tools = tools_status()
    with store.session() as sess:
        schedules = {r.target: r for r in sess.scalars(select(BackupSchedule)).all()}
        newest = dict(sess.execute(
            select(BackupHistory.target, func.max(BackupHistory.started_at))
            .where(BackupHistory.status == "succeeded").group_by(BackupHistory.target)).all())
    found = []
    for target in targets(settings).values():
        schedule = schedules.get(target.name)
        newest_at = as_utc(newest.get(target.name))
        fresh = freshness(schedule, newest_at, now)
        found.append({
            "name": target.name, "engine": target.engine, "location": target.location,
            "tools_ok": target.engine == "sqlite" or all(tools.values()),
            "schedule": schedule_info(schedule, now) if schedule else None,
            "newest_good_at": _iso(newest_at),
            "newest_good_age_s": int((now - newest_at).total_seconds()) if newest_at else None,
            "stale": bool(fresh and fresh["stale"]),
            "due_at": fresh["due_at"] if fresh else None,
        })
    return found
