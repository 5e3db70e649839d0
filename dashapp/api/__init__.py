"""REST blueprints under /api, one per capability; thin: validate, call, jsonify.

Each module issue appends its blueprint here.
"""
from dashapp.api import (audit, auth, backup, cache, config, health, jobs, metrics,
                         modules, overview, queries, redis)

BLUEPRINTS = [health.bp, auth.bp, audit.bp, overview.bp, modules.bp, metrics.bp,
              queries.bp, cache.bp, redis.bp, jobs.bp, backup.bp, config.bp]
