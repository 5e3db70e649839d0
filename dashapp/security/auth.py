"""Users, passwords, API tokens, sessions and the request guard.

Passwords are hashed with scrypt (werkzeug), tokens are random 256-bit
strings of which only the SHA-256 is stored. Every request passes one guard:
`/api/...` routes answer 401/403 in the JSON error shape, pages redirect to
the sign-in form.

A browser session is a row in the store (ops_user_session) named by a random
key in the signed session cookie: signing out deletes the row, deactivating
a user or changing their password deletes all of theirs. A copied cookie is
therefore worth nothing once its session has ended, and re-activating a user
brings none of their old sessions back. Sessions unused for
SESSION_IDLE_LIMIT end by themselves.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, current_app, g, jsonify, redirect, request, url_for
from flask_login import LoginManager, UserMixin, current_user
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from werkzeug.security import check_password_hash, generate_password_hash

from dashapp.security import audit
from dashapp.security.roles import PUBLIC, ROLES, access_of, role_allows
from dashapp.store import Store
from dashapp.store.models import ApiToken, User, UserSession, as_utc, utcnow

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "ops_"

@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Checked for unknown users so a sign-in costs the same either way (no
    user enumeration by timing); made on first use, not at import."""
    return generate_password_hash("not-a-real-password")

# What a signed-out visitor may load: the sign-in form and static files.
# Whole paths only: /loginx or /login/x are not the sign-in form.
PUBLIC_PATHS = frozenset({"/login", "/logout", "/_favicon.ico"})
PUBLIC_PREFIXES = ("/assets/",)
# A session unused this long has ended (the server forgets it).
SESSION_IDLE_LIMIT = timedelta(hours=12)
# Its last use is written at most this often: no write per request.
SESSION_TOUCH_EVERY = timedelta(minutes=10)


