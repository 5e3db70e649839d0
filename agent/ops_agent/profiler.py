"""Profiling sessions the console commands: CPU call tree and memory.

The console answers a batch with a "profile" command when a session starts
that this process should join (`action` start: session, interval, endpoint
glob, memory, seconds left) and again when it should end (`action` stop;
`cancel` ends it and sends no results). While a session runs here:

- `app.full_dispatch_request` is swapped for a wrapper that samples each
  matching request and merges the samples into one bounded call tree
  (function, file, line, self and total seconds, children). pyinstrument
  samples when the host has it installed; otherwise a thread of the
  standard library's (`sys._current_frames`) samples the threads that are
  inside a profiled request;
- `tracemalloc` traces allocations (started here unless the host already
  traces; a snapshot at start and at stop, compared by line).

The session ends when the console says stop, when its time is up (a timer
here, so a lost console does not leave the request path wrapped), or when
the process closes. Then the original dispatch function is put back (the
same object), tracemalloc is stopped if this module started it, and one
record goes into the durable "profiles" channel. Without a session nothing
is wrapped and nothing runs: the only cost is a dict lookup per command.
"""
from __future__ import annotations

import fnmatch
import logging
import os
import sys
import threading
import time
import tracemalloc
from collections import deque
from typing import Any, Dict, List, Optional

logger = logging.getLogger("ops_agent.profiler")

MAX_NODES = 5_000         # call-tree nodes kept per process
MAX_DEPTH = 80            # deeper frames are folded into their ancestor at this depth
MEMORY_SITES = 50         # allocation sites kept (by size, by count, by growth)
WRAPPER_NAME = "ops_profiled_dispatch"
MAX_SESSION = 3600.0      # seconds; a session without a duration ends after this
STDLIB_SAMPLER = "standard library (sys._current_frames)"


def _load_pyinstrument() -> Any:
    """pyinstrument when the host has it (never a dependency of the agent)."""
    try:
        import pyinstrument
        from pyinstrument import Profiler  # noqa: F401 - the API this module uses
    except Exception:  # noqa: BLE001 - absent or broken: the stdlib sampler
        return None
    return pyinstrument


def _split(identifier: str):
    """A frame identifier "function\\0file\\0line" (pyinstrument's form)."""
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

    def add(self, stack: List[str], seconds: float) -> None:
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

    def to_json(self) -> Dict[str, Any]:
        def walk(node):
            return {"function": node[0], "file": node[1], "line": node[2],
                    "self": round(node[3], 6), "total": round(node[4], 6),
                    "children": [walk(c) for c in sorted(node[5].values(),
                                                         key=lambda c: -c[4])]}
        return walk(self.root)


def _memory_filters() -> List[tracemalloc.Filter]:
    filters = [tracemalloc.Filter(False, tracemalloc.__file__),
               tracemalloc.Filter(False, __file__),
               tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
               tracemalloc.Filter(False, "<unknown>")]
    pyinstrument = sys.modules.get("pyinstrument")
    if pyinstrument is not None and getattr(pyinstrument, "__path__", None):
        filters.append(tracemalloc.Filter(False, list(pyinstrument.__path__)[0] + "/*"))
    return filters


def _site(stat) -> Dict[str, Any]:
    frame = stat.traceback[0]
    return {"file": frame.filename, "line": frame.lineno}


def memory_report(start: Optional[tracemalloc.Snapshot], end: tracemalloc.Snapshot,
                  peak: int, limit: int = MEMORY_SITES) -> Dict[str, Any]:
    """Top allocation sites by size and by count at the end, and the growth
    since the start (by line)."""
    filters = _memory_filters()
    end = end.filter_traces(filters)
    stats = end.statistics("lineno")
    by_size = [dict(_site(s), size=s.size, count=s.count) for s in stats[:limit]]
    by_count = [dict(_site(s), size=s.size, count=s.count)
                for s in sorted(stats, key=lambda s: -s.count)[:limit]]
    if start is not None:
        diffs = end.compare_to(start.filter_traces(filters), "lineno")
    else:
        diffs = end.compare_to(tracemalloc.Snapshot((), end.traceback_limit), "lineno")
    growth = [dict(_site(d), size_diff=d.size_diff, count_diff=d.count_diff,
                   size=d.size, count=d.count)
              for d in sorted(diffs, key=lambda d: -d.size_diff)[:limit] if d.size_diff > 0]
    return {"by_size": by_size, "by_count": by_count, "growth": growth,
            "total_size": sum(s.size for s in stats), "total_count": sum(s.count for s in stats),
            "growth_total": sum(d.size_diff for d in diffs), "peak": peak}


