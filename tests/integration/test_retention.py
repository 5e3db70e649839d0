"""Roll-ups and retention on real stores: counts survive the purge of raw
rows, purges work in batches, and a second worker's roll-up changes nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import func, insert, select

from dashapp.services import latency, retention
from dashapp.store import Store
from dashapp.store.models import QueryLog, RequestHour, RequestLog, RequestMinute

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=timezone.utc)


def seed(store: Store, minutes: int = 30, per_minute: int = 20):
    rng = np.random.default_rng(7)
    rows, durations = [], []
    start = NOW - timedelta(minutes=minutes)
    for m in range(minutes):
        for i in range(per_minute):
            ms = float(rng.lognormal(3, 0.8))
            durations.append(ms)
            rows.append({"time": start + timedelta(minutes=m, seconds=i),
                         "endpoint": "/a" if i % 2 else "/b/<int:id>", "method": "GET",
                         "status": 500 if i == 3 else 404 if i == 4 else 200,
                         "duration_ms": ms, "request_id": f"r{m}-{i}", "process": "p"})
    with store.engine.begin() as conn:
        conn.execute(insert(RequestLog), rows)
        conn.execute(insert(QueryLog), [
            {"time": r["time"], "fingerprint": "f", "sql": "SELECT ?", "duration_ms": 1.0,
             "request_id": r["request_id"], "process": "p"} for r in rows])
    return durations


def test_rollup_then_purge_keeps_the_figures(store_url):
    store = Store(store_url)
    store.upgrade()
    try:
        durations = seed(store)
        written = retention.rollup_requests(store, now=NOW)
        assert written > 0
        assert retention.rollup_requests(store, now=NOW) == 0  # nothing new
        with store.engine.connect() as conn:
            total, errors, client = conn.execute(select(
                func.sum(RequestMinute.count), func.sum(RequestMinute.errors),
                func.sum(RequestMinute.client_errors))
                .where(RequestMinute.endpoint != retention.ALL_ENDPOINTS)).one()
            hists = list(conn.scalars(select(RequestMinute.hist).where(
                RequestMinute.endpoint != retention.ALL_ENDPOINTS)))
            all_total = conn.scalar(select(func.sum(RequestMinute.count)).where(
                RequestMinute.endpoint == retention.ALL_ENDPOINTS))
        assert all_total == 28 * 20  # the all-endpoints rows add up the same
        # Everything before NOW - 2 min is rolled up (the lag): 28 of 30 minutes.
        assert total == 28 * 20 and errors == 28 and client == 28
        p95_true = float(np.percentile(durations[:28 * 20], 95, method="inverted_cdf"))
        p95_est = latency.quantile(latency.merge(hists), 0.95)
        assert abs(p95_est - p95_true) / p95_true <= latency.RELATIVE_ERROR + 1e-9

        removed = retention.apply_retention(store, retention_days=0, rollup_days=90,
                                            now=NOW)
        # Raw requests go only up to where they are rolled up; queries all go.
        assert removed["requests"] == 28 * 20 and removed["queries"] == 30 * 20
        with store.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(RequestLog)) == 2 * 20
            assert conn.scalar(select(func.sum(RequestMinute.count)).where(
                RequestMinute.endpoint != retention.ALL_ENDPOINTS)) == 28 * 20
    finally:
        store.close()


def test_purge_in_small_batches(store_url):
    store = Store(store_url)
    store.upgrade()
    try:
        seed(store, minutes=10, per_minute=50)
        removed = retention.purge(store, QueryLog, NOW, batch=64, pause=0)
        assert removed == 500
        with store.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(QueryLog)) == 0
    finally:
        store.close()


def test_a_second_worker_rolling_up_the_same_minutes_changes_nothing(store_url):
    store = Store(store_url)
    store.upgrade()
    other = Store(store_url)
    try:
        seed(store, minutes=5)
        start = (NOW - timedelta(minutes=5)).replace(second=0, microsecond=0)
        assert retention.rollup_requests(store, now=NOW, start=start) > 0
        before = _sum(store)
        # The other worker read the same watermark before the first one wrote.
        assert retention.rollup_requests(other, now=NOW, start=start) == 0
        assert _sum(store) == before == 3 * 20
    finally:
        store.close()
        other.close()


def _sum(store):
    with store.engine.connect() as conn:
        return conn.scalar(select(func.coalesce(func.sum(RequestMinute.count), 0))
                           .where(RequestMinute.endpoint != retention.ALL_ENDPOINTS))


def test_long_window_summary_from_hourly_and_minute_rollups(store_url):
    """A 6-hour window: whole hours come from ops_request_hour, the edges
    from ops_request_minute, the newest minutes from raw rows. Counts, errors,
    mean and max match the raw rows exactly; percentiles within the
    histogram's bound; and the figures survive the purge of the raw rows."""
    from dashapp.services import api_metrics
    store = Store(store_url)
    store.upgrade()
    try:
        rng = np.random.default_rng(11)
        start = NOW - timedelta(hours=5, minutes=37)
        rows = []
        for i in range(4000):
            when = start + timedelta(seconds=float(rng.uniform(0, 5 * 3600 + 37 * 60)))
            rows.append({"time": when, "endpoint": "/slow" if i % 4 == 0 else "/fast",
                         "method": "GET", "status": 500 if i % 50 == 0 else 200,
                         "duration_ms": float(rng.lognormal(5 if i % 4 == 0 else 2, 0.7)),
                         "request_id": f"r{i}", "process": "p"})
        with store.engine.begin() as conn:
            conn.execute(insert(RequestLog), rows)
        while retention.rollup_requests(store, now=NOW):
            pass
        assert retention.rollup_hours(store) > 0
        assert retention.rollup_hours(store) == 0  # nothing new, no duplicates
        with store.engine.connect() as conn:
            hourly = conn.scalar(select(func.sum(RequestHour.count)).where(
                RequestHour.endpoint != retention.ALL_ENDPOINTS))
        assert 0 < hourly < len(rows)  # hours, not the edges or the newest minutes

        def check(df):
            by = {r["endpoint"]: r for r in df.to_dict("records")}
            assert set(by) == {"/slow", "/fast"}
            for endpoint, row in by.items():
                mine = [r for r in rows if r["endpoint"] == endpoint]
                ms = np.array([r["duration_ms"] for r in mine])
                assert row["count"] == len(mine)
                assert row["errors"] == sum(r["status"] >= 500 for r in mine)
                assert abs(row["mean_ms"] - ms.mean()) < 1e-6 * ms.mean()
                assert row["max_ms"] == ms.max()
                for q in (50, 95, 99):
                    true = float(np.percentile(ms, q, method="inverted_cdf"))
                    assert abs(row[f"p{q}_ms"] - true) / true <= latency.RELATIVE_ERROR + 1e-9

        df = api_metrics.endpoint_summary(store, 6 * 60, now=NOW)
        assert df.attrs["percentiles"] == "histogram"
        check(df)

        def check_performance(perf):
            assert perf["percentiles"] == "histogram"
            assert perf["count"] == len(rows)
            assert perf["errors"] == sum(r["status"] >= 500 for r in rows)
            bucket = perf["bucket_seconds"]
            expected: dict[int, int] = {}
            for r in rows:
                b = int(r["time"].timestamp()) // bucket * bucket
                expected[b] = expected.get(b, 0) + 1
            got = {int(datetime.fromisoformat(p["time"]).timestamp()): p["count"]
                   for p in perf["series"] if p["count"]}
            assert got == expected
            ms = np.array([r["duration_ms"] for r in rows])
            true = float(np.percentile(ms, 95, method="inverted_cdf"))
            assert abs(perf["p95_ms"] - true) / true <= latency.RELATIVE_ERROR + 1e-9

        check_performance(api_metrics.performance(store, 6 * 60, now=NOW))
        # An endpoint's detail agrees with its summary row.
        detail = api_metrics.endpoint_detail(store, "/slow", minutes=6 * 60, now=NOW)
        slow_row = df[df["endpoint"] == "/slow"].iloc[0]
        assert detail["percentiles"] == "histogram"
        assert detail["count"] == slow_row["count"] == sum(p["count"] for p in detail["series"])
        assert detail["p95_ms"] == slow_row["p95_ms"]
        assert detail["errors"] == slow_row["errors"]
        # Raw rows gone (retention): the long window still has every figure.
        retention.apply_retention(store, retention_days=0, rollup_days=90, now=NOW)
        with store.engine.connect() as conn:
            left = conn.scalar(select(func.count()).select_from(RequestLog))
        assert left < len(rows)
        check(api_metrics.endpoint_summary(store, 6 * 60, now=NOW))
        check_performance(api_metrics.performance(store, 6 * 60, now=NOW))
        # Hour-sized buckets read the hourly all-endpoints rows.
        check_performance(api_metrics.performance(store, 6 * 60, bucket=3600, now=NOW))
        # Short windows stay exact from the raw rows.
        assert api_metrics.endpoint_summary(store, 60, now=NOW).attrs["percentiles"] == "exact"
    finally:
        store.close()