def is_public_path(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@dataclass(frozen=True)
class Principal(UserMixin):
    """The signed-in user as the request sees it (never the ORM row)."""
    id: int
    username: str
    role: str
    password_fingerprint: str
    via: str = "session"  # "session" or "token"
    session_key: str = ""  # the server-side session (browser sessions only)

    def get_id(self) -> str:
        # What the session cookie stores. The fingerprint ends every session
        # when the password changes (also one changed directly in the store).
        return f"{self.id}:{self.password_fingerprint}:{self.session_key}"

    @classmethod
    def of(cls, user: User, via: str = "session", session_key: str = "") -> "Principal":
        return cls(user.id, user.username, user.role,
                   _fingerprint(user.password_hash), via, session_key)


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:12]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserService:
    """User accounts and API tokens, on the console's store."""

    def __init__(self, store: Store):
        self.store = store

    # ----- users -----------------------------------------------------------
    def create_user(self, username: str, password: str, role: str) -> User:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with self.store.session() as sess:
            user = User(username=username, role=role,
                        password_hash=generate_password_hash(password))
            sess.add(user)
        return user

    def get(self, user_id: int) -> User | None:
        with self.store.session() as sess:
            return sess.get(User, user_id)

    def by_name(self, username: str) -> User | None:
        with self.store.session() as sess:
            return sess.scalar(select(User).where(User.username == username))

    def set_password(self, username: str, password: str) -> None:
        with self.store.session() as sess:
            user = sess.scalar(select(User).where(User.username == username))
            if user is None:
                raise LookupError(username)
            user.password_hash = generate_password_hash(password)
            end_sessions(sess, user.id)

    def authenticate(self, username: str, password: str) -> User | None:
        """The active user whose password matches, else None (constant-ish time)."""
        with self.store.session() as sess:
            user = sess.scalar(select(User).where(User.username == username))
            if user is None or not user.active:
                check_password_hash(_dummy_hash(), password)
                return None
            if not check_password_hash(user.password_hash, password):
                return None
            user.last_login_at = utcnow()
            return user

    def ensure_admin(self, username: str, password: str | None) -> str | None:
        """Create the admin on first start; return a generated password once.

        With a configured password the admin's password is set to it, so the
        environment is the source of truth. Without one, a random password
        is generated only when the account does not exist yet.
        """
        existing = self.by_name(username)
        if existing is None:
            generated = None
            if password is None:
                generated = password = secrets.token_urlsafe(12)
            try:
                self.create_user(username, password, "admin")
            except IntegrityError:
                # Another worker created it a moment ago; its password stands.
                return self.ensure_admin(username, None if generated else password)
            logger.info("created admin account %r", username)
            return generated
        if password is not None and not check_password_hash(
                existing.password_hash, password):
            self.set_password(username, password)
            logger.info("admin password for %r set from OPS_ADMIN_PASSWORD", username)
        return None

    # ----- browser sessions ------------------------------------------------
    def start_session(self, user_id: int) -> str:
        """A new server-side session; returns the key the cookie carries.
        Also forgets sessions idle past SESSION_IDLE_LIMIT (never signed out)."""
        key = secrets.token_urlsafe(32)
        now = utcnow()
        with self.store.session() as sess:
            sess.execute(delete(UserSession).where(
                UserSession.last_seen_at < now - SESSION_IDLE_LIMIT))
            sess.add(UserSession(id=hash_token(key), user_id=user_id,
                                 created_at=now, last_seen_at=now))
        return key

    def session_user(self, user_id: int, key: str) -> User | None:
        """The active user of a live session `key` of user `user_id`, else None."""
        if not key:
            return None
        session_id = hash_token(key)
        with self.store.session() as sess:
            row = sess.get(UserSession, session_id)
            if row is None or row.user_id != user_id:
                return None
            now = utcnow()
            seen = as_utc(row.last_seen_at)
            if now - seen > SESSION_IDLE_LIMIT:
                return None  # forgotten by the next sign-in's clean-up
            user = sess.get(User, user_id)
            if user is None or not user.active:
                return None
        if now - seen > SESSION_TOUCH_EVERY:
            self._touch(session_id, now)
        return user

    def _touch(self, session_id: str, now) -> None:
        """Record a session's use; best effort, so a store that can be read
        but not written (locked) does not sign anyone out."""
        try:
            with self.store.session() as sess:
                row = sess.get(UserSession, session_id)
                if row is not None:
                    row.last_seen_at = now
        except SQLAlchemyError as exc:
            logger.warning("could not record a session's use: %s", type(exc).__name__)

    def end_session(self, key: str) -> None:
        """Sign-out: the session ends on the server, whoever holds its cookie."""
        if key:
            with self.store.session() as sess:
                sess.execute(delete(UserSession).where(UserSession.id == hash_token(key)))

    # ----- tokens ----------------------------------------------------------
    def create_token(self, user_id: int, name: str = "",
                     expires_in_days: int | None = 30) -> tuple[str, ApiToken]:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = (utcnow() + timedelta(days=expires_in_days)
                   if expires_in_days else None)
        with self.store.session() as sess:
            row = ApiToken(user_id=user_id, name=name, token_hash=hash_token(token),
                           prefix=token[:12], expires_at=expires)
            sess.add(row)
        return token, row

    def user_for_token(self, token: str) -> User | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self.store.session() as sess:
            row = sess.scalar(select(ApiToken).where(
                ApiToken.token_hash == hash_token(token)))
            if row is None or row.revoked_at is not None:
                return None
            if row.expires_at is not None and as_utc(row.expires_at) < utcnow():
                return None
            user = sess.get(User, row.user_id)
            if user is None or not user.active:
                return None
            now = utcnow()
            # Touch last_used at most once a minute: no write per request.
            if row.last_used_at is None or now - as_utc(row.last_used_at) > timedelta(minutes=1):
                row.last_used_at = now
            return user

    def revoke_token(self, token_id: int) -> ApiToken | None:
        with self.store.session() as sess:
            row = sess.get(ApiToken, token_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = utcnow()
            return row




def end_sessions(sess, user_id: int) -> None:
    """End every browser session of a user, in the caller's transaction
    (deactivation, password changes): their cookies stop working for good."""
    sess.execute(delete(UserSession).where(UserSession.user_id == user_id))


# ----- the request guard ----------------------------------------------------
def error_response(status: int, code: str, message: str):
    resp = jsonify({"error": {"code": code, "message": message}})
    resp.status_code = status
    return resp


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def current_principal() -> Principal | None:
    """The caller of this request, from its bearer token or session."""
    if "ops_principal" in g:
        return g.ops_principal
    principal = None
    users: UserService = current_app.extensions["ops"].users
    token = _bearer_token()
    if token is not None:
        user = users.user_for_token(token)
        principal = Principal.of(user, via="token") if user else None
    elif current_user.is_authenticated:
        principal = current_user._get_current_object()
    g.ops_principal = principal
    return principal


def current_role() -> str | None:
    principal = current_principal()
    return principal.role if principal else None


def _is_page(path: str) -> bool:
    """A page of the console (Dash's page registry), e.g. / or /endpoints."""
    import dash
    wanted = path.rstrip("/") or "/"
    return any(((page.get("path") or "").rstrip("/") or "/") == wanted
               for page in dash.page_registry.values())


def _guard():
    path = request.path
    is_api = path == "/api" or path.startswith("/api/")
    if not is_api:
        if is_public_path(path) or path == "/metrics":
            return None  # /metrics checks its own bearer token
        if current_principal() is not None:
            return None
        if path.startswith("/_dash-") or request.method != "GET":
            return error_response(401, "unauthenticated", "Sign in first.")
        if not _is_page(path):
            # Signed out, only the pages lead to the sign-in form; anything
            # else gets no page shell (which names Dash's and Plotly's versions).
            return error_response(404, "not_found", "There is no such page.")
        target = request.full_path if request.query_string else path
        return redirect(url_for("ops_auth.login", next=target))

    if request.url_rule is None:
        return None  # a 404 (or 405): answered by the error handlers
    if not request.url_rule.rule.startswith("/api"):
        # Dash's catch-all page route matched an unknown /api/... path.
        return error_response(404, "not_found", f"No API route {path}.")
    view = current_app.view_functions.get(request.endpoint)
    overrides = current_app.config.get("OPS_ACCESS_OVERRIDES", {})
    required = overrides.get(request.endpoint) or access_of(view)
    if required is None:
        logger.error("route %s has no access policy; refused", request.endpoint)
        return error_response(403, "forbidden", "This route has no access policy.")
    if required == PUBLIC:
        return None
    try:
        principal = current_principal()
    except SQLAlchemyError:
        logger.warning("cannot check credentials: the store is unavailable")
        return error_response(503, "store_unavailable",
                              "The console's store is unavailable; try again shortly.")
    if principal is None:
        message = ("The API token is invalid, expired or revoked."
                   if _bearer_token() else
                   "Sign in or send 'Authorization: Bearer <token>'.")
        return error_response(401, "unauthenticated", message)
    if not role_allows(principal.role, required):
        audit.record(current_app.extensions["ops"].store, actor=principal.username,
                     action="permission_denied", outcome="denied",
                     target=f"{request.method} {path}",
                     details={"required": required, "role": principal.role})
        return error_response(
            403, "forbidden",
            f"This action needs the {required} role; you are {principal.role}.")
    return None


def init_auth(app: Flask, users: UserService) -> None:
    """Sessions (Flask-Login), the guard, and secure cookie defaults."""
    manager = LoginManager()
    manager.session_protection = "basic"

    @manager.user_loader
    def load_user(session_id: str):
        user_id, _, rest = session_id.partition(":")
        fingerprint, _, key = rest.partition(":")
        try:
            user = users.session_user(int(user_id), key)
        except (ValueError, Exception):  # noqa: BLE001 - bad cookie or store down
            return None
        if user is None:
            return None
        principal = Principal.of(user, session_key=key)
        if not hmac.compare_digest(principal.password_fingerprint, fingerprint):
            return None
        return principal

    manager.init_app(app)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    app.before_request(_guard)


def action_allowed(required: str, action: str, target: str) -> tuple[str | None, str | None]:
    """For a Dash callback that changes something (the Dash endpoint itself
    only needs a sign-in): (username, None) when the caller's role allows
    `required`, else (None, a sentence for the user) after auditing the
    denial as the API's guard does."""
    from dashapp.security import audit
    from dashapp.security.roles import role_allows
    principal = current_principal()
    if principal is not None and role_allows(principal.role, required):
        return principal.username, None
    role = principal.role if principal else "signed out"
    audit.record(current_app.extensions["ops"].store,
                 actor=principal.username if principal else "?",
                 action="permission_denied", outcome="denied", target=target[:255],
                 details={"required": required, "role": role, "action": action})
    return None, f"This needs the {required} role; you are {role}."
