"""/api/alerts: alert rules, firing/resolved alerts and webhook deliveries.

Thin: validate, call dashapp.services.alerts (the same functions the Alerts
page calls), jsonify. Viewers read rules, alerts and deliveries; admins
create, change and delete rules, evaluate now and test a webhook. Every
change is audited by the service. Webhook URLs are only ever returned
masked (no user:password, no query string); PATCH with the masked URL
keeps the stored one.
"""
from __future__ import annotations

import logging
from typing import Literal

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, MAX_ID, SECURITY, ErrorBody, current_actor,
                                error, example, guarded, store_unavailable, tidy_docs)
from dashapp.security.roles import requires
from dashapp.services import alerts as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_alerts", __name__, url_prefix="/api/alerts",
                  abp_tags=[Tag(name="alerts", description="Alert rules, firing/resolved alerts and webhook deliveries")])

ERRORS = {**INPUT_ERRORS, 404: ErrorBody, 503: ErrorBody}
CHANGE_ERRORS = {**ERRORS, 409: ErrorBody}

KindName = Literal["endpoint_p95", "endpoint_error_rate", "slow_queries", "cache_hit_rate",
                   "redis_memory", "redis_evictions", "failed_jobs", "backup_age",
                   "model_accuracy", "model_drift"]
Comparison = Literal[">", ">=", "<", "<="]
Severity = Literal["info", "warning", "critical"]
assert set(KindName.__args__) == set(svc.KINDS)  # noqa: S101 - one list of kinds


# ------------------------------------------------------------------ models

RULE_EXAMPLE = {
    "id": 3, "name": "Checkout slow", "kind": "endpoint_p95",
    "kind_label": "Endpoint p95 latency", "target": "/checkout", "comparison": ">",
    "threshold": 800.0, "unit": "ms", "for_minutes": 5, "window_minutes": 5,
    "severity": "critical", "enabled": True,
    "webhook_url": "https://***@hooks.example.com/services/T1?***", "has_webhook": True,
    "condition": "Endpoint p95 latency of /checkout above 800 ms for 5 min",
    "state": "firing", "pending_since": "2026-11-26T22:10:00+00:00", "current_event_id": 12,
    "last_value": 1299.5, "last_value_text": "1,300 ms",
    "last_evaluated_at": "2026-11-26T22:16:00+00:00",
    "last_message": "p95 of POST /checkout: 1300 ms over 41 requests in the last 5 min.",
    "created_by": "admin", "created_at": "2026-11-26T21:00:00+00:00",
    "updated_by": "admin", "updated_at": "2026-11-26T21:00:00+00:00"}
EVENT_EXAMPLE = {
    "id": 12, "rule_id": 3, "rule_name": "Checkout slow", "kind": "endpoint_p95",
    "kind_label": "Endpoint p95 latency", "target": "/checkout", "severity": "critical",
    "comparison": ">", "threshold": 800.0, "unit": "ms", "state": "firing", "value": 1299.5,
    "value_text": "1,300 ms", "resolved_value": None,
    "started_at": "2026-11-26T22:15:00+00:00", "resolved_at": None, "duration_s": 60,
    "message": "p95 of POST /checkout: 1300 ms over 41 requests in the last 5 min.",
    "delivery": "delivered"}
KIND_EXAMPLE = {"kind": "endpoint_p95", "label": "Endpoint p95 latency", "unit": "ms",
                "target_label": "Endpoint path (blank: the slowest endpoint)",
                "target_required": False, "comparison": ">", "threshold": 800.0,
                "help": "95th percentile response time over the window."}
DELIVERY_EXAMPLE = {
    "id": 31, "event_id": 12, "rule_id": 3, "rule_name": "Checkout slow", "state": "firing",
    "url": "https://***@hooks.example.com/services/T1?***", "attempt": 2,
    "time": "2026-11-26T22:15:02+00:00", "duration_ms": 84.2, "status_code": 200,
    "error": None, "outcome": "delivered"}

class RuleCreate(BaseModel):
    model_config = example({"name": "Checkout slow", "kind": "endpoint_p95",
                            "target": "/checkout", "comparison": ">", "threshold": 800,
                            "for_minutes": 5, "window_minutes": 5, "severity": "critical",
                            "webhook_url": "https://hooks.example.com/services/T1"},
                           extra="forbid")
    name: str = Field(min_length=1, max_length=svc.MAX_NAME, description="Unique name")
    kind: KindName = Field(description="What is measured (GET /api/alerts/kinds)")
    target: str = Field("", max_length=svc.MAX_TARGET, description=(
        "Endpoint path, cache namespace, Redis instance, job id, backup target or model "
        "name, per kind; blank means all (required for model kinds)"))
    comparison: Comparison | None = Field(None, description="Default: the kind's usual one")
    threshold: float = Field(allow_inf_nan=False, ge=-1e15, le=1e15,
                             description="In the kind's unit (ms, %, MB, h, ...)")
    for_minutes: int = Field(5, ge=0, le=svc.MAX_FOR_MINUTES, description=(
        "How long the figure must stay past the threshold before the alert fires"))
    window_minutes: int = Field(5, ge=1, le=svc.MAX_WINDOW_MINUTES,
                                description="Window the figure is measured over")
    severity: Severity = "warning"
    enabled: bool = True
    webhook_url: str | None = Field(None, max_length=svc.MAX_URL, description=(
        "http(s) URL that receives a JSON POST when the alert fires and resolves"))


