"""/api/auth: tokens for scripts, and who am I."""
from __future__ import annotations

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, MAX_ID, SECURITY, ErrorBody, error,
                                example, guarded, store_unavailable, tidy_docs)
from dashapp.security import audit
from dashapp.security.auth import current_principal
from dashapp.security.roles import public, requires

bp = APIBlueprint("api_auth", __name__, url_prefix="/api/auth",
                  abp_tags=[Tag(name="auth", description="Sign-in and API tokens")])


class TokenRequest(BaseModel):
    model_config = example({'username': 'admin',
                            'password': 'correct-horse-battery',
                            'name': 'ci-deploy',
                            'expires_in_days': 30})
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    name: str = Field("", max_length=100, description="A label for the token")
    expires_in_days: int | None = Field(
        30, ge=1, le=3650, description="Lifetime in days; null for no expiry")


class TokenResponse(BaseModel):
    model_config = example({'expires_at': '2026-12-26T22:35:04.767180+00:00',
                            'id': 2,
                            'token': 'ops_3Jx9...example...kQ'})
    token: str = Field(description="Send as 'Authorization: Bearer <token>'. "
                                   "Shown once; only its hash is stored.")
    id: int
    expires_at: str | None


class MeResponse(BaseModel):
    model_config = example({'role': 'admin', 'username': 'admin', 'via': 'token'})
    username: str
    role: str
    via: str


class RevokeResponse(BaseModel):
    model_config = example({'revoked': 2})
    revoked: int


class TokenPath(BaseModel):
    token_id: int = Field(ge=1, le=MAX_ID, description="The token's id")


def _ops():
    return current_app.extensions["ops"]


# A locked or unreachable store is a 503 here as on every other route.
_guarded = guarded((SQLAlchemyError,), lambda exc: store_unavailable(exc, "auth API"))


@bp.post("/token", responses={200: TokenResponse, 400: ErrorBody, 401: ErrorBody,
                              429: ErrorBody, 503: ErrorBody})
@public
@_guarded
def create_token(body: TokenRequest):
    """Exchange a username and password for an API token."""
    ops = _ops()
    user = ops.users.authenticate(body.username, body.password)
    if user is None:
        audit.record(ops.store, actor=body.username, action="token_create",
                     outcome="failure", details={"reason": "bad credentials"})
        return error(401, "invalid_credentials", "Wrong username or password.")
    # Audited before the token exists: no token without its audit row (503).
    entry = audit.begin(ops.store, actor=user.username, action="token_create",
                        target=f"user:{user.username}", details={"name": body.name})
    try:
        token, row = ops.users.create_token(user.id, body.name, body.expires_in_days)
    except Exception as exc:
        entry.finish("failure", {"name": body.name, "error": type(exc).__name__})
        raise
    entry.finish("success", {"name": body.name, "prefix": row.prefix},
                 target=f"token:{row.id}")
    return {"token": token, "id": row.id,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None}


@bp.delete("/token/<int:token_id>", responses={200: RevokeResponse, 404: ErrorBody,
                                                 503: ErrorBody, **INPUT_ERRORS},
           security=SECURITY)
@requires("viewer")
@_guarded
def revoke_token(path: TokenPath):
    """Revoke one of your tokens (admins may revoke anyone's)."""
    ops = _ops()
    me = current_principal()
    user = ops.users.by_name(me.username)
    from dashapp.store.models import ApiToken
    with ops.store.session() as sess:
        row = sess.get(ApiToken, path.token_id)
        owner = row.user_id if row else None
    if row is None or (owner != user.id and me.role != "admin"):
        return error(404, "not_found", f"No token {path.token_id}.")
    with audit.audited(ops.store, actor=me.username, action="token_revoke",
                       target=f"token:{path.token_id}"):
        ops.users.revoke_token(path.token_id)
    return {"revoked": path.token_id}


@bp.get("/me", responses={200: MeResponse, **INPUT_ERRORS}, security=SECURITY)
@requires("viewer")
def me():
    """The caller's username and role."""
    p = current_principal()
    return {"username": p.username, "role": p.role, "via": p.via}


tidy_docs(bp)
