"""Warmers: functions that fill a namespace before the traffic asks for it.

`register_warmer(ns, func, every=...)` records a warmer in this process and
in Redis (`<prefix>:_meta:warmers`, so the console knows who can warm
what). `warm(ns)` runs it now: while it runs, calls of that namespace's
@cached function made from the warmer's context skip the read, recompute
and store, so a warm refreshes stale entries instead of reading them back.
The outcome goes to `<prefix>:_meta:warm_status:<ns>`; a failing warmer is
reported, never raised.

One daemon thread per process (started by the first registration, stopped
when the last warmer is unregistered or by `stop_warm_worker()`) does two
things about once a second:

* **Warm requests.** The console LPUSHes JSON requests onto
  `<prefix>:_meta:warm_requests`. The worker reads the oldest entries
  (LRANGE, no removal) and claims only those for namespaces it has a
  warmer for, by LREM of that exact element: LREM is atomic, so of all the
  processes polling, exactly one sees 1 and runs the warm. Requests for
  other namespaces are left alone, never popped and pushed back, so a
  process without the warmer cannot spin on them. Several requests for one
  namespace claimed in one poll cause one run. Unreadable requests, and
  requests nobody claimed within `REQUEST_MAX_AGE`, are removed with a
  warning so the list cannot grow without bound.
* **Schedules.** A warmer with `every=S` runs once per S-second period of
  the clock (periods counted from the epoch), across all processes: before
  running, a process must create `<prefix>:_meta:warm_lock:<ns>:<period>`
  with SET NX PX; the others find it taken and skip that period. (This
  assumes the machines' clocks agree to well within S.)
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import keys
from .backend import redis_errors
from .core import _WARMING, WarmRun
from .toolkit import _toolkit

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
REQUEST_MAX_AGE = 600.0   # seconds a warm request may wait for a process to claim it
REQUEST_WINDOW = 1000     # oldest requests read per poll
MIN_EVERY = 1.0


@dataclass
class Warmer:
    namespace: str
    func: Callable[[], Any]
    every: Optional[float]
    description: str
    registered_at: str
    published: bool = False
    last_period: Optional[int] = None
    run_lock: threading.Lock = field(default_factory=threading.Lock)


class _Registry:
    """This process's warmers and its worker thread."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.warmers: Dict[str, Warmer] = {}
        self.worker: Optional[_Worker] = None
        self.poll_seconds = POLL_SECONDS
        self.claimed: deque = deque(maxlen=1000)    # request ids this process claimed
        self.scheduled: deque = deque(maxlen=1000)  # (namespace, period, won)
        self.fork_hook = False


_registry = _Registry()


def _process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:96]


def _iso(ts: Optional[float] = None) -> str:
    when = datetime.now(timezone.utc) if ts is None else datetime.fromtimestamp(ts, timezone.utc)
    return when.isoformat(timespec="milliseconds")


# ----- registration -------------------------------------------------------------
def register_warmer(namespace: str, func: Callable[[], Any], *,
                    every: Optional[float] = None, description: str = "") -> None:
    """Make `func()` the warmer of `namespace` in this process (replacing an
    earlier one), publish it for the console and start the worker thread.

    `func` typically calls the namespace's @cached function for the popular
    arguments. `every` (seconds, >= 1) also runs it on a schedule, once per
    period across every process that registers it."""
    keys.check_namespace(namespace)
    if not callable(func):
        raise TypeError(f"the warmer of {namespace!r} must be callable")
    if every is not None:
        if isinstance(every, bool) or not isinstance(every, (int, float)) or every < MIN_EVERY:
            raise ValueError(f"register_warmer({namespace!r}): every must be a number of "
                             f"seconds >= {MIN_EVERY:g} or None, not {every!r}")
        every = float(every)
    warmer = Warmer(namespace, func, every, str(description), _iso())
    with _registry.lock:
        _registry.warmers[namespace] = warmer
        _install_fork_hook()
    _publish(warmer)
    _ensure_worker()


def unregister_warmer(namespace: str) -> bool:
    """Forget this process's warmer of `namespace` (False if it had none).
    Its entry in Redis is removed if this process published it; the worker
    stops with the last warmer."""
    with _registry.lock:
        warmer = _registry.warmers.pop(namespace, None)
        last = not _registry.warmers
    if warmer is None:
        return False
    target = _toolkit.target_for(namespace)
    if target is not None and target.backend.ready():
        try:
            raw = target.backend.client.hget(keys.warmers_key(target.prefix), namespace)
            if raw is not None and json.loads(raw).get("process") == _process():
                target.backend.client.hdel(keys.warmers_key(target.prefix), namespace)
        except redis_errors() as exc:
            target.backend.failed("warmer removal", namespace, exc)
        except ValueError:
            pass  # someone else's unreadable entry: leave it
    if last:
        stop_warm_worker()
    return True


