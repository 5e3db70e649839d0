"""/api/users: user management for admins: accounts, roles, password
resets and API tokens (issue 7).

Thin: validate, call dashapp.services.users (the same functions the Users
page calls), jsonify. Admin only; every change is audited by the service.
A generated password or a new token is in the response once: only hashes
are stored.
"""
from __future__ import annotations

import logging

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, SECURITY, ErrorBody, current_actor, error,
                                example, guarded, store_unavailable)
from dashapp.security.roles import requires
from dashapp.services import users as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_users", __name__, url_prefix="/api/users",
                  abp_tags=[Tag(name="users", description="User management for admins: "
                                "accounts, roles, password resets, API tokens")])

ERRORS = {**INPUT_ERRORS, 404: ErrorBody, 503: ErrorBody}
CHANGE_ERRORS = {**ERRORS, 409: ErrorBody}
ROLE_PATTERN = "^(viewer|operator|admin)$"
MAX_ID = 2_147_483_647  # ids are 32-bit integers in the store


# ------------------------------------------------------------------ models

class UserOut(BaseModel):
    model_config = example({'id': 2,
                            'username': 'alice',
                            'role': 'operator',
                            'active': True,
                            'created_at': '2026-11-20T09:12:44+00:00',
                            'last_login_at': '2026-11-26T08:03:10+00:00',
                            'tokens': 1})

    id: int
    username: str
    role: str = Field(description="viewer, operator or admin")
    active: bool = Field(description="false: cannot sign in, tokens refused")
    created_at: str | None
    last_login_at: str | None = Field(description="Last successful sign-in")
    tokens: int = Field(description="API tokens that still work (not revoked or expired)")


class UserCreated(UserOut):
    model_config = example({'id': 2,
                            'username': 'alice',
                            'role': 'operator',
                            'active': True,
                            'created_at': '2026-11-20T09:12:44+00:00',
                            'last_login_at': None,
                            'tokens': 0,
                            'password': 'kT8-vQ2pZr7xWmN4'})

    password: str | None = Field(description="The generated password, shown once; null "
                                             "when you sent one")


class UserList(BaseModel):
    model_config = example({'users': [{'id': 1,
                                       'username': 'admin',
                                       'role': 'admin',
                                       'active': True,
                                       'created_at': '2026-11-20T09:12:44+00:00',
                                       'last_login_at': '2026-11-26T08:03:10+00:00',
                                       'tokens': 1},
                                      {'id': 2,
                                       'username': 'alice',
                                       'role': 'operator',
                                       'active': True,
                                       'created_at': '2026-11-20T09:12:44+00:00',
                                       'last_login_at': '2026-11-26T08:03:10+00:00',
                                       'tokens': 1}]})

    users: list[UserOut]


class NewUser(BaseModel):
    model_config = example({'username': 'alice', 'role': 'operator'})

    username: str = Field(min_length=1, max_length=64, pattern=svc.USERNAME_RE.pattern,
                          description="Letters, digits and _ . @ - (1 to 64)")
    role: str = Field("viewer", pattern=ROLE_PATTERN)
    password: str | None = Field(None, min_length=svc.MIN_PASSWORD,
                                 max_length=svc.MAX_PASSWORD,
                                 description="Omit to generate one (returned once)")


class UserChange(BaseModel):
    model_config = example({'role': 'viewer', 'active': True})

    role: str | None = Field(None, pattern=ROLE_PATTERN)
    active: bool | None = Field(None, description="false deactivates: ends the user's "
                                                 "sessions, their tokens stop working")


class PasswordReset(BaseModel):
    model_config = example({'password': 'a-long-new-passphrase'})

    password: str | None = Field(None, min_length=svc.MIN_PASSWORD,
                                 max_length=svc.MAX_PASSWORD,
                                 description="Omit to generate one (returned once)")


class PasswordResult(BaseModel):
    model_config = example({'user': {'id': 2,
                                     'username': 'alice',
                                     'role': 'operator',
                                     'active': True,
                                     'created_at': '2026-11-20T09:12:44+00:00',
                                     'last_login_at': '2026-11-26T08:03:10+00:00',
                                     'tokens': 1},
                            'password': None})

    user: UserOut
    password: str | None = Field(description="The generated password, shown once; null "
                                             "when you sent one")


class UserPath(BaseModel):
    user_id: int = Field(ge=1, le=MAX_ID)


class TokenPath(BaseModel):
    token_id: int = Field(ge=1, le=MAX_ID)


class TokensQuery(BaseModel):
    user_id: int | None = Field(None, ge=1, le=MAX_ID, description="Only this user's tokens")
    active_only: bool = Field(False, description="Hide revoked and expired tokens")


class ActiveQuery(BaseModel):
    active_only: bool = Field(False, description="Hide revoked and expired tokens")


class NewToken(BaseModel):
    model_config = example({'name': 'deploy script', 'expires_in_days': 30})

    name: str = Field("", max_length=100, description="A label, e.g. what script uses it")
    expires_in_days: int | None = Field(30, ge=1, le=svc.MAX_TOKEN_DAYS,
                                        description="Lifetime in days; null for no expiry")


