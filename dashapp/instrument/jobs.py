"""The scheduler hook `monitor(app, scheduler=...)` attaches to a host's
APScheduler 3 scheduler: every run becomes an `ops_job_run` row, the jobs
the scheduler holds are published to `ops_job_schedule`, and commands from
the console (`ops_job_command`: retry, cancel, pause, resume, run_now) are
carried out on the live scheduler.

How runs are recorded:
- Jobs in a memory job store get a thin wrapper around their function
  (existing jobs at attach, later ones when added or modified). The wrapper
  runs in the job's own thread: it marks the run `running`, makes
  `dashapp.jobs.report_progress()` / `cancelled()` know their run (a
  context variable), and writes the outcome with the traceback.
- Jobs in a persistent job store (e.g. SQLAlchemyJobStore) are not wrapped:
  such a store pickles the job with a textual reference to its function, so
  a wrapper would be dropped the next time the job is loaded. Those runs are
  recorded from the scheduler's events alone: submitted (running), executed
  or error (with the traceback); progress and cooperative cancel are not
  available for them.
- Missed runs and runs skipped because `max_instances` were reached come
  from the scheduler's events and are recorded as `missed`.

Threads: listeners may be called in any thread, even a web request's (a
host that adds or pauses a job from a view), so they only touch memory. The
store is written by the job's thread (its run's start, progress, end) and by
this hook's own thread (`ops-monitor-jobs`: schedule publishing, pending
and missed rows, commands, throttled progress). A store that is down never
raises into the host: the write is dropped and counted, logged at most
every 30 s, and direct writes pause for a few seconds so jobs do not wait.
"""
from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import logging
import threading
import time
import traceback as tb_module
from collections import OrderedDict, deque
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import delete, insert, select, update

from dashapp.core.scrub import is_secret_name, scrub_text
from dashapp.store.models import BackgroundJob, JobCommand, JobSchedule, as_utc

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0          # how often the host looks for commands and changes
PUBLISH_SECONDS = 5.0       # schedule heartbeat (updated_at) at least this often
PROGRESS_MIN_SECONDS = 0.5  # at most two progress writes per second per run
COMMAND_TTL = timedelta(seconds=60)  # older unclaimed commands are left to expire
PENDING_GRACE = timedelta(minutes=2)  # a past pending row nobody resolved is dropped
BREAKER_SECONDS = 5.0       # after a failed write, direct writes pause this long
RECENT_CALLS = 500          # real (unredacted) calls kept for retries, per process
MAX_TEXT = 20_000           # traceback characters kept


class JobCancelled(Exception):
    """Raise inside a job (after `cancelled()` returned True) to stop it; the
    run is recorded as `cancelled`, not `failed`."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------- redaction

# Names and values are judged by the console's one scrubber, so an argument
# masked here is masked the same way in logs, configs and the audit trail.
_secret_name = is_secret_name
_scrub = scrub_text


def _shown(value: Any, depth: int = 0) -> Any:
    """A JSON-ready, redacted picture of an argument (never the object)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _scrub(value[:500])
    if depth < 2 and isinstance(value, dict):
        return {str(k)[:100]: ("***" if _secret_name(str(k)) else _shown(v, depth + 1))
                for k, v in list(value.items())[:50]}
    if depth < 2 and isinstance(value, (list, tuple, set, frozenset)):
        return [_shown(v, depth + 1) for v in list(value)[:50]]
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a repr may raise
        text = f"<{type(value).__name__}>"
    return _scrub(text[:200])


def redact_call(func: Callable, args: tuple, kwargs: dict) -> dict:
    """{"args": [...], "kwargs": {...}} with secrets masked: keyword
    arguments by name, positional ones by the parameter they bind to, and
    passwords inside URLs or bearer tokens inside any text."""
    names: list[str | None] = [None] * len(args)
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
        position = 0
        for name, param in inspect.signature(func).parameters.items():
            if name not in bound.arguments:
                continue
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                if position < len(args) and name not in kwargs:
                    names[position] = name
                    position += 1
            elif param.kind == param.VAR_POSITIONAL:
                break
    except (TypeError, ValueError):
        pass
    shown_args = ["***" if n and _secret_name(n) else _shown(a) for a, n in zip(args, names)]
    shown_kwargs = {str(k): ("***" if _secret_name(str(k)) else _shown(v))
                    for k, v in kwargs.items()}
    return {"args": shown_args, "kwargs": shown_kwargs}


def describe_trigger(trigger: Any) -> str:
    try:
        return str(trigger)[:255]
    except Exception:  # noqa: BLE001
        return type(trigger).__name__


# --------------------------------------------------------------- one run