def _publish(warmer: Warmer) -> None:
    """HSET the warmer's description for the console; retried by the worker."""
    target = _toolkit.target_for(warmer.namespace)
    if target is None or not target.backend.ready():
        return
    entry = {"description": warmer.description, "every": warmer.every,
             "process": _process(), "registered_at": warmer.registered_at}
    try:
        target.backend.client.hset(keys.warmers_key(target.prefix), warmer.namespace,
                                   json.dumps(entry))
    except redis_errors() as exc:
        target.backend.failed("warmer registration", warmer.namespace, exc)
        return
    target.backend.succeeded()
    warmer.published = True


# ----- running -------------------------------------------------------------------
def warm(namespace: str) -> Dict[str, Any]:
    """Run this process's warmer of `namespace` now and wait for it.

    Returns {"namespace", "entries" (entries written), "duration_ms",
    "error" (None, or what went wrong: the warmer's exception, or entries
    Redis did not take)}. Raises LookupError when this process has no
    warmer for the namespace; never raises what the warmer raises."""
    keys.check_namespace(namespace)
    warmer = _registry.warmers.get(namespace)
    if warmer is None:
        raise LookupError(f"no warmer for cache namespace {namespace!r} is registered "
                          "in this process")
    return _run(warmer)


def _run(warmer: Warmer, request_id: Optional[str] = None) -> Dict[str, Any]:
    namespace = warmer.namespace
    with warmer.run_lock:  # one run of a namespace at a time in this process
        started_at = _iso()
        started = time.perf_counter()
        run = WarmRun(namespace)
        token = _WARMING.set(run)
        error = None
        try:
            warmer.func()
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            error = f"{type(exc).__name__}: {exc}"[:1000]
            logger.warning("cache warmer of %r failed: %s", namespace, error, exc_info=True)
        finally:
            _WARMING.reset(token)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        if error is None and run.failed:
            error = (f"Redis unavailable: {run.failed} of {run.failed + run.entries} "
                     "entries not written")
        _toolkit.count(namespace, "warm_runs")
        _record_status(namespace, request_id, started_at, duration_ms, run.entries, error)
    logger.info("cache warm of %r: %d entries in %.0f ms%s", namespace, run.entries,
                duration_ms, f" ({error})" if error else "")
    return {"namespace": namespace, "entries": run.entries, "duration_ms": duration_ms,
            "error": error}


def _record_status(namespace: str, request_id: Optional[str], started_at: str,
                   duration_ms: float, entries: int, error: Optional[str]) -> None:
    target = _toolkit.target_for(namespace)
    if target is None:
        return
    backend = target.backend
    if not backend.ready():
        backend.defer_counts(target.prefix, namespace, {"warm_runs": 1})
        return
    status_key = keys.warm_status_key(target.prefix, namespace)
    status = {"last_started": started_at, "last_finished": _iso(),
              "last_duration_ms": duration_ms, "last_entries": entries,
              "last_error": error or "", "process": _process()}
    if request_id is not None:
        status["last_request_id"] = request_id
    try:
        pipe = backend.client.pipeline(transaction=False)
        pipe.hset(status_key, mapping=status)
        pipe.hincrby(status_key, "runs", 1)
        pipe.hincrby(target.stats, "warm_runs", 1)
        pipe.sadd(target.namespaces, namespace)
        pipe.execute()
    except redis_errors() as exc:
        backend.failed("warm status", namespace, exc)
        backend.defer_counts(target.prefix, namespace, {"warm_runs": 1})
        return
    backend.succeeded()


