"""APScheduler 3: `monitor(app, scheduler=...)` records every run of the
host's jobs, publishes the jobs the scheduler holds, and carries out the
console's commands (retry, cancel, pause, resume, run_now) on the live
scheduler.

What it sends (both channels are durable kinds: retried after an outage):
- "jobs": one record per change of a run, keyed by an id the agent makes
  (`run`, hex): {"op": "run", "run", "job_id", "name", "func", fields...}
  creates or updates the run (`if_status`: only while it has one of those
  statuses); {"op": "progress", "run", "progress", "message"} (while it
  runs); {"op": "scheduled", "run", "at"} (when it was due, if unknown);
  {"op": "drop", "run"} (a pending run that will never happen).
  Times are ISO 8601 in UTC. Arguments are a picture with secret-named
  values masked (ops_agent.job_runs.describe_call).
- "schedules": {"jobs": [{"job_id", "name", "func", "trigger",
  "next_run_time", "paused", "wrapped"}, ...]} (everything the scheduler
  holds, on change and every minute), {"heartbeat": true} (every few
  seconds), {"withdraw": true} (the monitor closed: this process holds
  nothing any more).

How runs are recorded:
- Jobs in a memory job store get a thin wrapper around their function
  (existing jobs at attach, later ones when added or modified). It runs in
  the job's own thread: it records the start, makes `report_progress()` /
  `cancelled()` know their run (a context variable), and records the end
  with the traceback.
- Jobs in a persistent job store (e.g. SQLAlchemyJobStore) are not wrapped:
  such a store pickles the job with a textual reference to its function, so
  a wrapper would be dropped the next time the job is loaded. Those runs
  are recorded from the scheduler's events alone (no progress or
  cooperative cancel).
- Missed runs and runs skipped because `max_instances` were reached come
  from the scheduler's events and are recorded as `missed`.
- The next run of each job is announced as a `pending` run, so it can be
  listed and cancelled by id; the run that starts then keeps that id.

Threads: listeners may run in any thread, even a web request's, so they
only touch memory (a channel put is an append). This hook's own thread
(`ops-agent-jobs`) compares the schedule every `poll_interval` seconds and
sends throttled progress; commands run in the shipper's thread. Nothing
here raises into the host or waits on the console.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
import traceback as tb_module
from collections import OrderedDict, deque
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, List, Optional, Tuple

from ops_agent.job_commands import JobCommands
# The helpers a job's code calls live in job_runs; this is their public home.
from ops_agent.job_runs import (  # noqa: F401 - re-exported
    CURRENT_RUN, PROGRESS_MIN_SECONDS, JobCancelled, Run, callable_name, cancelled,
    current_run_id, describe_call, error_text, iso, new_id, report_progress, trace_text, utcnow)

logger = logging.getLogger("ops_agent")

POLL_SECONDS = 1.0           # how often the schedule is compared
HEARTBEAT_SECONDS = 5.0      # "this process still holds its jobs", at least this often
FULL_SECONDS = 60.0          # the whole schedule again, even unchanged
PENDING_GRACE = timedelta(minutes=2)  # a due pending run nobody started is forgotten
CLOSE_GRACE = 2.0            # closing waits this long for runs that check cancelled()
RECENT_CALLS = 500           # real (unmasked) calls kept for retries
JOBS_BUFFER = 10_000


def describe_trigger(trigger: Any) -> str:
    try:
        return str(trigger)[:255]
    except Exception:  # noqa: BLE001
        return type(trigger).__name__


class JobsHook(JobCommands):
    """Listeners, wrappers, the publisher and the command handler for one
    scheduler in one process (see the module doc)."""

    def __init__(self, monitor: Any, scheduler: Any, *, poll_interval: float = POLL_SECONDS):
        self.scheduler = scheduler
        self.shipper = monitor.shipper
        # "jobs" first: within a batch, runs are applied before schedules.
        self.runs = self.shipper.channel("jobs", JOBS_BUFFER)
        self.schedules = self.shipper.channel("schedules", 1_000)
        self.poll_interval = poll_interval
        self._lock = threading.RLock()          # the hook's memory
        self._cycle_lock = threading.Lock()     # one publish (or command) at a time
        self._meta: Dict[str, dict] = {}        # job id -> name, func ref, wrapped
        self._gone: "OrderedDict[str, dict]" = OrderedDict()  # removed jobs' meta
        self._running: Dict[str, Run] = {}     # run id -> wrapped run
        self._starting: set = set()             # one-off runs announced, not started
        self._wrapped_done: Dict[str, deque] = {}  # job id -> run ids awaiting their event
        # (job id, due) -> (run id, started, perf counter); None: ended first
        self._unwrapped: "OrderedDict[tuple, Optional[tuple]]" = OrderedDict()
        self._recent: "OrderedDict[str, tuple]" = OrderedDict()  # run id -> real call
        self._pending: Dict[str, List[Tuple[str, datetime]]] = {}  # job id -> announced
        self._published: Optional[dict] = None
        self._last_full = float("-inf")
        self._last_heartbeat = float("-inf")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ----- attach / detach -------------------------------------------------
    def attach(self) -> "JobsHook":
        from apscheduler.events import (EVENT_ALL_JOBS_REMOVED, EVENT_JOB_ADDED,
                                        EVENT_JOB_ERROR, EVENT_JOB_EXECUTED,
                                        EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED,
                                        EVENT_JOB_MODIFIED, EVENT_JOB_REMOVED,
                                        EVENT_JOB_SUBMITTED, EVENT_SCHEDULER_STARTED)
        mask = (EVENT_JOB_ADDED | EVENT_JOB_MODIFIED | EVENT_JOB_REMOVED | EVENT_JOB_SUBMITTED
                | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
                | EVENT_JOB_MAX_INSTANCES | EVENT_ALL_JOBS_REMOVED | EVENT_SCHEDULER_STARTED)
        self.scheduler.add_listener(self._on_event, mask)
        for job in self._jobs() or ():
            self._adopt(job)
        self.shipper.on_command("job", self.on_command)
        self._thread = threading.Thread(target=self._loop, name="ops-agent-jobs", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop listening, give runs that check `cancelled()` a moment to
        stop (so their end is sent), give jobs back their own functions and
        withdraw what this process held."""
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
        deadline = time.monotonic() + CLOSE_GRACE
        while self._running and time.monotonic() < deadline:
            time.sleep(0.02)
        for job in self._jobs() or ():
            original = getattr(job.func, "__ops_original__", None)
            if original is not None and self._memory_store(job):
                try:
                    job._modify(func=original)  # no event: the host sees no change
                except Exception:  # noqa: BLE001
                    pass
        self.schedules.put({"withdraw": True})

    def publish(self) -> None:
        """Send the scheduler's job list now (and throttled progress)."""
        self._cycle()

    def stats(self) -> dict:
        return {"running": len(self._running), "jobs": len(self._meta),
                "dropped": self.runs.dropped + self.schedules.dropped}

    # ----- the scheduler's jobs ---------------------------------------------
    def _jobs(self) -> Optional[list]:
        """The scheduler's jobs; None when they cannot be read now (a
        persistent job store that is down), which is not "no jobs"."""
        try:
            return list(self.scheduler.get_jobs())
        except Exception:  # noqa: BLE001
            return None

    def _memory_store(self, job: Any) -> bool:
        """True when the job lives in (or will be added to) a memory job
        store, where a wrapped function stays wrapped."""
        from apscheduler.jobstores.memory import MemoryJobStore
        alias = getattr(job, "_jobstore_alias", None)
        if alias is None:  # not started yet: the alias it was added with
            for pending, pending_alias, _replace in getattr(self.scheduler, "_pending_jobs", ()):
                if pending is job:
                    alias = pending_alias
                    break
        store = getattr(self.scheduler, "_jobstores", {}).get(alias or "default")
        if store is None:
            return (alias or "default") == "default"  # the default one is a MemoryJobStore
        return isinstance(store, MemoryJobStore)

    def _adopt(self, job: Any) -> None:
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
                        func=(getattr(job, "func_ref", None) or callable_name(real))[:255])
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
            logger.info("ops agent: job %s not wrapped (%s); recording it from "
                        "scheduler events only", job.id, exc)

    def _wrapper(self, job_id: str, func: Callable, meta: dict) -> Callable:
        hook = self

        @functools.wraps(func)
        def ops_recorded_job(*args, **kwargs):
            return hook.run(job_id, func, args, kwargs, meta=meta)
        ops_recorded_job.__ops_original__ = func  # type: ignore[attr-defined]
        return ops_recorded_job

    def _meta_of(self, job_id: str) -> dict:
        return self._meta.get(job_id) or self._gone.get(job_id) or {"name": job_id, "func": ""}

    def _forget(self, job_id: str) -> None:
        """A removed job (a one-off job is removed as it is submitted, before
        its run ends): its meta is kept a while for that run's events."""
        meta = self._meta.pop(job_id, None)
        if meta is not None:
            self._gone[job_id] = meta
            while len(self._gone) > 1000:
                self._gone.popitem(last=False)

    # ----- records --------------------------------------------------------
    def _put_run(self, run_id: str, job_id: str, meta: dict, **fields: Any) -> None:
        self.runs.put({"op": "run", "run": run_id, "job_id": job_id[:191],
                       "name": meta.get("name") or job_id, "func": meta.get("func") or "",
                       **fields})

    def send_progress(self, run: Run) -> None:
        run.progress_sent = time.monotonic()
        run.progress_dirty = False
        self.runs.put({"op": "progress", "run": run.id, "progress": run.progress,
                       "message": run.progress_message})

    def _take_pending(self, job_id: str, until: datetime, latest: bool) -> Optional[str]:
        """The id of an announced run of `job_id` due by `until` (the
        earliest, or the latest), forgotten here as it is taken."""
        with self._lock:
            entries = self._pending.get(job_id) or []
            due = [e for e in entries if e[1] <= until]
            if not due:
                return None
            chosen = max(due, key=lambda e: e[1]) if latest else min(due, key=lambda e: e[1])
            entries.remove(chosen)
            if not entries:
                self._pending.pop(job_id, None)
            return chosen[0]

    # ----- listeners (any thread: memory only) ------------------------------
    def _on_event(self, event: Any) -> None:
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
            elif code == ev.EVENT_JOB_SUBMITTED:
                if not self._meta_of(event.job_id).get("wrapped"):
                    self._unwrapped_started(event.job_id, list(event.scheduled_run_times))
                return  # its next run time moved on: the next comparison sees it
            elif code in (ev.EVENT_JOB_EXECUTED, ev.EVENT_JOB_ERROR):
                run_id = self._take_wrapped_done(event.job_id)
                if run_id is not None:
                    self.runs.put({"op": "scheduled", "run": run_id,
                                   "at": iso(event.scheduled_run_time)})
                else:
                    self._unwrapped_finished(event)
            elif code == ev.EVENT_JOB_MISSED:
                self._missed(event.job_id, [event.scheduled_run_time],
                             "The scheduler missed this run (misfire grace time exceeded).")
            elif code == ev.EVENT_JOB_MAX_INSTANCES:
                self._missed(event.job_id, list(event.scheduled_run_times)[-1:],
                             "Skipped: the job was still running (max_instances reached).")
            self._wake.set()  # publish the change within moments, not a poll later
        except Exception:  # noqa: BLE001 - a listener must never raise into the host
            logger.debug("ops agent: job event not recorded", exc_info=True)

    def _take_wrapped_done(self, job_id: str) -> Optional[str]:
        with self._lock:
            waiting = self._wrapped_done.get(job_id)
            if not waiting:
                return None
            run_id = waiting.popleft()
            if not waiting:
                del self._wrapped_done[job_id]
            return run_id

    def _unwrapped_started(self, job_id: str, times: list) -> None:
        now = utcnow()
        when = times[-1] if times else now
        with self._lock:
            if self._unwrapped.get((job_id, when), ()) is None:
                # A quick run: the scheduler announced its end before its
                # submission. It is recorded already.
                del self._unwrapped[(job_id, when)]
                return
        run_id = self._take_pending(job_id, when + timedelta(seconds=1), True) or new_id()
        with self._lock:
            self._unwrapped[(job_id, when)] = (run_id, now, time.perf_counter())
            while len(self._unwrapped) > 1000:
                self._unwrapped.popitem(last=False)
        self._put_run(run_id, job_id, self._meta_of(job_id), status="running", origin="schedule",
                      attempt=1, started_at=iso(now), time=iso(now), scheduled_at=iso(when))

    def _unwrapped_finished(self, event: Any) -> None:
        job_id, when, exc = event.job_id, event.scheduled_run_time, event.exception
        with self._lock:
            started = self._unwrapped.pop((job_id, when), None)
            if started is None:  # its submission is still to come: ignore it then
                self._unwrapped[(job_id, when)] = None
                while len(self._unwrapped) > 1000:
                    self._unwrapped.popitem(last=False)
        now = utcnow()
        fields: Dict[str, Any] = {"status": "failed" if exc is not None else "succeeded",
                                  "finished_at": iso(now), "time": iso(now),
                                  "scheduled_at": iso(when), "origin": "schedule",
                                  "attempt": 1}
        if started is not None:
            run_id = started[0]
            fields["duration_ms"] = (time.perf_counter() - started[2]) * 1000.0
        else:
            run_id = self._take_pending(job_id, when + timedelta(seconds=1), True) or new_id()
        if exc is not None:
            fields.update(error_type=type(exc).__name__[:255], error_message=error_text(exc),
                          traceback=trace_text(str(event.traceback or "")) or None)
        self._put_run(run_id, job_id, self._meta_of(job_id), **fields)

    def _missed(self, job_id: str, times: list, note: str) -> None:
        meta = self._meta_of(job_id)
        for when in times:
            run_id = self._take_pending(job_id, when + timedelta(seconds=1), True) or new_id()
            self._put_run(run_id, job_id, meta, status="missed", note=note, origin="schedule",
                          attempt=1, time=iso(when), scheduled_at=iso(when))

    # ----- a wrapped run (the job's thread) ----------------------------------
    def run(self, job_id: str, func: Callable, args: tuple, kwargs: dict, *,
            origin: str = "schedule", run_id: Optional[str] = None, attempt: int = 1,
            retry_of: Optional[str] = None, meta: Optional[dict] = None) -> Any:
        """Run `func` as a recorded run of `job_id`; returns what it returns,
        raises what it raises (JobCancelled ends it as `cancelled`)."""
        meta = meta or self._meta_of(job_id)
        started = utcnow()
        began = time.perf_counter()
        if run_id is None and origin == "schedule":
            run_id = self._take_pending(job_id, started + timedelta(seconds=2), False)
        run = Run(self, job_id, run_id or new_id())
        shown = describe_call(func, args, kwargs)
        common = {"origin": origin, "attempt": attempt, "retry_of": retry_of, "args": shown,
                  "started_at": iso(started)}
        with self._lock:
            self._starting.discard(run.id)
            self._recent[run.id] = (func, args, kwargs, attempt)
            while len(self._recent) > RECENT_CALLS:
                self._recent.popitem(last=False)
            self._running[run.id] = run
        self._put_run(run.id, job_id, meta, status="running", time=iso(started), **common)
        token = CURRENT_RUN.set(run)
        status, note, values = "succeeded", None, {}  # type: str, Optional[str], dict
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
            values = {"error_type": type(exc).__name__[:255], "error_message": error_text(exc),
                      # from the job's own frame on: not this wrapper's
                      "traceback": trace_text("".join(tb_module.format_exception(
                          type(exc), exc, exc.__traceback__.tb_next)))}
            raise
        finally:
            CURRENT_RUN.reset(token)
            with self._lock:
                self._running.pop(run.id, None)
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
            self._put_run(run.id, job_id, meta, status=status, finished_at=iso(finished),
                          time=iso(finished),
                          duration_ms=(time.perf_counter() - began) * 1000.0,
                          progress=progress, progress_message=run.progress_message,
                          note=note, cancel_requested=run.cancel_requested, **values, **common)
            if origin == "schedule":
                with self._lock:
                    self._wrapped_done.setdefault(job_id, deque(maxlen=100)).append(run.id)

    # ----- publishing (the hook's thread, or flush()) --------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._cycle()  # first at once: the console sees the jobs from the start
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _cycle(self) -> None:
        with self._cycle_lock:
            for step in (self._publish, self._flush_progress):
                try:
                    step()
                except Exception:  # noqa: BLE001 - the thread must never die
                    logger.debug("ops agent: jobs %s failed", step.__name__, exc_info=True)

    def _snapshot(self, jobs: list) -> Dict[str, tuple]:
        out = {}
        for job in jobs:
            meta = self._meta.get(job.id) or {}
            next_run = getattr(job, "next_run_time", None)
            out[job.id] = ((job.name or job.id)[:255],
                           (meta.get("func") or getattr(job, "func_ref", None) or "")[:255],
                           describe_trigger(job.trigger), next_run, next_run is None,
                           bool(meta.get("wrapped")))
        return out

    def _publish(self) -> None:
        jobs = self._jobs()
        now = time.monotonic()
        if jobs is None:  # cannot read them now: keep what the console knows alive
            snapshot = None
        else:
            snapshot = self._snapshot(jobs)
            self._sync_pending(snapshot, utcnow())
        if snapshot is not None and (snapshot != self._published
                                     or now - self._last_full >= FULL_SECONDS):
            self.schedules.put({"jobs": [
                {"job_id": job_id[:191], "name": row[0], "func": row[1], "trigger": row[2],
                 "next_run_time": iso(row[3]), "paused": row[4], "wrapped": row[5]}
                for job_id, row in snapshot.items()]})
            self._published = snapshot
            self._last_full = self._last_heartbeat = now
        elif now - self._last_heartbeat >= HEARTBEAT_SECONDS:
            self.schedules.put({"heartbeat": True})
            self._last_heartbeat = now

    def _sync_pending(self, snapshot: Dict[str, tuple], now: datetime) -> None:
        """One announced (`pending`) run per job for its next run; announced
        runs that moved away before they were due are dropped."""
        stale = now - PENDING_GRACE
        with self._lock:
            for job_id in set(self._pending) | set(snapshot):
                row = snapshot.get(job_id)
                next_run = row[3] if row is not None else None
                kept = []
                for run_id, when in self._pending.get(job_id, ()):
                    if when > now and when != next_run:
                        # rescheduled, paused, skipped or removed: never a run
                        self.runs.put({"op": "drop", "run": run_id})
                    elif when > stale:
                        kept.append((run_id, when))  # due: its start takes it
                if next_run is not None and next_run > now \
                        and not any(when == next_run for _, when in kept):
                    run_id = new_id()
                    kept.append((run_id, next_run))
                    self._put_run(run_id, job_id, self._meta_of(job_id), status="pending",
                                  origin="schedule", attempt=1, time=iso(next_run),
                                  scheduled_at=iso(next_run))
                if kept:
                    self._pending[job_id] = kept
                else:
                    self._pending.pop(job_id, None)

    def _flush_progress(self) -> None:
        with self._lock:
            runs = [r for r in self._running.values() if r.progress_dirty]
        for run in runs:
            if time.monotonic() - run.progress_sent >= PROGRESS_MIN_SECONDS:
                self.send_progress(run)


def attach(monitor: Any, scheduler: Any) -> Optional[JobsHook]:
    """Attach a hook to `scheduler`; None (logged) when that fails, so the
    host's start never fails because of the console."""
    try:
        return JobsHook(monitor, scheduler).attach()
    except Exception:  # noqa: BLE001 - never raise into the host
        logger.exception("ops agent: could not attach to the scheduler")
        return None


__all__ = ["JobCancelled", "JobsHook", "attach", "cancelled", "current_run_id",
           "describe_call", "report_progress"]