class _Run:
    """A run executing in this process (what `report_progress` and
    `cancelled` see through the context variable)."""
    __slots__ = ("key", "hook", "job_id", "row_id", "progress", "progress_message",
                 "progress_dirty", "progress_written", "saw_cancel", "cancel_requested")

    def __init__(self, hook: "JobsHook", job_id: str, row_id: int | None):
        self.key = next(hook._keys)
        self.hook = hook
        self.job_id = job_id
        self.row_id = row_id
        self.progress: float | None = None
        self.progress_message: str | None = None
        self.progress_dirty = False
        self.progress_written = 0.0
        self.saw_cancel = False
        self.cancel_requested = False


CURRENT_RUN: contextvars.ContextVar[_Run | None] = contextvars.ContextVar(
    "ops_current_job_run", default=None)


def report_progress(fraction: float, message: str = "") -> bool:
    """Record how far the current run is (0..1) and what it is doing.

    Cheap: the value is kept in memory and written at most twice a second
    (the last value always lands). Outside a recorded run it does nothing
    and returns False."""
    run = CURRENT_RUN.get()
    if run is None:
        return False
    try:
        value = min(1.0, max(0.0, float(fraction)))
    except (TypeError, ValueError):
        return False
    run.progress = value
    run.progress_message = str(message)[:255] if message else None
    run.progress_dirty = True
    if time.monotonic() - run.progress_written >= PROGRESS_MIN_SECONDS:
        run.hook._write_progress(run)
    return True


def cancelled() -> bool:
    """True once the console asked the current run to stop, or once the
    process is shutting down (the monitor is closing: a job that checks
    stops between steps instead of holding the exit until it is done). An
    in-memory check (the hook's thread keeps it current), cheap enough for a
    loop."""
    run = CURRENT_RUN.get()
    if run is None or not (run.cancel_requested or run.hook._stop.is_set()):
        return False
    run.saw_cancel = True
    return True


def current_run_id() -> int | None:
    """The `ops_job_run` id of the run this code executes in, else None."""
    run = CURRENT_RUN.get()
    return run.row_id if run is not None else None


# --------------------------------------------------------------- the hook

