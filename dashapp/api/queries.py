"""/api/queries: the query analyzer (issue 3). Thin: validate, call
dashapp.services.queries, jsonify. EXPLAIN runs on the monitored database."""
from __future__ import annotations

import logging
from functools import wraps

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, MAX_BIG_ID, SECURITY, ErrorBody, error,
                                example, tidy_docs)
from dashapp.security import audit
from dashapp.security.auth import current_principal
from dashapp.security.roles import requires
from dashapp.services import queries as svc
from dashapp.services.explain import MAX_SQL_LENGTH

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_queries", __name__, url_prefix="/api/queries",
                  abp_tags=[Tag(name="queries", description="SQL the monitored application "
                                                            "runs: slow, frequent, plans, "
                                                            "suggestions")])

UNAVAILABLE = {503: ErrorBody}


class WindowQuery(BaseModel):
    minutes: float = Field(60, ge=1, le=svc.MAX_MINUTES, description="Time window, minutes")
    limit: int = Field(100, ge=1, le=1000)


class SlowQuery(WindowQuery):
    threshold_ms: float | None = Field(None, gt=0, description="Default: OPS_SLOW_QUERY_MS")


class StatsQuery(BaseModel):
    minutes: float = Field(60, ge=1, le=svc.MAX_MINUTES)


class QueryPath(BaseModel):
    query_id: int = Field(ge=1, le=MAX_BIG_ID, description="A captured query's id")


class ExplainBody(BaseModel):
    model_config = example({'sql': 'SELECT id, name FROM products WHERE price_cents > 1000',
                            'analyze': False})
    sql: str = Field(min_length=1, max_length=MAX_SQL_LENGTH,
                     description="One read-only SELECT (or WITH ... SELECT)")
    analyze: bool = Field(False, description="EXPLAIN ANALYZE (admin only; runs the "
                                             "statement in a rolled-back read-only "
                                             "transaction)")


class QueryList(BaseModel):
    model_config = example({'queries': [{'duration_ms': 0.076,
                                         'endpoint': '/products',
                                         'fingerprint': '67d6a186c3913754',
                                         'id': 308,
                                         'process': 'vm:22070',
                                         'request_id': '256b89b50000008f',
                                         'rows': None,
                                         'sql': 'SELECT products.id, products.sku, products.name, '
                                                'products.description, products.category, '
                                                'products.price_cents, products.stock, '
                                                'products.created_at FROM prod...',
                                         'time': '2026-11-26T22:34:45.487383+00:00'}]})
    queries: list[dict]


class QueryStatsResponse(BaseModel):
    model_config = example({'minutes': 60,
                            'slow_query_ms': 100.0,
                            'stats': [{'calls': 2,
                                       'endpoints': 0,
                                       'fingerprint': '241f8e8389f88695',
                                       'last_id': 222,
                                       'max_ms': 241.174,
                                       'mean_ms': 122.46,
                                       'p95_ms': 229.303,
                                       'rows': None,
                                       'sql': 'SELECT products.id FROM products JOIN order_items ON '
                                              'order_items.product_id = products.id GROUP BY products.id '
                                              'ORDER BY sum(order_items.quantity) DESC LIMIT ...',
                                       'total_ms': 244.919}]})
    minutes: float
    stats: list[dict]


class IssuesResponse(BaseModel):
    model_config = example({'definitions': {'duplicates': 'the same fingerprint run 2 to 9 times within '
                                                          'one request (values are redacted, so: same '
                                                          'statement shape)',
                                            'n_plus_one': 'the same fingerprint run at least 10 times '
                                                          'within one request'},
                            'duplicates': [{'endpoint': '/customers/<int:customer_id>/orders',
                                            'example_request_id': '256b89b50000007e',
                                            'extra_queries': 37,
                                            'fingerprint': '12e0d71309a4f151',
                                            'max_per_request': 7,
                                            'median_per_request': 3.5,
                                            'query_id': 296,
                                            'requests': 12,
                                            'sql': 'SELECT order_items.id, order_items.order_id, '
                                                   'order_items.product_id, order_items.quantity, '
                                                   'order_items.unit_price_cents FROM order_items WHERE ? '
                                                   '= order_item...'}],
                            'minutes': 60,
                            'n_plus_one': []})
    minutes: float
    n_plus_one: list[dict]
    duplicates: list[dict]
    definitions: dict