class RuleUpdate(BaseModel):
    model_config = example({"threshold": 950, "enabled": False}, extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=svc.MAX_NAME)
    kind: KindName | None = None
    target: str | None = Field(None, max_length=svc.MAX_TARGET)
    comparison: Comparison | None = None
    threshold: float | None = Field(None, allow_inf_nan=False, ge=-1e15, le=1e15)
    for_minutes: int | None = Field(None, ge=0, le=svc.MAX_FOR_MINUTES)
    window_minutes: int | None = Field(None, ge=1, le=svc.MAX_WINDOW_MINUTES)
    severity: Severity | None = None
    enabled: bool | None = None
    webhook_url: str | None = Field(None, max_length=svc.MAX_URL, description=(
        "New URL; the masked URL as returned keeps the stored one; \"\" removes it"))


class RulePath(BaseModel):
    rule_id: int = Field(ge=1, le=MAX_ID, description="An alert rule's id")


class EventsQuery(BaseModel):
    state: Literal["firing", "resolved"] | None = Field(None, description="Only these")
    rule_id: int | None = Field(None, ge=1, le=MAX_ID, description="Only this rule's")
    limit: int = Field(100, ge=1, le=1000)


class DeliveriesQuery(BaseModel):
    event_id: int | None = Field(None, ge=1, le=MAX_ID, description="Only this alert's")
    rule_id: int | None = Field(None, ge=1, le=MAX_ID, description="Only this rule's")
    limit: int = Field(100, ge=1, le=1000)


class Rule(BaseModel):
    model_config = example(RULE_EXAMPLE)
    id: int
    name: str
    kind: str
    kind_label: str
    target: str
    comparison: str
    threshold: float
    unit: str
    for_minutes: int
    window_minutes: int
    severity: str
    enabled: bool
    webhook_url: str | None = Field(description="Masked: no credentials, no query string")
    has_webhook: bool
    condition: str = Field(description="The rule in words")
    state: str = Field(description="ok, pending, firing or disabled")
    pending_since: str | None
    current_event_id: int | None
    last_value: float | None
    last_value_text: str
    last_evaluated_at: str | None
    last_message: str | None
    created_by: str
    created_at: str | None
    updated_by: str
    updated_at: str | None


class KindInfo(BaseModel):
    model_config = example(KIND_EXAMPLE)
    kind: str
    label: str
    unit: str
    target_label: str
    target_required: bool
    comparison: str
    threshold: float
    help: str


class RulesResponse(BaseModel):
    model_config = example({"rules": [RULE_EXAMPLE]})
    rules: list[Rule]


class KindsResponse(BaseModel):
    model_config = example({"kinds": [KIND_EXAMPLE]})
    kinds: list[KindInfo]


class Event(BaseModel):
    model_config = example(EVENT_EXAMPLE)
    id: int
    rule_id: int | None = Field(description="None once the rule was deleted")
    rule_name: str
    kind: str
    kind_label: str
    target: str
    severity: str
    comparison: str
    threshold: float
    unit: str
    state: str = Field(description="firing or resolved")
    value: float | None = Field(description="The figure when it fired")
    value_text: str
    resolved_value: float | None
    started_at: str | None
    resolved_at: str | None
    duration_s: int
    message: str
    delivery: str | None = Field(description="Latest webhook outcome: delivered, retry, failed")


class EventsResponse(BaseModel):
    model_config = example({"events": [EVENT_EXAMPLE]})
    events: list[Event]


class Delivery(BaseModel):
    model_config = example(DELIVERY_EXAMPLE)
    id: int
    event_id: int | None
    rule_id: int | None
    rule_name: str
    state: str = Field(description="firing, resolved or test")
    url: str = Field(description="Masked")
    attempt: int
    time: str | None
    duration_ms: float | None
    status_code: int | None
    error: str | None
    outcome: str = Field(description="delivered, retry (another attempt follows) or failed")


class DeliveriesResponse(BaseModel):
    model_config = example({"deliveries": [DELIVERY_EXAMPLE]})
    deliveries: list[Delivery]


class DeliveryResult(BaseModel):
    model_config = example({"outcome": "failed", "attempts": 3, "status_code": 503,
                            "error": "HTTP 503"})
    outcome: str
    attempts: int
    status_code: int | None
    error: str | None


class RuleResult(BaseModel):
    id: int
    name: str
    value: float | None
    message: str
    breaching: bool


