"""Ingest keys: an application's credential for sending batches.

A key is shown once when an admin creates it; only its SHA-256 is stored
(the key is 32 random bytes, so a fast hash is enough: nothing to guess).
A key can send batches for its application and receive that application's
commands, nothing else: it is not a user and opens no other route.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import datetime

from sqlalchemy import select, update

from dashapp.security import audit
from dashapp.store import Store
from dashapp.store.models import IngestKey, as_utc, utcnow
from ops_agent.settings import APP_NAME

KEY_PREFIX = "opsik_"
LAST_USED_EVERY = 60.0   # seconds between last_used_at writes per key
_last_used: dict[str, float] = {}  # by key hash: ids repeat across stores
_last_used_lock = threading.Lock()


class IngestError(Exception):
    """A request about ingest keys or a batch that is refused."""
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, code: str | None = None, status: int | None = None):
        super().__init__(message)
        if code:
            self.code = code
        if status:
            self.status = status


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value else None


def key_dict(row: IngestKey) -> dict:
    return {"id": row.id, "app": row.app, "prefix": row.prefix, "note": row.note,
            "created_by": row.created_by, "created_at": _iso(row.created_at),
            "last_used_at": _iso(row.last_used_at), "revoked_at": _iso(row.revoked_at),
            "revoked_by": row.revoked_by, "active": row.revoked_at is None}


def check_app_name(app: str) -> str:
    app = (app or "").strip()
    if not APP_NAME.match(app):
        raise IngestError("The application name must be 1-64 letters, digits, '.', '_' "
                          "or '-', starting with a letter or digit.", "invalid_app")
    return app


def list_keys(store: Store, *, include_revoked: bool = True) -> list[dict]:
    with store.session() as sess:
        stmt = select(IngestKey).order_by(IngestKey.app, IngestKey.id.desc())
        if not include_revoked:
            stmt = stmt.where(IngestKey.revoked_at.is_(None))
        return [key_dict(row) for row in sess.scalars(stmt)]


def create_key(store: Store, *, actor: str, app: str, note: str = "") -> dict:
    """A new key for `app`; the key is in the result once (`key`)."""
    note = (note or "").strip()
    with audit.audited(store, actor=actor, action="ingest_key_create",
                       target=f"app:{(app or '')[:64]}", details={"note": note[:200]}) as info:
        app = check_app_name(app)
        if len(note) > 200:
            raise IngestError("The note is at most 200 characters.", "invalid_note")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with store.session() as sess:
            row = IngestKey(app=app, key_hash=_hash(key), prefix=key[:12], note=note,
                            created_by=actor[:64], created_at=utcnow())
            sess.add(row)
            sess.flush()
            result = key_dict(row)
        info.update(id=result["id"], prefix=result["prefix"])
    result["key"] = key
    return result


def revoke_key(store: Store, *, actor: str, key_id: int) -> dict:
    """Revoke a key: the next batch sent with it is refused (401)."""
    with audit.audited(store, actor=actor, action="ingest_key_revoke",
                       target=f"ingest_key:{key_id}") as info:
        with store.session() as sess:
            row = sess.get(IngestKey, key_id)
            if row is None:
                raise IngestError(f"No ingest key {key_id}.", "not_found", 404)
            info.update(app=row.app, prefix=row.prefix)
            if row.revoked_at is not None:
                raise IngestError(f"Ingest key {key_id} ({row.prefix}…) was already "
                                  "revoked.", "already_revoked", 409)
            row.revoked_at = utcnow()
            row.revoked_by = actor[:64]
            return key_dict(row)


def authenticate(store: Store, key: str | None) -> IngestKey | None:
    """The active key row for `key`, else None. Notes its use (at most once
    a minute per key, so a busy agent costs no write per batch)."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 100:
        return None
    with store.session() as sess:
        row = sess.scalar(select(IngestKey).where(IngestKey.key_hash == _hash(key),
                                                  IngestKey.revoked_at.is_(None)))
        if row is None:
            return None
        sess.expunge(row)
    now = time.monotonic()
    with _last_used_lock:
        due = now - _last_used.get(row.key_hash, float("-inf")) >= LAST_USED_EVERY
        if due:
            _last_used[row.key_hash] = now
    if due:
        with store.engine.begin() as conn:
            conn.execute(update(IngestKey).where(IngestKey.id == row.id)
                         .values(last_used_at=utcnow()))
    return row


def ensure_key(store: Store, app: str, path) -> str:
    """The key stored in `path` (0600) if it still works for `app`, else a
    new one written there: the bundled demo's own key (created by the
    console itself, audited as 'system')."""
    import os
    from pathlib import Path
    path = Path(path)
    if path.exists():
        key = path.read_text().strip()
        row = authenticate(store, key)
        if row is not None and row.app == app:
            return key
    key = create_key(store, actor="system", app=app, note="the bundled demo")["key"]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