class PlanResponse(BaseModel):
    model_config = example({'analyze': False,
                            'dialect': 'sqlite',
                            'elapsed_ms': 0.12,
                            'execution_ms': None,
                            'expensive': ['SCAN products: full scan of products: every row is read'],
                            'plan': [{'children': [],
                                      'cost': None,
                                      'detail': {},
                                      'expensive': True,
                                      'full_scan': True,
                                      'index': None,
                                      'label': 'SCAN products',
                                      'node_type': 'SCAN',
                                      'reasons': ['full scan of products: every row is read'],
                                      'relation': 'products',
                                      'rows': None}],
                            'planning_ms': None,
                            'rows': None,
                            'sql': 'SELECT id, name FROM products WHERE price_cents > 1000',
                            'substituted': None,
                            'suggestions': [{'evidence': {'column': 'price_cents',
                                                          'existing_indexes_lead_with': ['category'],
                                                          'plan_node': 'SCAN products',
                                                          'table': 'products'},
                                             'kind': 'missing_index',
                                             'message': 'Add an index on products.price_cents',
                                             'sql': 'CREATE INDEX ix_products_price_cents ON products '
                                                    '(price_cents);',
                                             'why': 'The plan reads every row of products to filter or '
                                                    'join on price_cents; an index lets the database go '
                                                    'straight to the matching rows.'}],
                            'total_cost': None})
    dialect: str
    sql: str
    analyze: bool
    plan: list[dict]
    expensive: list[str]


class DetailResponse(BaseModel):
    model_config = example({'duration_ms': 0.076,
                            'endpoint': '/products',
                            'fingerprint': '67d6a186c3913754',
                            'fingerprint_stats': {'calls': 20,
                                                  'max_ms': 11.057,
                                                  'mean_ms': 1.243,
                                                  'minutes': 1440,
                                                  'p95_ms': 7.168},
                            'id': 308,
                            'process': 'vm:22070',
                            'request_id': '256b89b50000008f',
                            'requests': [{'endpoint': '/products',
                                          'method': 'GET',
                                          'query_ms': 0.076,
                                          'request_id': '256b89b50000008f',
                                          'request_ms': 2.381,
                                          'status': 200,
                                          'time': '2026-11-26T22:34:45.487383+00:00',
                                          'times_run': 1}],
                            'rows': None,
                            'sql': 'SELECT products.id, products.sku, products.name, '
                                   'products.description, products.category, products.price_cents, '
                                   'products.stock, products.created_at FROM prod...',
                            'time': '2026-11-26T22:34:45.487383+00:00'})
    id: int
    time: str | None
    fingerprint: str
    sql: str
    duration_ms: float
    rows: int | None
    request_id: str | None
    endpoint: str | None
    fingerprint_stats: dict
    requests: list[dict]


class OptimizeResponse(BaseModel):
    model_config = example({'plan': {'analyze': False,
                                     'dialect': 'sqlite',
                                     'elapsed_ms': 4.33,
                                     'execution_ms': None,
                                     'expensive': [],
                                     'plan': [{'children': [],
                                               'cost': None,
                                               'detail': {},
                                               'expensive': False,
                                               'full_scan': False,
                                               'index': 'ix_products_category',
                                               'label': 'SEARCH products USING INDEX ix_products_category '
                                                        '(category=?)',
                                               'node_type': 'SEARCH',
                                               'reasons': [],
                                               'relation': 'products',
                                               'rows': None}],
                                     'planning_ms': None,
                                     'rows': None,
                                     'sql': 'SELECT products.id, products.sku, products.name, '
                                            'products.description, products.category, '
                                            'products.price_cents, products.stock, products.created_at '
                                            'FROM prod...',
                                     'substituted': 'placeholders replaced by NULL',
                                     'total_cost': None},
                            'plan_error': None,
                            'query': {'duration_ms': 0.076,
                                      'endpoint': '/products',
                                      'fingerprint': '67d6a186c3913754',
                                      'id': 308,
                                      'process': 'vm:22070',
                                      'request_id': '256b89b50000008f',
                                      'rows': None,
                                      'sql': 'SELECT products.id, products.sku, products.name, '
                                             'products.description, products.category, '
                                             'products.price_cents, products.stock, products.created_at '
                                             'FROM prod...',
                                      'time': '2026-11-26T22:34:45.487383+00:00'},
                            'suggestions': []})
    query: dict
    plan: dict | None
    plan_error: str | None
    suggestions: list[dict]


def _ops():
    return current_app.extensions["ops"]


