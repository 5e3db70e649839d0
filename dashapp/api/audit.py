"""/api/audit: the audit trail (admin)."""
from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy import select

from dashapp.api.common import INPUT_ERRORS, SECURITY
from dashapp.security.roles import requires
from dashapp.store.models import AuditEvent, as_utc

bp = APIBlueprint("api_audit", __name__, url_prefix="/api/audit",
                  abp_tags=[Tag(name="audit", description="Audit trail")])


class AuditQuery(BaseModel):
    actor: str | None = Field(None, max_length=64)
    action: str | None = Field(None, max_length=64)
    outcome: str | None = Field(None, pattern="^(success|failure|denied)$")
    since: datetime | None = None
    limit: int = Field(100, ge=1, le=1000)


class AuditList(BaseModel):
    events: list[dict]


@bp.get("", responses={200: AuditList, **INPUT_ERRORS}, security=SECURITY)
@requires("admin")
def list_events(query: AuditQuery):
    """Most recent audit events first, filtered."""
    stmt = select(AuditEvent).order_by(AuditEvent.time.desc(), AuditEvent.id.desc())
    if query.actor:
        stmt = stmt.where(AuditEvent.actor == query.actor)
    if query.action:
        stmt = stmt.where(AuditEvent.action == query.action)
    if query.outcome:
        stmt = stmt.where(AuditEvent.outcome == query.outcome)
    if query.since:
        stmt = stmt.where(AuditEvent.time >= query.since)
    with current_app.extensions["ops"].store.session() as sess:
        rows = sess.scalars(stmt.limit(query.limit)).all()
    return {"events": [
        {"id": r.id, "time": as_utc(r.time).isoformat(), "actor": r.actor,
         "action": r.action, "target": r.target, "details": r.details,
         "outcome": r.outcome, "ip": r.ip} for r in rows]}
