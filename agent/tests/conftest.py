"""Fixtures of the agent's own tests: the agent alone, no console code.

These tests run in environments that hold only the agent and the libraries
of its hosts (scripts/agent-venvs sets OPS_AGENT_VENV there): then the
agent under test must be the installed one and every optional library must
be present (a missing one fails instead of skipping).
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from typing import Any, Callable, List

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from ingest_server import IngestServer  # noqa: E402

IN_AGENT_VENV = bool(os.environ.get("OPS_AGENT_VENV"))


def require(module: str) -> Any:
    """An optional library of the hosts': skipped where absent, except in
    the agent's own environments, which must hold it."""
    if IN_AGENT_VENV:
        return importlib.import_module(module)
    return pytest.importorskip(module)


def pytest_sessionstart(session) -> None:
    if IN_AGENT_VENV:
        import ops_agent
        assert "site-packages" in ops_agent.__file__, (
            f"testing {ops_agent.__file__}, not the installed agent")
    assert "dashapp" not in sys.modules


def pytest_sessionfinish(session, exitstatus) -> None:
    # The agent must stand alone: nothing of the console was imported.
    if "dashapp" in sys.modules:
        session.exitstatus = 1
        print("\nagent tests imported dashapp", file=sys.stderr)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """The agent reads OPS_* variables: none leak in from the shell."""
    for name in list(os.environ):
        if name.startswith("OPS_") and name != "OPS_AGENT_VENV":
            monkeypatch.delenv(name)


@pytest.fixture
def console():
    server = IngestServer().start()
    yield server
    server.stop()


@pytest.fixture
def monitors():
    """Monitors a test builds; each is closed afterwards (its thread
    stopped, its log handler off the root logger)."""
    built: List[Any] = []
    yield built
    for mon in built:
        mon.close()


@pytest.fixture
def make_app(console, monitors):
    """`make_app(**monitor_kwargs)` -> (Flask app, Monitor) shipping to
    `console` as application "shop", release "1.4.2"."""
    from flask import Flask

    import ops_agent

    def make(*, routes: Callable[[Any], None] = None, **kwargs):
        app = Flask("shop")
        if routes is not None:
            routes(app)
        kwargs.setdefault("dsn", console.dsn())
        kwargs.setdefault("release", "1.4.2")
        mon = ops_agent.monitor(app, **kwargs)
        monitors.append(mon)
        return app, mon
    return make


@pytest.fixture
def app_logger():
    """A logger of the host's with a level of its own (root's WARNING would
    otherwise stop INFO records before any handler)."""
    logger = logging.getLogger("shop.orders")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.setLevel(old)


def elapsed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started
