"""The @cached toolkit against a real Redis: counting, keys, invalidation, a
real outage (a redis-server of the test's own, stopped and started), several
processes adding up, warmers, warm requests and schedules."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from ops_agent import cache
from ops_agent.cache import cached, invalidate, keys, register_warmer, warm

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "t"


@pytest.fixture
def toolkit(redis_client):
    """The toolkit on the test's (flushed) Redis, fresh for every test."""
    cache.reset()
    cache.configure(client=redis_client, prefix=PREFIX)
    yield redis_client
    cache.reset()


def _stats(client, namespace: str) -> dict[str, int]:
    raw = client.hgetall(keys.stats_key(PREFIX, namespace))
    return {k.decode(): int(v) for k, v in raw.items()}


def _local(namespace: str) -> dict[str, int]:
    return cache.stats()["namespaces"][namespace]


def _wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# ----- hits, misses, keys -----------------------------------------------------------
def test_hits_and_misses_are_counted_per_namespace(toolkit):
    calls = []

    @cached("squares", ttl=60)
    def square(x):
        calls.append(x)
        return x * x

    assert [square(3), square(3), square(4), square(3)] == [9, 9, 16, 9]
    assert calls == [3, 4]
    assert _stats(toolkit, "squares") == {"hits": 2, "misses": 2, "sets": 2}
    assert _local("squares") == {"hits": 2, "misses": 2, "errors": 0, "sets": 2,
                                 "invalidations": 0, "warm_runs": 0}
    assert toolkit.smembers(keys.namespaces_key(PREFIX)) == {b"squares"}
    key = square.key(3)
    assert key.startswith(f"{PREFIX}:squares:") and len(key.split(":")[2]) == 32
    assert json.loads(toolkit.get(key)) == 9
    assert 0 < toolkit.ttl(key) <= 60
    index = dict(toolkit.zrange(keys.index_key(PREFIX, "squares"), 0, -1, withscores=True))
    assert set(index) == {square.key(3).encode(), square.key(4).encode()}
    assert all(score > time.time() for score in index.values())  # expiry, epoch seconds


def test_positional_and_keyword_calls_share_one_entry(toolkit):
    calls = []

    @cached("greetings", ttl=60)
    def greet(name, greeting="hello", *, punctuation="!"):
        calls.append(name)
        return f"{greeting} {name}{punctuation}"

    assert greet("ada") == greet(name="ada") == greet("ada", "hello") \
        == greet("ada", punctuation="!") == "hello ada!"
    assert calls == ["ada"]
    assert greet("ada", "hi") == "hi ada!"
    assert calls == ["ada", "ada"]
    assert greet.key("ada") == greet.key(name="ada", greeting="hello")
    assert len(toolkit.keys(f"{PREFIX}:greetings:*")) == 2


def test_none_is_cached_and_differs_from_a_miss(toolkit):
    calls = []

    @cached("lookups", ttl=60)
    def lookup(x):
        calls.append(x)
        return None

    assert lookup(1) is None and lookup(1) is None
    assert calls == [1]
    assert toolkit.get(lookup.key(1)) == b"null"
    assert _stats(toolkit, "lookups")["hits"] == 1


def test_a_miss_returns_what_a_hit_would(toolkit):
    @cached("shapes", ttl=60)
    def shape():
        return {"pair": (1, 2), 3: "three"}

    first, second = shape(), shape()
    assert first == second == {"pair": [1, 2], "3": "three"}


def test_values_and_arguments_that_are_not_json_raise_type_error(toolkit):
    @cached("objects", ttl=60)
    def make(x):
        return object()

    with pytest.raises(TypeError, match=r"@cached\('objects'\).*cannot be cached as JSON"):
        make(1)
    assert toolkit.get(make.key(1)) is None
    assert _stats(toolkit, "objects") == {"hits": 0, "misses": 1}  # the miss is counted
    with pytest.raises(TypeError, match="arguments .* must be JSON-serialisable"):
        make(datetime.now())


def test_ttl_and_namespace_are_checked():
    with pytest.raises(ValueError, match="ttl"):
        cached("fine", ttl=0)
    with pytest.raises(ValueError, match="namespace"):
        cached("_meta")
    with pytest.raises(ValueError, match="namespace"):
        cached("has:colon")


def test_a_namespace_belongs_to_one_function(toolkit):
    @cached("owned", ttl=60)
    def first(x):
        return x

    with pytest.raises(ValueError, match="already belongs to"):
        @cached("owned", ttl=60)
        def second(x):
            return x


