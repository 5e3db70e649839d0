"""The toolkit's process-wide state: configuration, clients, which function
owns which namespace, and this process's own counters.

Where Redis and the prefix come from, first found wins:

* client: `configure(client=...)`, else the client the host gave
  `ops_agent.monitor(app, redis=...)`, else one made from OPS_REDIS_URL,
  else none (functions run uncached). The host's own REDIS_URL is never
  read: that Redis may not be the one the host wants its cache in;
* prefix: `configure(prefix=...)`, else OPS_CACHE_PREFIX, else "cache"
  (the console reads the same variable, so both agree by default).

The environment is read on first use, not at import.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from . import keys
from .backend import BREAKER_SECONDS, LOG_EVERY, Backend, connect

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import redis

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "cache"
PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")  # as the console's OPS_CACHE_PREFIX
PRUNE_EVERY = 60.0       # expired index members removed at most this often
COUNTERS = keys.STAT_FIELDS


@dataclass
class Target:
    """Where a namespace lives right now (resolved once per configuration)."""
    backend: Backend
    prefix: str
    key_head: str       # "<prefix>:<namespace>:"
    stats: str
    index: str
    namespaces: str


def env_prefix() -> str:
    """OPS_CACHE_PREFIX, or "cache" (with a warning when it is unusable)."""
    prefix = os.environ.get("OPS_CACHE_PREFIX", "").strip()
    if not prefix:
        return DEFAULT_PREFIX
    if not PREFIX_RE.match(prefix):
        logger.warning("cache: OPS_CACHE_PREFIX must be 1-32 letters, digits, '_', '.' "
                       "or '-'; using %r", DEFAULT_PREFIX)
        return DEFAULT_PREFIX
    return prefix


class Toolkit:
    """Configuration, clients, namespace bindings and in-process counters.

    One instance per process (`_toolkit`); `reset()` returns it to the
    state of a fresh import, except for which function owns which namespace
    (that is code, not state)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.counters_lock = threading.Lock()
        self.fork_hook = False
        self.functions: Dict[str, Any] = {}   # namespace -> CachedFunction
        self._reset_state()

    def _reset_state(self) -> None:
        self.client: Optional[redis.Redis] = None        # configure(client=...)
        self.host_client: Optional[redis.Redis] = None   # monitor(app, redis=...)
        self.prefix: Optional[str] = None
        self.breaker_seconds = BREAKER_SECONDS
        self.log_every = LOG_EVERY
        self.generation = getattr(self, "generation", 0) + 1
        self._default: Optional[Tuple[Optional[redis.Redis], str]] = None
        self._own_client: Optional[redis.Redis] = None
        self.backends: Dict[int, Backend] = {}  # id(client): a Backend keeps its client
        self.counters: Dict[str, Dict[str, int]] = {}
        self.next_prune: Dict[str, float] = {}

    # -- configuration -----------------------------------------------------------
    def configure(self, client, prefix, breaker_seconds, log_every) -> None:
        if prefix is not None and not (isinstance(prefix, str) and PREFIX_RE.match(prefix)):
            raise ValueError(f"cache prefix {prefix!r} must be 1-32 letters, digits, "
                             "'_', '.' or '-' (as OPS_CACHE_PREFIX)")
        with self.lock:
            self._close_own_client()
            self.client, self.prefix = client, prefix
            self.breaker_seconds = BREAKER_SECONDS if breaker_seconds is None \
                else float(breaker_seconds)
            self.log_every = LOG_EVERY if log_every is None else float(log_every)
            self._changed()

    def use_host_client(self, client: Optional[redis.Redis]) -> None:
        """The client the host gave the agent (None: forget it). It serves
        when configure() named none; it wins over OPS_REDIS_URL."""
        with self.lock:
            if client is self.host_client:
                return
            self._close_own_client()
            self.host_client = client
            self._changed()

    def _changed(self) -> None:
        """Every @cached function resolves its target again on its next call."""
        self._default = None
        self.generation += 1

    def reset(self) -> None:
        with self.lock:
            self._close_own_client()
            self._reset_state()

    def _close_own_client(self) -> None:
        if self._own_client is not None:
            try:
                self._own_client.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self._own_client = None

    def defaults(self) -> Tuple[Optional[redis.Redis], str]:
        """(client, prefix) as the module docstring orders them; client None
        when there is no Redis at all."""
        if self._default is not None:
            return self._default
        with self.lock:
            if self._default is None:
                prefix = self.prefix if self.prefix is not None else env_prefix()
                client = self.client if self.client is not None else self.host_client
                if client is None:
                    url = os.environ.get("OPS_REDIS_URL", "").strip()
                    if url:
                        client = self._own_client = connect(url)
                    else:
                        logger.info("cache: no Redis configured (no configure(client=...), "
                                    "no monitor(app, redis=...), OPS_REDIS_URL unset); "
                                    "@cached functions run uncached")
                self._default = (client, prefix)
        return self._default

    def backend(self, client: redis.Redis) -> Backend:
        with self.lock:
            found = self.backends.get(id(client))
            if found is None:
                found = self.backends[id(client)] = Backend(client, self)
                if not self.fork_hook and hasattr(os, "register_at_fork"):
                    self.fork_hook = True
                    os.register_at_fork(after_in_child=self.after_fork)
            return found

    def after_fork(self) -> None:
        """A lock held by another thread at fork() stays held in the child: renew them."""
        self.lock = threading.RLock()
        self.counters_lock = threading.Lock()
        for backend in self.backends.values():
            backend._lock = threading.Lock()

    def target(self, namespace: str, client: Optional[redis.Redis] = None) -> Optional[Target]:
        default_client, prefix = self.defaults()
        client = client if client is not None else default_client
        if client is None:
            return None
        return Target(self.backend(client), prefix, keys.entry_key(prefix, namespace, ""),
                      keys.stats_key(prefix, namespace), keys.index_key(prefix, namespace),
                      keys.namespaces_key(prefix))

    def target_for(self, namespace: str) -> Optional[Target]:
        """The namespace's target: its function's client, else the default."""
        owner = self.functions.get(namespace)
        return owner.resolve() if owner is not None else self.target(namespace)

    # -- namespaces ---------------------------------------------------------------
    def bind(self, entry: Any) -> None:
        """Record which function owns a namespace (invalidate() needs its
        signature). The same function decorated again (an app factory called
        twice) takes over; a different function is an error, because equal
        arguments would share entries."""
        with self.lock:
            current = self.functions.get(entry.namespace)
            if current is not None and current.name != entry.name:
                raise ValueError(
                    f"cache namespace {entry.namespace!r} already belongs to "
                    f"{current.name}; give {entry.name} a namespace of its own")
            self.functions[entry.namespace] = entry

    def count(self, namespace: str, name: str, n: int = 1) -> None:
        with self.counters_lock:
            mine = self.counters.get(namespace)
            if mine is None:
                mine = self.counters[namespace] = dict.fromkeys(COUNTERS, 0)
            mine[name] += n

    def prune_due(self, namespace: str) -> bool:
        now = time.monotonic()
        if now < self.next_prune.get(namespace, 0.0):
            return False
        self.next_prune[namespace] = now + PRUNE_EVERY
        return True


_toolkit = Toolkit()
