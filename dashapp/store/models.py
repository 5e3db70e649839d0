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


class RequestLog(Base):
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


class QueryLog(Base):
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


class MonitorProcess(Base):
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


class IngestBatch(Base):
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


# ----- backups (issue 5) -----------------------------------------------------
# (backup models go here; migration 0008)


# ----- configuration files (issue 5) -----------------------------------------
# (config models go here; migration 0009)