# ----- the worker thread -----------------------------------------------------------
class _Worker(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="cache-warm-worker", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                _poll_once()
            except Exception:  # noqa: BLE001 - the worker must not die
                logger.exception("cache warm worker: poll failed")
            self.stopping.wait(_sleep_seconds())


def _ensure_worker() -> None:
    with _registry.lock:
        worker = _registry.worker
        if worker is not None and worker.is_alive() and not worker.stopping.is_set():
            return
        _registry.worker = _Worker()
        _registry.worker.start()


def stop_warm_worker(timeout: float = 5.0) -> None:
    """Stop this process's worker thread (tests, shutdown); a warm in
    progress finishes first. The next register_warmer() starts it again."""
    with _registry.lock:
        worker, _registry.worker = _registry.worker, None
    if worker is None:
        return
    worker.stopping.set()
    if worker is not threading.current_thread():
        worker.join(timeout)


def _sleep_seconds() -> float:
    """Until the next poll, or sooner when a schedule's period begins."""
    wait = _registry.poll_seconds
    now = time.time()
    for warmer in list(_registry.warmers.values()):
        if warmer.every:
            wait = min(wait, warmer.every - now % warmer.every + 0.001)
    return max(wait, 0.01)


def _poll_once() -> None:
    with _registry.lock:
        warmers = list(_registry.warmers.values())
    for warmer in warmers:
        if not warmer.published:
            _publish(warmer)
    _serve_requests(warmers)
    _run_schedules(warmers)


def _groups(warmers: List[Warmer]) -> dict:
    """Warmers by the (backend, prefix) their namespace lives in."""
    groups: dict = {}
    for warmer in warmers:
        target = _toolkit.target_for(warmer.namespace)
        if target is not None:
            groups.setdefault((id(target.backend), target.prefix),
                              (target, {}))[1][warmer.namespace] = warmer
    return groups


def _serve_requests(warmers: List[Warmer]) -> None:
    for target, mine in _groups(warmers).values():
        backend = target.backend
        if not backend.ready():
            continue
        list_key = keys.warm_requests_key(target.prefix)
        try:
            raw_requests = backend.client.lrange(list_key, -REQUEST_WINDOW, -1)
        except redis_errors() as exc:
            backend.failed("warm request poll", "-", exc)
            continue
        backend.succeeded()
        if not raw_requests:
            continue
        claims, drops = _sort_requests(raw_requests, mine)
        if not claims and not drops:
            continue
        try:
            pipe = backend.client.pipeline(transaction=False)
            for raw, _request in claims + drops:
                pipe.lrem(list_key, -1, raw)
            removed = pipe.execute()
        except redis_errors() as exc:
            backend.failed("warm request claim", "-", exc)
            continue
        won: Dict[str, List[str]] = {}
        for (raw, request), n in zip(claims, removed):
            if n:  # LREM is atomic: only one process removes this element
                won.setdefault(request["namespace"], []).append(str(request.get("id", "")))
        for (raw, reason), n in zip(drops, removed[len(claims):]):
            if n:
                logger.warning("cache: dropped warm request %s: %s",
                               raw[:200] if isinstance(raw, str) else raw[:200].decode(
                                   "utf-8", "replace"), reason)
        for namespace, ids in won.items():
            _registry.claimed.extend(ids)
            warmer = mine.get(namespace)
            if warmer is not None:
                # Requests waiting together get one run: the newest id is reported.
                _run(warmer, request_id=ids[0])


def _sort_requests(raw_requests: list, mine: Dict[str, Warmer]) -> Tuple[list, list]:
    """(claims: [(raw, request)] for our namespaces, drops: [(raw, reason)]).
    LRANGE lists the newest first."""
    claims, drops = [], []
    now = time.time()
    for raw in raw_requests:
        try:
            request = json.loads(raw)
            namespace = request["namespace"]
            keys.check_namespace(namespace)
        except (ValueError, TypeError, KeyError):
            drops.append((raw, "not a JSON object with a valid namespace"))
            continue
        if namespace in mine:
            claims.append((raw, request))
            continue
        asked = _epoch(request.get("at"))
        if asked is not None and now - asked > REQUEST_MAX_AGE:
            drops.append((raw, f"no process with a warmer for {namespace!r} claimed it "
                               f"within {REQUEST_MAX_AGE:.0f} s"))
    return claims, drops


def _epoch(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    return None


def _run_schedules(warmers: List[Warmer]) -> None:
    for warmer in warmers:
        if not warmer.every:
            continue
        period = int(time.time() // warmer.every)
        if warmer.last_period == period:
            continue
        warmer.last_period = period
        target = _toolkit.target_for(warmer.namespace)
        if target is None or not target.backend.ready():
            continue
        lock_key = keys.warm_lock_key(target.prefix, warmer.namespace, period)
        try:
            won = bool(target.backend.client.set(lock_key, _process(), nx=True,
                                                 px=int(warmer.every * 1000)))
        except redis_errors() as exc:
            target.backend.failed("warm schedule", warmer.namespace, exc)
            continue
        target.backend.succeeded()
        _registry.scheduled.append((warmer.namespace, period, won))
        if won:
            _run(warmer)


def warm_worker_stats() -> Dict[str, Any]:
    """What this process's worker did: {"running", "claimed" (request ids),
    "scheduled" ([namespace, period, won] per attempt)}."""
    worker = _registry.worker
    return {"running": worker is not None and worker.is_alive(),
            "claimed": list(_registry.claimed),
            "scheduled": [list(s) for s in _registry.scheduled]}


def reset_warmers() -> None:
    """Stop the worker and forget every warmer and figure (tests)."""
    stop_warm_worker()
    with _registry.lock:
        _registry.warmers.clear()
        _registry.claimed.clear()
        _registry.scheduled.clear()
        _registry.poll_seconds = POLL_SECONDS


# ----- gunicorn --preload and friends -------------------------------------------
def _install_fork_hook() -> None:
    """A forked child has no worker thread: start one there if it inherited warmers."""
    if _registry.fork_hook or not hasattr(os, "register_at_fork"):
        return
    _registry.fork_hook = True
    os.register_at_fork(after_in_child=_after_fork)


def _after_fork() -> None:
    _registry.lock = threading.RLock()
    _registry.worker = None
    for warmer in _registry.warmers.values():
        warmer.run_lock = threading.Lock()
    if _registry.warmers:
        _ensure_worker()