# ----- invalidation -----------------------------------------------------------------
def test_invalidate_one_entry(toolkit):
    calls = []

    @cached("prices", ttl=60)
    def price(product_id, currency="EUR"):
        calls.append(product_id)
        return product_id * 10

    price(1), price(2)
    assert invalidate("prices", product_id=1) == 1
    assert toolkit.get(price.key(1)) is None
    assert toolkit.get(price.key(2)) is not None
    assert toolkit.zscore(keys.index_key(PREFIX, "prices"), price.key(1)) is None
    assert toolkit.zscore(keys.index_key(PREFIX, "prices"), price.key(2)) is not None
    assert invalidate("prices", 1) == 0  # already gone
    assert price.invalidate(2, "EUR") == 1
    price(1)
    assert calls == [1, 2, 1]
    assert _stats(toolkit, "prices")["invalidations"] == 3


def test_invalidate_with_arguments_needs_the_namespaces_function(toolkit):
    with pytest.raises(LookupError, match="no @cached function"):
        invalidate("nobody-owns-this", 1)


def test_invalidate_a_whole_namespace_deletes_nothing_else(toolkit):
    @cached("bulk", ttl=600)
    def item(i):
        return {"i": i}

    @cached("bulk2", ttl=600)
    def other(i):
        return i

    for i in range(1200):  # more than one SCAN page and one UNLINK batch
        item(i)
    other(1)
    unrelated = {"bulk:1": "x", f"{PREFIX}x:bulk:1": "x", f"{PREFIX}:bulk2:manual": "x",
                 "session:bulk:abc": "x", f"{PREFIX}:bulk": "x"}
    for key, value in unrelated.items():
        toolkit.set(key, value)
    keys_before = set(toolkit.keys("*"))

    assert invalidate("bulk") == 1200
    assert toolkit.keys(f"{PREFIX}:bulk:*") == []
    assert not toolkit.exists(keys.index_key(PREFIX, "bulk"))
    survivors = set(toolkit.keys("*"))
    gone = keys_before - survivors
    assert all(k.startswith(f"{PREFIX}:bulk:".encode()) for k in gone - {
        keys.index_key(PREFIX, "bulk").encode()})
    for key in unrelated:
        assert toolkit.get(key) == b"x"
    assert toolkit.get(other.key(1)) == b"1"
    assert toolkit.zcard(keys.index_key(PREFIX, "bulk2")) == 1
    assert _stats(toolkit, "bulk")["invalidations"] == 1
    assert toolkit.sismember(keys.namespaces_key(PREFIX), "bulk")  # still known to the page
    assert invalidate("bulk") == 0


