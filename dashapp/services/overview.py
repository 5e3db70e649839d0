"""The overview: one health card per module, from live sources only.

Until a module's issue lands its card says so; what it shows beside that is a
real figure from a live source (Redis INFO, the demo's published stats, this
process), never an invented one. The page and `GET /api/overview` both call
`overview()`, so they cannot disagree.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import pandas as pd
import psutil
import redis as redis_lib

from dashapp.formatting import human_bytes
from dashapp.modules import MODULES

logger = logging.getLogger(__name__)

DEMO_STATS_KEY = "ops:demo:stats"
DEMO_SERIES_KEY = "ops:demo:traffic-series"
SERIES_SAMPLES = 240  # at one sample per 3 s: the last 12 minutes
RATE_WINDOW = 5       # samples per rate: ~15 s
_PROCESS_STARTED = time.time()


def redis_info(client: redis_lib.Redis) -> dict[str, Any] | None:
    """The INFO figures the overview needs, or None when Redis is down."""
    try:
        info = client.info()
        keys = client.dbsize()
    except (redis_lib.RedisError, OSError) as exc:
        logger.warning("overview: Redis unavailable: %s", exc)
        return None
    hits, misses = info.get("keyspace_hits", 0), info.get("keyspace_misses", 0)
    return {
        "version": info.get("redis_version"),
        "used_memory": info.get("used_memory", 0),
        "used_memory_human": info.get("used_memory_human"),
        "ops_per_sec": info.get("instantaneous_ops_per_sec", 0),
        "connected_clients": info.get("connected_clients", 0),
        "keys": keys,
        "keyspace_hits": hits,
        "keyspace_misses": misses,
        "hit_rate": (hits / (hits + misses)) if hits + misses else None,
        "uptime_seconds": info.get("uptime_in_seconds", 0),
    }


def demo_stats(client: redis_lib.Redis) -> dict[str, Any] | None:
    """The demo's latest published stats (any process may run the demo)."""
    try:
        raw = client.get(DEMO_STATS_KEY)
    except (redis_lib.RedisError, OSError):
        return None
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def publish_demo_stats(client: redis_lib.Redis, stats: dict, ttl: int = 30) -> None:
    """Called by the process that runs the demo, every few seconds."""
    try:
        client.set(DEMO_STATS_KEY, json.dumps(stats, default=str), ex=ttl)
    except (redis_lib.RedisError, OSError) as exc:
        logger.debug("could not publish demo stats: %s", exc)


def record_traffic_sample(client: redis_lib.Redis, traffic: dict | None,
                          now: float | None = None) -> None:
    """Append the demo's cumulative traffic counters to a capped Redis list."""
    if not traffic:
        return
    sample = {"t": now if now is not None else time.time(),
              **{k: int(traffic.get(k) or 0) for k in
                 ("sent", "ok", "client_errors", "server_errors", "failed_to_connect")}}
    try:
        pipe = client.pipeline(transaction=False)
        pipe.rpush(DEMO_SERIES_KEY, json.dumps(sample))
        pipe.ltrim(DEMO_SERIES_KEY, -SERIES_SAMPLES, -1)
        pipe.execute()
    except (redis_lib.RedisError, OSError) as exc:
        logger.debug("could not record traffic sample: %s", exc)