class TokenOut(BaseModel):
    model_config = example({'id': 7,
                            'user_id': 2,
                            'username': 'alice',
                            'name': 'deploy script',
                            'prefix': 'ops_Xq3vT9aB',
                            'created_at': '2026-11-21T10:00:00+00:00',
                            'expires_at': '2026-12-21T10:00:00+00:00',
                            'last_used_at': '2026-11-26T07:55:02+00:00',
                            'revoked_at': None,
                            'status': 'active'})

    id: int
    user_id: int
    username: str
    name: str
    prefix: str = Field(description="The token's first characters, to recognise it")
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    status: str = Field(description="active, expired or revoked")


class TokenCreated(TokenOut):
    model_config = example({'id': 7,
                            'user_id': 2,
                            'username': 'alice',
                            'name': 'deploy script',
                            'prefix': 'ops_Xq3vT9aB',
                            'created_at': '2026-11-21T10:00:00+00:00',
                            'expires_at': '2026-12-21T10:00:00+00:00',
                            'last_used_at': None,
                            'revoked_at': None,
                            'status': 'active',
                            'token': 'ops_Xq3vT9aBexampleexampleexampleexample12'})

    token: str = Field(description="Send as 'Authorization: Bearer <token>'. Shown once; "
                                   "only its hash is stored.")


class TokenList(BaseModel):
    model_config = example({'tokens': [{'id': 7,
                                        'user_id': 2,
                                        'username': 'alice',
                                        'name': 'deploy script',
                                        'prefix': 'ops_Xq3vT9aB',
                                        'created_at': '2026-11-21T10:00:00+00:00',
                                        'expires_at': '2026-12-21T10:00:00+00:00',
                                        'last_used_at': '2026-11-26T07:55:02+00:00',
                                        'revoked_at': None,
                                        'status': 'active'}]})

    tokens: list[TokenOut]


# ----------------------------------------------------------------- helpers

def _store():
    return current_app.extensions["ops"].store


def _failure(exc: Exception):
    if isinstance(exc, svc.UsersError):
        return error(exc.status, exc.code, str(exc))
    return store_unavailable(exc, "users API")


_guarded = guarded((svc.UsersError, SQLAlchemyError), _failure)


# ------------------------------------------------------------------ routes

@bp.get("", responses={200: UserList, **ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def list_users():
    """Every account with its role, status, creation and last sign-in, and
    how many working API tokens it has."""
    return {"users": svc.list_users(_store())}


@bp.post("", responses={201: UserCreated, **CHANGE_ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def create_user(body: NewUser):
    """Create an account. Without `password` a random one is generated and
    returned once. 409 `user_exists` when the name is taken (ignoring case)."""
    return svc.create_user(_store(), actor=current_actor(), username=body.username,
                           role=body.role, password=body.password), 201


@bp.get("/tokens", responses={200: TokenList, **ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def list_tokens(query: TokensQuery):
    """API tokens of every user (or one), newest first: name, prefix, dates
    and status; never the token or its hash."""
    return {"tokens": svc.list_tokens(_store(), query.user_id,
                                      include_inactive=not query.active_only)}


@bp.delete("/tokens/<int:token_id>", responses={200: TokenOut, **CHANGE_ERRORS},
           security=SECURITY)
@requires("admin")
@_guarded
def revoke_token(path: TokenPath):
    """Revoke any user's token; it stops working at once. 409
    `already_revoked` when it was revoked before."""
    return svc.revoke_token(_store(), actor=current_actor(), token_id=path.token_id)


@bp.get("/<int:user_id>", responses={200: UserOut, **ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def get_user(path: UserPath):
    """One account."""
    return svc.get_user(_store(), path.user_id)


@bp.patch("/<int:user_id>", responses={200: UserOut, **CHANGE_ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def update_user(path: UserPath, body: UserChange):
    """Change the role and/or activate or deactivate. Deactivating ends the
    user's sessions and their tokens stop working. 409 `last_admin` when it
    would leave no active admin, `self_change` when you demote or
    deactivate yourself."""
    return svc.update_user(_store(), actor=current_actor(), user_id=path.user_id,
                           role=body.role, active=body.active)


@bp.post("/<int:user_id>/password", responses={200: PasswordResult, **CHANGE_ERRORS},
         security=SECURITY)
@requires("admin")
@_guarded
def reset_password(path: UserPath, body: PasswordReset):
    """Set a new password (omit `password` to generate one, returned once).
    Ends the user's sessions; their API tokens keep working."""
    return svc.reset_password(_store(), actor=current_actor(), user_id=path.user_id,
                              password=body.password)


@bp.get("/<int:user_id>/tokens", responses={200: TokenList, **ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def user_tokens(path: UserPath, query: ActiveQuery):
    """One user's API tokens, newest first."""
    return {"tokens": svc.list_tokens(_store(), path.user_id,
                                      include_inactive=not query.active_only)}


@bp.post("/<int:user_id>/tokens", responses={201: TokenCreated, **CHANGE_ERRORS},
         security=SECURITY)
@requires("admin")
@_guarded
def create_token(path: UserPath, body: NewToken):
    """Create an API token for a user (e.g. a service account); the token
    is in the response once. 409 `user_inactive` for a deactivated user."""
    return svc.create_token(_store(), actor=current_actor(), user_id=path.user_id,
                            name=body.name, expires_in_days=body.expires_in_days), 201