class _Active:
    """What this process holds for the session it is profiling."""

    def __init__(self, session_id: int, interval: float, endpoint: Optional[str],
                 memory: bool, seconds: float):
        self.session_id = session_id
        self.interval = interval
        self.endpoint = endpoint
        self.memory = memory
        self.seconds = seconds
        self.started_at = time.time()
        self.tree = CallTree()
        self.requests = 0
        self.samples = 0
        self.profiled = 0.0
        self.overhead = 0.0
        self.sampler = STDLIB_SAMPLER
        self.started_tracemalloc = False
        self.snapshot: Optional[tracemalloc.Snapshot] = None
        self.lock = threading.Lock()


class StackSampler:
    """The standard library's sampler: a thread that, every `interval`,
    reads the stacks of the threads inside a profiled request (down to the
    wrapper's frame) and charges the time since its last look to them. It
    sleeps on an event while no profiled request is in flight."""

    def __init__(self, active: _Active):
        self.active = active
        self.inside: Dict[int, Any] = {}   # thread ident -> the wrapper's frame
        self._busy = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ops-agent-sampler",
                                        daemon=True)

    def start(self) -> "StackSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._busy.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def enter(self, frame) -> None:
        self.inside[threading.get_ident()] = frame
        self._busy.set()

    def leave(self) -> None:
        self.inside.pop(threading.get_ident(), None)

    def _run(self) -> None:
        interval = max(self.active.interval, 0.0001)
        perf = time.perf_counter
        last = None
        while not self._stop.is_set():
            if not self.inside:
                self._busy.clear()
                if not self.inside:
                    self._busy.wait(0.5)
                    last = None
                    continue
            time.sleep(interval)
            now = perf()
            if last is None:
                last, elapsed = now, interval
            else:
                elapsed, last = now - last, now
            try:
                self._sample(min(elapsed, interval * 50))
            except Exception:  # noqa: BLE001 - a lost sample, never an error
                pass
            last_cost = perf() - now
            with self.active.lock:
                self.active.overhead += last_cost

    def _sample(self, seconds: float) -> None:
        frames = sys._current_frames()
        stacks = []
        for ident, stop_at in list(self.inside.items()):
            frame = frames.get(ident)
            stack = []
            while frame is not None and frame is not stop_at:
                code = frame.f_code
                stack.append(f"{code.co_name}\x00{code.co_filename}\x00{code.co_firstlineno}")
                frame = frame.f_back
            if frame is stop_at and stack:
                stack.reverse()
                stacks.append(stack)
        if stacks:
            active = self.active
            with active.lock:
                for stack in stacks:
                    active.tree.add(stack, seconds)
                active.samples += len(stacks)


