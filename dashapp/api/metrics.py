"""/api/metrics: per-endpoint throughput, latency percentiles and errors.

Thin: validate the query, call `dashapp.services.api_metrics` (the same
functions the API metrics page calls), jsonify. When the store cannot be
read the answer is 503 `store_unavailable` in the usual error shape.

An endpoint is named by its Flask URL rule (`/orders/<int:id>`), which holds
slashes and angle brackets, so its detail takes it as a query parameter:
`GET /api/metrics/endpoint?name=/orders/<int:id>` (URL-encode it). The path
form `GET /api/metrics/endpoint/orders/<int:id>` works too: the rule
without its leading slash (Werkzeug merges the double slash `//`).
"""
from __future__ import annotations

import logging
from typing import Literal

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError

from dashapp.api.common import (INPUT_ERRORS, SECURITY, ErrorBody, error, example,
                                tidy_docs)
from ops_agent.flask import NO_ROUTE
from dashapp.security.roles import requires
from dashapp.services import api_metrics as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_metrics", __name__, url_prefix="/api/metrics",
                  abp_tags=[Tag(name="metrics", description=(
                      "Requests per endpoint of the monitored applications: "
                      "throughput, exact latency percentiles, errors"))])

ERRORS = {**INPUT_ERRORS, 503: ErrorBody}
MINUTES = Field(60, ge=1, le=svc.MAX_MINUTES,
                description="Window: the last N minutes (1 to 43200 = 30 days)")
METHOD = Field(None, pattern=r"^[A-Za-z]{1,10}$",
               description="HTTP method; omitted: all methods together")


# ------------------------------------------------------------------ models

class WindowQuery(BaseModel):
    minutes: int = MINUTES


class EndpointQuery(BaseModel):
    name: str = Field(min_length=1, max_length=255,
                      description="The endpoint's URL rule, e.g. /orders/<int:id>")
    method: str | None = METHOD
    minutes: int = MINUTES
    slow_limit: int = Field(10, ge=1, le=100, description="How many slowest requests")


class EndpointDetailQuery(BaseModel):
    method: str | None = METHOD
    minutes: int = MINUTES
    slow_limit: int = Field(10, ge=1, le=100, description="How many slowest requests")


class EndpointPath(BaseModel):
    name: str = Field(min_length=1, max_length=255,
                      description="The URL rule without its leading slash")


class ErrorsQuery(BaseModel):
    minutes: int = MINUTES
    limit: int = Field(100, ge=1, le=1000)
    kind: Literal["all", "server", "client"] = Field(
        "all", description="all (>= 400), server (5xx) or client (4xx)")


class PerformanceQuery(BaseModel):
    minutes: int = MINUTES
    bucket: int | None = Field(
        None, ge=1, le=86400,
        description="Bucket in seconds; default: at most 300 points. "
                    "Must leave at most 1000 points")


class RequestPath(BaseModel):
    request_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")


class EndpointRow(BaseModel):
    endpoint: str = Field(description="The URL rule, or '<no route>' for 404s")
    method: str
    count: int
    errors: int = Field(description="5xx responses")
    client_errors: int = Field(description="4xx responses")
    error_rate: float = Field(description="errors / count (5xx only), 0 to 1")
    mean_ms: float
    p50_ms: float | None = Field(description="See `percentiles` in the response")
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float
    health: str = Field(description="ok, warn or error (from p95 and error rate)")


class EndpointsResponse(BaseModel):
    model_config = example({'endpoints': [{'client_errors': 2,
                                           'count': 44,
                                           'endpoint': '/products/<int:product_id>',
                                           'error_rate': 0.0,
                                           'errors': 0,
                                           'health': 'ok',
                                           'max_ms': 135.788,
                                           'mean_ms': 8.5754,
                                           'method': 'GET',
                                           'p50_ms': 2.0591,
                                           'p95_ms': 32.6241,
                                           'p99_ms': 96.4079}],
                            'minutes': 60,
                            'percentiles': 'exact'})
    endpoints: list[EndpointRow]
    minutes: int
    percentiles: Literal["exact", "histogram"] = Field(
        description="exact: from the raw rows (windows up to 60 minutes); "
                    "histogram: from the roll-ups, within ±9.5 % (longer windows)")


class _Figures(BaseModel):
    """Counts and latency percentiles of a set of requests."""
    count: int
    rps: float
    errors: int
    client_errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class SeriesPoint(_Figures):
    time: str = Field(description="Start of the bucket, ISO 8601 UTC")


