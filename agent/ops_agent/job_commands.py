"""The console's commands for background jobs (retry, cancel, pause, resume,
run_now), carried out on the live scheduler. They arrive in the shipper's
answer and run in its thread (`Shipper.on_command("job", ...)`); each
returns {"outcome": "ok"|"failed", "message", "run"}, where `run` is the
agent's id of the run it made or acted on. A command holds the hook's cycle
lock, so the pending runs it changes are not compared at the same moment.

A mixin of `ops_agent.apscheduler.JobsHook` (kept apart for its size).
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any, Dict, Optional, Tuple

from ops_agent.job_runs import callable_name, describe_call, iso, new_id, utcnow
from ops_agent.scrub import strip_sql_values

logger = logging.getLogger("ops_agent")

Outcome = Tuple[str, str, Optional[str]]


class JobCommands:
    """Command handling; the state it uses is JobsHook's."""

    def on_command(self, command: Dict[str, Any]) -> Dict[str, Any]:
        """Carry out one command; {"outcome": "ok"|"failed", "message", "run"}
        (`run`: the agent id of the run it made or acted on)."""
        if self._stop.is_set():
            return {"outcome": "failed", "message": "This process is shutting down."}
        with self._cycle_lock:
            try:
                outcome, message, run_id = self._execute(command)
            except Exception as exc:  # noqa: BLE001 - reported on the command
                outcome, message, run_id = "failed", "%s: %s" % (type(exc).__name__, exc), None
        self._wake.set()  # the schedule may have changed: publish it
        return {"outcome": outcome, "message": strip_sql_values(message)[:2000], "run": run_id}

    def _execute(self, command: Dict[str, Any]) -> Outcome:
        action = command.get("action")
        job_id = str(command.get("job_id") or "")
        run_id = command.get("run") or None
        if action == "cancel":
            return self._cancel(job_id, run_id, command.get("status"))
        if action in ("retry", "run_now"):
            return self._one_off(action, job_id, run_id, command.get("attempt"))
        if action not in ("pause", "resume"):
            return "failed", "Unknown action %r." % (action,), None
        if self.scheduler.get_job(job_id) is None:
            return "failed", "This process no longer holds job %s." % job_id, None
        if action == "pause":
            self.scheduler.pause_job(job_id)
            return "ok", "Paused: no run starts until it is resumed.", None
        resumed = self.scheduler.resume_job(job_id)
        if resumed is None and self.scheduler.get_job(job_id) is None:
            return "ok", "Resumed; its schedule had no run left, so it was removed.", None
        return "ok", "Resumed.", None

    def _one_off(self, action: str, job_id: str, of_run: Optional[str],
                 attempt_of: Any) -> Outcome:
        """Start a run now, in a thread of its own (the schedule is left as
        it is, and it works for paused jobs too). A retry uses the real
        arguments of the run it retries when this process still has them,
        else the job's current ones."""
        attempt, retry_of, call = 1, None, None
        if action == "retry":
            retry_of = of_run
            with self._lock:
                recent = self._recent.get(of_run) if of_run else None
            known = attempt_of if isinstance(attempt_of, int) and attempt_of > 0 else None
            attempt = (known or (recent[3] if recent else 1)) + 1
            if recent is not None:
                call = recent[:3]
        job = self.scheduler.get_job(job_id)
        if call is None:
            if job is None:
                return "failed", "This process no longer holds job %s." % job_id, None
            if action == "run_now" and self._busy(job):
                return ("failed", "Job %s is already running (max_instances=%s)."
                        % (job_id, job.max_instances), None)
            func = getattr(job.func, "__ops_original__", job.func)
            call = (func, tuple(job.args), dict(job.kwargs))
            how = "with the job's current arguments"
        else:
            how = "with the same arguments as that run"
        func, args, kwargs = call
        meta = self._meta_of(job_id)
        if not meta.get("func"):
            meta = {"name": meta.get("name") or job_id, "func": callable_name(func)}
        run_id, now = new_id(), utcnow()
        with self._lock:
            self._starting.add(run_id)
        self._put_run(run_id, job_id, meta, status="pending", origin=action, attempt=attempt,
                      retry_of=retry_of, time=iso(now), scheduled_at=iso(now),
                      args=describe_call(func, args, kwargs))

        def target() -> None:
            try:
                self.run(job_id, func, args, kwargs, origin=action, run_id=run_id,
                         attempt=attempt, retry_of=retry_of, meta=meta)
            except BaseException:  # noqa: BLE001 - recorded as failed by run()
                logger.info("ops agent: %s of job %s failed", action, job_id)
        threading.Thread(target=target, name="ops-job-%s-%s" % (action, run_id[:8]),
                         daemon=True).start()
        if action == "retry":
            return "ok", "Retry started (attempt %d), %s." % (attempt, how), run_id
        return "ok", "Started.", run_id

    def _busy(self, job: Any) -> bool:
        with self._lock:
            running = sum(1 for r in self._running.values() if r.job_id == job.id)
        return running >= (getattr(job, "max_instances", 1) or 1)

    def _cancel(self, job_id: str, run_id: Optional[str],
                status: Any) -> Outcome:
        with self._lock:
            live = self._running.get(run_id) if run_id else None
            starting = run_id in self._starting
            entry = next((e for e in self._pending.get(job_id, ()) if e[0] == run_id), None)
        if live is not None:
            live.cancel_requested = True
            self.runs.put({"op": "run", "run": live.id, "cancel_requested": True,
                           "if_status": ["running"]})
            return ("ok", "Asked the run to stop: it stops the next time it checks "
                    "cancelled(); its final status says whether it did.", live.id)
        if starting:
            return "failed", "The run is starting already.", None
        if entry is None:
            if status == "running":
                return "failed", "The run is not running in this process any more.", None
            return "failed", ("The run is no longer pending: it has started or its "
                              "schedule changed."), None
        job = self.scheduler.get_job(job_id)
        when = entry[1]
        if job is None or job.next_run_time is None or job.next_run_time != when:
            return "failed", ("The run is no longer pending: it has started or its "
                              "schedule changed."), None
        following = job.trigger.get_next_fire_time(when, when + timedelta(microseconds=1))
        if following is None:
            self.scheduler.remove_job(job.id)
            message = "Cancelled; it was the job's last run, so the job was removed."
        else:
            self.scheduler.modify_job(job.id, next_run_time=following)
            message = "Cancelled; the job runs next at %s UTC." % iso(following)[:19]
        with self._lock:
            entries = self._pending.get(job_id) or []
            if entry in entries:
                entries.remove(entry)
        now = iso(utcnow())
        self.runs.put({"op": "run", "run": entry[0], "status": "cancelled", "finished_at": now,
                       "time": now, "cancel_requested": True,
                       "note": "Cancelled before it started.", "if_status": ["pending"]})
        return "ok", message, entry[0]
