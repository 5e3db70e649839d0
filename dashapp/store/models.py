"""The console's own tables. Each issue adds its models here with a migration.

The store is separate from the monitored application's database, so restoring
that database can never erase the console's history.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey,
                        Index, Integer, SmallInteger, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime: the store always writes UTC,
    but SQLite hands times back naive (PostgreSQL aware)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


ROLES = ("viewer", "operator", "admin")


class User(Base):
    __tablename__ = "ops_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="viewer")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    tokens: Mapped[list["ApiToken"]] = relationship(back_populates="user")


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, the token is shown once."""
    __tablename__ = "ops_api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("ops_user.id", ondelete="CASCADE"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="tokens")


class UserSession(Base):
    """A signed-in browser session: the cookie names it, the server decides
    whether it still counts. Signing out deletes the row, deactivating a
    user deletes all of theirs, so a copied cookie dies with them."""
    __tablename__ = "ops_user_session"

    # SHA-256 of the random key in the cookie; the key itself is not stored.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("ops_user.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, index=True)


class AuditEvent(Base):
    """Who did what to which target, with what outcome, from where, when."""
    __tablename__ = "ops_audit_event"
    __table_args__ = (
        Index("ix_audit_time", "time"),
        Index("ix_audit_actor_time", "actor", "time"),
        Index("ix_audit_action_time", "action", "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    details: Mapped[dict | None] = mapped_column(JSON)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # success|failure|denied
    ip: Mapped[str | None] = mapped_column(String(64))


# ----- instrumentation (issue 3) ---------------------------------------------
# Big tables: ids are BIGINT on PostgreSQL (INTEGER on SQLite, where it is the
# 64-bit rowid anyway).
BigId = BigInteger().with_variant(Integer, "sqlite")


class AppRelease:
    """Which application, and which release of it, a row came from: every
    batch an agent sends names both (ops_agent.protocol), and every row made
    from it keeps them. '' where a row came from an agent that did not say."""
    app: Mapped[str] = mapped_column(String(64), nullable=False, default="",
                                     server_default="")
    release: Mapped[str] = mapped_column(String(64), nullable=False, default="",
                                         server_default="")


class IngestKey(Base):
    """An application's ingest key: only its SHA-256 is stored, the key is
    shown once. It can send batches for its application and receive that
    application's commands, nothing else."""
    __tablename__ = "ops_ingest_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(64))


class RequestLog(AppRelease, Base):
    """One HTTP request of a monitored application."""
    __tablename__ = "ops_request"
    __table_args__ = (
        Index("ix_request_time", "time"),
        Index("ix_request_endpoint_time", "endpoint", "time"),
        Index("ix_request_request_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    endpoint: Mapped[str] = mapped_column(String(255), nullable=False)
    method: Mapped[str] = mapped_column(String(10), nullable=False)
    status: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    duration_ms: Mapped[float] = mapped_column(Float, nullable=False)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    exception_type: Mapped[str | None] = mapped_column(String(255))
    exception_message: Mapped[str | None] = mapped_column(Text)
    process: Mapped[str] = mapped_column(String(96), nullable=False)


class QueryLog(AppRelease, Base):
    """One SQL statement a monitored application ran, parameters redacted."""
    __tablename__ = "ops_query"
    __table_args__ = (
        Index("ix_query_time", "time"),
        Index("ix_query_fingerprint_time", "fingerprint", "time"),
        Index("ix_query_request_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(16), nullable=False)
    sql: Mapped[str] = mapped_column(Text, nullable=False)
    duration_ms: Mapped[float] = mapped_column(Float, nullable=False)
    rows: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(64))
    endpoint: Mapped[str | None] = mapped_column(String(255))
    process: Mapped[str] = mapped_column(String(96), nullable=False)
    # The exception's class name when the statement raised, else None.
    error_type: Mapped[str | None] = mapped_column(String(100))


class MonitorProcess(AppRelease, Base):
    """A process running monitor(): what it recorded and what it dropped."""
    __tablename__ = "ops_monitor_process"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process: Mapped[str] = mapped_column(String(96), nullable=False, unique=True)
    app_name: Mapped[str] = mapped_column(String(255), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    recorded_requests: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    recorded_queries: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    dropped: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class IngestBatch(AppRelease, Base):
    """One flush of a monitored process, packed: the host writes a single row
    per flush (cheap for the host) and the console expands it into
    `ops_request` / `ops_query` rows (dashapp.services.ingest)."""
    __tablename__ = "ops_ingest"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    process: Mapped[str] = mapped_column(String(96), nullable=False)
    events: Mapped[int] = mapped_column(Integer, nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)


class _RollupFigures:
    """What a roll-up row keeps for its endpoint, method and period.

    `hist` is a latency histogram (dashapp.services.latency) so percentiles
    over long ranges can be estimated after the raw rows are purged.
    """
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(255), nullable=False)
    method: Mapped[str] = mapped_column(String(10), nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    errors: Mapped[int] = mapped_column(Integer, nullable=False)
    client_errors: Mapped[int] = mapped_column(Integer, nullable=False)
    total_ms: Mapped[float] = mapped_column(Float, nullable=False)
    max_ms: Mapped[float] = mapped_column(Float, nullable=False)
    hist: Mapped[dict] = mapped_column(JSON, nullable=False)


class RequestMinute(_RollupFigures, Base):
    """Requests per minute, endpoint and method, kept longer than raw rows."""
    __tablename__ = "ops_request_minute"
    __table_args__ = (
        UniqueConstraint("minute", "endpoint", "method", name="uq_request_minute"),
        Index("ix_request_minute_endpoint", "endpoint", "minute"),
    )

    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class RequestHour(_RollupFigures, Base):
    """Requests per hour, endpoint and method: `ops_request_minute` folded
    by the hour, so a day-long summary merges 24 histograms per endpoint,
    not 1,440."""
    __tablename__ = "ops_request_hour"
    __table_args__ = (
        UniqueConstraint("hour", "endpoint", "method", name="uq_request_hour"),
    )

    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


# ----- Redis (issue 4) -------------------------------------------------------

class RedisSample(Base):
    """One reading of a Redis server's INFO (and the @cached counters), taken
    by the console's collector; the Cache and Redis pages chart these.

    Counters (`hits`, `misses`, `commands`, `evicted`, `expired`,
    `cache_hits`, `cache_misses`) are Redis's cumulative totals: rates come
    from the difference between two samples, so a missed sample loses nothing.
    """
    __tablename__ = "ops_redis_sample"
    __table_args__ = (
        UniqueConstraint("instance", "time", name="uq_redis_sample"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    instance: Mapped[str] = mapped_column(String(32), nullable=False)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    uptime_s: Mapped[int] = mapped_column(BigInteger, nullable=False)
    used_memory: Mapped[int] = mapped_column(BigInteger, nullable=False)
    used_memory_peak: Mapped[int] = mapped_column(BigInteger, nullable=False)
    used_memory_rss: Mapped[int] = mapped_column(BigInteger, nullable=False)
    used_memory_dataset: Mapped[int | None] = mapped_column(BigInteger)
    fragmentation: Mapped[float | None] = mapped_column(Float)
    maxmemory: Mapped[int] = mapped_column(BigInteger, nullable=False)
    keys: Mapped[int] = mapped_column(BigInteger, nullable=False)
    clients: Mapped[int] = mapped_column(Integer, nullable=False)
    blocked_clients: Mapped[int] = mapped_column(Integer, nullable=False)
    ops_per_sec: Mapped[int] = mapped_column(Integer, nullable=False)
    commands: Mapped[int] = mapped_column(BigInteger, nullable=False)
    hits: Mapped[int] = mapped_column(BigInteger, nullable=False)
    misses: Mapped[int] = mapped_column(BigInteger, nullable=False)
    evicted: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expired: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cache_hits: Mapped[int | None] = mapped_column(BigInteger)
    cache_misses: Mapped[int | None] = mapped_column(BigInteger)


# ----- background jobs (issue 5) ---------------------------------------------
# (jobs models go here; migration 0007)

class BackgroundJob(AppRelease, Base):
    """One run of a host's scheduled job (ops_agent.apscheduler, applied by
    dashapp.ingest.jobs), from `pending` through `running` to
    `succeeded`/`failed`/`cancelled`/`missed`; the status changes in place.
    `time` is the run's latest event (scheduled, started or finished), what
    lists sort and retention purge by. `args` are redacted: never used to run
    anything (a retry uses the host's real ones). `agent_run` is the id the
    agent gave the run (it cannot know ours): its events and commands name it."""
    __tablename__ = "ops_job_run"
    __table_args__ = (
        Index("ix_job_run_status_time", "status", "time"),
        Index("ix_job_run_job_time", "job_id", "time"),
        Index("ix_job_run_time", "time"),
        Index("ix_job_run_agent_run", "agent_run"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(191), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    func: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    args: Mapped[dict | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    origin: Mapped[str] = mapped_column(String(16), nullable=False, default="schedule")
    process: Mapped[str] = mapped_column(String(96), nullable=False)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error_type: Mapped[str | None] = mapped_column(String(255))
    error_message: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    retry_of: Mapped[int | None] = mapped_column(BigId)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    progress: Mapped[float | None] = mapped_column(Float)
    progress_message: Mapped[str | None] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(String(500))
    agent_run: Mapped[str | None] = mapped_column(String(32))


class JobSchedule(AppRelease, Base):
    """What one host process's scheduler holds: one row per job, published
    by the host every few seconds and on change (`updated_at` is its
    heartbeat; rows of a process that stopped publishing are ignored).
    `wrapped`: its runs go through the hook's wrapper (progress, cooperative
    cancel); False for a job in a persistent job store (events only)."""
    __tablename__ = "ops_job_schedule"
    __table_args__ = (
        UniqueConstraint("process", "job_id", name="uq_job_schedule"),
        Index("ix_job_schedule_job", "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process: Mapped[str] = mapped_column(String(96), nullable=False)
    job_id: Mapped[str] = mapped_column(String(191), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    func: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    trigger: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    next_run_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    wrapped: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class JobCommand(AppRelease, Base):
    """A console -> host request (retry, cancel, pause, resume, run_now).
    A host claims it atomically (`claimed_at IS NULL`), carries it out on its
    live scheduler and writes the outcome; `process` set: only that host."""
    __tablename__ = "ops_job_command"
    __table_args__ = (
        Index("ix_job_command_open", "claimed_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    job_id: Mapped[str] = mapped_column(String(191), nullable=False)
    run_id: Mapped[int | None] = mapped_column(BigId)
    process: Mapped[str | None] = mapped_column(String(96))
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    claimed_by: Mapped[str | None] = mapped_column(String(96))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    result_run_id: Mapped[int | None] = mapped_column(BigId)


# ----- backups (issue 5) -----------------------------------------------------
# (backup models go here; migration 0008)

class BackupHistory(Base):
    """One backup file of a monitored database: who made it, why, its
    checksum, and the last restore drill's result. `file` is a bare name
    inside OPS_BACKUP_DIR, never a path (see services.backups.file_path)."""
    __tablename__ = "ops_backup"
    __table_args__ = (
        Index("ix_backup_target_started", "target", "started_at"),
        Index("ix_backup_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(String(32), nullable=False)
    engine: Mapped[str] = mapped_column(String(16), nullable=False)  # sqlite|postgresql
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # manual|scheduled|safety
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # running|succeeded|failed|deleted
    file: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    note: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    error: Mapped[str | None] = mapped_column(Text)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_by: Mapped[str | None] = mapped_column(String(64))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verify_ok: Mapped[bool | None] = mapped_column(Boolean)
    verify_message: Mapped[str | None] = mapped_column(Text)
    verify_tables: Mapped[int | None] = mapped_column(Integer)
    verify_rows: Mapped[int | None] = mapped_column(BigInteger)


class BackupRestore(Base):
    """One restore of a backup into its target, and the safety backup taken
    of the target just before."""
    __tablename__ = "ops_backup_restore"
    __table_args__ = (Index("ix_backup_restore_started", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backup_id: Mapped[int] = mapped_column(
        ForeignKey("ops_backup.id", name="fk_backup_restore_backup"), nullable=False)
    target: Mapped[str] = mapped_column(String(32), nullable=False)
    safety_backup_id: Mapped[int | None] = mapped_column(
        ForeignKey("ops_backup.id", name="fk_backup_restore_safety"))
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # running|succeeded|failed
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)
    note: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class BackupSchedule(Base):
    """When a target is backed up by the console's scheduler, and how many
    of those backups are kept. `next_run_at` is claimed with a compare-and-
    set so one run happens even with several console workers."""
    __tablename__ = "ops_backup_schedule"
    __table_args__ = (UniqueConstraint("target", name="uq_backup_schedule_target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(String(32), nullable=False)
    cron: Mapped[str] = mapped_column(String(100), nullable=False)
    keep_last: Mapped[int | None] = mapped_column(Integer)
    keep_days: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    updated_by: Mapped[str] = mapped_column(String(64), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_backup_id: Mapped[int | None] = mapped_column(Integer)


class BackupLock(Base):
    """One backup or restore per target at a time, across workers and
    machines: a row per busy target; a stale row (past `expires_at`, its
    holder died) may be taken over."""
    __tablename__ = "ops_backup_lock"

    target: Mapped[str] = mapped_column(String(32), primary_key=True)
    operation: Mapped[str] = mapped_column(String(32), nullable=False)
    holder: Mapped[str] = mapped_column(String(64), nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


# ----- configuration files (issue 5) -----------------------------------------
# (config models go here; migration 0009)
from sqlalchemy import LargeBinary  # noqa: E402  (kept inside this section)


class ConfigAudit(Base):
    """One version of a configuration file: who changed it, when and why,
    the exact bytes after the change (rollback writes them back unchanged)
    and the unified diff from the version before.

    kind: "baseline" (the file as found on disk, recorded before the console
    first changes it or when it was changed outside the console), "edit" or
    "rollback". `file` is the name relative to OPS_CONFIG_DIR.
    """
    __tablename__ = "ops_config_change"
    __table_args__ = (
        Index("ix_config_change_file_id", "file", "id"),
        Index("ix_config_change_file_version", "file", "version_after"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    file: Mapped[str] = mapped_column(String(512), nullable=False)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                           default=utcnow)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # baseline|edit|rollback
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    version_before: Mapped[str | None] = mapped_column(String(64))
    version_after: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    diff: Mapped[str] = mapped_column(Text, nullable=False, default="")


# ----- ML models (issue 6) ---------------------------------------------------
# (ML models go here; migration 0010)

class MlModelVersion(AppRelease, Base):
    """One version of a model the host registered (`monitor.ml.register`):
    its task, features, classes, a bounded sample of its evaluation inputs
    (the drift reference) and its feature importance, computed once."""
    __tablename__ = "ops_ml_model"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_ml_model_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    task: Mapped[str] = mapped_column(String(16), nullable=False)
    estimator: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    feature_names: Mapped[list] = mapped_column(JSON, nullable=False)
    classes: Mapped[list | None] = mapped_column(JSON)
    eval_sample: Mapped[list | None] = mapped_column(JSON)
    importance: Mapped[list | None] = mapped_column(JSON)
    importance_method: Mapped[str | None] = mapped_column(String(64))
    process: Mapped[str] = mapped_column(String(96), nullable=False, default="")
    # The estimator's get_params() as the agent shipped it (bounded).
    params: Mapped[dict | None] = mapped_column(JSON)


class MlEvaluation(Base):
    """Metrics of one model version on its evaluation data, one row per
    registration with X_eval/y_eval (what the history chart reads)."""
    __tablename__ = "ops_ml_evaluation"
    __table_args__ = (Index("ix_ml_evaluation_model_time", "model_id", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("ops_ml_model.id", ondelete="CASCADE"), nullable=False)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)
    metrics: Mapped[dict] = mapped_column(JSON, nullable=False)


class MlPrediction(AppRelease, Base):
    """One live prediction: inputs (at most ML_MAX_FEATURES values), the
    prediction, the label once known, latency. Purged with the raw retention."""
    __tablename__ = "ops_ml_prediction"
    __table_args__ = (
        Index("ix_ml_prediction_model_time", "model_id", "time"),
        Index("ix_ml_prediction_time", "time"),
        Index("ix_ml_prediction_pid", "pid", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pid: Mapped[str] = mapped_column(String(32), nullable=False)
    model_id: Mapped[int] = mapped_column(Integer, nullable=False)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    features: Mapped[list | None] = mapped_column(JSON)
    y_pred: Mapped[str] = mapped_column(String(64), nullable=False)
    y_true: Mapped[str | None] = mapped_column(String(64))
    labelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    latency_ms: Mapped[float | None] = mapped_column(Float)


# ----- logs (issue 6) --------------------------------------------------------
# (log models go here; migration 0011)

class LogRecord(AppRelease, Base):
    """One record of the host's `logging` captured by monitor() (source
    "captured" on the Logs page); message bounded, secrets redacted."""
    __tablename__ = "ops_log_record"
    __table_args__ = (
        Index("ix_log_record_time", "time"),
        Index("ix_log_record_level_time", "levelno", "time"),
        Index("ix_log_record_request_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    levelno: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    logger: Mapped[str] = mapped_column(String(255), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(64))
    process: Mapped[str] = mapped_column(String(96), nullable=False)
    extras: Mapped[dict | None] = mapped_column(JSON)


# ----- profiler (issue 6) ----------------------------------------------------
# (profiler models go here; migration 0012)

class ProfileSession(AppRelease, Base):
    """A profiling session: a console -> host command and its outcome.

    status: requested (waiting for a monitored process to pick it up),
    running, stopping (stop asked or duration elapsed; processes write their
    parts), done, failed. Each process that takes part writes one
    `ops_profile_part`; the service merges them."""
    __tablename__ = "ops_profile_session"
    __table_args__ = (Index("ix_profile_session_status", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stop_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float | None] = mapped_column(Float)
    interval_s: Mapped[float] = mapped_column(Float, nullable=False)
    endpoint: Mapped[str | None] = mapped_column(String(255))
    memory: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    stopped_by: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)


class ProfilePart(AppRelease, Base):
    """One process's contribution to a session: its merged call tree,
    memory statistics and counters (status running while it profiles)."""
    __tablename__ = "ops_profile_part"
    __table_args__ = (UniqueConstraint("session_id", "process",
                                       name="uq_profile_part_session_process"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("ops_profile_session.id", ondelete="CASCADE"), nullable=False)
    process: Mapped[str] = mapped_column(String(96), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # running|done|failed
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    requests: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    samples: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    profiled_seconds: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    overhead_seconds: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    tree: Mapped[dict | None] = mapped_column(JSON)
    memory: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


# ----- Prometheus totals (issue 7) --------------------------------------------

# Upper bounds (ms) of the latency buckets /metrics exposes; +Inf is `count`.
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class RequestTotal(Base):
    """Requests since the store was created, per endpoint, method and status
    class, with a latency histogram: counted when `ingest()` expands a batch
    (in the same transaction, so exactly once) and never purged, so
    GET /metrics serves counters that only go up, as Prometheus expects."""
    __tablename__ = "ops_request_total"
    __table_args__ = (
        UniqueConstraint("endpoint", "method", "status_class", name="uq_request_total"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(255), nullable=False)
    method: Mapped[str] = mapped_column(String(10), nullable=False)
    status_class: Mapped[str] = mapped_column(String(3), nullable=False)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sum_ms: Mapped[float] = mapped_column(Float, nullable=False)
    le_5: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    le_10: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    le_25: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    le_50: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    le_100: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    le_250: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    le_500: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    le_1000: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    le_2500: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    le_5000: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    le_10000: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


# ----- alerts (issue 7) -------------------------------------------------------
# (alert models go here; migration 0013)

class AlertRule(Base):
    """A threshold on one figure the console already measures, e.g. "p95 of
    GET /checkout above 800 ms for 5 minutes". The evaluation state lives on
    the rule: `state` ok|pending|firing, `pending_since` (when the figure
    first crossed the threshold in this run of breaches) and
    `current_event_id` (the open firing event). State changes and edits are
    compare-and-set UPDATEs on `version`, so several workers never open two
    events for one episode.
    `webhook_url` may hold credentials: it is only ever shown masked."""
    __tablename__ = "ops_alert_rule"
    __table_args__ = (UniqueConstraint("name", name="uq_alert_rule_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    target: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    comparison: Mapped[str] = mapped_column(String(2), nullable=False)  # > >= < <=
    threshold: Mapped[float] = mapped_column(Float, nullable=False)
    for_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    window_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    severity: Mapped[str] = mapped_column(String(16), nullable=False, default="warning")
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_by: Mapped[str] = mapped_column(String(64), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="ok")
    pending_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    current_event_id: Mapped[int | None] = mapped_column(Integer)
    last_value: Mapped[float | None] = mapped_column(Float)
    last_evaluated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_message: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class AlertEvent(Base):
    """One episode of a rule firing: opened when the figure stayed past the
    threshold for the rule's minutes, resolved when it came back. Rule name,
    kind and target are copied so the history survives the rule's deletion."""
    __tablename__ = "ops_alert_event"
    __table_args__ = (
        Index("ix_alert_event_state_started", "state", "started_at"),
        Index("ix_alert_event_rule_started", "rule_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("ops_alert_rule.id", name="fk_alert_event_rule", ondelete="SET NULL"))
    rule_name: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    target: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    comparison: Mapped[str] = mapped_column(String(2), nullable=False)
    threshold: Mapped[float] = mapped_column(Float, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # firing|resolved
    value: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_value: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(String(500), nullable=False, default="")


class AlertDelivery(Base):
    """One attempt to POST an alert (or a test payload) to a webhook: the
    masked URL, the HTTP status or error, and the outcome (delivered, retry
    — another attempt follows —, failed)."""
    __tablename__ = "ops_alert_delivery"
    __table_args__ = (Index("ix_alert_delivery_time", "time"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("ops_alert_event.id", name="fk_alert_delivery_event", ondelete="CASCADE"))
    rule_id: Mapped[int | None] = mapped_column(Integer)
    rule_name: Mapped[str] = mapped_column(String(100), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # firing|resolved|test
    url: Mapped[str] = mapped_column(String(500), nullable=False)  # masked
    attempt: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)


class AlertRound(Base):
    """One scheduled evaluation round, claimed by the first console worker
    that inserts its slot (a time floored to OPS_ALERT_INTERVAL): the others
    get an IntegrityError and skip the round."""
    __tablename__ = "ops_alert_round"

    slot: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    holder: Mapped[str] = mapped_column(String(96), nullable=False)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
