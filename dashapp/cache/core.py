"""`@cached` and `invalidate()`: JSON results in Redis, counted per namespace.

The layout is `dashapp.cache.keys`. What a call costs the host:

* a hit is one round trip: GET and HINCRBY hits in one non-transactional
  pipeline. A miss is counted as a hit by that pipeline, so the pipeline
  that stores the value corrects it (hits -1, misses +1): between the two
  round trips the hit count runs ahead by the misses in flight;
* a miss runs the function, then one pipeline: SET EX, ZADD index, SADD
  namespaces, HINCRBY misses/sets (and, once a minute, prunes the index);
* Redis trouble never reaches the host. The call runs the function, counts
  an error (here, and in Redis once it answers again), logs one warning per
  `LOG_EVERY` seconds and opens a circuit breaker: Redis is skipped for
  `breaker_seconds`, then one call probes it. Invalidations made while
  Redis is unreachable are replayed when it answers again, so a write made
  during an outage does not leave a stale entry behind.

Keys hash the function's arguments bound to its signature with defaults
applied, as canonical JSON: `f(1)` and `f(x=1)` share an entry; `1`,
`1.0` and `True` do not. Values and arguments must be JSON-serialisable
(a TypeError at the call says which); a miss returns the value as a hit
would (decoded from its JSON), so callers never see two shapes.
"""
from __future__ import annotations

import contextvars
import functools
import hashlib
import inspect
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import keys

logger = logging.getLogger(__name__)

REDIS_ERRORS = (redis.RedisError, OSError)
DEFAULT_TTL = 300
BREAKER_SECONDS = 5.0    # Redis skipped this long after a failure
LOG_EVERY = 60.0         # at most one outage warning per client this often
PRUNE_EVERY = 60.0       # expired index members removed at most this often
SCAN_COUNT = 1000
UNLINK_BATCH = 500
PENDING_KEYS_LIMIT = 10_000  # queued single-key invalidations per namespace
PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")  # as Settings.cache_prefix
COUNTERS = keys.STAT_FIELDS
# The toolkit's own client (from REDIS_URL): fail fast, the breaker does the rest.
CLIENT_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 1.0,
                  "health_check_interval": 15, "retry": Retry(NoBackoff(), 1)}


@dataclass
class WarmRun:
    """The warm in progress in this context: calls of its namespace refresh."""
    namespace: str
    entries: int = 0
    failed: int = 0


_WARMING: contextvars.ContextVar[WarmRun | None] = contextvars.ContextVar(
    "ops_cache_warming", default=None)


# ----- one Redis client: breaker, warnings, work to replay ------------------
class Backend:
    """A Redis client as the toolkit uses it, with its circuit breaker and the
    counts and invalidations waiting for it to come back."""

    def __init__(self, client: redis.Redis, toolkit: Toolkit):
        self.client = client
        self._toolkit = toolkit
        self._lock = threading.Lock()
        self.open_until = 0.0          # monotonic; 0.0 while Redis answers
        self.failures = 0
        self._last_log = float("-inf")
        self._unlogged = 0
        self._warned = False
        self.pending = False           # read on every call: a plain attribute
        self._counts: dict[tuple[str, str], dict[str, int]] = {}
        self._keys: dict[tuple[str, str], set[str]] = {}
        self._clears: set[tuple[str, str]] = set()

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
            except REDIS_ERRORS as exc:
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
    def defer_counts(self, prefix: str, namespace: str, deltas: dict[str, int]) -> None:
        with self._lock:
            mine = self._counts.setdefault((prefix, namespace), {})
            for name, n in deltas.items():
                mine[name] = mine.get(name, 0) + n
            self.pending = True

    def defer_invalidation(self, prefix: str, namespace: str, key: str | None) -> None:
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


# ----- what one decorated function needs on every call ------------------------
@dataclass
class Target:
    """Where a namespace lives right now (resolved once per configuration)."""
    backend: Backend
    prefix: str
    key_head: str       # "<prefix>:<namespace>:"
    stats: str
    index: str
    namespaces: str


class Binder:
    """Arguments -> {parameter: value} with defaults applied, as
    `inspect.Signature.bind` does; exact positional calls skip it."""

    def __init__(self, func: Callable):
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        self.names = tuple(p.name for p in params)
        self.plain = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                         for p in params)

    def __call__(self, args: tuple, kwargs: dict) -> dict:
        if self.plain and not kwargs and len(args) == len(self.names):
            return dict(zip(self.names, args))
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments


class CachedFunction:
    """One `@cached` function: its namespace, TTL, client and key recipe."""

    def __init__(self, namespace: str, func: Callable, ttl: int,
                 client: redis.Redis | None, toolkit: Toolkit):
        self.namespace = namespace
        self.func = func
        self.ttl = ttl
        self.client = client
        self.toolkit = toolkit
        self.binder = Binder(func)
        self.name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)}"
        self.target: Target | None = None
        self.generation = -1

    def resolve(self) -> Target | None:
        """The current target (None: no Redis configured, run uncached)."""
        toolkit = self.toolkit
        if self.generation != toolkit.generation:
            self.target = toolkit.target(self.namespace, self.client)
            self.generation = toolkit.generation
        return self.target

    def digest(self, args: tuple, kwargs: dict) -> str:
        arguments = self.binder(args, kwargs)
        try:
            text = json.dumps(arguments, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"@cached({self.namespace!r}): the arguments of {self.name} must be "
                f"JSON-serialisable to make the cache key ({exc})") from None
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def encode(self, value: Any) -> str:
        try:
            return json.dumps(value, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"@cached({self.namespace!r}): {self.name} returned a "
                f"{type(value).__name__} that cannot be cached as JSON ({exc}); return "
                "dicts, lists, strings, numbers, booleans or None") from None