# ----- a real outage ------------------------------------------------------------------
def test_redis_outage_runs_the_function_and_recovers(private_redis, caplog):
    """Stop the server: calls still answer, errors are counted, one warning;
    an invalidation made meanwhile is replayed when Redis is back (the
    restarted server loads the stale entry from its snapshot)."""
    client = redis_lib.Redis(port=private_redis.port, socket_connect_timeout=0.2,
                             socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    cache.reset()
    cache.configure(client=client, prefix=PREFIX, breaker_seconds=0.1)
    database = {1: 10}
    calls = []

    @cached("outage", ttl=600)
    def price(product_id):
        calls.append(product_id)
        return database[product_id]

    try:
        assert price(1) == 10 and price(1) == 10
        assert calls == [1]
        client.save()  # the restarted server loads this snapshot: price(1) == 10
        private_redis.stop()

        database[1] = 20
        with caplog.at_level(logging.WARNING, logger="ops_agent.cache"):
            during = []
            for _ in range(6):
                during.append(price(1))
                time.sleep(0.05)  # let the breaker expire now and then: more probes
            assert invalidate("outage", 1) == 0  # queued, not lost
        assert during == [20] * 6
        assert calls == [1] + [1] * 6
        local = _local("outage")
        assert local["errors"] == 6 and local["hits"] == 1
        assert cache.stats()["redis_failures"] >= 1
        failures = [r for r in caplog.records if "failed" in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in failures]  # no log spam

        private_redis.start()
        assert client.get(price.key(1)) == b"10"  # stale, from the snapshot
        # Until the breaker lets a call through, calls keep being served directly.
        after = []
        assert _wait_until(lambda: after.append(price(1)) or _local("outage")["hits"] > 1)
        assert set(after) == {20}  # never the stale 10: the invalidation ran first
        stats = _stats(client, "outage")
        assert stats["errors"] == _local("outage")["errors"] >= 6  # replayed
        assert stats["invalidations"] == 1
        assert json.loads(client.get(price.key(1))) == 20
    finally:
        cache.reset()
        client.close()


def test_a_dead_redis_never_raises_into_invalidate_warm_or_ping(private_redis):
    client = redis_lib.Redis(port=private_redis.port, socket_connect_timeout=0.2,
                             retry=Retry(NoBackoff(), 0))
    cache.reset()
    cache.configure(client=client, prefix=PREFIX)
    try:
        @cached("dead", ttl=60)
        def value(x):
            return x

        private_redis.stop()
        assert value(5) == 5
        assert invalidate("dead") == 0 and invalidate("dead", 5) == 0
        assert cache.ping() is False
        register_warmer("dead", lambda: value(1))
        result = warm("dead")
        assert result["entries"] == 0
        assert "Redis unavailable" in result["error"]
    finally:
        cache.reset()
        client.close()


# ----- several processes ------------------------------------------------------------
COUNT_CHILD = """
import json, sys, redis
from ops_agent import cache
cache.configure(client=redis.Redis.from_url(sys.argv[1]), prefix=sys.argv[2])

@cache.cached("shared", ttl=600)
def double(x):
    return 2 * x

for _ in range(2):
    for i in range(20):
        assert double(i) == 2 * i
print(json.dumps(cache.stats()["namespaces"]["shared"]))
"""


def _child(script: str, *args: str, stdin: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE,
                            stdin=subprocess.PIPE if stdin else None)


def test_counts_from_two_processes_add_up(toolkit, redis_url):
    children = [_child(COUNT_CHILD, redis_url, PREFIX) for _ in range(2)]
    local = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        local.append(json.loads(out))
    stats = _stats(toolkit, "shared")
    assert stats["hits"] == local[0]["hits"] + local[1]["hits"]
    assert stats["misses"] == local[0]["misses"] + local[1]["misses"]
    assert stats["hits"] + stats["misses"] == 80
    assert 20 <= stats["misses"] <= 40  # each argument missed once per process at most
    assert toolkit.zcard(keys.index_key(PREFIX, "shared")) == 20


# ----- warming ------------------------------------------------------------------------
def test_warm_refreshes_stale_entries_and_records_its_run(toolkit):
    database = {1: "old one", 2: "old two"}

    @cached("pages", ttl=600)
    def page(n):
        return database[n]

    assert page(1) == "old one" and page(2) == "old two"
    database.update({1: "new one", 2: "new two"})
    assert page(1) == "old one"  # cached

    register_warmer("pages", lambda: [page(1), page(2)], description="both pages")
    result = warm("pages")
    assert result["namespace"] == "pages"
    assert result["entries"] == 2 and result["error"] is None
    assert result["duration_ms"] >= 0
    assert page(1) == "new one" and page(2) == "new two"  # refreshed, now hits

    status = {k.decode(): v.decode() for k, v in
              toolkit.hgetall(keys.warm_status_key(PREFIX, "pages")).items()}
    assert status["last_entries"] == "2" and status["last_error"] == ""
    assert status["runs"] == "1" and status["process"].endswith(f":{_pid()}")
    assert datetime.fromisoformat(status["last_finished"]) >= \
        datetime.fromisoformat(status["last_started"])
    assert _stats(toolkit, "pages")["warm_runs"] == 1
    published = json.loads(toolkit.hget(keys.warmers_key(PREFIX), "pages"))
    assert published["description"] == "both pages" and published["every"] is None
    assert published["process"].endswith(f":{_pid()}")
    assert datetime.fromisoformat(published["registered_at"])


def _pid() -> int:
    import os
    return os.getpid()


def test_a_failing_warmer_reports_its_error(toolkit):
    @cached("fragile", ttl=60)
    def fragile(n):
        return n

    def warmer():
        fragile(1)
        raise RuntimeError("the report service is down")

    register_warmer("fragile", warmer)
    result = warm("fragile")  # does not raise
    assert result["error"] == "RuntimeError: the report service is down"
    assert result["entries"] == 1
    status = toolkit.hgetall(keys.warm_status_key(PREFIX, "fragile"))
    assert status[b"last_error"] == b"RuntimeError: the report service is down"
    assert status[b"runs"] == b"1"


def test_warm_needs_a_registered_warmer(toolkit):
    with pytest.raises(LookupError, match="no warmer"):
        warm("nothing-here")


def test_unregistering_the_last_warmer_stops_the_worker(toolkit):
    register_warmer("brief", lambda: None)
    assert cache.warm_worker_stats()["running"]
    assert cache.unregister_warmer("brief") is True
    assert not cache.warm_worker_stats()["running"]
    assert toolkit.hget(keys.warmers_key(PREFIX), "brief") is None


def _request(namespace: str, request_id: str, at: datetime | None = None) -> str:
    at = at or datetime.now(timezone.utc)
    return json.dumps({"id": request_id, "namespace": namespace,
                       "requested_by": "admin", "at": at.isoformat()})


def test_the_worker_claims_its_requests_and_leaves_the_rest(toolkit):
    runs = []

    @cached("reports", ttl=600)
    def report(n):
        return n

    register_warmer("reports", lambda: runs.append(report(1)))
    queue = keys.warm_requests_key(PREFIX)
    foreign = _request("someone-elses", "r-foreign")
    stale = _request("someone-elses", "r-stale",
                     at=datetime.now(timezone.utc) - timedelta(hours=1))
    toolkit.lpush(queue, "not json", stale, foreign, _request("reports", "r-mine"))

    assert _wait_until(lambda: toolkit.lrange(queue, 0, -1) == [foreign.encode()])
    assert _wait_until(lambda: toolkit.hget(keys.warm_status_key(PREFIX, "reports"),
                                            "last_request_id") == b"r-mine")
    assert runs == [1]
    assert cache.warm_worker_stats()["claimed"] == ["r-mine"]


WARM_CHILD = """
import json, sys, time, redis
from ops_agent import cache
url, prefix, every = sys.argv[1], sys.argv[2], sys.argv[3]
client = redis.Redis.from_url(url)
cache.configure(client=client, prefix=prefix)

@cache.cached("reports", ttl=600)
def report(n):
    return {"n": n}

def warmer():
    client.incr("test:warmer-runs")
    report(1)

cache.register_warmer("reports", warmer, every=float(every) if every != "-" else None)
print("ready", flush=True)
if every == "-":
    sys.stdin.readline()            # the test says when to stop
else:
    deadline = time.monotonic() + 30
    while len(cache.warm_worker_stats()["scheduled"]) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
cache.stop_warm_worker()
print(json.dumps(cache.warm_worker_stats()), flush=True)
"""


def test_a_warm_request_runs_once_with_two_processes_polling(toolkit, redis_url):
    children = [_child(WARM_CHILD, redis_url, PREFIX, "-", stdin=True) for _ in range(2)]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready"
        queue = keys.warm_requests_key(PREFIX)
        foreign = _request("not-warmed-here", "r-foreign")
        toolkit.lpush(queue, foreign)
        ids = [f"r{n}" for n in range(6)]
        for request_id in ids:
            toolkit.lpush(queue, _request("reports", request_id))
            time.sleep(0.3)  # spread over several polls of both workers
        assert _wait_until(lambda: toolkit.lrange(queue, 0, -1) == [foreign.encode()])
        worker_stats = []
        for child in children:
            child.stdin.write("\n")
            child.stdin.flush()
            worker_stats.append(json.loads(child.stdout.readline()))
            child.wait(timeout=30)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    claimed = worker_stats[0]["claimed"] + worker_stats[1]["claimed"]
    assert sorted(claimed) == sorted(ids)  # every request exactly once
    runs = int(toolkit.get("test:warmer-runs"))
    assert 1 <= runs <= len(ids)  # requests waiting together share a run
    status = toolkit.hgetall(keys.warm_status_key(PREFIX, "reports"))
    assert int(status[b"runs"]) == runs
    assert status[b"last_request_id"].decode() in ids


def test_a_scheduled_warm_runs_once_per_period_across_two_processes(toolkit, redis_url):
    children = [_child(WARM_CHILD, redis_url, PREFIX, "1") for _ in range(2)]
    outputs = []
    try:
        for child in children:
            out, _ = child.communicate(timeout=60)
            assert child.returncode == 0
            ready, stats_line = out.strip().splitlines()
            outputs.append(json.loads(stats_line))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    attempts = [tuple(a) for out in outputs for a in out["scheduled"]]
    by_period = Counter(period for _ns, period, _won in attempts)
    winners = Counter(period for _ns, period, won in attempts if won)
    assert any(n == 2 for n in by_period.values())  # both processes tried these
    assert {p: winners[p] for p in by_period} == {p: 1 for p in by_period}
    assert int(toolkit.get("test:warmer-runs")) == len(by_period)


def test_racing_pollers_claim_each_request_once(toolkit):
    """Six threads poll the request list at once (as many worker processes
    would): LREM decides, so every request is claimed by exactly one."""
    import threading

    from ops_agent.cache import warming

    @cached("racy", ttl=600)
    def racy(n):
        return n

    register_warmer("racy", lambda: racy(1))
    cache.stop_warm_worker()  # only the racing threads below poll
    queue = keys.warm_requests_key(PREFIX)
    ids = [f"q{n}" for n in range(60)]
    toolkit.lpush(queue, *[_request("racy", i) for i in ids])
    start = threading.Barrier(6)

    def poll():
        start.wait()
        for _ in range(5):
            warming._poll_once()

    threads = [threading.Thread(target=poll) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    claimed = cache.warm_worker_stats()["claimed"]
    assert sorted(claimed) == sorted(ids)
    assert toolkit.llen(queue) == 0
