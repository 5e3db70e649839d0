"""/api/audit: the audit trail (admin): filtered, paged, or as CSV.

Thin: the filtering and the CSV live in dashapp.services.users, which the
Audit page calls too. The CSV is streamed (constant memory, keyset paging)
and safe to open in a spreadsheet (no cell starts a formula).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import Response, current_app, stream_with_context
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, SECURITY, ErrorBody, current_actor, error,
                                store_unavailable)
from dashapp.security import audit
from dashapp.security.roles import requires
from dashapp.services import users as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_audit", __name__, url_prefix="/api/audit",
                  abp_tags=[Tag(name="audit", description="Audit trail")])


class AuditQuery(BaseModel):
    actor: str | None = Field(None, max_length=64, description="Exactly this actor")
    action: str | None = Field(None, max_length=400, description=(
        "An action (e.g. user_create, login, permission_denied), or several "
        "comma-separated"))
    outcome: str | None = Field(None, pattern="^(success|failure|denied|pending)$")
    target: str | None = Field(None, max_length=255,
                               description="Text in the target (case-insensitive)")
    ip: str | None = Field(None, max_length=64, description="Exactly this client IP")
    since: datetime | None = Field(None, description="ISO 8601, inclusive; naive is UTC")
    until: datetime | None = Field(None, description="ISO 8601, exclusive; naive is UTC")
    limit: int = Field(100, ge=1, le=1000, description="Events per page")
    offset: int = Field(0, ge=0, le=1_000_000, description="Skip this many (offset paging)")
    before_id: int | None = Field(None, ge=1, le=2_147_483_647, description=(
        "Keyset paging: events older than this id (pass next_before_id)"))
    format: str = Field("json", pattern="^(json|csv)$", description=(
        "csv: every matching event (limit/offset ignored) as a streamed "
        "CSV download"))

    @model_validator(mode="after")
    def _window(self):
        if self.since and self.until and _utc(self.since) >= _utc(self.until):
            raise ValueError("since must be before until")
        return self

    def filter(self) -> svc.AuditFilter:
        return svc.AuditFilter(actor=self.actor, action=self.action, outcome=self.outcome,
                               target=self.target, ip=self.ip, since=self.since,
                               until=self.until)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


class AuditEventOut(BaseModel):
    id: int
    time: str | None
    actor: str
    action: str
    target: str
    outcome: str = Field(description="success, failure or denied; pending: a change "
                                     "attempted whose outcome could not be recorded")
    ip: str | None
    details: dict | None = Field(description="Secrets redacted as ***")


class AuditList(BaseModel):
    """The JSON page; with format=csv the 200 is a text/csv download."""
    model_config = ConfigDict(
        openapi_extra={"content": {"text/csv": {"schema": {"type": "string"}}}},
        json_schema_extra={"example": {
            "events": [{"id": 412, "time": "2026-11-26T21:14:03.512000+00:00",
                        "actor": "alice", "action": "cache_clear", "target": "cache:shop:*",
                        "outcome": "success", "ip": "10.0.4.17",
                        "details": {"deleted": 128, "dry_run": False}},
                       {"id": 411, "time": "2026-11-26T21:12:40.101000+00:00",
                        "actor": "bob", "action": "permission_denied",
                        "target": "POST /api/backup/create", "outcome": "denied",
                        "ip": "10.0.4.22", "details": {"required": "admin", "role": "viewer"}}],
            "has_more": True, "next_before_id": 411}})

    events: list[AuditEventOut]
    has_more: bool = Field(description="More events match beyond this page")
    next_before_id: int | None = Field(description="Pass as before_id for the next page")


@bp.get("", responses={200: AuditList, **INPUT_ERRORS, 503: ErrorBody},
        security=SECURITY)
@requires("admin")
def list_events(query: AuditQuery):
    """Audit events, newest first, filtered; `format=csv` downloads every
    matching event as CSV (the export is itself audited)."""
    store = current_app.extensions["ops"].store
    flt = query.filter()
    if query.format == "csv":
        try:
            svc.audit_events(store, flt, limit=1)  # fail now (503), not mid-stream
        except SQLAlchemyError as exc:
            return store_unavailable(exc, "audit API")
        audit.record(store, actor=current_actor(), action="audit_export", outcome="success",
                     details={k: v for k, v in query.model_dump(mode="json").items()
                              if v not in (None, "") and k in (
                                  "actor", "action", "outcome", "target", "ip",
                                  "since", "until")})
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        return Response(stream_with_context(svc.audit_csv(store, flt)),
                        mimetype="text/csv",
                        headers={"Content-Disposition":
                                 f'attachment; filename="audit-{stamp}.csv"',
                                 "Cache-Control": "no-store"})
    if query.offset and query.before_id:
        return error(400, "invalid_request", "Use offset or before_id, not both.")
    try:
        return svc.audit_events(store, flt, limit=query.limit, offset=query.offset,
                                before_id=query.before_id)
    except SQLAlchemyError as exc:
        return store_unavailable(exc, "audit API")