# ----- the process-wide state ---------------------------------------------------
class Toolkit:
    """Configuration, clients, namespace bindings and in-process counters.

    One instance per process (`_toolkit`); `reset()` returns it to the
    state of a fresh import, except for which function owns which namespace
    (that is code, not state)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.counters_lock = threading.Lock()
        self.fork_hook = False
        self.functions: dict[str, CachedFunction] = {}
        self._reset_state()

    def _reset_state(self) -> None:
        self.client: redis.Redis | None = None
        self.prefix: str | None = None
        self.breaker_seconds = BREAKER_SECONDS
        self.log_every = LOG_EVERY
        self.generation = getattr(self, "generation", 0) + 1
        self._default: tuple[redis.Redis | None, str] | None = None
        self._own_client: redis.Redis | None = None
        self.backends: dict[int, Backend] = {}  # id(client): a Backend keeps its client
        self.counters: dict[str, dict[str, int]] = {}
        self.next_prune: dict[str, float] = {}

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

    def defaults(self) -> tuple[redis.Redis | None, str]:
        """(client, prefix): configured, else from the settings (REDIS_URL,
        OPS_CACHE_PREFIX); client None when there is no Redis at all."""
        if self._default is not None:
            return self._default
        with self.lock:
            if self._default is None:
                client, prefix = self.client, self.prefix
                if client is None or prefix is None:
                    settings = _settings()
                    if prefix is None:
                        prefix = settings.cache_prefix if settings else "cache"
                    if client is None and settings is not None and settings.redis_url:
                        client = self._own_client = redis.Redis.from_url(
                            settings.redis_url, **CLIENT_OPTIONS)
                if client is None:
                    logger.info("cache: no Redis configured (configure() not called, "
                                "REDIS_URL unset); @cached functions run uncached")
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

    def target(self, namespace: str, client: redis.Redis | None = None) -> Target | None:
        default_client, prefix = self.defaults()
        client = client if client is not None else default_client
        if client is None:
            return None
        return Target(self.backend(client), prefix, keys.entry_key(prefix, namespace, ""),
                      keys.stats_key(prefix, namespace), keys.index_key(prefix, namespace),
                      keys.namespaces_key(prefix))

    def target_for(self, namespace: str) -> Target | None:
        """The namespace's target: its function's client, else the default."""
        owner = self.functions.get(namespace)
        return owner.resolve() if owner is not None else self.target(namespace)

    # -- namespaces ---------------------------------------------------------------
    def bind(self, entry: CachedFunction) -> None:
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


def _settings():
    from dashapp.config import SettingsError, load_settings
    try:
        return load_settings()
    except SettingsError as exc:
        logger.warning("cache: settings unusable (%s); using prefix 'cache' and no Redis", exc)
        return None


_toolkit = Toolkit()


# ----- the public functions -------------------------------------------------------
def configure(client: redis.Redis | None = None, prefix: str | None = None, *,
              breaker_seconds: float | None = None, log_every: float | None = None) -> None:
    """Point the toolkit at a Redis client and key prefix for this process.

    Arguments left out return to their defaults: the client from REDIS_URL
    and the prefix from OPS_CACHE_PREFIX (read on first use, not now); the
    breaker skips Redis for 5 s after a failure; outage warnings at most once
    a minute. `configure()` alone returns everything to the defaults."""
    _toolkit.configure(client, prefix, breaker_seconds, log_every)


def cached(namespace: str, *, ttl: int = DEFAULT_TTL,
           client: redis.Redis | None = None) -> Callable[[Callable], Callable]:
    """Cache a function's JSON-serialisable result for `ttl` seconds under
    `<prefix>:<namespace>:<digest of its arguments>`.

    `client` overrides the configured Redis for this function. The wrapper
    has `.key(*args, **kwargs)`, `.invalidate(*args, **kwargs)`,
    `.namespace` and `.uncached` (the plain function)."""
    keys.check_namespace(namespace)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
        raise ValueError(f"@cached({namespace!r}): ttl must be a whole number of "
                         f"seconds >= 1, not {ttl!r}")

    def decorate(func: Callable) -> Callable:
        entry = CachedFunction(namespace, func, ttl, client, _toolkit)
        _toolkit.bind(entry)
        count = _toolkit.count

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            target = entry.target if entry.generation == _toolkit.generation \
                else entry.resolve()
            if target is None:
                return func(*args, **kwargs)
            key = target.key_head + entry.digest(args, kwargs)
            run = _WARMING.get()
            if run is not None and run.namespace == namespace:
                return _refresh(entry, target, key, run, args, kwargs)
            backend = target.backend
            if (backend.open_until or backend.pending) and not backend.ready():
                _bypassed(entry, target)
                return func(*args, **kwargs)
            try:
                pipe = backend.client.pipeline(transaction=False)
                pipe.get(key)
                pipe.hincrby(target.stats, "hits", 1)
                raw = pipe.execute()[0]
            except REDIS_ERRORS as exc:
                backend.failed("read", namespace, exc)
                _bypassed(entry, target)
                return func(*args, **kwargs)
            if backend.open_until:
                backend.succeeded()
            if raw is not None:
                try:
                    value = json.loads(raw)
                except ValueError:
                    logger.warning("cache: %s holds no JSON; recomputing it", key)
                else:
                    count(namespace, "hits")
                    return value
            return _miss(entry, target, key, args, kwargs)

        wrapper.namespace = namespace
        wrapper.uncached = func
        wrapper.key = lambda *a, **kw: _key(entry, a, kw)
        wrapper.invalidate = lambda *a, **kw: _drop_entry(entry, _key(entry, a, kw))
        return wrapper

    return decorate


def invalidate(namespace: str, *args, **kwargs) -> int:
    """Drop one entry (with arguments) or a whole namespace (without);
    returns the number of keys deleted.

    With arguments the namespace must belong to a `@cached` function in this
    process (its signature makes the key; LookupError otherwise). Without,
    entries are found with SCAN and removed with UNLINK in batches, and the
    index is dropped. While Redis is unreachable this returns 0 and the
    invalidation is replayed when Redis answers again."""
    keys.check_namespace(namespace)
    if args or kwargs:
        entry = _toolkit.functions.get(namespace)
        if entry is None:
            raise LookupError(
                f"invalidate({namespace!r}, ...): no @cached function in this process "
                f"uses that namespace, so its arguments cannot be turned into a key; "
                f"invalidate({namespace!r}) drops the whole namespace")
        return _drop_entry(entry, _key(entry, args, kwargs))
    target = _toolkit.target_for(namespace)
    _toolkit.count(namespace, "invalidations")
    if target is None:
        return 0
    backend = target.backend
    if not backend.ready():
        backend.defer_invalidation(target.prefix, namespace, None)
        backend.defer_counts(target.prefix, namespace, {"invalidations": 1})
        return 0
    try:
        deleted = clear_namespace(backend, target.prefix, namespace)
        backend.client.hincrby(target.stats, "invalidations", 1)
    except REDIS_ERRORS as exc:
        backend.failed("invalidation", namespace, exc)
        backend.defer_invalidation(target.prefix, namespace, None)
        backend.defer_counts(target.prefix, namespace, {"invalidations": 1})
        return 0
    backend.succeeded()
    return deleted


def cache_key(namespace: str, *args, **kwargs) -> str:
    """The Redis key of one entry of a namespace owned by a @cached function."""
    entry = _toolkit.functions.get(keys.check_namespace(namespace))
    if entry is None:
        raise LookupError(f"no @cached function in this process uses namespace {namespace!r}")
    return _key(entry, args, kwargs)


def ping(client: redis.Redis | None = None) -> bool | None:
    """Can the toolkit use Redis? None when none is configured, False while
    the breaker is open or PING fails (which opens it)."""
    if client is None:
        client = _toolkit.defaults()[0]
        if client is None:
            return None
    backend = _toolkit.backend(client)
    if not backend.ready():
        return False
    try:
        client.ping()
    except REDIS_ERRORS as exc:
        backend.failed("ping", "-", exc)
        return False
    backend.succeeded()
    return True


def stats() -> dict[str, Any]:
    """This process's own figures (Redis holds every process's sum):
    {"namespaces": {ns: {hits, misses, errors, sets, invalidations,
    warm_runs}}, "redis_failures": n, "circuit_open": bool}."""
    with _toolkit.counters_lock:
        namespaces = {ns: dict(c) for ns, c in _toolkit.counters.items()}
    with _toolkit.lock:
        backends = list(_toolkit.backends.values())
    now = time.monotonic()
    return {"namespaces": namespaces,
            "redis_failures": sum(b.failures for b in backends),
            "circuit_open": any(b.open_until > now for b in backends)}


# ----- the paths behind the wrapper ------------------------------------------------
def _key(entry: CachedFunction, args: tuple, kwargs: dict) -> str:
    target = entry.resolve()
    prefix = target.prefix if target is not None else _toolkit.defaults()[1]
    return keys.entry_key(prefix, entry.namespace, entry.digest(args, kwargs))


def _bypassed(entry: CachedFunction, target: Target) -> None:
    """A call served without the cache because Redis failed: one error."""
    _toolkit.count(entry.namespace, "errors")
    target.backend.defer_counts(target.prefix, entry.namespace, {"errors": 1})


def _miss(entry, target: Target, key: str, args: tuple, kwargs: dict):
    namespace = entry.namespace
    try:
        payload = entry.encode(entry.func(*args, **kwargs))
    except BaseException:
        _toolkit.count(namespace, "misses")
        _send_counts(entry, target, {"hits": -1, "misses": 1})
        raise
    _toolkit.count(namespace, "misses")
    if _write(entry, target, key, payload, {"hits": -1, "misses": 1, "sets": 1}):
        _toolkit.count(namespace, "sets")
    return json.loads(payload)


def _refresh(entry, target: Target, key: str, run: WarmRun, args: tuple, kwargs: dict):
    """Inside a warm of this namespace: skip the read, recompute, store."""
    payload = entry.encode(entry.func(*args, **kwargs))
    if not target.backend.ready():
        _bypassed(entry, target)
        run.failed += 1
    elif _write(entry, target, key, payload, {"sets": 1}):
        _toolkit.count(entry.namespace, "sets")
        run.entries += 1
    else:
        run.failed += 1
    return json.loads(payload)


def _write(entry, target: Target, key: str, payload: str, deltas: dict[str, int]) -> bool:
    namespace = entry.namespace
    backend = target.backend
    try:
        pipe = backend.client.pipeline(transaction=False)
        pipe.set(key, payload, ex=entry.ttl)
        pipe.zadd(target.index, {key: int(time.time()) + entry.ttl})
        pipe.sadd(target.namespaces, namespace)
        for name, n in deltas.items():
            pipe.hincrby(target.stats, name, n)
        if _toolkit.prune_due(namespace):
            pipe.zremrangebyscore(target.index, "-inf", int(time.time()))
        pipe.execute()
    except REDIS_ERRORS as exc:
        backend.failed("write", namespace, exc)
        deltas = {k: v for k, v in deltas.items() if k != "sets"}
        deltas["errors"] = deltas.get("errors", 0) + 1
        _toolkit.count(namespace, "errors")
        backend.defer_counts(target.prefix, namespace, deltas)
        return False
    if backend.open_until:
        backend.succeeded()
    return True


def _send_counts(entry, target: Target, deltas: dict[str, int]) -> None:
    backend = target.backend
    try:
        pipe = backend.client.pipeline(transaction=False)
        for name, n in deltas.items():
            pipe.hincrby(target.stats, name, n)
        pipe.execute()
    except REDIS_ERRORS as exc:
        backend.failed("write", entry.namespace, exc)
        backend.defer_counts(target.prefix, entry.namespace, deltas)


def _drop_entry(entry: CachedFunction, key: str) -> int:
    namespace = entry.namespace
    _toolkit.count(namespace, "invalidations")
    target = entry.resolve()
    if target is None:
        return 0
    backend = target.backend
    if not backend.ready():
        backend.defer_invalidation(target.prefix, namespace, key)
        backend.defer_counts(target.prefix, namespace, {"invalidations": 1})
        return 0
    try:
        pipe = backend.client.pipeline(transaction=False)
        pipe.unlink(key)
        pipe.zrem(target.index, key)
        pipe.hincrby(target.stats, "invalidations", 1)
        deleted = pipe.execute()[0]
    except REDIS_ERRORS as exc:
        backend.failed("invalidation", namespace, exc)
        backend.defer_invalidation(target.prefix, namespace, key)
        backend.defer_counts(target.prefix, namespace, {"invalidations": 1})
        return 0
    backend.succeeded()
    return int(deleted)


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
