"""User management for admins, and reading the audit trail.

Accounts (create, role, activate/deactivate, password reset) and API tokens
(list, create for a user, revoke), with the rules an admin relies on:
usernames follow the OPS_ADMIN_USER pattern and are unique ignoring case,
passwords have at least 8 characters, the last active admin can be neither
demoted nor deactivated, and an admin cannot demote or deactivate
themself. Every change is audited, refusals included.

Sessions live in the store (security/auth.py): a deactivation deletes that
user's sessions, so re-activating them revives no old cookie; a session id
also embeds a fingerprint of the password hash, so a password reset ends
that user's sessions too; `user_for_token` checks `active`
too, so a deactivated user's tokens stop working (and work again when the
account is re-activated, unless revoked).

The audit-trail queries live here as well, so GET /api/audit, its CSV
export and the Audit page read the same filtered events.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from dashapp.security import audit
from dashapp.security.auth import UserService, end_sessions
from dashapp.security.roles import ROLES
from dashapp.store import Store
from dashapp.store.models import ApiToken, AuditEvent, User, as_utc, utcnow

logger = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")  # as OPS_ADMIN_USER
USERNAME_RULE = ("1 to 64 characters: letters, digits and _ . @ -")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_TOKEN_DAYS = 3650
# "pending": a change whose outcome could not be recorded (see security.audit).
OUTCOMES = ("success", "failure", "denied", "pending")


# ------------------------------------------------------------------ errors

class UsersError(Exception):
    """A request the service refuses; `status` is the HTTP status it means."""
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class NotFound(UsersError):
    status = 404
    code = "not_found"


class Conflict(UsersError):
    status = 409
    code = "conflict"


# ----------------------------------------------------------------- helpers

def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def validate_username(username: str) -> str:
    name = (username or "").strip()
    if not USERNAME_RE.fullmatch(name):
        raise UsersError(f"The username must be {USERNAME_RULE}.", "invalid_username")
    return name


def validate_password(password: str) -> str:
    if password is None or len(password) < MIN_PASSWORD:
        raise UsersError(f"The password must have at least {MIN_PASSWORD} characters.",
                         "weak_password")
    if len(password) > MAX_PASSWORD:
        raise UsersError(f"The password may have at most {MAX_PASSWORD} characters.",
                         "invalid_password")
    return password


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise UsersError(f"The role must be one of {', '.join(ROLES)}.", "invalid_role")
    return role


def generate_password() -> str:
    """16 random URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


def _user_dict(user: User, tokens: int = 0) -> dict:
    return {"id": user.id, "username": user.username, "role": user.role,
            "active": bool(user.active), "created_at": _iso(user.created_at),
            "last_login_at": _iso(user.last_login_at), "tokens": tokens}


def token_status(row: ApiToken, now: datetime | None = None) -> str:
    now = now or utcnow()
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and as_utc(row.expires_at) < now:
        return "expired"
    return "active"


def _token_dict(row: ApiToken, username: str, now: datetime | None = None) -> dict:
    """What an admin may see of a token: never the token or its hash."""
    return {"id": row.id, "user_id": row.user_id, "username": username, "name": row.name,
            "prefix": row.prefix, "created_at": _iso(row.created_at),
            "expires_at": _iso(row.expires_at), "last_used_at": _iso(row.last_used_at),
            "revoked_at": _iso(row.revoked_at), "status": token_status(row, now)}


def _active_tokens_filter(now: datetime):
    return (ApiToken.revoked_at.is_(None)) & (
        ApiToken.expires_at.is_(None) | (ApiToken.expires_at >= now))


# ------------------------------------------------------------------- users

def list_users(store: Store) -> list[dict]:
    """Every account, by username, with its number of usable tokens."""
    now = utcnow()
    with store.session() as sess:
        counts = dict(sess.execute(
            select(ApiToken.user_id, func.count(ApiToken.id))
            .where(_active_tokens_filter(now)).group_by(ApiToken.user_id)).all())
        users = sess.scalars(select(User).order_by(func.lower(User.username))).all()
        return [_user_dict(u, counts.get(u.id, 0)) for u in users]


def get_user(store: Store, user_id: int) -> dict:
    now = utcnow()
    with store.session() as sess:
        user = sess.get(User, user_id)
        if user is None:
            raise NotFound(f"No user {user_id}.")
        count = sess.scalar(select(func.count(ApiToken.id)).where(
            ApiToken.user_id == user_id, _active_tokens_filter(now))) or 0
        return _user_dict(user, count)


