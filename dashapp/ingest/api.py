"""/api/ingest (agents) and /api/ingest-keys (admins).

POST /api/ingest is public at the sign-in guard and authorised by its own
ingest key (`X-Ops-Key`): it takes a gzip JSON batch (ops_agent.protocol)
and answers with the commands waiting for the sending process. A key opens
this route and nothing else.
"""
from __future__ import annotations

import logging

from flask import current_app, request
from flask_openapi3 import APIBlueprint, Tag
from ops_agent import protocol
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, MAX_ID, SECURITY, ErrorBody, current_actor,
                                error, example, guarded, store_unavailable)
from dashapp.ingest import keys as key_svc
from dashapp.ingest.keys import IngestError
from dashapp.ingest.service import accept
from dashapp.security.roles import public, requires

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_ingest", __name__, url_prefix="/api",
                  abp_tags=[Tag(name="ingest", description="What agents send, and the "
                                "ingest keys they send it with")])

ERRORS = {**INPUT_ERRORS, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody}


class IngestAnswer(BaseModel):
    model_config = example({"accepted": 1250, "commands": [
        {"id": "job:17", "type": "job", "action": "retry", "job_id": "nightly-report"}]})

    accepted: int = Field(description="Events stored from this batch")
    commands: list[dict] = Field(description="Commands for the sending process: job "
                                             "actions and profiling sessions")


class KeyOut(BaseModel):
    model_config = example({"id": 3, "app": "shop", "prefix": "opsik_Xq3vT9", "note": "prod",
                            "created_by": "admin", "created_at": "2026-12-07T10:00:00+00:00",
                            "last_used_at": "2026-12-07T10:05:00+00:00", "revoked_at": None,
                            "revoked_by": None, "active": True})

    id: int
    app: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    note: str
    created_by: str
    created_at: str | None
    last_used_at: str | None = Field(description="Last batch sent with it (to the minute)")
    revoked_at: str | None
    revoked_by: str | None
    active: bool


class KeyCreated(KeyOut):
    model_config = example({"id": 3, "app": "shop", "prefix": "opsik_Xq3vT9", "note": "prod",
                            "created_by": "admin", "created_at": "2026-12-07T10:00:00+00:00",
                            "last_used_at": None, "revoked_at": None, "revoked_by": None,
                            "active": True,
                            "key": "opsik_Xq3vT9aBcD0eFgH1iJkL2mNoP3qRsT4uVwX5yZa6bC",
                            "dsn": "http://opsik_Xq3vT9aBcD0eFgH1iJkL2mNoP3qRsT4uVwX5yZa6bC"
                                   "@ops.example.com:8050/shop"})

    key: str = Field(description="The key, shown once: put it in the application's OPS_DSN")
    dsn: str = Field(description="OPS_DSN for the application, with this console's address")


class KeyList(BaseModel):
    model_config = example({"keys": [{"id": 3, "app": "shop", "prefix": "opsik_Xq3vT9",
                                      "note": "prod", "created_by": "admin",
                                      "created_at": "2026-12-07T10:00:00+00:00",
                                      "last_used_at": "2026-12-07T10:05:00+00:00",
                                      "revoked_at": None, "revoked_by": None,
                                      "active": True}]})

    keys: list[KeyOut]


class NewKey(BaseModel):
    model_config = example({"app": "shop", "note": "production web servers"})

    app: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                     description="The application's name (1-64 letters, digits, . _ -)")
    note: str = Field("", max_length=200, description="What or who uses this key")


class KeyPath(BaseModel):
    key_id: int = Field(ge=1, le=MAX_ID)


class KeysQuery(BaseModel):
    active_only: bool = Field(False, description="Hide revoked keys")


def _store():
    return current_app.extensions["ops"].store


def _failure(exc: Exception):
    if isinstance(exc, IngestError):
        return error(exc.status, exc.code, str(exc))
    return store_unavailable(exc, "ingest")


_guarded = guarded((IngestError, SQLAlchemyError), _failure)


def dsn_for(key: str, app: str, base_url: str) -> str:
    """OPS_DSN for an application: the console's address with the key in it."""
    from urllib.parse import urlsplit
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{key}@{parts.netloc}{path}/{app}"


@bp.post("/ingest", responses={200: IngestAnswer, 400: ErrorBody, 401: ErrorBody,
                               403: ErrorBody, 413: ErrorBody, 503: ErrorBody})
@public
def ingest():
    """An agent's batch: gzip JSON in the versioned format of
    `ops_agent.protocol`, sent with the application's ingest key in
    `X-Ops-Key`. 400 `unsupported_format` for a format this console does
    not read; 401 for a wrong or revoked key; 403 when the batch names
    another application than the key's."""
    store = _store()
    try:
        row = key_svc.authenticate(store, request.headers.get(protocol.KEY_HEADER))
    except SQLAlchemyError as exc:
        return _retry_later(store_unavailable(exc, "ingest"))
    if row is None:
        return error(401, "invalid_ingest_key",
                     "The ingest key is missing, wrong or revoked; an admin creates one "
                     "under Admin > Ingest keys.")
    length = request.content_length
    if length is not None and length > protocol.MAX_BODY_BYTES:
        return error(413, "too_large", f"A batch is at most {protocol.MAX_BODY_BYTES} bytes.")
    encoding = (request.headers.get("Content-Encoding") or "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        return error(400, "invalid_batch", f"Content-Encoding {encoding[:20]!r} is not "
                                           "supported; send gzip or nothing.")
    try:
        batch = protocol.decode(request.get_data(cache=False), gzipped=encoding == "gzip")
        answer = accept(store, row.app, batch)
    except protocol.ProtocolError as exc:
        return error(413 if exc.code == "too_large" else 400, exc.code, str(exc))
    except IngestError as exc:
        return error(exc.status, exc.code, str(exc))
    except SQLAlchemyError as exc:
        return _retry_later(store_unavailable(exc, "ingest"))
    return answer


def _retry_later(resp):
    resp.headers["Retry-After"] = "5"
    return resp


@bp.get("/ingest-keys", responses={200: KeyList, **ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def list_keys(query: KeysQuery):
    """Every application's ingest keys, newest first per application; never
    the key or its hash."""
    return {"keys": key_svc.list_keys(_store(), include_revoked=not query.active_only)}


@bp.post("/ingest-keys", responses={201: KeyCreated, **ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def create_key(body: NewKey):
    """A new ingest key for an application; the key (and an OPS_DSN with it)
    is in the response once."""
    created = key_svc.create_key(_store(), actor=current_actor(), app=body.app,
                                 note=body.note)
    created["dsn"] = dsn_for(created["key"], created["app"], request.host_url)
    return created, 201


@bp.delete("/ingest-keys/<int:key_id>", responses={200: KeyOut, **ERRORS},
           security=SECURITY)
@requires("admin")
@_guarded
def revoke_key(path: KeyPath):
    """Revoke an ingest key: the next batch sent with it is refused. 409
    `already_revoked` when it was revoked before."""
    return key_svc.revoke_key(_store(), actor=current_actor(), key_id=path.key_id)
