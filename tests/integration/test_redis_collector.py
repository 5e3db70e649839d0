"""The Redis sampler: one row per interval per instance, rates between samples."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ops_agent.cache import keys as cache_keys

from dashapp.services import redis_collector
from dashapp.store import Store


def _store(store_url):
    store = Store(store_url)
    store.upgrade()
    return store


def test_samples_once_per_interval_and_derives_rates(store_url, private_redis):
    """On a server of the test's own: keyspace hits and misses are counted
    server-wide, and another client's reads would move the rates."""
    import redis as redis_lib
    store = _store(store_url)
    redis_client = redis_lib.Redis.from_url(private_redis.url)
    try:
        t0 = datetime(2026, 11, 26, 12, 0, 1, tzinfo=timezone.utc)
        redis_client.set("a", "1")
        redis_client.hset(cache_keys.stats_key("cache", "products"),
                          mapping={"hits": 10, "misses": 10})
        redis_client.sadd(cache_keys.namespaces_key("cache"), "products")
        assert redis_collector.sample_instance(store, "default", redis_client, "cache", now=t0)
        # A second worker in the same interval writes nothing.
        assert not redis_collector.sample_instance(
            store, "default", redis_client, "cache", now=t0 + timedelta(seconds=3))
        for _ in range(3):
            redis_client.get("a")        # keyspace hits
        redis_client.get("missing")      # a keyspace miss
        redis_client.hincrby(cache_keys.stats_key("cache", "products"), "hits", 30)
        redis_client.hincrby(cache_keys.stats_key("cache", "products"), "misses", 10)
        t1 = t0 + timedelta(seconds=redis_collector.SAMPLE_SECONDS)
        assert redis_collector.sample_instance(store, "default", redis_client, "cache", now=t1)

        df = redis_collector.history(store, "default", 60, now=t1 + timedelta(seconds=1))
        assert len(df) == 2
        last = df.iloc[-1]
        assert last["keys"] >= 1
        assert last["cache_hit_rate"] == 0.75          # 30 hits, 10 misses between samples
        # Keyspace counters see every read (the sampler's own too): 1 miss, >3 hits.
        assert 0.7 < last["hit_rate"] < 1
        assert last["ops_per_sec"] > 0
        # A window that ends before the samples is empty, with the same columns.
        empty = redis_collector.history(store, "default", 1, now=t0 - timedelta(hours=1))
        assert empty.empty and list(empty.columns) == list(redis_collector.HISTORY_COLUMNS)
    finally:
        redis_client.close()
        store.close()


def test_unreachable_instance_is_skipped(store_url, private_redis):
    import redis as redis_lib
    store = _store(store_url)
    try:
        client = redis_lib.Redis.from_url(private_redis.url, socket_connect_timeout=0.5)
        private_redis.stop()
        assert not redis_collector.sample_instance(store, "down", client, "cache")
        private_redis.start()
        assert redis_collector.sample_instance(store, "down", client, "cache")
    finally:
        store.close()
