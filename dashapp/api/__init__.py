"""REST blueprints under /api, one per capability; thin: validate, call, jsonify.

Each module issue appends its blueprint here.
"""
from dashapp.api import (alerts, audit, auth, backup, cache, config, health, jobs, logs,
                         metrics, ml, modules, overview, profiler, queries, redis,
                         reports, users)
from dashapp.ingest import api as ingest_api

BLUEPRINTS = [health.bp, auth.bp, audit.bp, overview.bp, modules.bp, metrics.bp,
              queries.bp, cache.bp, redis.bp, jobs.bp, backup.bp, config.bp,
               ml.bp, logs.bp, profiler.bp, users.bp, alerts.bp, reports.bp,
               ingest_api.bp]