def traffic_series(client: redis_lib.Redis) -> pd.DataFrame:
    """Requests and errors per second between consecutive samples.

    Columns: time (UTC), requests_per_s, errors_per_s (5xx), client_errors_per_s.
    Empty when the demo has not published two samples yet or Redis is down.
    """
    columns = ["time", "requests_per_s", "errors_per_s", "client_errors_per_s"]
    try:
        raw = client.lrange(DEMO_SERIES_KEY, 0, -1)
    except (redis_lib.RedisError, OSError):
        return pd.DataFrame(columns=columns)
    rows = []
    for item in raw:
        try:
            rows.append(json.loads(item))
        except ValueError:
            continue
    if len(rows) < 2:
        return pd.DataFrame(columns=columns)
    df = pd.DataFrame(rows).sort_values("t").reset_index(drop=True)
    # Rates over a window of a few samples: per-sample deltas of a 3 req/s
    # generator are too jumpy to read.
    lag = min(RATE_WINDOW, len(df) - 1)
    dt = df["t"] - df["t"].shift(lag)
    out = pd.DataFrame({
        "time": pd.to_datetime(df["t"], unit="s", utc=True),
        "requests_per_s": (df["sent"] - df["sent"].shift(lag)) / dt,
        "errors_per_s": (df["server_errors"] - df["server_errors"].shift(lag)) / dt,
        "client_errors_per_s": (df["client_errors"] - df["client_errors"].shift(lag)) / dt,
    }).iloc[lag:]
    # A restart of the demo resets its counters: drop the negative steps.
    out = out[(dt.iloc[lag:] > 0) & (out["requests_per_s"] >= 0)]
    return out.reset_index(drop=True)


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{x * 100:.1f}%"


def _card(module, *, value=None, label=None, detail=None, status="muted",
          source=None) -> dict[str, Any]:
    return {"key": module.key, "title": module.title, "href": module.path,
            "icon": module.icon, "built": module.built, "issue": module.issue,
            "summary": module.summary, "value": value, "label": label,
            "detail": detail, "status": status, "source": source}


def overview(ops) -> dict[str, Any]:
    """Everything the overview page shows, as plain data."""
    client = ops.redis.client
    store = ops.store.ping()
    rinfo = redis_info(client)
    demo = demo_stats(client) if rinfo is not None else None
    proc = psutil.Process(os.getpid())
    with proc.oneshot():
        rss = proc.memory_info().rss
        cpu = proc.cpu_percent(interval=None)

    api_figures = _cached_api_figures(ops) if store["ok"] else None
    cards = []
    for module in MODULES:
        if module.key == "overview":
            continue
        card = _build_card(module, rinfo, demo, rss, cpu, api_figures)
        cards.append(card)

    return {
        "generated_at": time.time(),
        "console": {
            "store": store, "redis": ops.redis.ping() if rinfo is None else
            {"ok": True, "embedded": ops.redis.embedded},
            "uptime_seconds": round(time.time() - _PROCESS_STARTED),
            "demo_running": demo is not None,
        },
        "cards": cards,
        "alerts": _alerts_summary(ops) if store["ok"] else None,
    }


def _alerts_summary(ops) -> dict[str, Any] | None:
    """Firing alerts and those resolved in the last 24 h (issue 7); None
    when the store cannot be read."""
    from sqlalchemy.exc import SQLAlchemyError

    from dashapp.services import alerts
    try:
        return alerts.summary(ops.store)
    except SQLAlchemyError as exc:
        logger.warning("overview: alerts unreadable: %s", exc)
        return None


def _cached_api_figures(ops) -> dict[str, Any] | None:
    """_api_figures, computed at most once per memo.SHARE_SECONDS per console
    process however many people keep the overview open (one computes, the
    others wait for its result)."""
    from dashapp.services.memo import SHARE_SECONDS, shared

    def compute():
        figures = _api_figures(ops.store, ops.settings.slow_query_ms)
        if figures is not None:
            figures["operations"] = _operations_figures(ops)
        return figures
    return shared(ops.store, "overview-figures", SHARE_SECONDS, compute)


