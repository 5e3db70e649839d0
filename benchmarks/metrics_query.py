"""How long the endpoint summary takes over a big request table.

    .venv/bin/python benchmarks/metrics_query.py [--rows 1000000] [--postgres URL]

Fills a fresh store with `--rows` request rows over 50 endpoints spread over
the last 24 hours (bulk insert through the driver), rolls finished minutes
up as the console's scheduler does every minute, then times
`api_metrics.endpoint_summary(store, minutes=1440)` and
`api_metrics.performance(store, minutes=1440)` five times each and prints
the medians, on SQLite and, with --postgres, on PostgreSQL (its `public`
schema is dropped and recreated: use a scratch database).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashapp.services import api_metrics  # noqa: E402
from dashapp.store import Store  # noqa: E402


def fill(store: Store, rows: int) -> float:
    rng = np.random.default_rng(1)
    now = datetime.now(timezone.utc)
    start = now - timedelta(hours=24)
    offsets = np.sort(rng.uniform(0, 24 * 3600 - 60, rows))
    endpoints = rng.integers(0, 50, rows)
    durations = rng.lognormal(3, 0.9, rows)
    statuses = rng.choice([200, 200, 200, 200, 201, 404, 500], rows)
    sqlite = store.engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    sql = (f"INSERT INTO ops_request (time, endpoint, method, status, duration_ms, "
           f"request_id, exception_type, exception_message, process) "
           f"VALUES ({', '.join([mark] * 9)})")
    t0 = time.perf_counter()
    chunk = 50_000
    for lo in range(0, rows, chunk):
        batch = []
        for i in range(lo, min(rows, lo + chunk)):
            when = start + timedelta(seconds=float(offsets[i]))
            batch.append((when.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else when,
                          f"/api/v1/resource{endpoints[i]}/<int:id>", "GET",
                          int(statuses[i]), float(durations[i]), f"{i:016x}",
                          None, None, "bench:1"))
        with store.engine.begin() as conn:
            conn.exec_driver_sql(sql, batch)
    return time.perf_counter() - t0


def timed(call, runs: int = 5) -> tuple[list[float], object]:
    """Seconds of each of `runs` calls, and the last call's result."""
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t0)
    return times, result


def measure(url: str, rows: int, label: str) -> None:
    store = Store(url)
    store.upgrade()
    fill_s = fill(store, rows)
    # What the console's scheduler does every minute: roll finished minutes up.
    from dashapp.services import retention
    t0 = time.perf_counter()
    while retention.rollup_requests(store):
        pass
    while retention.rollup_hours(store):
        pass
    rollup_s = time.perf_counter() - t0
    api_metrics.endpoint_summary(store, minutes=1440)  # warm the cache
    times, df = timed(lambda: api_metrics.endpoint_summary(store, minutes=1440))
    print(f"[{label}] {rows:,} rows over {len(df)} endpoints (filled in {fill_s:.0f} s): "
          f"endpoint_summary(minutes=1440) median {statistics.median(times) * 1000:.0f} ms "
          f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}); "
          f"percentiles: {df.attrs.get('percentiles')}; roll-up of the day took {rollup_s:.0f} s")
    times, perf = timed(lambda: api_metrics.performance(store, minutes=1440))
    print(f"[{label}] performance(minutes=1440) ({len(perf['series'])} points, "
          f"{perf['count']:,} requests) median {statistics.median(times) * 1000:.0f} ms "
          f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="a scratch PostgreSQL URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure(f"sqlite:///{tmp}/bench.db", args.rows, "sqlite")
    if args.postgres:
        from sqlalchemy import create_engine, text
        engine = create_engine(args.postgres)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        measure(args.postgres, args.rows, "postgresql")


if __name__ == "__main__":
    main()