def create_user(store: Store, *, actor: str, username: str, role: str,
                password: str | None = None) -> dict:
    """Create an account; without `password` one is generated and returned
    once as "password" (None when the admin typed it)."""
    target = f"user:{(username or '')[:60]}"
    with audit.audited(store, actor=actor, action="user_create", target=target,
                       details={"role": role}) as info:
        name = validate_username(username)
        validate_role(role)
        generated = None
        if password is None or password == "":
            generated = password = generate_password()
        validate_password(password)
        info["generated"] = generated is not None
        with store.session() as sess:
            clash = sess.scalar(select(User.username).where(
                func.lower(User.username) == name.lower()))
        if clash is not None:
            raise Conflict(f"A user called {clash!r} already exists.", "user_exists")
        try:
            user = UserService(store).create_user(name, password, role)
        except IntegrityError:
            raise Conflict(f"A user called {name!r} already exists.",
                           "user_exists") from None
        info["id"] = user.id
    result = _user_dict(user)
    result["password"] = generated
    return result


def _admin_guard(sess, user: User, actor: str, *, new_role: str | None = None,
                 new_active: bool | None = None) -> None:
    """Refuse a change that would leave no active admin, or an admin
    demoting or deactivating themself."""
    loses_admin = user.role == "admin" and user.active and (
        (new_role is not None and new_role != "admin") or new_active is False)
    if not loses_admin:
        return
    if user.username == actor:
        what = "deactivate" if new_active is False else "demote"
        raise Conflict(f"You cannot {what} yourself; ask another admin.", "self_change")
    # Lock the active admins (PostgreSQL) so two admins demoting each other
    # at once cannot both succeed.
    admins = sess.scalars(select(User.id).where(
        User.role == "admin", User.active.is_(True)).with_for_update()).all()
    if len(admins) <= 1:
        raise Conflict(f"{user.username} is the last active admin; make another user "
                       "admin first.", "last_admin")


def update_user(store: Store, *, actor: str, user_id: int, role: str | None = None,
                active: bool | None = None) -> dict:
    """Change a user's role and/or activate or deactivate them (one audit
    event per change: user_role, user_activate, user_deactivate)."""
    if role is None and active is None:
        raise UsersError("Nothing to change: give a role or active.", "nothing_to_change")
    if role is not None:
        validate_role(role)
    with store.session() as sess:
        user = sess.get(User, user_id)
        name = user.username if user else f"#{user_id}"
    target = f"user:{name}"
    if role is not None:
        with audit.audited(store, actor=actor, action="user_role", target=target,
                           details={"role": role}) as info:
            with store.session() as sess:
                user = sess.get(User, user_id)
                if user is None:
                    raise NotFound(f"No user {user_id}.")
                info["previous"] = user.role
                _admin_guard(sess, user, actor, new_role=role)
                user.role = role
    if active is not None:
        action = "user_activate" if active else "user_deactivate"
        with audit.audited(store, actor=actor, action=action, target=target) as info:
            with store.session() as sess:
                user = sess.get(User, user_id)
                if user is None:
                    raise NotFound(f"No user {user_id}.")
                info["previous"] = "active" if user.active else "inactive"
                _admin_guard(sess, user, actor, new_active=active)
                user.active = active
                if not active:
                    end_sessions(sess, user.id)  # re-activation brings none back
    return get_user(store, user_id)


def reset_password(store: Store, *, actor: str, user_id: int,
                   password: str | None = None) -> dict:
    """Set a user's password (typed, or generated and returned once). Ends
    that user's sessions; their API tokens keep working."""
    with store.session() as sess:
        user = sess.get(User, user_id)
        name = user.username if user else f"#{user_id}"
    with audit.audited(store, actor=actor, action="user_password",
                       target=f"user:{name}") as info:
        if user is None:
            raise NotFound(f"No user {user_id}.")
        generated = None
        if password is None or password == "":
            generated = password = generate_password()
        validate_password(password)
        info["generated"] = generated is not None
        with store.session() as sess:
            row = sess.get(User, user_id)
            if row is None:
                raise NotFound(f"No user {user_id}.")
            row.password_hash = generate_password_hash(password)
    return {"user": get_user(store, user_id), "password": generated}


# ------------------------------------------------------------------ tokens

def list_tokens(store: Store, user_id: int | None = None,
                include_inactive: bool = True) -> list[dict]:
    """Tokens newest first (all users, or one): names, prefixes and dates,
    never the token or its hash."""
    now = utcnow()
    stmt = (select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc()))
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    if not include_inactive:
        stmt = stmt.where(_active_tokens_filter(now))
    with store.session() as sess:
        if user_id is not None and sess.get(User, user_id) is None:
            raise NotFound(f"No user {user_id}.")
        return [_token_dict(row, username, now) for row, username in sess.execute(stmt)]


def create_token(store: Store, *, actor: str, user_id: int, name: str = "",
                 expires_in_days: int | None = 30) -> dict:
    """A new API token for a user; the token is in the result, shown once."""
    with store.session() as sess:
        user = sess.get(User, user_id)
        username = user.username if user else f"#{user_id}"
        active = bool(user.active) if user else False
    with audit.audited(store, actor=actor, action="token_create",
                       target=f"user:{username}",
                       details={"name": name, "days": expires_in_days}) as info:
        if user is None:
            raise NotFound(f"No user {user_id}.")
        if not active:
            raise Conflict(f"{username} is deactivated; activate the account first.",
                           "user_inactive")
        if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
            raise UsersError(f"expires_in_days must be 1 to {MAX_TOKEN_DAYS}, or none.",
                             "invalid_expiry")
        token, row = UserService(store).create_token(user_id, name, expires_in_days)
        info.update(id=row.id, prefix=row.prefix)
    result = _token_dict(row, username)
    result["token"] = token
    return result