class StatusCount(BaseModel):
    status: int
    count: int


class SlowRequest(BaseModel):
    request_id: str
    time: str
    method: str
    status: int
    duration_ms: float
    exception_type: str | None


class EndpointDetailResponse(BaseModel):
    model_config = example({'bucket_seconds': 60,
                            'client_errors': 2,
                            'count': 44,
                            'endpoint': '/products/<int:product_id>',
                            'error_rate': 0.0,
                            'errors': 0,
                            'max_ms': 135.788,
                            'mean_ms': 8.5754,
                            'method': 'GET',
                            'methods': ['GET'],
                            'minutes': 60,
                            'p50_ms': 2.0591,
                            'p95_ms': 32.6241,
                            'p99_ms': 96.4079,
                            'percentiles': 'exact',
                            'series': [{'client_errors': 0,
                                        'count': 0,
                                        'error_rate': 0.0,
                                        'errors': 0,
                                        'p50_ms': None,
                                        'p95_ms': None,
                                        'p99_ms': None,
                                        'rps': 0.0,
                                        'time': '2026-11-26T21:34:00+00:00'}],
                            'slowest': [{'duration_ms': 135.788,
                                         'exception_type': None,
                                         'method': 'GET',
                                         'request_id': '256b89b500000003',
                                         'status': 200,
                                         'time': '2026-11-26T22:33:59.249+00:00'}],
                            'status_codes': [{'count': 42, 'status': 200}]})
    endpoint: str
    method: str | None
    methods: list[str]
    minutes: int
    bucket_seconds: int
    count: int
    errors: int
    client_errors: int
    error_rate: float
    mean_ms: float | None
    max_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    percentiles: Literal["exact", "histogram"] = Field(
        description="exact: from the raw rows (windows up to 60 minutes); "
                    "histogram: from the roll-ups, within ±9.5 % (longer windows)")
    series: list[SeriesPoint]
    status_codes: list[StatusCount]
    slowest: list[SlowRequest]


class FailedRequest(BaseModel):
    time: str
    status: int
    method: str
    endpoint: str
    request_id: str
    duration_ms: float
    exception_type: str | None = Field(description="5xx only: what the host raised")
    exception_message: str | None


class ErrorsResponse(BaseModel):
    model_config = example({'errors': [{'duration_ms': 0.8769,
                                        'endpoint': '/flaky',
                                        'exception_message': 'payment gateway timed out after 2000 ms',
                                        'exception_type': 'RuntimeError',
                                        'method': 'GET',
                                        'request_id': '256b89b500000086',
                                        'status': 500,
                                        'time': '2026-11-26T22:34:42.539+00:00'}],
                            'minutes': 60})
    errors: list[FailedRequest]
    minutes: int


class PerformanceResponse(_Figures):
    model_config = example({'bucket_seconds': 60,
                            'client_errors': 8,
                            'count': 143,
                            'error_rate': 0.021,
                            'errors': 3,
                            'minutes': 60,
                            'p50_ms': 2.7393,
                            'p95_ms': 45.6911,
                            'p99_ms': 421.0001,
                            'percentiles': 'exact',
                            'rps': 0.0397,
                            'series': [{'client_errors': 0,
                                        'count': 0,
                                        'error_rate': 0.0,
                                        'errors': 0,
                                        'p50_ms': None,
                                        'p95_ms': None,
                                        'p99_ms': None,
                                        'rps': 0.0,
                                        'time': '2026-11-26T21:34:00+00:00'}]})
    minutes: int
    bucket_seconds: int
    percentiles: Literal["exact", "histogram"] = Field(
        description="exact: from the raw rows (windows up to 60 minutes); "
                    "histogram: from the roll-ups, within ±9.5 % (longer windows)")
    series: list[SeriesPoint]


class QueryItem(BaseModel):
    position: int
    time: str
    fingerprint: str
    sql: str = Field(description="Parameters redacted")
    duration_ms: float
    rows: int | None
    error_type: str | None = Field(None, description="The exception's class when the "
                                                     "statement raised")


