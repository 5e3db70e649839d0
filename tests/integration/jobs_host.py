"""A host process for the jobs tests: a Flask app and an APScheduler 3
scheduler instrumented with `monitor(app, scheduler=...)` against the store
in OPS_DATABASE_URL, exactly as a worker process of a user's app would be.

Jobs: `host_slow` (runs ~60 s, reports progress, stops when cancelled),
`host_flaky` (its first call fails; later calls say in their progress
message whether they got the real `token`, which the store only has
redacted), `host_report` (succeeds). Prints READY when started
and exits when its standard input closes.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from dashapp import monitor
from dashapp.jobs import JobCancelled, cancelled, report_progress

CALLS: list[str] = []
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running_host(store_url: str, instance_dir):
    """This module as a separate process on `store_url`; yields the
    process once it printed READY, and stops it afterwards."""
    env = {**os.environ, "OPS_DATABASE_URL": store_url, "OPS_DEMO": "false",
           "OPS_INSTANCE_DIR": str(instance_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.integration.jobs_host"], cwd=ROOT,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        yield proc
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def host_slow(steps: int = 600):
    for i in range(steps):
        if cancelled():
            raise JobCancelled(f"stopped at step {i}")
        report_progress(i / steps, f"step {i} of {steps}")
        time.sleep(0.1)


def host_flaky(token: str = ""):
    CALLS.append(token)
    if len(CALLS) == 1:
        raise RuntimeError(f"first call fails (call {len(CALLS)})")
    real = token == "s3cret-host-token"
    report_progress(1.0, "called with the real token" if real else "called with another token")
    return len(CALLS)


def host_report():
    return "ok"


def main() -> None:
    app = Flask("jobs-host")
    now = datetime.now(timezone.utc)
    scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
    scheduler.add_job(host_slow, "interval", hours=1, id="host_slow", name="Slow host job",
                      next_run_time=now + timedelta(seconds=1))
    scheduler.add_job(host_flaky, "interval", hours=1, id="host_flaky",
                      name="Flaky host job", kwargs={"token": "s3cret-host-token"},
                      next_run_time=now + timedelta(seconds=1))
    scheduler.add_job(host_report, "interval", hours=1, id="host_report",
                      name="Host report")
    mon = monitor(app, scheduler=scheduler)
    if mon.jobs is not None:
        mon.jobs.poll_interval = 0.2
    scheduler.start()
    print("READY", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    scheduler.shutdown(wait=False)
    mon.close()


if __name__ == "__main__":
    main()
