"""The host side of the profiler: sessions commanded from the console.

The console writes an `ops_profile_session` row (status requested); every
monitored process polls for it about once a second on its own thread
(`ops-monitor-profiler`). While a session is active in a process:

- `app.full_dispatch_request` is swapped for a wrapper that runs each
  matching request under its own `pyinstrument.Profiler` and merges the
  samples into one bounded call tree (function, file, line, self and total
  seconds, children) kept in memory;
- `tracemalloc` traces allocations (started here unless the host already
  traces; a snapshot at start and at stop, compared by line).

When the session ends (stop asked, duration elapsed, row gone, or the
process closes) the original dispatch function is put back exactly (the
same object), tracemalloc is stopped if this hook started it, and the
process writes its part (`ops_profile_part`). With no session the request
path is the un-profiled one: nothing is wrapped, the only cost is the
poller's one small SELECT a second on its own thread. A store outage never
raises into the host.
"""
from __future__ import annotations

import fnmatch
import logging
import threading
import time
import tracemalloc
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select, update

from dashapp.store.models import ProfilePart, ProfileSession, as_utc

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
ACTIVE = ("requested", "running")
MAX_NODES = 5_000         # call-tree nodes kept per process
MAX_DEPTH = 80            # deeper frames are folded into their ancestor at this depth
MEMORY_SITES = 50         # allocation sites kept (by size, by count, by growth)
WRAPPER_NAME = "ops_profiled_dispatch"
MAX_SESSION = timedelta(hours=1)  # a session without a duration ends after this


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _split(identifier: str) -> tuple[str, str, int]:
    """pyinstrument's frame identifier "function\\0file\\0line"."""
    ident = identifier.split("\x01", 1)[0]
    parts = ident.split("\x00")
    function = parts[0] or "?"
    file = parts[1] if len(parts) > 1 else ""
    try:
        line = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        line = 0
    return function, file, line


class CallTree:
    """Samples merged into one tree, bounded in nodes and depth.

    A node: [function, file, line, self_s, total_s, children{key: node}].
    Only touched under the owner's lock."""

    def __init__(self, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH):
        self.root = ["<requests>", "", 0, 0.0, 0.0, {}]
        self.nodes = 1
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.truncated = False

    def add(self, stack: list[str], seconds: float) -> None:
        node = self.root
        node[4] += seconds
        for depth, identifier in enumerate(stack):
            if depth >= self.max_depth:
                self.truncated = True
                break
            key = identifier.split("\x01", 1)[0]
            children = node[5]
            child = children.get(key)
            if child is None:
                if self.nodes >= self.max_nodes:
                    self.truncated = True
                    break
                function, file, line = _split(key)
                child = children[key] = [function, file, line, 0.0, 0.0, {}]
                self.nodes += 1
            child[4] += seconds
            node = child
        node[3] += seconds

    def to_json(self) -> dict:
        def walk(node):
            return {"function": node[0], "file": node[1], "line": node[2],
                    "self": round(node[3], 6), "total": round(node[4], 6),
                    "children": [walk(c) for c in sorted(node[5].values(),
                                                         key=lambda c: -c[4])]}
        return walk(self.root)


def _memory_filters() -> list[tracemalloc.Filter]:
    import pyinstrument
    return [tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, __file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
            tracemalloc.Filter(False, "<unknown>"),
            tracemalloc.Filter(False, pyinstrument.__path__[0] + "/*")]


def _site(stat) -> dict:
    frame = stat.traceback[0]
    return {"file": frame.filename, "line": frame.lineno}


def memory_report(start: tracemalloc.Snapshot | None, end: tracemalloc.Snapshot,
                  peak: int, limit: int = MEMORY_SITES) -> dict:
    """Top allocation sites by size and by count at the end, and the growth
    since the start (by line)."""
    filters = _memory_filters()
    end = end.filter_traces(filters)
    stats = end.statistics("lineno")
    by_size = [{**_site(s), "size": s.size, "count": s.count} for s in stats[:limit]]
    by_count = [{**_site(s), "size": s.size, "count": s.count}
                for s in sorted(stats, key=lambda s: -s.count)[:limit]]
    if start is not None:
        diffs = end.compare_to(start.filter_traces(filters), "lineno")
    else:
        diffs = end.compare_to(tracemalloc.Snapshot((), end.traceback_limit), "lineno")
    growth = [{**_site(d), "size_diff": d.size_diff, "count_diff": d.count_diff,
               "size": d.size, "count": d.count}
              for d in sorted(diffs, key=lambda d: -d.size_diff)[:limit] if d.size_diff > 0]
    return {"by_size": by_size, "by_count": by_count, "growth": growth,
            "total_size": sum(s.size for s in stats), "total_count": sum(s.count for s in stats),
            "growth_total": sum(d.size_diff for d in diffs), "peak": peak}


