"""One Redis client as the toolkit uses it: circuit breaker, outage warnings,
and the counts and invalidations waiting for Redis to come back.

redis-py is the host's library, not the agent's: it is imported on first
need (a client or OPS_REDIS_URL to connect to), never when the package is
imported. `redis_errors()` is evaluated in `except` clauses, so only once
something went wrong; by then the host's client has imported redis-py.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Optional, Set, Tuple

from . import keys

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import redis

logger = logging.getLogger(__name__)

BREAKER_SECONDS = 5.0    # Redis skipped this long after a failure
LOG_EVERY = 60.0         # at most one outage warning per client this often
SCAN_COUNT = 1000
UNLINK_BATCH = 500
PENDING_KEYS_LIMIT = 10_000  # queued single-key invalidations per namespace

_errors: Optional[Tuple[type, ...]] = None


def redis_errors() -> Tuple[type, ...]:
    """What a Redis call may raise that means "Redis is unusable": redis-py's
    RedisError (if redis-py is importable) and OSError."""
    global _errors
    if _errors is None:
        try:
            import redis
        except ImportError:  # a client that is not redis-py: sockets still fail so
            _errors = (OSError,)
        else:
            _errors = (redis.RedisError, OSError)
    return _errors


def client_options() -> Dict[str, Any]:
    """Options of the toolkit's own client (OPS_REDIS_URL): fail fast, the
    breaker does the rest. Imports redis-py."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    return {"socket_connect_timeout": 0.5, "socket_timeout": 1.0,
            "health_check_interval": 15, "retry": Retry(NoBackoff(), 1)}


def connect(url: str) -> Optional[redis.Redis]:
    """A client for `url`, or None (with a warning) when redis-py is missing
    or the URL is unusable: the toolkit then runs functions uncached."""
    try:
        import redis
    except ImportError:
        logger.warning("cache: OPS_REDIS_URL is set but redis-py is not installed; "
                       "@cached functions run uncached")
        return None
    try:
        return redis.Redis.from_url(url, **client_options())
    except ValueError as exc:
        logger.warning("cache: OPS_REDIS_URL is unusable (%s); @cached functions run "
                       "uncached", exc)
        return None


class Backend:
    """A Redis client as the toolkit uses it, with its circuit breaker and the
    counts and invalidations waiting for it to come back. `toolkit` gives
    `breaker_seconds` and `log_every` (read at each use: configure() may
    change them)."""

    def __init__(self, client: redis.Redis, toolkit: Any):
        self.client = client
        self._toolkit = toolkit
        self._lock = threading.Lock()
        self.open_until = 0.0          # monotonic; 0.0 while Redis answers
        self.failures = 0
        self._last_log = float("-inf")
        self._unlogged = 0
        self._warned = False
        self.pending = False           # read on every call: a plain attribute
        self._counts: Dict[Tuple[str, str], Dict[str, int]] = {}
        self._keys: Dict[Tuple[str, str], Set[str]] = {}
        self._clears: Set[Tuple[str, str]] = set()

    # -- breaker ---------------------------------------------------------------
    def ready(self) -> bool:
        """May this call use Redis? False while the breaker is open; when it
        has just expired, exactly one caller gets True and probes. Queued work
        is replayed first (a failure there reopens the breaker)."""
        if self.open_until:
            now = time.monotonic()
            with self._lock:
                if now < self.open_until:
                    return False
                self.open_until = now + self._toolkit.breaker_seconds  # others wait
        if self.pending:
            try:
                self.replay()
            except redis_errors() as exc:
                self.failed("replay", "-", exc)
                return False
        return True

    def succeeded(self) -> None:
        if self.open_until:
            with self._lock:
                self.open_until = 0.0
                warned, self._warned = self._warned, False
            if warned:  # one "back" per "failed" warning, however Redis flaps
                logger.warning("cache: Redis answers again; caching resumed")

    def failed(self, action: str, namespace: str, exc: BaseException) -> None:
        """Open the breaker; warn at most once per LOG_EVERY seconds."""
        now = time.monotonic()
        with self._lock:
            self.open_until = now + self._toolkit.breaker_seconds
            self.failures += 1
            if now - self._last_log < self._toolkit.log_every:
                self._unlogged += 1
                return
            self._last_log, skipped, self._unlogged = now, self._unlogged, 0
            self._warned = True
        logger.warning(
            "cache %s failed (namespace %r): %s: %s; calling functions directly "
            "and skipping Redis for %.0f s%s", action, namespace, type(exc).__name__,
            str(exc).splitlines()[0][:200] if str(exc) else "", self._toolkit.breaker_seconds,
            f" ({skipped} more failures since the last warning)" if skipped else "")

    # -- work for later --------------------------------------------------------
    def defer_counts(self, prefix: str, namespace: str, deltas: Dict[str, int]) -> None:
        with self._lock:
            mine = self._counts.setdefault((prefix, namespace), {})
            for name, n in deltas.items():
                mine[name] = mine.get(name, 0) + n
            self.pending = True

    def defer_invalidation(self, prefix: str, namespace: str, key: Optional[str]) -> None:
        """Replay later: drop `key` (None: the whole namespace)."""
        ns = (prefix, namespace)
        with self._lock:
            if key is None or ns in self._clears:
                self._clears.add(ns)
                self._keys.pop(ns, None)
            else:
                waiting = self._keys.setdefault(ns, set())
                waiting.add(key)
                if len(waiting) > PENDING_KEYS_LIMIT:  # too many: clear it all
                    self._clears.add(ns)
                    self._keys.pop(ns, None)
            self.pending = True

    def replay(self) -> None:
        """Send what waited for Redis; raises RedisError/OSError (and keeps it)."""
        with self._lock:
            counts, drop, clears = self._counts, self._keys, self._clears
            self._counts, self._keys, self._clears = {}, {}, set()
            self.pending = False
        try:
            pipe = self.client.pipeline(transaction=False)
            for (prefix, namespace), deltas in counts.items():
                for name, n in deltas.items():
                    if n:
                        pipe.hincrby(keys.stats_key(prefix, namespace), name, n)
            for (prefix, namespace), waiting in drop.items():
                batch = list(waiting)
                for start in range(0, len(batch), UNLINK_BATCH):
                    chunk = batch[start:start + UNLINK_BATCH]
                    pipe.unlink(*chunk)
                    pipe.zrem(keys.index_key(prefix, namespace), *chunk)
            sent = bool(pipe.command_stack)
            pipe.execute()
            counts, drop = {}, {}
            sent = sent or bool(clears)
            while clears:
                prefix, namespace = next(iter(clears))
                clear_namespace(self, prefix, namespace)
                clears.discard((prefix, namespace))
        except BaseException:
            with self._lock:  # put back what was not sent
                for ns, deltas in counts.items():
                    mine = self._counts.setdefault(ns, {})
                    for name, n in deltas.items():
                        mine[name] = mine.get(name, 0) + n
                for ns, waiting in drop.items():
                    self._keys.setdefault(ns, set()).update(waiting)
                self._clears |= clears
                self.pending = True
            raise
        if sent:
            logger.info("cache: sent the counts and invalidations queued while "
                        "Redis was unreachable")


def clear_namespace(backend: Backend, prefix: str, namespace: str) -> int:
    """UNLINK every entry of a namespace (SCAN, batches) and its index.
    Raises RedisError/OSError. Entries written during the scan may survive."""
    client = backend.client
    deleted = 0
    batch: list = []
    for key in client.scan_iter(match=keys.namespace_pattern(prefix, namespace),
                                count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= UNLINK_BATCH:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    client.unlink(keys.index_key(prefix, namespace))
    return deleted
