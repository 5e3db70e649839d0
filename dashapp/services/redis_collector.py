"""Samples every watched Redis server into the store (ops_redis_sample), so
the Cache and Redis pages can chart memory, hit rate, ops/s and keys over
time, and history survives a console restart.

The console's scheduler calls `collect()` every SAMPLE_SECONDS. Sample times
are floored to that interval and unique per instance, so several console
workers collecting at once write one row, not several.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import redis as redis_lib
from ops_agent.cache import keys as cache_keys
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dashapp.store import Store
from dashapp.store.models import RedisSample, as_utc

logger = logging.getLogger(__name__)

SAMPLE_SECONDS = 15
MAX_POINTS = 400


def read_sample(client: redis_lib.Redis, cache_prefix: str) -> dict[str, Any]:
    """One reading of INFO plus the @cached totals. Raises RedisError/OSError."""
    info = client.info()
    keys = sum(v.get("keys", 0) for k, v in info.items()
               if k.startswith("db") and isinstance(v, dict))
    cache_hits, cache_misses = _cache_totals(client, cache_prefix)
    return {
        "uptime_s": int(info.get("uptime_in_seconds", 0)),
        "used_memory": int(info.get("used_memory", 0)),
        "used_memory_peak": int(info.get("used_memory_peak", 0)),
        "used_memory_rss": int(info.get("used_memory_rss", 0)),
        "used_memory_dataset": _int_or_none(info.get("used_memory_dataset")),
        "fragmentation": _float_or_none(info.get("mem_fragmentation_ratio")),
        "maxmemory": int(info.get("maxmemory", 0)),
        "keys": int(keys),
        "clients": int(info.get("connected_clients", 0)),
        "blocked_clients": int(info.get("blocked_clients", 0)),
        "ops_per_sec": int(info.get("instantaneous_ops_per_sec", 0)),
        "commands": int(info.get("total_commands_processed", 0)),
        "hits": int(info.get("keyspace_hits", 0)),
        "misses": int(info.get("keyspace_misses", 0)),
        "evicted": int(info.get("evicted_keys", 0)),
        "expired": int(info.get("expired_keys", 0)),
        "cache_hits": cache_hits,
        "cache_misses": cache_misses,
    }


def _cache_totals(client: redis_lib.Redis, prefix: str) -> tuple[int, int]:
    names = client.smembers(cache_keys.namespaces_key(prefix))
    if not names:
        return 0, 0
    pipe = client.pipeline(transaction=False)
    for raw in names:
        name = raw.decode() if isinstance(raw, bytes) else raw
        pipe.hmget(cache_keys.stats_key(prefix, name), "hits", "misses")
    hits = misses = 0
    for h, m in pipe.execute():
        hits += int(h or 0)
        misses += int(m or 0)
    return hits, misses


def sample_instance(store: Store, name: str, client: redis_lib.Redis, cache_prefix: str,
                    now: datetime | None = None) -> bool:
    """Read one server and store the sample; False when Redis is down or
    another worker already wrote this interval's sample."""
    now = now or datetime.now(timezone.utc)
    slot = now.replace(second=now.second - now.second % SAMPLE_SECONDS, microsecond=0)
    try:
        values = read_sample(client, cache_prefix)
    except (redis_lib.RedisError, OSError) as exc:
        logger.debug("redis collector: %s unavailable: %s", name, exc)
        return False
    try:
        with store.session() as session:
            session.add(RedisSample(instance=name, time=slot, **values))
            session.commit()
    except IntegrityError:
        return False  # another console worker sampled this interval
    return True


def collect(store: Store, instances: dict, cache_prefix: str) -> int:
    """Sample every instance ({name: RedisHandle}); returns rows written."""
    return sum(sample_instance(store, name, handle.client, cache_prefix)
               for name, handle in instances.items())


def history(store: Store, instance: str, minutes: int,
            now: datetime | None = None) -> pd.DataFrame:
    """Samples of the last `minutes` with rates derived between samples.

    Columns: time, used_memory, used_memory_peak, used_memory_rss,
    fragmentation, maxmemory, keys, clients, ops_per_sec (from the command
    counter), hit_rate (Redis keyspace), cache_hit_rate (@cached), evicted_per_s,
    expired_per_s. A Redis restart (counters going down) leaves a gap, never a
    negative rate. At most MAX_POINTS rows (evenly thinned).
    """
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(minutes=minutes)
    query = (select(RedisSample).where(RedisSample.instance == instance,
                                       RedisSample.time >= since, RedisSample.time <= now)
             .order_by(RedisSample.time))
    with store.session() as session:
        rows = [{c: getattr(r, c) for c in _COLUMNS} for r in session.scalars(query)]
    if not rows:
        return pd.DataFrame(columns=list(HISTORY_COLUMNS))
    df = pd.DataFrame(rows)
    df["time"] = df["time"].map(as_utc)
    seconds = df["time"].diff().dt.total_seconds()
    restarted = df["uptime_s"].diff() < 0

    def rate(column):
        delta = df[column].diff()
        return (delta / seconds).where((delta >= 0) & ~restarted)

    def ratio(hit_col, miss_col):
        hits, misses = df[hit_col].diff(), df[miss_col].diff()
        total = hits + misses
        return (hits / total).where((total > 0) & (hits >= 0) & (misses >= 0) & ~restarted)

    df["ops_per_sec"] = rate("commands").round(1)
    df["hit_rate"] = ratio("hits", "misses")
    df["cache_hit_rate"] = ratio("cache_hits", "cache_misses")
    df["evicted_per_s"] = rate("evicted")
    df["expired_per_s"] = rate("expired")
    df = df[list(HISTORY_COLUMNS)]
    if len(df) > MAX_POINTS:
        step = -(-len(df) // MAX_POINTS)
        df = df.iloc[::step]
    return df.reset_index(drop=True)


_COLUMNS = ("time", "uptime_s", "used_memory", "used_memory_peak", "used_memory_rss",
            "fragmentation", "maxmemory", "keys", "clients", "commands", "hits", "misses",
            "evicted", "expired", "cache_hits", "cache_misses")
HISTORY_COLUMNS = ("time", "used_memory", "used_memory_peak", "used_memory_rss",
                   "fragmentation", "maxmemory", "keys", "clients", "ops_per_sec",
                   "hit_rate", "cache_hit_rate", "evicted_per_s", "expired_per_s")


def _int_or_none(value) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