class _Active:
    """What this process holds for the session it is profiling."""

    def __init__(self, session_id: int, interval: float, endpoint: str | None,
                 memory: bool, deadline: datetime | None):
        self.session_id = session_id
        self.interval = interval
        self.endpoint = endpoint
        self.memory = memory
        self.deadline = deadline
        self.started_at = utcnow()
        self.tree = CallTree()
        self.requests = 0
        self.samples = 0
        self.profiled = 0.0
        self.overhead = 0.0
        self.started_tracemalloc = False
        self.snapshot: tracemalloc.Snapshot | None = None
        self.lock = threading.Lock()


class ProfilerHost:
    """The poller and the dispatch wrapper for one Flask app in one process."""

    def __init__(self, store, app, process: str, *, poll_interval: float = POLL_SECONDS):
        self.store = store
        self.app = app
        self.process = process
        self.poll_interval = poll_interval
        self.active: _Active | None = None
        self._had_own = False       # app had full_dispatch_request in its __dict__
        self._original = None       # that object (restored as is)
        self._cycle = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error_log = 0.0

    # ----- lifecycle --------------------------------------------------------
    def start(self) -> "ProfilerHost":
        self._thread = threading.Thread(target=self._loop, name="ops-monitor-profiler",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop polling; a session in progress is ended and its part written."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._cycle:
            if self.active is not None:
                self._finish(note="the monitored process stopped")

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self.poll()

    # ----- one poll -------------------------------------------------------
    def poll(self) -> None:
        """Look at the store once: join a new session, end a finished one."""
        with self._cycle:
            if self._stop.is_set() and self.active is None:
                return
            try:
                self._poll()
            except Exception as exc:  # noqa: BLE001 - never raise into the host
                now = time.monotonic()
                if now - self._last_error_log > 30:
                    self._last_error_log = now
                    logger.warning("ops monitor: profiler poll failed: %s",
                                   str(exc).splitlines()[0][:200])

    def _poll(self) -> None:
        active = self.active
        if active is not None and active.deadline and utcnow() >= active.deadline:
            self._finish(expired=True)  # even when the store cannot be read
            return
        with self.store.engine.connect() as conn:
            if self.active is not None:
                row = conn.execute(select(ProfileSession.status).where(
                    ProfileSession.id == self.active.session_id)).first()
            else:
                row = conn.execute(select(ProfileSession.__table__).where(
                    ProfileSession.status.in_(ACTIVE)).order_by(
                    ProfileSession.id.desc()).limit(1)).first()
        if self.active is not None:
            if row is None or row[0] not in ACTIVE:
                self._finish()
            return
        if row is not None:
            self._join(row)

    def _join(self, row: ProfileSession) -> None:
        now = utcnow()
        with self.store.engine.begin() as conn:
            if row.status == "requested":
                conn.execute(update(ProfileSession).where(
                    ProfileSession.id == row.id, ProfileSession.status == "requested",
                ).values(status="running", started_at=now))
            current = conn.execute(select(ProfileSession.__table__).where(
                ProfileSession.id == row.id)).first()
            if current is None or current.status not in ACTIVE:
                return
            started = as_utc(current.started_at) or now
            if current.duration_s:
                deadline = started + timedelta(seconds=current.duration_s)
            else:
                deadline = started + MAX_SESSION
            if deadline <= now:
                return
            exists = conn.scalar(select(ProfilePart.id).where(
                ProfilePart.session_id == row.id, ProfilePart.process == self.process))
            if exists is not None:
                return  # this process already took part (and finished)
            conn.execute(insert(ProfilePart).values(
                session_id=row.id, process=self.process, status="running", started_at=now,
                requests=0, samples=0, profiled_seconds=0.0, overhead_seconds=0.0))
        active = _Active(row.id, current.interval_s, current.endpoint, current.memory, deadline)
        if active.memory:
            if not tracemalloc.is_tracing():
                tracemalloc.start(1)
                active.started_tracemalloc = True
            active.snapshot = tracemalloc.take_snapshot()
        self.active = active
        self._install(active)
        logger.info("ops monitor: profiling session %s started in %s", row.id, self.process)

    # ----- the request path -------------------------------------------------
    def _install(self, active: _Active) -> None:
        from flask.globals import _cv_request
        from pyinstrument import Profiler

        app = self.app
        self._had_own = "full_dispatch_request" in app.__dict__
        self._original = app.__dict__.get("full_dispatch_request")
        dispatch = app.full_dispatch_request
        pattern = active.endpoint
        interval = active.interval
        perf = time.perf_counter

        def ops_profiled_dispatch():
            if pattern:
                req = _cv_request.get().request
                rule = req.url_rule.rule if req.url_rule is not None else ""
                if not (fnmatch.fnmatchcase(rule, pattern)
                        or fnmatch.fnmatchcase(req.path, pattern)):
                    return dispatch()
            t0 = perf()
            profiler = Profiler(interval=interval, async_mode="disabled")
            try:
                profiler.start()
            except Exception:  # noqa: BLE001 - e.g. the host profiles this thread itself
                return dispatch()
            t1 = perf()
            try:
                return dispatch()
            finally:
                t2 = perf()
                try:
                    self._merge(active, profiler.stop(), t2 - t1, (t1 - t0) + (perf() - t2))
                except Exception:  # noqa: BLE001 - never raise into the host
                    logger.debug("ops monitor: profile sample dropped", exc_info=True)

        app.full_dispatch_request = ops_profiled_dispatch

    def _merge(self, active: _Active, session, profiled: float, overhead: float) -> None:
        t0 = time.perf_counter()
        records = []
        for stack, seconds in session.frame_records:
            cut = 0
            for index, identifier in enumerate(stack):
                if identifier.startswith(WRAPPER_NAME + "\x00"):
                    cut = index + 1
                    break
            records.append((stack[cut:], seconds))
        with active.lock:
            for stack, seconds in records:
                active.tree.add(stack, seconds)
            active.requests += 1
            active.samples += session.sample_count
            active.profiled += profiled
            active.overhead += overhead + (time.perf_counter() - t0)

    def _restore(self) -> None:
        if self._had_own:
            self.app.full_dispatch_request = self._original
        else:
            self.app.__dict__.pop("full_dispatch_request", None)
        self._original = None

    # ----- the end --------------------------------------------------------
    def _finish(self, *, expired: bool = False, note: str | None = None) -> None:
        active = self.active
        self._restore()
        self.active = None
        memory = None
        error = note
        if active.memory:
            try:
                end = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
                peak = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
                if end is not None:
                    memory = memory_report(active.snapshot, end, peak)
            except Exception as exc:  # noqa: BLE001
                error = f"memory statistics failed: {exc}"[:500]
            finally:
                if active.started_tracemalloc:
                    tracemalloc.stop()
                active.snapshot = None
        with active.lock:
            tree = active.tree.to_json()
            tree["truncated"] = active.tree.truncated
            values = dict(status="done", ended_at=utcnow(), requests=active.requests,
                          samples=active.samples, profiled_seconds=active.profiled,
                          overhead_seconds=active.overhead, tree=tree, memory=memory,
                          error=error)
        try:
            with self.store.engine.begin() as conn:
                conn.execute(update(ProfilePart).where(
                    ProfilePart.session_id == active.session_id,
                    ProfilePart.process == self.process).values(**values))
                if expired:
                    conn.execute(update(ProfileSession).where(
                        ProfileSession.id == active.session_id,
                        ProfileSession.status.in_(ACTIVE)).values(
                        status="stopping", stop_requested_at=utcnow()))
                complete_if_ready(conn, active.session_id)
        except Exception as exc:  # noqa: BLE001 - the profile is lost, the host is fine
            logger.warning("ops monitor: profile of session %s not written: %s",
                           active.session_id, str(exc).splitlines()[0][:200])
        logger.info("ops monitor: profiling session %s ended in %s (%d requests)",
                    active.session_id, self.process, active.requests)


def complete_if_ready(conn, session_id: int) -> bool:
    """A stopping session whose parts are all written becomes done."""
    status = conn.scalar(select(ProfileSession.status).where(ProfileSession.id == session_id))
    if status != "stopping":
        return status == "done"
    pending = conn.scalar(select(ProfilePart.id).where(
        ProfilePart.session_id == session_id, ProfilePart.status == "running").limit(1))
    has_parts = conn.scalar(select(ProfilePart.id).where(
        ProfilePart.session_id == session_id).limit(1))
    if pending is not None or has_parts is None:
        return False
    conn.execute(update(ProfileSession).where(
        ProfileSession.id == session_id, ProfileSession.status == "stopping").values(
        status="done", ended_at=utcnow()))
    return True


def attach(store, app, process: str) -> ProfilerHost | None:
    try:
        return ProfilerHost(store, app, process).start()
    except Exception:  # noqa: BLE001 - never raise into the host
        logger.exception("ops monitor: could not start the profiler poller")
        return None


__all__ = ["CallTree", "ProfilerHost", "attach", "complete_if_ready", "memory_report"]
