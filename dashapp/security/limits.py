"""Rate limits (Flask-Limiter), counted in Redis so every worker shares them.

- per user (signed out: per IP): OPS_RATE_LIMIT_DEFAULT, over all routes;
- per IP, whoever is signed in: OPS_RATE_LIMIT_IP, over all routes;
- sign-in and API token creation, per IP: OPS_RATE_LIMIT_LOGIN;
- EXPLAIN, backups, restores and profiler starts, per user:
  OPS_RATE_LIMIT_SENSITIVE, whether they come through the REST API or a
  page's button (a Dash callback whose output is listed below).

Static files are not counted. A refused request gets 429 with Retry-After in
the API's JSON error shape, and the first refusal of each caller and limit
per window is written to the audit trail (not every one: a flood must not
flood the store too). When Redis is down the limits fall back to per-process
memory rather than failing open or failing every request.
"""
from __future__ import annotations

import logging
import math
import time

from flask import Flask, current_app, jsonify, request
from flask_limiter import ApplicationLimit, Limit, Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded

from dashapp.security import audit

logger = logging.getLogger(__name__)

# Routes that count against the sign-in limit (per IP).
LOGIN_ENDPOINTS = frozenset({"ops_auth.login", "api_auth.create_token"})
# REST routes that count against the sensitive limit (per user).
SENSITIVE_ENDPOINTS = frozenset({
    "api_queries.post_explain", "api_backup.create", "api_backup.restore",
    "api_profiler.start",
})
# Page buttons that do the same through Dash: a piece of the id of the
# component whose click fired the callback (dict ids arrive as JSON).
SENSITIVE_DASH_TRIGGERS = ("backups-create-go.", '"backups-restore"', "profiler-start.")
# Never counted: static files the browser fetches on every page load.
STATIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/_favicon.ico",
                   "/api/docs/")
AUDIT_DEDUP_SECONDS = 60


def _ip() -> str:
    return request.remote_addr or "unknown"


def _user_or_ip() -> str:
    """The signed-in user's name, else the caller's IP address."""
    from dashapp.security.auth import current_principal
    try:
        principal = current_principal()
    except Exception:  # noqa: BLE001 - store down: count by IP instead
        principal = None
    return f"user:{principal.username}" if principal else f"ip:{_ip()}"


def _is_login() -> bool:
    return request.method == "POST" and request.endpoint in LOGIN_ENDPOINTS


def _is_sensitive() -> bool:
    if request.method != "POST":
        return False
    if request.endpoint in SENSITIVE_ENDPOINTS:
        return True
    if request.path.endswith("/_dash-update-component"):
        body = request.get_json(silent=True)
        changed = body.get("changedPropIds") if isinstance(body, dict) else None
        if not isinstance(changed, list):
            return False
        return any(isinstance(prop, str) and marker in prop
                   for prop in changed for marker in SENSITIVE_DASH_TRIGGERS)
    return False


def _is_static() -> bool:
    return request.path.startswith(STATIC_PREFIXES)


def _audit_breach(limit: RequestLimit) -> None:
    """Audit a refusal once per caller, limit and window."""
    ops = current_app.extensions["ops"]
    who = _user_or_ip()
    marker = f"ops:ratelimit-audited:{who}:{limit.limit}"
    try:
        first = ops.redis.client.set(marker, 1, nx=True, ex=AUDIT_DEDUP_SECONDS)
    except Exception:  # noqa: BLE001 - Redis down: audit every refusal then
        first = True
    if not first:
        return
    audit.record(ops.store, actor=who.split(":", 1)[1], action="rate_limited",
                 outcome="denied", target=f"{request.method} {request.path}"[:255],
                 details={"limit": str(limit.limit), "key": who.split(":", 1)[0]})


def init_limits(app: Flask, settings, redis_client) -> Limiter:
    """Attach the limiter to `app` (after the auth guard, so the principal is
    known and an unauthenticated flood is still counted by IP)."""
    limiter = Limiter(
        _user_or_ip,
        app=None,
        application_limits=[
            ApplicationLimit(settings.rate_limit_default, key_function=_user_or_ip),
            ApplicationLimit(settings.rate_limit_ip, key_function=_ip),
        ],
        default_limits=[
            Limit(settings.rate_limit_login, key_function=_ip,
                  exempt_when=lambda: not _is_login()),
            Limit(settings.rate_limit_sensitive, key_function=_user_or_ip,
                  exempt_when=lambda: not _is_sensitive()),
        ],
        storage_uri="redis://",
        storage_options={"connection_pool": redis_client.connection_pool},
        strategy="moving-window",
        headers_enabled=True,
        key_prefix="ops:ratelimit",
        in_memory_fallback_enabled=True,
        on_breach=_audit_breach,
        enabled=settings.rate_limit_enabled,
    )
    limiter.request_filter(_is_static)
    limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def too_many(exc: RateLimitExceeded):
        retry = _retry_after(limiter)
        message = (f"Too many requests ({exc.limit.limit}); "
                   f"try again in {retry} seconds.")
        if request.path.startswith("/login"):
            from dashapp.security.views import render_login
            from flask import make_response
            resp = make_response(render_login(
                message, (request.form.get("username") or "")[:64], 429))
        else:
            resp = jsonify({"error": {"code": "rate_limited", "message": message}})
            resp.status_code = 429
        resp.headers["Retry-After"] = str(retry)
        return resp

    return limiter


def _retry_after(limiter: Limiter) -> int:
    """Seconds until the breached limit lets the caller in again."""
    try:
        current = limiter.current_limit
        reset = current.reset_at if current else None
    except Exception:  # noqa: BLE001 - storage hiccup: say a minute
        reset = None
    if not reset:
        return 60
    return max(1, math.ceil(reset - time.time()))
