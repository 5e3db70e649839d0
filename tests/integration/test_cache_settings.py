"""Where the @cached toolkit finds Redis, against a real one:
configure(client=...) first, then the client given to monitor(redis=...),
then OPS_REDIS_URL; never the host's REDIS_URL."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis as redis_lib
from ops_agent import cache
from ops_agent.cache import keys
from redis.backoff import NoBackoff
from redis.retry import Retry

UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.fixture
def fresh(monkeypatch, redis_url):
    monkeypatch.setenv("REDIS_URL", UNREACHABLE)  # the host's: must be ignored
    monkeypatch.delenv("OPS_REDIS_URL", raising=False)
    monkeypatch.delenv("OPS_CACHE_PREFIX", raising=False)
    cache.reset()
    yield monkeypatch
    cache.reset()


def _square():
    @cache.cached("settings-square", ttl=60)
    def square(x):
        return x * x
    return square


def test_ops_redis_url_and_ops_cache_prefix(fresh, redis_client, redis_url):
    fresh.setenv("OPS_REDIS_URL", redis_url)
    fresh.setenv("OPS_CACHE_PREFIX", "envp")
    square = _square()
    assert square(3) == 9 and square(3) == 9
    assert square.key(3).startswith("envp:settings-square:")
    assert redis_client.get(square.key(3)) == b"9"
    stats = redis_client.hgetall(keys.stats_key("envp", "settings-square"))
    assert int(stats[b"hits"]) == 1 and int(stats[b"misses"]) == 1
    assert cache.ping() is True


def test_the_monitors_client_is_the_default(fresh, redis_client):
    """attach() (called by the Monitor) wins over OPS_REDIS_URL, loses to
    configure(client=...), and close() hands back to OPS_REDIS_URL."""
    fresh.setenv("OPS_REDIS_URL", UNREACHABLE)
    dead = redis_lib.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    square = _square()
    handle = cache.attach(SimpleNamespace(redis=redis_client))
    assert square(4) == 16
    assert redis_client.get(square.key(4)) == b"16"
    assert cache.ping() is True

    cache.configure(client=dead)            # explicit configuration wins
    assert cache.ping() is False
    cache.configure()                       # back to the monitor's client
    assert cache.ping() is True

    handle.close()                          # back to OPS_REDIS_URL (unreachable)
    assert cache.ping() is False
    assert square(4) == 16                  # still answers, uncached
    dead.close()


def test_a_monitor_without_a_client_changes_nothing(fresh, redis_client):
    cache.configure(client=redis_client)
    handle = cache.attach(SimpleNamespace(redis=None))
    handle.close()
    assert cache.ping() is True