class RequestSqlResponse(BaseModel):
    model_config = example({'count': 1,
                            'queries': [{'duration_ms': 0.0762,
                                         'fingerprint': '67d6a186c3913754',
                                         'position': 1,
                                         'rows': None,
                                         'sql': 'SELECT products.id, products.sku, products.name, '
                                                'products.description, products.category, '
                                                'products.price_cents, products.stock, '
                                                'products.created_at FROM prod...',
                                         'time': '2026-11-26T22:34:45.487+00:00'}],
                            'request': {'duration_ms': 2.3809,
                                        'endpoint': '/products',
                                        'exception_type': None,
                                        'method': 'GET',
                                        'status': 200,
                                        'time': '2026-11-26T22:34:45.488+00:00'},
                            'request_id': '256b89b50000008f',
                            'total_ms': 0.0762})
    request_id: str
    request: dict | None = Field(description="endpoint, method, status, time, duration_ms")
    queries: list[QueryItem]
    count: int
    total_ms: float


# ----------------------------------------------------------------- helpers

def _store():
    return current_app.extensions["ops"].store


def _call(func, *args, **kwargs):
    """Run a service call; (result, None) or (None, an error response)."""
    try:
        return func(_store(), *args, **kwargs), None
    except DBAPIError as exc:
        from dashapp.store import _short_error
        logger.warning("metrics: store unavailable: %s", _short_error(exc))
        return None, error(503, "store_unavailable",
                           "The console's store cannot be read right now: "
                           + _short_error(exc))
    except ValueError as exc:
        return None, error(400, "invalid_request", str(exc))


def _detail(name: str, method: str | None, minutes: int, slow_limit: int):
    detail, failure = _call(svc.endpoint_detail, name, method, minutes,
                            slow_limit=slow_limit)
    if failure is not None:
        return failure
    if detail is None:
        return error(404, "not_found", f"No request has been recorded for endpoint {name!r}.")
    return detail


# ------------------------------------------------------------------ routes

@bp.get("/endpoints", responses={200: EndpointsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
def endpoints(query: WindowQuery):
    """Every endpoint seen in the window: counts, 5xx/4xx, p50/p95/p99.

    Up to 60 minutes the percentiles are exact (raw rows); longer windows
    are answered from the per-minute and hourly roll-ups, with percentiles
    from latency histograms within ±9.5 % (`percentiles` says which).
    """
    df, failure = _call(svc.endpoint_summary, query.minutes)
    if failure is not None:
        return failure
    return {"endpoints": svc.summary_records(df), "minutes": query.minutes,
            "percentiles": df.attrs.get("percentiles", "exact")}


@bp.get("/endpoint", responses={200: EndpointDetailResponse, 404: ErrorBody, **ERRORS},
        security=SECURITY)
@requires("viewer")
def endpoint(query: EndpointQuery):
    """One endpoint: per-bucket series, status codes, its slowest requests.

    `name` is the URL rule (`/orders/<int:id>`); URL-encode it.
    """
    return _detail(query.name, query.method, query.minutes, query.slow_limit)


@bp.get("/endpoint/<path:name>",
        responses={200: EndpointDetailResponse, 404: ErrorBody, **ERRORS},
        security=SECURITY)
@requires("viewer")
def endpoint_by_path(path: EndpointPath, query: EndpointDetailQuery):
    """The same as /endpoint?name=, with the rule in the path (no leading slash)."""
    name = path.name
    if name != NO_ROUTE and not name.startswith("/"):
        name = "/" + name
    return _detail(name, query.method, query.minutes, query.slow_limit)


@bp.get("/errors", responses={200: ErrorsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
def errors(query: ErrorsQuery):
    """Recent failed requests, newest first; 5xx ones with the exception."""
    df, failure = _call(svc.recent_errors, query.minutes, query.limit, kind=query.kind)
    if failure is not None:
        return failure
    return {"errors": svc.summary_records(df), "minutes": query.minutes}


@bp.get("/performance", responses={200: PerformanceResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
def performance(query: PerformanceQuery):
    """All endpoints together: throughput, p50/p95/p99 and error rate over time."""
    data, failure = _call(svc.performance, query.minutes, query.bucket)
    return failure if failure is not None else data


@bp.get("/request/<request_id>/sql", responses={200: RequestSqlResponse, **ERRORS},
        security=SECURITY)
@requires("viewer")
def request_sql(path: RequestPath):
    """The SQL one request ran (same request id), in order, with durations."""
    data, failure = _call(svc.requests_sql, path.request_id)
    return failure if failure is not None else data


tidy_docs(bp)