class ProfilerHost:
    """The profile command's handler and the dispatch wrapper for one app."""

    def __init__(self, monitor: Any):
        self.monitor = monitor
        self.app = monitor.app
        self.shipper = monitor.shipper
        self.results = self.shipper.channel("profiles", 16)
        self.active: Optional[_Active] = None
        self.sampler: Optional[StackSampler] = None
        self.finished: deque = deque(maxlen=64)   # sessions that ended here
        self._had_own = False       # app had full_dispatch_request in its __dict__
        self._original = None       # that object (restored as is)
        self._timer: Optional[threading.Timer] = None
        self._lock = threading.RLock()
        self._closed = False
        self.shipper.on_command("profile", self.handle)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    @property
    def process(self) -> str:
        return self.shipper.process

    # ----- commands (the shipper's thread) ----------------------------------------
    def handle(self, command: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Start, stop or cancel; returns a result only for a refusal."""
        action = str(command.get("action") or "start")
        try:
            session_id = int(command["session"])
        except (KeyError, TypeError, ValueError):
            return {"outcome": "failed", "message": "a profile command without a session"}
        with self._lock:
            if action == "start":
                return self._start(session_id, command)
            if action in ("stop", "cancel"):
                active = self.active
                if active is not None and active.session_id == session_id:
                    self._finish(cancelled=action == "cancel")
                    return None
                if session_id in self.finished:
                    return None  # already ended here; its record is on its way
                return {"outcome": "failed", "session": session_id,
                        "message": f"process {self.process} was not profiling session "
                                   f"{session_id} (the start never reached it)"}
        return {"outcome": "failed", "session": session_id,
                "message": f"unknown profile action {action[:40]!r}"}

    def _start(self, session_id: int, command: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if self._closed:
            return {"outcome": "failed", "session": session_id,
                    "message": "the monitored process is stopping"}
        active = self.active
        if active is not None:
            if active.session_id == session_id:
                return None  # the same start twice
            self._finish(note=f"ended early: session {session_id} started")
        if session_id in self.finished:
            return None
        try:
            interval = min(max(float(command.get("interval") or 0.001), 0.0001), 0.1)
            seconds = float(command.get("seconds") or MAX_SESSION)
        except (TypeError, ValueError):
            return {"outcome": "failed", "session": session_id,
                    "message": "a profile command with a bad interval or duration"}
        seconds = min(max(seconds, 0.0), MAX_SESSION)
        endpoint = command.get("endpoint") or None
        active = _Active(session_id, interval, str(endpoint)[:255] if endpoint else None,
                         bool(command.get("memory")), seconds)
        pyinstrument = _load_pyinstrument()
        if pyinstrument is not None:
            active.sampler = f"pyinstrument {getattr(pyinstrument, '__version__', '')}".strip()
        else:
            self.sampler = StackSampler(active).start()
        if active.memory:
            if not tracemalloc.is_tracing():
                tracemalloc.start(1)
                active.started_tracemalloc = True
            active.snapshot = tracemalloc.take_snapshot()
        self.active = active
        self._install(active, pyinstrument)
        self._timer = threading.Timer(seconds, self._expire, args=(session_id,))
        self._timer.name = "ops-agent-profiler-timer"
        self._timer.daemon = True
        self._timer.start()
        logger.info("ops agent: profiling session %s started in %s (%s)", session_id,
                    self.process, active.sampler)
        return None

    def _expire(self, session_id: int) -> None:
        try:
            with self._lock:
                if self.active is not None and self.active.session_id == session_id:
                    self._finish(expired=True)
        except Exception:  # noqa: BLE001 - never raise into the host
            logger.exception("ops agent: ending profiling session %s failed", session_id)

    # ----- the request path ---------------------------------------------------------
    def _install(self, active: _Active, pyinstrument: Any) -> None:
        from flask.globals import _cv_request

        app = self.app
        self._had_own = "full_dispatch_request" in app.__dict__
        self._original = app.__dict__.get("full_dispatch_request")
        dispatch = app.full_dispatch_request
        pattern = active.endpoint
        interval = active.interval
        perf = time.perf_counter
        sampler = self.sampler
        merge = self._merge
        getframe = sys._getframe
        Profiler = pyinstrument.Profiler if pyinstrument is not None else None

        def ops_profiled_dispatch():
            if pattern:
                req = _cv_request.get().request
                rule = req.url_rule.rule if req.url_rule is not None else ""
                if not (fnmatch.fnmatchcase(rule, pattern)
                        or fnmatch.fnmatchcase(req.path, pattern)):
                    return dispatch()
            t0 = perf()
            profiler = None
            if Profiler is not None:
                profiler = Profiler(interval=interval, async_mode="disabled")
                try:
                    profiler.start()
                except Exception:  # noqa: BLE001 - e.g. the host profiles this thread itself
                    return dispatch()
            else:
                sampler.enter(getframe())
            t1 = perf()
            try:
                return dispatch()
            finally:
                t2 = perf()
                try:
                    if profiler is not None:
                        merge(active, profiler.stop(), t2 - t1, (t1 - t0) + (perf() - t2))
                    else:
                        sampler.leave()
                        with active.lock:
                            active.requests += 1
                            active.profiled += t2 - t1
                            active.overhead += (t1 - t0) + (perf() - t2)
                except Exception:  # noqa: BLE001 - never raise into the host
                    logger.debug("ops agent: profile sample dropped", exc_info=True)

        app.full_dispatch_request = ops_profiled_dispatch

    def _merge(self, active: _Active, session: Any, profiled: float, overhead: float) -> None:
        """One request's pyinstrument session into the tree, from the view
        down (the wrapper's own frames are cut off)."""
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

    # ----- the end ------------------------------------------------------------------
    def _finish(self, *, expired: bool = False, cancelled: bool = False,
                note: Optional[str] = None) -> None:
        """Put the request path back and send this process's part (the
        caller holds the lock)."""
        active = self.active
        if active is None:
            return
        self._restore()
        self.active = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.sampler is not None:
            self.sampler.stop()
            self.sampler = None
        self.finished.append(active.session_id)
        notes = [note] if note else []
        memory = None
        if active.memory:
            try:
                tracing = tracemalloc.is_tracing()
                end = tracemalloc.take_snapshot() if tracing and not cancelled else None
                peak = tracemalloc.get_traced_memory()[1] if tracing else 0
                if end is not None:
                    memory = memory_report(active.snapshot, end, peak)
                elif not tracing:
                    notes.append("tracemalloc was stopped by the host during the session")
            except Exception as exc:  # noqa: BLE001
                notes.append(f"memory statistics failed: {exc}"[:500])
            finally:
                if active.started_tracemalloc and tracemalloc.is_tracing():
                    tracemalloc.stop()
                active.snapshot = None
        with active.lock:
            tree = active.tree.to_json()
            tree["truncated"] = active.tree.truncated
            tree["sampler"] = active.sampler
            record = {"session": active.session_id, "process": self.process,
                      "status": "cancelled" if cancelled else "done",
                      "started_at": active.started_at, "ended_at": time.time(),
                      "requests": active.requests, "samples": active.samples,
                      "profiled_seconds": active.profiled,
                      "overhead_seconds": active.overhead,
                      "tree": None if cancelled else tree, "memory": memory,
                      "sampler": active.sampler, "expired": expired, "notes": notes}
        if not self.results.put(record):
            logger.warning("ops agent: profile of session %s dropped (results buffer full)",
                           active.session_id)
        self.shipper.wake()
        logger.info("ops agent: profiling session %s ended in %s (%d requests)",
                    active.session_id, self.process, active.requests)

    def _after_fork(self) -> None:
        """A forked worker did not join the parent's session: it drops it
        (no timer or sampler thread survived the fork to end it)."""
        self._lock = threading.RLock()
        self._timer = None
        self.sampler = None
        active, self.active = self.active, None
        if active is not None:
            self._restore()
            if active.started_tracemalloc and tracemalloc.is_tracing():
                tracemalloc.stop()

    def close(self) -> None:
        """A session in progress ends and its part is queued (the monitor's
        last send delivers it)."""
        with self._lock:
            self._closed = True
            if self.active is not None:
                self._finish(note="the monitored process stopped")


class _Unavailable:
    def close(self) -> None:
        pass


def attach(monitor: Any, *args: Any, **kwargs: Any) -> Any:
    """The profiler for `monitor`'s app: a handler for "profile" commands."""
    try:
        return ProfilerHost(monitor)
    except Exception:  # noqa: BLE001 - never raise into the host
        logger.exception("ops agent: the profiler could not be attached")
        return _Unavailable()


__all__ = ["CallTree", "ProfilerHost", "StackSampler", "attach", "memory_report"]