class EvaluateResponse(BaseModel):
    model_config = example({"claimed": True, "evaluated": 2, "fired": [12], "resolved": [],
                            "rules": [{"id": 3, "name": "Checkout slow", "value": 1299.5,
                                       "message": "p95 of POST /checkout: 1300 ms over 41 "
                                                  "requests in the last 5 min.",
                                       "breaching": True}]})
    claimed: bool
    evaluated: int
    fired: list[int] = Field(description="Events opened by this evaluation")
    resolved: list[int] = Field(description="Events closed by this evaluation")
    rules: list[RuleResult]


class DeletedResponse(BaseModel):
    model_config = example({"deleted": 3, "name": "Checkout slow"})
    deleted: int
    name: str


# ----------------------------------------------------------------- helpers

def _ops():
    return current_app.extensions["ops"]


def _failure(exc: Exception):
    if isinstance(exc, svc.InvalidRule):
        return error(400, "invalid_request", str(exc),
                     fields=[{"field": exc.field, "message": str(exc).split(": ", 1)[-1]}])
    if isinstance(exc, svc.AlertError):
        return error(exc.status, exc.code, str(exc))
    return store_unavailable(exc, "alerts API")


_guarded = guarded((svc.AlertError, SQLAlchemyError), _failure)


def kinds() -> list[dict]:
    return [{"kind": k.key, "label": k.label, "unit": k.unit, "target_label": k.target_label,
             "target_required": k.target_required, "comparison": k.comparison,
             "threshold": k.threshold, "help": k.help} for k in svc.KINDS.values()]


# ------------------------------------------------------------------ routes

@bp.get("", responses={200: EventsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def events(query: EventsQuery):
    """Alerts, newest first: `?state=firing` for what fires now,
    `?state=resolved` for the history (newest resolution first)."""
    return {"events": svc.list_events(_ops().store, state=query.state, rule_id=query.rule_id,
                                      limit=query.limit)}


@bp.get("/kinds", responses={200: KindsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
def rule_kinds():
    """What a rule can measure: unit, what its target names, the usual
    comparison and a default threshold."""
    return {"kinds": kinds()}


@bp.get("/rules", responses={200: RulesResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def rules():
    """Every rule with its state (ok, pending, firing, disabled) and the
    figure of its last evaluation."""
    return {"rules": svc.list_rules(_ops().store)}


@bp.post("/rules", responses={201: Rule, **CHANGE_ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def create_rule(body: RuleCreate):
    """Create a rule. Admin; audited. 409 `duplicate_name` when the name is
    taken; 400 naming the field for bad input (e.g. a non-http(s) webhook)."""
    data = body.model_dump(exclude_none=True)
    return svc.create_rule(_ops().store, data, actor=current_actor()), 201


@bp.get("/rules/<int:rule_id>", responses={200: Rule, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def get_rule(path: RulePath):
    """One rule."""
    return svc.get_rule(_ops().store, path.rule_id)


@bp.patch("/rules/<int:rule_id>", responses={200: Rule, **CHANGE_ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def update_rule(path: RulePath, body: RuleUpdate):
    """Change some fields (e.g. `{"enabled": false}`). Disabling a firing
    rule resolves its alert. Admin; audited."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("webhook_url") is None and "webhook_url" in changes:
        changes["webhook_url"] = ""
    for field in ("name", "kind", "comparison", "threshold", "for_minutes",
                  "window_minutes", "severity", "enabled"):
        if field in changes and changes[field] is None:
            return error(400, "invalid_request", f"{field}: may not be null",
                         fields=[{"field": field, "message": "may not be null"}])
    return svc.update_rule(_ops().store, path.rule_id, changes, actor=current_actor())


@bp.delete("/rules/<int:rule_id>", responses={200: DeletedResponse, **CHANGE_ERRORS},
           security=SECURITY)
@requires("admin")
@_guarded
def delete_rule(path: RulePath):
    """Delete a rule; its alerts stay in the history (an open one is
    resolved). Admin; audited."""
    return svc.delete_rule(_ops().store, path.rule_id, actor=current_actor())


@bp.post("/rules/<int:rule_id>/test-webhook", responses={200: DeliveryResult, **CHANGE_ERRORS},
         security=SECURITY)
@requires("admin")
@_guarded
def test_webhook(path: RulePath):
    """POST a sample payload (state "test") to the rule's webhook, with the
    usual retries; every attempt is in GET /api/alerts/deliveries. Admin;
    audited. 400 when the rule has no webhook."""
    return svc.send_test_webhook(_ops().store, path.rule_id, actor=current_actor())


@bp.get("/deliveries", responses={200: DeliveriesResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def deliveries(query: DeliveriesQuery):
    """Webhook attempts, newest first: masked URL, HTTP status or error,
    outcome."""
    return {"deliveries": svc.list_deliveries(_ops().store, event_id=query.event_id,
                                              rule_id=query.rule_id, limit=query.limit)}


@bp.post("/evaluate", responses={200: EvaluateResponse, **ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def evaluate():
    """Evaluate every enabled rule now (as the scheduler does every
    OPS_ALERT_INTERVAL seconds) and deliver webhooks of alerts that fire or
    resolve. Admin; audited."""
    return svc.evaluate_now(_ops(), actor=current_actor())


tidy_docs(bp)