def _operations_figures(ops) -> dict[str, Any]:
    """Jobs, backups and configuration changes, each None when unreadable."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from dashapp.services import backups, jobs
    from dashapp.store.models import ConfigAudit, as_utc
    from dashapp.services import ml_metrics
    found: dict[str, Any] = {"jobs": None, "backups": None, "config": None, "models": None}
    try:
        found["models"] = ml_metrics.list_models(ops.store, 1440)
    except SQLAlchemyError as exc:
        logger.warning("overview: ML models unreadable: %s", exc)
    try:
        found["jobs"] = jobs.counts(ops.store, 1440)
    except SQLAlchemyError as exc:
        logger.warning("overview: job runs unreadable: %s", exc)
    try:
        found["backups"] = backups.target_overview(ops.store, ops.settings)
    except (SQLAlchemyError, backups.BackupError, ValueError) as exc:
        logger.warning("overview: backups unreadable: %s", exc)
    try:
        since = datetime.now(timezone.utc) - timedelta(days=1)
        with ops.store.session() as sess:
            last = sess.execute(select(ConfigAudit.file, ConfigAudit.actor, ConfigAudit.time)
                                .where(ConfigAudit.kind != "baseline")
                                .order_by(ConfigAudit.id.desc()).limit(1)).first()
            recent = sess.scalar(select(func.count()).select_from(ConfigAudit).where(
                ConfigAudit.kind != "baseline", ConfigAudit.time >= since))
        found["config"] = {"changes_24h": recent or 0, "last": None if last is None else
                           {"file": last.file, "actor": last.actor,
                            "time": as_utc(last.time).isoformat(timespec="seconds")}}
    except SQLAlchemyError as exc:
        logger.warning("overview: configuration changes unreadable: %s", exc)
    return found


def _age(iso: str | None) -> str:
    """'5 min ago' style age of an ISO time."""
    from datetime import datetime, timezone
    if not iso:
        return "never"
    seconds = int((datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds())
    return f"{_duration_short(seconds)} ago" if seconds >= 60 else "just now"


def _api_figures(store, slow_ms: float) -> dict[str, Any] | None:
    """Monitored requests and SQL over the last 15 minutes, None if unreadable."""
    from sqlalchemy.exc import DBAPIError

    from dashapp.services import queries
    from dashapp.services.api_metrics import performance
    try:
        figures = performance(store, 15)
        stats = queries.stats(store, 15)
        figures["sql"] = {
            "calls": sum(q["calls"] for q in stats), "distinct": len(stats),
            "slow": sum(1 for q in stats if q["max_ms"] >= slow_ms),
            "n_plus_one": len(queries.issues(store, 15)["n_plus_one"])}
        return figures
    except DBAPIError as exc:
        logger.warning("overview: store unreadable: %s", exc)
        return None


def _duration_short(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _build_card(module, rinfo, demo, rss, cpu, api_figures=None) -> dict[str, Any]:
    redis_down = rinfo is None
    if module.key == "redis":
        if redis_down:
            return _card(module, value="down", label="Redis", status="error",
                         detail="Redis is unavailable", source="Redis INFO")
        return _card(module, value=human_bytes(rinfo["used_memory"], None), label="memory used",
                     status="ok", source="Redis INFO",
                     detail=f"{rinfo['ops_per_sec']} ops/s · "
                            f"{rinfo['connected_clients']} clients · v{rinfo['version']}")
    if module.key == "cache":
        if redis_down:
            return _card(module, value="down", label="Redis", status="error",
                         detail="Redis is unavailable", source="Redis INFO")
        return _card(module, value=_pct(rinfo["hit_rate"]) or "–",
                     label="keyspace hit rate", source="Redis INFO",
                     detail=f"{rinfo['keys']:,} keys")
    if module.key == "endpoints":
        perf = api_figures
        if perf is None:
            return _card(module, value="down", label="store", status="error",
                         detail="The store is unavailable", source="monitor()")
        if not perf["count"]:
            return _card(module, value="0", label="requests in the last 15 min",
                         detail="No monitored requests yet", source="monitor()")
        p95 = perf.get("p95_ms")
        status = ("error" if perf["error_rate"] >= 0.05 else
                  "warn" if perf["error_rate"] >= 0.01 or (p95 or 0) >= 500 else "ok")
        return _card(module, value=f"{perf['rps']:.1f}", label="requests/s (15 min)",
                     status=status, source="monitor()",
                     detail=f"p95 {p95:.0f} ms · {_pct(perf['error_rate'])} 5xx")
    if module.key == "queries":
        sql = api_figures and api_figures.get("sql")
        if api_figures is None or sql is None:
            return _card(module, value="down", label="store", status="error",
                         detail="The store is unavailable", source="monitor()")
        if not sql["calls"]:
            return _card(module, value="0", label="statements in the last 15 min",
                         detail="No monitored SQL yet", source="monitor()")
        status = "warn" if sql["slow"] or sql["n_plus_one"] else "ok"
        return _card(module, value=f"{sql['calls']:,}", label="statements (15 min)",
                     status=status, source="monitor()",
                     detail=f"{sql['distinct']} distinct · {sql['slow']} slow · "
                            f"{sql['n_plus_one']} N+1")
    operations = (api_figures or {}).get("operations") or {}
    if module.key == "backups":
        targets = operations.get("backups")
        if targets is None:
            return _card(module, value="down", label="store", status="error",
                         detail="Backup records are unreadable", source="backup history")
        if not targets:
            return _card(module, detail="No backup targets (OPS_BACKUP_TARGETS)",
                         source="backup history")
        late = [t["name"] for t in targets if t["stale"]]
        never = [t["name"] for t in targets if t["newest_good_at"] is None]
        ages = [t["newest_good_age_s"] for t in targets if t["newest_good_age_s"] is not None]
        status = "error" if late else "warn" if never else "ok"
        detail = (f"late: {', '.join(late)}" if late else
                  f"never backed up: {', '.join(never)}" if never else
                  f"{len(targets)} target{'s' if len(targets) != 1 else ''}, all on time")
        return _card(module, value=_duration_short(min(ages)) if ages else "none",
                     label="newest good backup", status=status, detail=detail,
                     source="backup history")
    if module.key == "jobs":
        counts = operations.get("jobs")
        if counts is None:
            return _card(module, value="down", label="store", status="error",
                         detail="Job runs are unreadable", source="job runs")
        failed = counts.get("failed", 0) + counts.get("missed", 0)
        status = "warn" if failed else "ok" if counts["scheduled"] or counts["running"] else "muted"
        return _card(module, value=str(failed), label="failed or missed runs (24 h)",
                     status=status, source="job runs",
                     detail=f"{counts['running']} running · {counts['scheduled']} scheduled · "
                            f"{counts.get('succeeded', 0)} succeeded")
    if module.key == "config":
        config = operations.get("config")
        if config is None:
            return _card(module, value="down", label="store", status="error",
                         detail="Configuration history is unreadable", source="config history")
        last = config["last"]
        return _card(module, value=str(config["changes_24h"]), label="changes (24 h)",
                     source="config history",
                     detail=(f"last: {last['file']} by {last['actor']}, {_age(last['time'])}"
                             if last else "No changes made from the console yet"))
    if module.key == "models":
        models = operations.get("models")
        if models is None:
            return _card(module, value="down", label="store", status="error",
                         detail="Model records are unreadable", source="monitor.ml")
        if not models:
            return _card(module, detail="No model registered yet (monitor.ml.register)",
                         source="monitor.ml")
        first = models[0]
        head = first.get("headline") or {}
        value = head.get("value")
        predictions = sum(m["predictions"] for m in models)
        return _card(module, value=f"{value:.3f}" if isinstance(value, (int, float)) else "–",
                     label=f"{first['name']} v{first['latest_version']} "
                           f"{head.get('name') or 'score'}", source="monitor.ml",
                     status="ok" if value is not None else "muted",
                     detail=f"{len(models)} model{'s' if len(models) != 1 else ''} · "
                            f"{predictions:,} predictions (24 h)")
    if module.key == "logs":
        log = (demo or {}).get("log") or {}
        if not log:
            return _card(module, detail="Demo log not written yet")
        return _card(module, value=human_bytes(log.get("size_bytes"), None), label="demo log size",
                     source="demo log file")
    if module.key == "profiler":
        return _card(module, value=human_bytes(rss), label="console memory (RSS)",
                     source="this process", detail=f"CPU {cpu:.0f}%")
    return _card(module)
