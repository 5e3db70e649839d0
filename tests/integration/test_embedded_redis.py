"""The embedded Redis (no REDIS_URL): its socket lives under the instance
folder, and a server that dies is started again by the console.

What a user would notice: after the redis-server process is killed, the
console's health is back to "ok" within 30 s without a restart of the
console; two console processes sharing the instance folder end up on one
server, not two; a too-long instance path still gets a working socket.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import redis as redis_lib

from dashapp import create_app
from dashapp.config import load_settings
from dashapp.store.redis import MAX_SOCKET_PATH, RedisHandle, embedded_socket
from tests.conftest import ADMIN_PASSWORD

RECOVERY_BOUND_S = 30


def embedded_console(instance: Path, store_url: str):
    settings = load_settings(
        instance_dir=instance, database_url=store_url, redis_url=None, demo=False,
        admin_password=ADMIN_PASSWORD, secret_key="test-secret-key", scheduler=False)
    assert settings.redis_url in (None, "")
    return create_app(settings).server


def server_pid(handle: RedisHandle) -> int:
    return int(handle.client.info("server")["process_id"])


def kill_server(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)


def stop_server(url: str) -> None:
    try:
        redis_lib.Redis.from_url(url).shutdown(nosave=True)
    except (redis_lib.ConnectionError, OSError):
        pass  # already gone


def wait_healthy(client, bound: float = RECOVERY_BOUND_S) -> tuple[dict, float]:
    start = time.monotonic()
    body: dict = {}
    while time.monotonic() - start < bound:
        body = client.get("/api/health").get_json()
        if body["status"] == "ok":
            break
        time.sleep(0.2)
    return body, time.monotonic() - start


def test_a_killed_embedded_redis_is_restarted_and_its_socket_is_in_the_instance(
        tmp_path, store_url):
    instance = tmp_path / "instance"
    server = embedded_console(instance, store_url)
    ops = server.extensions["ops"]
    client = server.test_client()
    try:
        assert ops.redis.embedded
        assert ops.redis.url == f"unix://{instance / 'redis' / 'redis.sock'}"
        assert (instance / "redis" / "redis.sock").is_socket()
        assert client.get("/api/health").get_json()["status"] == "ok"
        ops.redis.client.set("ops:test:before", "1")
        first = server_pid(ops.redis)

        kill_server(first)
        body, took = wait_healthy(client)
        assert body["status"] == "ok", body
        assert took < RECOVERY_BOUND_S
        assert server_pid(ops.redis) != first
        assert ops.redis.client.set("ops:test:after", "2")    # the app's client reconnected
        assert (instance / "redis" / "redis.sock").is_socket()   # same place as before
    finally:
        url = ops.redis.url
        ops.close()
        stop_server(url)


def test_two_processes_sharing_the_instance_restart_one_server(tmp_path):
    """Two handles on one instance folder stand for two console workers: the
    restart takes the same start lock, so one server replaces the dead one."""
    instance = tmp_path / "instance"
    first, second = RedisHandle(None, instance), RedisHandle(None, instance)
    try:
        assert first.url == second.url
        pid = server_pid(first)
        assert server_pid(second) == pid
        kill_server(pid)
        deadline = time.monotonic() + RECOVERY_BOUND_S
        while time.monotonic() < deadline and not (first.ping()["ok"] and second.ping()["ok"]):
            time.sleep(0.2)
        assert first.ping()["ok"] and second.ping()["ok"]
        time.sleep(2)               # both watchdogs have looked again by now
        assert server_pid(first) == server_pid(second) != pid
        socket_path = str(instance / "redis" / "redis.sock")
        servers = [p for p in psutil.process_iter(["name", "cmdline", "open_files"])
                   if "redis-server" in (p.info["name"] or "")
                   and any(socket_path in c for c in _unix_sockets(p))]
        assert len(servers) <= 1
    finally:
        first.close()
        second.close()
        stop_server(first.url)


def _unix_sockets(process: psutil.Process) -> list[str]:
    try:
        return [c.laddr for c in process.net_connections(kind="unix") if c.laddr]
    except (psutil.Error, AttributeError):
        return []


def test_a_too_long_instance_path_falls_back_to_a_short_private_socket(tmp_path, caplog):
    instance = tmp_path.joinpath(*["a-rather-long-folder-name"] * 5, "instance")
    assert len(os.fsencode(instance / "redis" / "redis.sock")) > MAX_SOCKET_PATH
    with caplog.at_level("WARNING", logger="dashapp.store.redis"):
        path = embedded_socket(instance)
    assert len(os.fsencode(path)) <= MAX_SOCKET_PATH
    assert "too long" in caplog.text and str(path) in caplog.text
    assert embedded_socket(instance) == path              # stable across restarts
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    handle = RedisHandle(None, instance)
    try:
        assert handle.url == f"unix://{path}" and handle.ping()["ok"]
        assert (instance / "redis" / "ops.rdb.settings").exists()   # data stays in the instance
    finally:
        handle.close()
        stop_server(handle.url)


def test_the_short_socket_is_used_when_it_fits(tmp_path):
    assert embedded_socket(tmp_path) == tmp_path / "redis" / "redis.sock"


@pytest.fixture(autouse=True)
def _no_redis_url(monkeypatch):
    """These tests are about the embedded server: REDIS_URL must not win."""
    monkeypatch.delenv("REDIS_URL", raising=False)
