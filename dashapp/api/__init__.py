"""REST blueprints under /api, one per capability; thin: validate, call, jsonify.

Each module issue appends its blueprint here.
"""
from dashapp.api import audit, auth, health, metrics, modules, overview, queries

BLUEPRINTS = [health.bp, auth.bp, audit.bp, overview.bp, modules.bp, metrics.bp,
              queries.bp]
