"""The @cached toolkit as part of the agent: it imports nothing of the
console and not redis-py, parses as Python 3.9, and the console's old
`dashapp.cache` names are the agent's own objects."""
from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "agent" / "ops_agent" / "cache"


def test_importing_the_toolkit_loads_neither_redis_nor_the_console():
    script = ("import sys, ops_agent.cache\n"
              "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
              "('redis', 'dashapp', 'sqlalchemy', 'pydantic'))\n"
              "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_the_toolkit_parses_as_python_3_9(path):
    ast.parse(path.read_text(), str(path), feature_version=(3, 9))


def test_dashapp_cache_is_the_agents_toolkit():
    import ops_agent.cache as agent_cache

    import dashapp.cache
    import dashapp.cache.core
    from dashapp.cache import keys, warming
    assert dashapp.cache.core is agent_cache.core
    assert keys is agent_cache.keys and warming is agent_cache.warming
    for name in agent_cache.__all__:
        assert getattr(dashapp.cache, name) is getattr(agent_cache, name), name


def test_without_configuration_or_ops_redis_url_functions_run_uncached(monkeypatch):
    """The host's REDIS_URL is not the toolkit's: only OPS_REDIS_URL is read."""
    from ops_agent import cache
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.delenv("OPS_REDIS_URL", raising=False)
    cache.reset()
    try:
        calls = []

        @cache.cached("agent-unconfigured", ttl=60)
        def double(x):
            calls.append(x)
            return 2 * x

        assert double(2) == 4 and double(2) == 4
        assert calls == [2, 2]
        assert cache.ping() is None
    finally:
        cache.reset()


def test_an_unusable_ops_cache_prefix_falls_back_to_cache(monkeypatch, caplog):
    from ops_agent import cache
    monkeypatch.setenv("OPS_CACHE_PREFIX", "not valid!")
    monkeypatch.delenv("OPS_REDIS_URL", raising=False)
    cache.reset()
    try:
        @cache.cached("agent-prefix", ttl=60)
        def ident(x):
            return x

        with caplog.at_level(logging.WARNING, logger="ops_agent.cache"):
            assert ident.key(1).startswith("cache:agent-prefix:")
        assert any("OPS_CACHE_PREFIX" in r.getMessage() for r in caplog.records)
        monkeypatch.setenv("OPS_CACHE_PREFIX", "shop.v2")
        cache.reset()
        assert ident.key(1).startswith("shop.v2:agent-prefix:")
    finally:
        cache.reset()
