"""/api/queries: the query analyzer (issue 3). Thin: validate, call
dashapp.services.queries, jsonify. EXPLAIN runs on the monitored database."""
from __future__ import annotations

import logging
from functools import wraps

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import AUTH_ERRORS, INPUT_ERRORS, SECURITY, ErrorBody, error
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
    query_id: int = Field(ge=1)


class ExplainBody(BaseModel):
    sql: str = Field(min_length=1, max_length=MAX_SQL_LENGTH,
                     description="One read-only SELECT (or WITH ... SELECT)")
    analyze: bool = Field(False, description="EXPLAIN ANALYZE (admin only; runs the "
                                             "statement in a rolled-back read-only "
                                             "transaction)")


class QueryList(BaseModel):
    queries: list[dict]


class StatsResponse(BaseModel):
    minutes: float
    stats: list[dict]


class IssuesResponse(BaseModel):
    minutes: float
    n_plus_one: list[dict]
    duplicates: list[dict]
    definitions: dict


class PlanResponse(BaseModel):
    dialect: str
    sql: str
    analyze: bool
    plan: list[dict]
    expensive: list[str]


class DetailResponse(BaseModel):
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


@bp.get("/stats", responses={200: StatsResponse, **INPUT_ERRORS, **UNAVAILABLE},
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


@bp.get("/<int:query_id>", responses={200: DetailResponse, 404: ErrorBody, **AUTH_ERRORS,
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
        try:
            result = svc.explain(engine, body.sql, analyze=True)
        except Exception as exc:
            audit.record(ops.store, actor=me.username, action="explain_analyze",
                         outcome="failure",
                         details={"sql": body.sql[:500], "error": str(exc)[:300]})
            raise
        audit.record(ops.store, actor=me.username, action="explain_analyze",
                     outcome="success", target=engine.url.get_backend_name(),
                     details={"sql": body.sql[:500], "execution_ms": result.get("execution_ms")})
    result.pop("raw", None)
    try:
        result["suggestions"] = svc.suggest(engine, result["sql"], result)
    except Exception:  # noqa: BLE001 - the plan is the answer; suggestions are extra
        logger.exception("suggestions failed")
        result["suggestions"] = []
    return result


@bp.get("/optimize/<int:query_id>", responses={200: OptimizeResponse, 404: ErrorBody,
                                                409: ErrorBody, **AUTH_ERRORS,
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
