"""REST blueprints under /api, one per capability; thin: validate, call, jsonify.

Each module issue appends its blueprint here.
"""
from dashapp.api import (audit, auth, cache, health, metrics, modules, overview,
                         queries, redis)

BLUEPRINTS = [health.bp, auth.bp, audit.bp, overview.bp, modules.bp, metrics.bp,
              queries.bp, cache.bp, redis.bp]