class JobsHook:
    """Listeners, wrappers, the publisher and the command poller for one
    scheduler in one process (see the module doc)."""

    def __init__(self, store, scheduler, process: str, *, poll_interval: float = POLL_SECONDS):
        self.store = store
        self.scheduler = scheduler
        self.process = process
        self.poll_interval = poll_interval
        self.dropped = 0
        self._keys = itertools.count(1)
        self._lock = threading.RLock()          # the hook's memory
        self._cycle_lock = threading.Lock()     # one poll cycle at a time
        self._meta: dict[str, dict] = {}        # job id -> name, func ref, wrapped
        self._gone: OrderedDict[str, dict] = OrderedDict()  # removed jobs' meta (one-offs)
        self._running: dict[int, _Run] = {}     # run key -> run
        self._events: deque = deque(maxlen=10_000)  # listener -> hook thread
        self._wrapped_done: dict[str, deque] = {}   # job id -> row ids awaiting their event
        self._recent: OrderedDict[int, tuple] = OrderedDict()  # row id -> real call
        self._published: dict[str, tuple] = {}  # job id -> what its schedule row says
        self._pending: dict[str, tuple[int, datetime]] = {}  # job id -> pending row
        self._last_heartbeat = 0.0
        self._dirty = True
        self._breaker_until = 0.0
        self._last_error_log = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- attach / detach -------------------------------------------------
    def attach(self) -> "JobsHook":
        from apscheduler.events import (EVENT_JOB_ADDED, EVENT_JOB_ERROR,
                                        EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES,
                                        EVENT_JOB_MISSED, EVENT_JOB_MODIFIED,
                                        EVENT_JOB_REMOVED, EVENT_JOB_SUBMITTED,
                                        EVENT_ALL_JOBS_REMOVED, EVENT_SCHEDULER_STARTED)
        mask = (EVENT_JOB_ADDED | EVENT_JOB_MODIFIED | EVENT_JOB_REMOVED | EVENT_JOB_SUBMITTED
                | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
                | EVENT_JOB_MAX_INSTANCES | EVENT_ALL_JOBS_REMOVED | EVENT_SCHEDULER_STARTED)
        self.scheduler.add_listener(self._on_event, mask)
        for job in self._jobs():
            self._adopt(job)
        self._thread = threading.Thread(target=self._loop, name="ops-monitor-jobs",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop listening, give jobs back their own functions, withdraw this
        process's schedule and pending rows (a stopped host holds nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        try:
            self.scheduler.remove_listener(self._on_event)
        except Exception:  # noqa: BLE001 - never raise into the host
            pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        for job in self._jobs():
            original = getattr(job.func, "__ops_original__", None)
            if original is not None and self._memory_store(job):
                try:
                    job._modify(func=original)  # no event: the host sees no change
                except Exception:  # noqa: BLE001
                    pass
        try:
            self._drain_events()
            with self.store.engine.begin() as conn:
                conn.execute(delete(JobSchedule).where(JobSchedule.process == self.process))
                conn.execute(delete(BackgroundJob).where(
                    BackgroundJob.process == self.process, BackgroundJob.status == "pending",
                    BackgroundJob.origin == "schedule"))
        except Exception as exc:  # noqa: BLE001
            self._failed("withdrawing the schedule", exc)

    def flush(self) -> None:
        """Run one cycle now: events, schedule, commands, progress."""
        self._cycle()

    def stats(self) -> dict:
        return {"running": len(self._running), "dropped": self.dropped,
                "jobs": len(self._meta)}

    # ----- the scheduler's jobs ---------------------------------------------
    def _jobs(self) -> list:
        try:
            return list(self.scheduler.get_jobs())
        except Exception:  # noqa: BLE001 - a persistent job store may be down
            return []

    def _memory_store(self, job) -> bool:
        """True when the job lives in (or will be added to) a memory job
        store, where a wrapped function stays wrapped."""
        from apscheduler.jobstores.memory import MemoryJobStore
        alias = getattr(job, "_jobstore_alias", None)
        if alias is None:  # not started yet: the alias it was added with
            for pending, pending_alias, _replace in getattr(self.scheduler, "_pending_jobs", ()):
                if pending is job:
                    alias = pending_alias
                    break
        stores = getattr(self.scheduler, "_jobstores", {})
        store = stores.get(alias or "default")
        if store is None:
            return (alias or "default") == "default"  # the default one is a MemoryJobStore
        return isinstance(store, MemoryJobStore)

    def _adopt(self, job) -> None:
        """Remember a job and wrap its function (memory stores only)."""
        func = job.func
        original = getattr(func, "__ops_original__", None)
        real = original or func
        with self._lock:
            meta = self._meta.get(job.id)
            if meta is None or meta.get("original") is not real:
                meta = self._meta[job.id] = {"wrapped": original is not None}
            # Updated in place: a wrapper holds this dict, so renames show.
            meta.update(name=(job.name or job.id)[:255], original=real,
                        func=(getattr(job, "func_ref", None) or _callable_name(real))[:255])
            self._dirty = True
        if original is not None or not self._memory_store(job):
            return
        wrapper = self._wrapper(job.id, real, meta)
        try:
            if getattr(job, "_jobstore_alias", None) is None:
                job._modify(func=wrapper)  # pending (scheduler not started): no store yet
            else:
                self.scheduler.modify_job(job.id, func=wrapper)
            meta["wrapped"] = True
        except Exception as exc:  # noqa: BLE001 - recorded from events instead
            logger.info("ops monitor: job %s not wrapped (%s); recording it from "
                        "scheduler events only", job.id, exc)

    def _wrapper(self, job_id: str, func: Callable, meta: dict) -> Callable:
        hook = self

        @functools.wraps(func)
        def ops_recorded_job(*args, **kwargs):
            return hook.run(job_id, func, args, kwargs, meta=meta)
        ops_recorded_job.__ops_original__ = func  # type: ignore[attr-defined]
        return ops_recorded_job

    # ----- listeners (any thread: memory only) ------------------------------
    def _on_event(self, event) -> None:
        from apscheduler import events as ev
        try:
            code = event.code
            if code in (ev.EVENT_JOB_ADDED, ev.EVENT_JOB_MODIFIED):
                job = self.scheduler.get_job(event.job_id)
                if job is not None:
                    self._adopt(job)
            elif code == ev.EVENT_JOB_REMOVED:
                with self._lock:
                    self._forget(event.job_id)
            elif code == ev.EVENT_ALL_JOBS_REMOVED:
                with self._lock:
                    for job_id in list(self._meta):
                        self._forget(job_id)
            elif code == ev.EVENT_SCHEDULER_STARTED:
                self._dirty = True
            elif code == ev.EVENT_JOB_SUBMITTED:
                self._dirty = True  # its next run time moved on
                if not self._is_wrapped(event.job_id):
                    self._events.append(("started", event.job_id,
                                         list(event.scheduled_run_times), utcnow()))
            elif code in (ev.EVENT_JOB_EXECUTED, ev.EVENT_JOB_ERROR):
                row_id = self._take_wrapped_done(event.job_id)
                if row_id is not False:
                    if row_id is not None:
                        self._events.append(("scheduled", row_id, event.scheduled_run_time))
                else:
                    exc = event.exception
                    self._events.append((
                        "finished", event.job_id, event.scheduled_run_time, utcnow(),
                        None if exc is None else type(exc).__name__,
                        None if exc is None else _scrub(str(exc))[:2000],
                        event.traceback and _scrub(str(event.traceback))[:MAX_TEXT]))
            elif code == ev.EVENT_JOB_MISSED:
                self._events.append(("missed", event.job_id, [event.scheduled_run_time],
                                     "The scheduler missed this run (misfire grace "
                                     "time exceeded)."))
            elif code == ev.EVENT_JOB_MAX_INSTANCES:
                self._events.append(("missed", event.job_id,
                                     list(event.scheduled_run_times)[-1:],
                                     "Skipped: the job was still running (max_instances "
                                     "reached)."))
            else:
                return
            if code != ev.EVENT_JOB_SUBMITTED:
                self._wake.set()  # publish / record it within moments, not a poll later
        except Exception:  # noqa: BLE001 - a listener must never raise into the host
            logger.debug("ops monitor: job event not recorded", exc_info=True)

    def _forget(self, job_id: str) -> None:
        """A removed job (a one-off job is removed as it is submitted, before
        its run ends): its meta is kept a while for that run's events."""
        meta = self._meta.pop(job_id, None)
        if meta is not None:
            self._gone[job_id] = meta
            while len(self._gone) > 1000:
                self._gone.popitem(last=False)
        self._dirty = True

    def _meta_of(self, job_id: str) -> dict | None:
        return self._meta.get(job_id) or self._gone.get(job_id)

    def _is_wrapped(self, job_id: str) -> bool:
        meta = self._meta_of(job_id)
        return bool(meta and meta.get("wrapped"))

    def _take_wrapped_done(self, job_id: str):
        """The row id a wrapped run of `job_id` finished with (None: it had
        no row), or False when no wrapped run is waiting for this event."""
        with self._lock:
            waiting = self._wrapped_done.get(job_id)
            if not waiting:
                return False
            row_id = waiting.popleft()
            if not waiting:
                del self._wrapped_done[job_id]
            return row_id

    # ----- a wrapped run (the job's thread) ----------------------------------
    def run(self, job_id: str, func: Callable, args: tuple, kwargs: dict, *,
            origin: str = "schedule", row_id: int | None = None, attempt: int = 1,
            retry_of: int | None = None, meta: dict | None = None):
        """Run `func` as a recorded run of `job_id`; returns what it returns,
        raises what it raises (JobCancelled ends it as `cancelled`)."""
        meta = meta or self._meta_of(job_id) or {"name": job_id,
                                                 "func": _callable_name(func)}
        started = utcnow()
        began = time.perf_counter()
        shown = redact_call(func, args, kwargs)
        run = _Run(self, job_id, None)
        run.row_id = self._start_row(job_id, meta, shown, started, origin, row_id,
                                     attempt, retry_of)
        if run.row_id is not None:
            with self._lock:
                self._recent[run.row_id] = (func, args, kwargs)
                while len(self._recent) > RECENT_CALLS:
                    self._recent.popitem(last=False)
        with self._lock:
            self._running[run.key] = run
        token = CURRENT_RUN.set(run)
        status, note, values = "succeeded", None, {}
        try:
            return func(*args, **kwargs)
        except JobCancelled as exc:
            status = "cancelled"
            note = (str(exc) or "The job stopped when asked to.")[:500] if run.cancel_requested \
                else "Stopped: its process was shutting down." if self._stop.is_set() \
                else (str(exc) or "The job cancelled itself.")[:500]
            return None
        except BaseException as exc:
            status = "failed"
            values = {"error_type": type(exc).__name__[:255],
                      "error_message": _scrub(str(exc))[:2000],
                      # from the job's own frame on: not this wrapper's
                      "traceback": _scrub("".join(tb_module.format_exception(
                          type(exc), exc, exc.__traceback__.tb_next)))[-MAX_TEXT:]}
            raise
        finally:
            CURRENT_RUN.reset(token)
            with self._lock:
                self._running.pop(run.key, None)
            if status == "succeeded" and run.cancel_requested:
                if run.saw_cancel:
                    status, note = "cancelled", "The job stopped when asked to."
                else:
                    note = ("A cancel was requested, but the job finished without "
                            "checking cancelled(): it ran to the end.")
            elif status == "failed" and run.cancel_requested:
                note = "A cancel was requested; the job then failed."
            finished = utcnow()
            progress = 1.0 if status == "succeeded" and run.progress is not None \
                else run.progress
            final = {"status": status, "finished_at": finished, "time": finished,
                     "duration_ms": (time.perf_counter() - began) * 1000.0,
                     "progress": progress, "progress_message": run.progress_message,
                     "note": note, "cancel_requested": run.cancel_requested, **values}
            row = self._finish_row(run.row_id, job_id, meta, shown, started, origin,
                                   attempt, retry_of, final)
            if origin == "schedule":
                with self._lock:
                    self._wrapped_done.setdefault(job_id, deque()).append(row)

    def _start_row(self, job_id, meta, shown, started, origin, row_id, attempt,
                   retry_of) -> int | None:
        if not self._may_write():
            return None
        values = {"status": "running", "started_at": started, "time": started,
                  "args": shown, "name": meta["name"], "func": meta["func"]}
        try:
            with self.store.engine.begin() as conn:
                if row_id is None and origin == "schedule":
                    row_id = conn.scalar(
                        select(BackgroundJob.id).where(
                            BackgroundJob.process == self.process,
                            BackgroundJob.job_id == job_id,
                            BackgroundJob.status == "pending",
                            BackgroundJob.origin == "schedule",
                            BackgroundJob.scheduled_at <= started + timedelta(seconds=2))
                        .order_by(BackgroundJob.scheduled_at).limit(1))
                if row_id is not None:
                    done = conn.execute(update(BackgroundJob).where(
                        BackgroundJob.id == row_id, BackgroundJob.status == "pending")
                        .values(**values)).rowcount
                    if done:
                        with self._lock:
                            pending = self._pending.get(job_id)
                            if pending and pending[0] == row_id:
                                del self._pending[job_id]
                        return row_id
                result = conn.execute(insert(BackgroundJob).values(
                    job_id=job_id[:191], process=self.process, origin=origin,
                    attempt=attempt, retry_of=retry_of, cancel_requested=False, **values))
                return result.inserted_primary_key[0]
        except Exception as exc:  # noqa: BLE001 - never raise into the host
            self._failed("recording a run's start", exc)
            return None

    def _finish_row(self, row_id, job_id, meta, shown, started, origin, attempt, retry_of,
                    final) -> int | None:
        if not self._may_write():
            self.dropped += 1
            return row_id
        try:
            with self.store.engine.begin() as conn:
                if row_id is not None:
                    final = dict(final)
                    if not final["cancel_requested"]:
                        final.pop("cancel_requested")  # a request may have just landed
                    conn.execute(update(BackgroundJob).where(BackgroundJob.id == row_id)
                                 .values(**final))
                    return row_id
                result = conn.execute(insert(BackgroundJob).values(
                    job_id=job_id[:191], process=self.process, origin=origin,
                    attempt=attempt, retry_of=retry_of, name=meta["name"],
                    func=meta["func"], args=shown, started_at=started, **final))
                return result.inserted_primary_key[0]
        except Exception as exc:  # noqa: BLE001
            self._failed("recording a run's end", exc)
            return row_id

    def _write_progress(self, run: _Run) -> None:
        run.progress_written = time.monotonic()
        if run.row_id is None or not self._may_write():
            return
        run.progress_dirty = False
        try:
            with self.store.engine.begin() as conn:
                conn.execute(update(BackgroundJob).where(
                    BackgroundJob.id == run.row_id, BackgroundJob.status == "running")
                    .values(progress=run.progress, progress_message=run.progress_message))
        except Exception as exc:  # noqa: BLE001
            run.progress_dirty = True
            self._failed("recording progress", exc)

    # ----- store failures ----------------------------------------------------
    def _may_write(self) -> bool:
        return time.monotonic() >= self._breaker_until

    def _failed(self, what: str, exc: Exception) -> None:
        self.dropped += 1
        self._breaker_until = time.monotonic() + BREAKER_SECONDS
        now = time.monotonic()
        if now - self._last_error_log > 30:
            self._last_error_log = now
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            logger.warning("ops monitor: store unavailable while %s (%d job writes "
                           "dropped so far): %s", what, self.dropped, first)

    # ----- the hook's thread -------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._cycle()  # first at once: the console sees the process from the start
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _cycle(self) -> None:
        with self._cycle_lock:
            for step in (self._drain_events, self._publish, self._run_commands,
                         self._flush_progress):
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - the thread must never die
                    self._failed(step.__name__.strip("_").replace("_", " "), exc)

    def _drain_events(self) -> None:
        from sqlalchemy.exc import DBAPIError
        while self._events:
            event = self._events.popleft()
            try:
                self._apply_event(event)
            except DBAPIError as exc:
                if exc.connection_invalidated or isinstance(
                        exc.orig, (ConnectionError, OSError)) or "connect" in str(exc).lower():
                    self._events.appendleft(event)  # the store is down: try again later
                    raise
                self._failed("recording a job event", exc)

    def _apply_event(self, event: tuple) -> None:
        kind = event[0]
        with self.store.engine.begin() as conn:
            if kind == "scheduled":
                _, row_id, when = event
                conn.execute(update(BackgroundJob).where(
                    BackgroundJob.id == row_id, BackgroundJob.scheduled_at.is_(None))
                    .values(scheduled_at=when))
            elif kind == "missed":
                _, job_id, times, note = event
                for when in times:
                    self._resolve_pending(conn, job_id, when, status="missed",
                                          note=note, time=when)
            elif kind == "started":
                _, job_id, times, at = event
                self._resolve_pending(conn, job_id, times[-1], status="running",
                                      started_at=at, time=at)
            elif kind == "finished":
                _, job_id, when, at, etype, message, trace = event
                self._finish_unwrapped(conn, job_id, when, at, etype, message, trace)

    def _resolve_pending(self, conn, job_id: str, when: datetime, **values) -> int:
        """Turn this process's pending row for `job_id` at `when` into
        `values`, or insert a row when there was none; returns its id."""
        row_id = conn.scalar(select(BackgroundJob.id).where(
            BackgroundJob.process == self.process, BackgroundJob.job_id == job_id,
            BackgroundJob.status == "pending", BackgroundJob.origin == "schedule",
            BackgroundJob.scheduled_at <= when + timedelta(seconds=1))
            .order_by(BackgroundJob.scheduled_at.desc()).limit(1))
        with self._lock:
            pending = self._pending.get(job_id)
            if pending and pending[0] == row_id:
                del self._pending[job_id]
        if row_id is not None:
            conn.execute(update(BackgroundJob).where(BackgroundJob.id == row_id)
                         .values(scheduled_at=when, **values))
            return row_id
        meta = self._meta_of(job_id) or {"name": job_id, "func": ""}
        return conn.execute(insert(BackgroundJob).values(
            job_id=job_id[:191], name=meta["name"], func=meta["func"], process=self.process,
            origin="schedule", attempt=1, cancel_requested=False, scheduled_at=when,
            **values)).inserted_primary_key[0]

    def _finish_unwrapped(self, conn, job_id, when, at, etype, message, trace) -> None:
        row_id = conn.scalar(select(BackgroundJob.id).where(
            BackgroundJob.process == self.process, BackgroundJob.job_id == job_id,
            BackgroundJob.status.in_(("running", "pending")),
            BackgroundJob.scheduled_at == when).limit(1))
        values = {"status": "failed" if etype else "succeeded", "finished_at": at,
                  "time": at, "error_type": etype, "error_message": message,
                  "traceback": trace}
        if row_id is None:
            row_id = self._resolve_pending(conn, job_id, when, **values)
        else:
            conn.execute(update(BackgroundJob).where(BackgroundJob.id == row_id)
                         .values(**values))
        started = conn.scalar(select(BackgroundJob.started_at).where(
            BackgroundJob.id == row_id))
        if started is not None:
            conn.execute(update(BackgroundJob).where(BackgroundJob.id == row_id).values(
                duration_ms=(at - as_utc(started)).total_seconds() * 1000.0))

    # ----- publishing the schedule -------------------------------------------
    def _snapshot(self) -> dict[str, tuple]:
        jobs = {}
        for job in self._jobs():
            meta = self._meta.get(job.id) or {}
            next_run = getattr(job, "next_run_time", None)
            jobs[job.id] = ((job.name or job.id)[:255],
                            (meta.get("func") or getattr(job, "func_ref", None) or "")[:255],
                            describe_trigger(job.trigger), next_run, next_run is None,
                            bool(meta.get("wrapped")))
        return jobs

    def _publish(self) -> None:
        due = time.monotonic() - self._last_heartbeat >= PUBLISH_SECONDS
        if not (self._dirty or due):
            # next run times move without events (after every run): compare
            snapshot = self._snapshot()
            if snapshot == self._published:
                return
        else:
            snapshot = self._snapshot()
        self._dirty = False
        now = utcnow()
        with self.store.engine.begin() as conn:
            gone = set(self._published) - set(snapshot)
            if gone:
                conn.execute(delete(JobSchedule).where(
                    JobSchedule.process == self.process, JobSchedule.job_id.in_(gone)))
            for job_id, row in snapshot.items():
                if self._published.get(job_id) == row:
                    continue
                name, func, trigger, next_run, paused, wrapped = row
                values = {"name": name, "func": func, "trigger": trigger,
                          "next_run_time": next_run, "paused": paused,
                          "wrapped": wrapped, "updated_at": now}
                changed = conn.execute(update(JobSchedule).where(
                    JobSchedule.process == self.process, JobSchedule.job_id == job_id)
                    .values(**values)).rowcount
                if not changed:
                    conn.execute(insert(JobSchedule).values(
                        process=self.process, job_id=job_id[:191], **values))
            if due:
                conn.execute(update(JobSchedule).where(JobSchedule.process == self.process)
                             .values(updated_at=now))
            self._sync_pending(conn, snapshot, now)
        self._published = snapshot
        if due:
            self._last_heartbeat = time.monotonic()

    def _sync_pending(self, conn, snapshot: dict, now: datetime) -> None:
        """One `pending` row per job for its next run (so it can be listed
        and cancelled by id); rows for runs that moved away are dropped."""
        for job_id, row in snapshot.items():
            next_run = row[3]
            current = self._pending.get(job_id)
            if current is not None and next_run is not None and current[1] == next_run:
                continue
            if current is not None and current[1] > now:
                # rescheduled, paused or skipped before it was due: never a run
                conn.execute(delete(BackgroundJob).where(
                    BackgroundJob.id == current[0], BackgroundJob.status == "pending"))
                self._pending.pop(job_id, None)
            if next_run is not None and next_run > now:
                row_id = conn.execute(insert(BackgroundJob).values(
                    job_id=job_id[:191], name=row[0], func=row[1], process=self.process,
                    status="pending", origin="schedule", time=next_run,
                    scheduled_at=next_run, attempt=1,
                    cancel_requested=False)).inserted_primary_key[0]
                self._pending[job_id] = (row_id, next_run)
        for job_id in set(self._pending) - set(snapshot):
            row_id, _when = self._pending.pop(job_id)
            conn.execute(delete(BackgroundJob).where(
                BackgroundJob.id == row_id, BackgroundJob.status == "pending"))
        # Past pending rows nobody resolved (coalesced runs, a lost event).
        conn.execute(delete(BackgroundJob).where(
            BackgroundJob.process == self.process, BackgroundJob.status == "pending",
            BackgroundJob.origin == "schedule",
            BackgroundJob.scheduled_at < now - PENDING_GRACE))

    def _flush_progress(self) -> None:
        with self._lock:
            runs = [r for r in self._running.values() if r.progress_dirty]
        for run in runs:
            if time.monotonic() - run.progress_written >= PROGRESS_MIN_SECONDS:
                self._write_progress(run)

    # ----- commands from the console -----------------------------------------
    def _run_commands(self) -> None:
        now = utcnow()
        held = set(self._meta)
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(JobCommand).where(
                JobCommand.claimed_at.is_(None), JobCommand.created_at > now - COMMAND_TTL,
                (JobCommand.process == self.process) | JobCommand.process.is_(None))
                .order_by(JobCommand.id).limit(20)).all()
        for cmd in rows:
            if cmd.process is None and cmd.job_id not in held:
                continue
            with self.store.engine.begin() as conn:
                claimed = conn.execute(update(JobCommand).where(
                    JobCommand.id == cmd.id, JobCommand.claimed_at.is_(None))
                    .values(claimed_by=self.process, claimed_at=utcnow())).rowcount
            if not claimed:
                continue
            try:
                outcome, message, result_run = self._execute(cmd)
            except Exception as exc:  # noqa: BLE001 - reported on the command
                outcome, message, result_run = "failed", f"{type(exc).__name__}: {exc}", None
            with self.store.engine.begin() as conn:
                conn.execute(update(JobCommand).where(JobCommand.id == cmd.id).values(
                    finished_at=utcnow(), outcome=outcome, message=_scrub(message)[:2000],
                    result_run_id=result_run))
            self._dirty = True

    def _execute(self, cmd) -> tuple[str, str, int | None]:
        action = cmd.action
        if action == "cancel":
            return self._cancel(cmd)
        job = self.scheduler.get_job(cmd.job_id)
        if action in ("pause", "resume"):
            if job is None:
                return "failed", f"This process no longer holds job {cmd.job_id}.", None
            if action == "pause":
                self.scheduler.pause_job(cmd.job_id)
                return "ok", "Paused: no run starts until it is resumed.", None
            resumed = self.scheduler.resume_job(cmd.job_id)
            if resumed is None and self.scheduler.get_job(cmd.job_id) is None:
                return "ok", "Resumed; its schedule had no run left, so it was removed.", None
            return "ok", "Resumed.", None
        if action in ("retry", "run_now"):
            return self._one_off(cmd, job)
        return "failed", f"Unknown action {action!r}.", None

    def _one_off(self, cmd, job) -> tuple[str, str, int | None]:
        """Start a run now, in a thread of its own (the schedule is left as
        it is, and it works for paused jobs too). A retry uses the real
        arguments of the run it retries when this process still has them,
        else the job's current ones."""
        attempt, retry_of, origin = 1, None, cmd.action
        call = None
        if cmd.action == "retry":
            with self.store.engine.connect() as conn:
                attempt = (conn.scalar(select(BackgroundJob.attempt).where(
                    BackgroundJob.id == cmd.run_id)) or 1) + 1
            retry_of = cmd.run_id
            with self._lock:
                call = self._recent.get(cmd.run_id)
        if call is None:
            if job is None:
                return "failed", f"This process no longer holds job {cmd.job_id}.", None
            if cmd.action == "run_now" and self._busy(job):
                return ("failed", f"Job {cmd.job_id} is already running "
                        f"(max_instances={job.max_instances}).", None)
            func = getattr(job.func, "__ops_original__", job.func)
            call = (func, tuple(job.args), dict(job.kwargs))
            how = "with the job's current arguments"
        else:
            how = "with the same arguments as that run"
        func, args, kwargs = call
        meta = self._meta_of(cmd.job_id) or {"name": cmd.job_id,
                                             "func": _callable_name(func)}
        now = utcnow()
        with self.store.engine.begin() as conn:
            row_id = conn.execute(insert(BackgroundJob).values(
                job_id=cmd.job_id, name=meta["name"], func=meta["func"], process=self.process,
                status="pending", origin=origin, time=now, scheduled_at=now,
                attempt=attempt, retry_of=retry_of, cancel_requested=False,
                args=redact_call(func, args, kwargs))).inserted_primary_key[0]

        def target():
            try:
                self.run(cmd.job_id, func, args, kwargs, origin=origin, row_id=row_id,
                         attempt=attempt, retry_of=retry_of, meta=meta)
            except BaseException:  # noqa: BLE001 - recorded as failed by run()
                logger.info("ops monitor: %s of job %s failed (run %s)", origin,
                            cmd.job_id, row_id)
        threading.Thread(target=target, name=f"ops-job-{origin}-{row_id}", daemon=True).start()
        what = (f"Retry started as run {row_id} (attempt {attempt}), {how}."
                if cmd.action == "retry" else f"Started as run {row_id}.")
        return "ok", what, row_id

    def _busy(self, job) -> bool:
        with self._lock:
            running = sum(1 for r in self._running.values() if r.job_id == job.id)
        return running >= (getattr(job, "max_instances", 1) or 1)

    def _cancel(self, cmd) -> tuple[str, str, int | None]:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(BackgroundJob).where(
                BackgroundJob.id == cmd.run_id)).first()
        if row is None:
            return "failed", f"Run {cmd.run_id} no longer exists.", None
        if row.status == "running":
            with self._lock:
                run = next((r for r in self._running.values() if r.row_id == row.id), None)
            if run is None:
                return "failed", "The run is not running in this process any more.", None
            run.cancel_requested = True
            with self.store.engine.begin() as conn:
                conn.execute(update(BackgroundJob).where(BackgroundJob.id == row.id)
                             .values(cancel_requested=True))
            return ("ok", "Asked the run to stop: it stops the next time it checks "
                    "cancelled(); its final status says whether it did.", row.id)
        if row.status != "pending":
            return "failed", f"The run is already {row.status}.", None
        if row.origin != "schedule":
            return "failed", "The run is starting already.", None
        job = self.scheduler.get_job(row.job_id)
        when = as_utc(row.scheduled_at)
        if job is None or job.next_run_time is None or job.next_run_time != when:
            return "failed", ("The run is no longer pending: it has started or its "
                              "schedule changed."), None
        following = job.trigger.get_next_fire_time(when, when + timedelta(microseconds=1))
        if following is None:
            self.scheduler.remove_job(job.id)
            message = "Cancelled; it was the job's last run, so the job was removed."
        else:
            self.scheduler.modify_job(job.id, next_run_time=following)
            message = ("Cancelled; the job runs next at "
                       f"{as_utc(following).isoformat(timespec='seconds')}.")
        now = utcnow()
        with self.store.engine.begin() as conn:
            conn.execute(update(BackgroundJob).where(BackgroundJob.id == row.id).values(
                status="cancelled", finished_at=now, time=now, cancel_requested=True,
                note="Cancelled before it started."))
        with self._lock:
            if self._pending.get(job.id, (None,))[0] == row.id:
                del self._pending[job.id]
        return "ok", message, row.id


def _callable_name(func: Callable) -> str:
    module = getattr(func, "__module__", None) or ""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) \
        or type(func).__name__
    return f"{module}:{name}" if module else str(name)


def attach(store, scheduler, process: str) -> JobsHook | None:
    """Attach a hook to `scheduler`; None (logged) when that fails, so the
    host's start never fails because of the console."""
    try:
        return JobsHook(store, scheduler, process).attach()
    except Exception:  # noqa: BLE001 - never raise into the host
        logger.exception("ops monitor: could not attach to the scheduler")
        return None


__all__ = ["JobCancelled", "JobsHook", "attach", "cancelled", "current_run_id",
           "redact_call", "report_progress"]
