"""The console's own background jobs (APScheduler 3): roll-ups, retention and
the Redis sampler.

Started once per console process by create_app() when OPS_SCHEDULER is on
(the default; tests turn it off), stopped by Ops.close() and at exit. The
jobs are safe to run in several workers at once (see services.retention).
"""
from __future__ import annotations

import atexit
import logging

from apscheduler.schedulers.background import BackgroundScheduler

from dashapp.services import ingest, redis_collector, retention

logger = logging.getLogger(__name__)

INGEST_SECONDS = 2


def start_scheduler(ops) -> BackgroundScheduler:
    settings = ops.settings
    scheduler = BackgroundScheduler(daemon=True, timezone="UTC",
                                    job_defaults={"coalesce": True, "max_instances": 1,
                                                  "misfire_grace_time": 300})

    def rollup():
        written = retention.rollup_requests(ops.store)
        written += retention.rollup_hours(ops.store)
        if written:
            logger.debug("rolled up %d request-minute rows", written)

    def purge():
        removed = retention.apply_retention(ops.store, settings.retention_days,
                                            settings.rollup_retention_days)
        if any(removed.values()):
            logger.info("retention removed %s", removed)

    def expand_batches():
        ingest.ingest(ops.store)

    def sample_redis():
        redis_collector.collect(ops.store, ops.redis_instances, settings.cache_prefix)

    scheduler.add_job(expand_batches, "interval", seconds=INGEST_SECONDS, id="ops_ingest",
                      name="Expand monitor() batches into request/query rows")
    scheduler.add_job(sample_redis, "interval", seconds=redis_collector.SAMPLE_SECONDS,
                      id="ops_redis_sample", name="Sample every watched Redis server")
    scheduler.add_job(rollup, "interval", seconds=60, id="ops_rollup",
                      name="Roll up request metrics per minute")
    scheduler.add_job(purge, "interval", minutes=10, id="ops_retention",
                      name="Purge rows past their retention")

    def scheduled_backups():
        from dashapp.services import backups
        backups.run_due_schedules(ops.store, settings)

    # Every minute; each due schedule is claimed in the store, so it runs
    # once however many console workers there are.
    scheduler.add_job(scheduled_backups, "interval", minutes=1, id="ops_backup_schedules",
                      name="Run due database backup schedules, then their retention")
    def evaluate_alerts():
        from dashapp.services import alerts
        alerts.evaluate(ops)

    scheduler.add_job(evaluate_alerts, "interval", seconds=settings.alert_interval,
                      id="ops_alerts", name="Evaluate alert rules, deliver webhooks")

    if settings.report_schedule:
        from apscheduler.triggers.cron import CronTrigger

        def scheduled_report():
            from dashapp.services import reports
            reports.write_scheduled(ops)

        scheduler.add_job(scheduled_report,
                          CronTrigger.from_crontab(settings.report_schedule, timezone="UTC"),
                          id="ops_report", name="Write the scheduled report")
    scheduler.start()
    atexit.register(lambda: scheduler.running and scheduler.shutdown(wait=False))
    return scheduler