def _guarded(func):
    """Store/monitored-DB failures become the API's error shape."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except svc.NotFound as exc:
            return error(404, "not_found", str(exc))
        except svc.UnsafeSQL as exc:
            return error(400, "unsafe_sql", f"Refused: {exc}.")
        except svc.ExplainError as exc:
            return error(400, "explain_failed", str(exc))
        except svc.NoMonitoredDatabase as exc:
            return error(409, "no_monitored_database", str(exc))
        except svc.DatabaseUnavailable as exc:
            return error(503, "monitored_database_unavailable", str(exc))
        except SQLAlchemyError as exc:
            logger.warning("queries API: store unavailable: %s", str(exc).splitlines()[0])
            return error(503, "store_unavailable",
                         "The console's store is unavailable; try again shortly.")
    return wrapper


@bp.get("/recent", responses={200: QueryList, **INPUT_ERRORS, **UNAVAILABLE},
        security=SECURITY)
@requires("viewer")
@_guarded
def get_recent(query: WindowQuery):
    """The latest statements, newest first (SQL with values redacted)."""
    return {"queries": svc.recent(_ops().store, query.limit, query.minutes)}


@bp.get("/slow", responses={200: QueryList, **INPUT_ERRORS, **UNAVAILABLE},
        security=SECURITY)
@requires("viewer")
@_guarded
def get_slow(query: SlowQuery):
    """Statements at least `threshold_ms` slow (default OPS_SLOW_QUERY_MS), slowest first."""
    threshold = query.threshold_ms or _ops().settings.slow_query_ms
    return {"threshold_ms": threshold,
            "queries": svc.slow(_ops().store, threshold, query.minutes, query.limit)}


@bp.get("/stats", responses={200: QueryStatsResponse, **INPUT_ERRORS, **UNAVAILABLE},
        security=SECURITY)
@requires("viewer")
@_guarded
def get_stats(query: StatsQuery):
    """Per fingerprint: calls, total/mean/p95 (exact)/max ms and rows, by total time."""
    return {"minutes": query.minutes, "slow_query_ms": _ops().settings.slow_query_ms,
            "stats": svc.stats(_ops().store, query.minutes)}


@bp.get("/issues", responses={200: IssuesResponse, **INPUT_ERRORS, **UNAVAILABLE},
        security=SECURITY)
@requires("viewer")
@_guarded
def get_issues(query: StatsQuery):
    """N+1 and duplicate-query findings per endpoint."""
    return {"minutes": query.minutes, **svc.issues(_ops().store, query.minutes)}


@bp.get("/<int:query_id>", responses={200: DetailResponse, 404: ErrorBody, **INPUT_ERRORS,
                                      **UNAVAILABLE}, security=SECURITY)
@requires("viewer")
@_guarded
def get_detail(path: QueryPath):
    """One stored statement and the requests that ran it."""
    return svc.query_detail(_ops().store, path.query_id)


@bp.post("/explain", responses={200: PlanResponse, 409: ErrorBody, **INPUT_ERRORS,
                                **UNAVAILABLE}, security=SECURITY)
@requires("viewer")
@_guarded
def post_explain(body: ExplainBody):
    """EXPLAIN one read-only SELECT on the monitored database; `analyze` is admin-only.

    Several statements, DDL, DML, locking clauses and side-effect functions
    are refused with 400 `unsafe_sql`, naming why.
    """
    ops = _ops()
    me = current_principal()
    if body.analyze and me.role != "admin":
        audit.record(ops.store, actor=me.username, action="explain_analyze",
                     outcome="denied", details={"sql": body.sql[:500]})
        return error(403, "forbidden", "EXPLAIN ANALYZE runs the statement: admins only.")
    engine = svc.engine_for(ops.settings)
    if not body.analyze:
        result = svc.explain(engine, body.sql)
    else:
        # ANALYZE runs the statement: audited before it runs, or not run.
        with audit.audited(ops.store, actor=me.username, action="explain_analyze",
                           target=engine.url.get_backend_name(),
                           details={"sql": body.sql[:500]}) as info:
            result = svc.explain(engine, body.sql, analyze=True)
            info["execution_ms"] = result.get("execution_ms")
    result.pop("raw", None)
    try:
        result["suggestions"] = svc.suggest(engine, result["sql"], result)
    except Exception:  # noqa: BLE001 - the plan is the answer; suggestions are extra
        logger.exception("suggestions failed")
        result["suggestions"] = []
    return result


@bp.get("/optimize/<int:query_id>", responses={200: OptimizeResponse, 404: ErrorBody,
                                                409: ErrorBody, **INPUT_ERRORS,
                                                **UNAVAILABLE}, security=SECURITY)
@requires("viewer")
@_guarded
def get_optimize(path: QueryPath):
    """Suggestions for a stored statement: each with kind, message, why, evidence, sql."""
    ops = _ops()
    result = svc.optimize(ops.store, svc.engine_for(ops.settings), path.query_id)
    if result["plan"]:
        result["plan"].pop("raw", None)
    return result


tidy_docs(bp)