def revoke_token(store: Store, *, actor: str, token_id: int) -> dict:
    """Revoke a token (it stops working at once). 409 when already revoked."""
    with audit.audited(store, actor=actor, action="token_revoke",
                       target=f"token:{token_id}") as info:
        with store.session() as sess:
            row = sess.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"No token {token_id}.")
            username = sess.scalar(select(User.username).where(User.id == row.user_id))
            info.update(user=username, prefix=row.prefix)
            if row.revoked_at is not None:
                raise Conflict(f"Token {token_id} ({row.prefix}…) was already revoked.",
                               "already_revoked")
            row.revoked_at = utcnow()
            result = _token_dict(row, username)
    return result


# ------------------------------------------------------------- audit trail

@dataclass(frozen=True)
class AuditFilter:
    """What GET /api/audit, its CSV export and the Audit page filter by."""
    actor: str | None = None
    action: str | None = None      # one action, or several comma-separated
    outcome: str | None = None
    target: str | None = None      # substring, case-insensitive
    ip: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, stmt):
        if self.actor:
            stmt = stmt.where(AuditEvent.actor == self.actor)
        if self.action:
            actions = [a.strip() for a in self.action.split(",") if a.strip()]
            stmt = stmt.where(AuditEvent.action.in_(actions))
        if self.outcome:
            stmt = stmt.where(AuditEvent.outcome == self.outcome)
        if self.target:
            stmt = stmt.where(func.lower(AuditEvent.target).contains(
                self.target.lower(), autoescape=True))
        if self.ip:
            stmt = stmt.where(AuditEvent.ip == self.ip)
        if self.since:
            stmt = stmt.where(AuditEvent.time >= _aware(self.since))
        if self.until:
            stmt = stmt.where(AuditEvent.time < _aware(self.until))
        return stmt


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def event_dict(row: AuditEvent) -> dict:
    return {"id": row.id, "time": _iso(row.time), "actor": row.actor, "action": row.action,
            "target": row.target, "outcome": row.outcome, "ip": row.ip,
            "details": row.details}


def audit_events(store: Store, flt: AuditFilter | None = None, *, limit: int = 100,
                 offset: int = 0, before_id: int | None = None) -> dict:
    """Newest first. Page with `offset`, or with `before_id` (keyset: pass
    the previous page's `next_before_id`; stable while events arrive)."""
    flt = flt or AuditFilter()
    stmt = flt.apply(select(AuditEvent)).order_by(AuditEvent.id.desc())
    if before_id is not None:
        stmt = stmt.where(AuditEvent.id < before_id)
    with store.session() as sess:
        rows = sess.scalars(stmt.offset(offset).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"events": [event_dict(r) for r in rows], "has_more": more,
            "next_before_id": rows[-1].id if more and rows else None}


def audit_choices(store: Store) -> dict[str, list[str]]:
    """The actors and actions seen in the trail (for the page's filters)."""
    with store.session() as sess:
        actors = sess.scalars(select(AuditEvent.actor).distinct()
                              .order_by(AuditEvent.actor).limit(500)).all()
        actions = sess.scalars(select(AuditEvent.action).distinct()
                               .order_by(AuditEvent.action).limit(500)).all()
    return {"actors": list(actors), "actions": list(actions)}


CSV_COLUMNS = ("id", "time", "actor", "action", "target", "outcome", "ip", "details")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A cell a spreadsheet will not run as a formula: text that starts with
    = + - @ (or a tab / carriage return) gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv_row(event: dict) -> list:
    details = event["details"]
    details = "" if details is None else json.dumps(details, sort_keys=True, default=str)
    return [csv_safe("" if event[c] is None else event[c]) if c != "details"
            else csv_safe(details) for c in CSV_COLUMNS]


def audit_csv(store: Store, flt: AuditFilter | None = None, *, max_rows: int = 1_000_000,
              batch: int = 1000) -> Iterator[str]:
    """The filtered events as CSV text chunks, newest first: a header, then
    one chunk per batch read with keyset paging (constant memory)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    before, sent = None, 0
    while sent < max_rows:
        page = audit_events(store, flt, limit=min(batch, max_rows - sent), before_id=before)
        if not page["events"]:
            return
        buf = io.StringIO()
        writer = csv.writer(buf)
        for event in page["events"]:
            writer.writerow(_csv_row(event))
        sent += len(page["events"])
        yield buf.getvalue()
        if not page["has_more"]:
            return
        before = page["next_before_id"]
