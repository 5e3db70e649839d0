"""`@cached` and `invalidate()`: JSON results in Redis, counted per namespace.

The layout is `ops_agent.cache.keys`; where Redis and the key prefix come
from is `ops_agent.cache.toolkit` (configure(), the monitor's client,
OPS_REDIS_URL, OPS_CACHE_PREFIX). What a call costs the host:

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
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from . import keys
from .backend import clear_namespace, redis_errors
from .toolkit import Target, Toolkit, _toolkit

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import redis

logger = logging.getLogger(__name__)

DEFAULT_TTL = 300


@dataclass
class WarmRun:
    """The warm in progress in this context: calls of its namespace refresh."""
    namespace: str
    entries: int = 0
    failed: int = 0


_WARMING: contextvars.ContextVar[Optional[WarmRun]] = contextvars.ContextVar(
    "ops_cache_warming", default=None)


# ----- what one decorated function needs on every call ------------------------
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
                 client: Optional[redis.Redis], toolkit: Toolkit):
        self.namespace = namespace
        self.func = func
        self.ttl = ttl
        self.client = client
        self.toolkit = toolkit
        self.binder = Binder(func)
        self.name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)}"
        self.target: Optional[Target] = None
        self.generation = -1

    def resolve(self) -> Optional[Target]:
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


# ----- the public functions -------------------------------------------------------
def configure(client: Optional[redis.Redis] = None, prefix: Optional[str] = None, *,
              breaker_seconds: Optional[float] = None,
              log_every: Optional[float] = None) -> None:
    """Point the toolkit at a Redis client and key prefix for this process.

    Arguments left out return to their defaults: the client given to
    `ops_agent.monitor(app, redis=...)`, else one from OPS_REDIS_URL (never
    the host's REDIS_URL), and the prefix from OPS_CACHE_PREFIX, else
    "cache" (read on first use, not now); the breaker skips Redis for 5 s
    after a failure; outage warnings at most once a minute. `configure()`
    alone returns everything to the defaults."""
    _toolkit.configure(client, prefix, breaker_seconds, log_every)


class HostClient:
    """What `attach()` returns: `close()` stops the toolkit defaulting to
    the monitor's client (unless another monitor replaced it since)."""

    def __init__(self, client: Optional[redis.Redis]):
        self.client = client

    def close(self) -> None:
        if self.client is not None and _toolkit.host_client is self.client:
            _toolkit.use_host_client(None)
        self.client = None


def attach(monitor: Any) -> HostClient:
    """Called by the Monitor: the Redis client the host gave
    `ops_agent.monitor(app, redis=client)` becomes the toolkit's default
    (`configure(client=...)` still wins; it wins over OPS_REDIS_URL). A
    monitor without a client changes nothing. Never raises."""
    client = getattr(monitor, "redis", None)
    if client is None:
        return HostClient(None)
    try:
        _toolkit.use_host_client(client)
    except Exception:  # noqa: BLE001 - never raise into the host
        logger.exception("cache: could not use the monitor's Redis client")
        return HostClient(None)
    return HostClient(client)


def cached(namespace: str, *, ttl: int = DEFAULT_TTL,
           client: Optional[redis.Redis] = None) -> Callable[[Callable], Callable]:
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
            except redis_errors() as exc:
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
    except redis_errors() as exc:
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


def ping(client: Optional[redis.Redis] = None) -> Optional[bool]:
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
    except redis_errors() as exc:
        backend.failed("ping", "-", exc)
        return False
    backend.succeeded()
    return True


def stats() -> Dict[str, Any]:
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


def _write(entry, target: Target, key: str, payload: str, deltas: Dict[str, int]) -> bool:
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
    except redis_errors() as exc:
        backend.failed("write", namespace, exc)
        deltas = {k: v for k, v in deltas.items() if k != "sets"}
        deltas["errors"] = deltas.get("errors", 0) + 1
        _toolkit.count(namespace, "errors")
        backend.defer_counts(target.prefix, namespace, deltas)
        return False
    if backend.open_until:
        backend.succeeded()
    return True


def _send_counts(entry, target: Target, deltas: Dict[str, int]) -> None:
    backend = target.backend
    try:
        pipe = backend.client.pipeline(transaction=False)
        for name, n in deltas.items():
            pipe.hincrby(target.stats, name, n)
        pipe.execute()
    except redis_errors() as exc:
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
    except redis_errors() as exc:
        backend.failed("invalidation", namespace, exc)
        backend.defer_invalidation(target.prefix, namespace, key)
        backend.defer_counts(target.prefix, namespace, {"invalidations": 1})
        return 0
    backend.succeeded()
    return int(deleted)
