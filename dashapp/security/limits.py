"""Rate limits (Flask-Limiter), counted in Redis so every worker shares them.

- per user (signed out: per IP): OPS_RATE_LIMIT_DEFAULT, over all routes;
- per IP, whoever is signed in: OPS_RATE_LIMIT_IP, over all routes;
- sign-in, per IP: OPS_RATE_LIMIT_LOGIN, one counter for the form
  (/login) and API token creation (/api/auth/token) together;
- sign-in, per account: wrong passwords for one account, from every
  client, count against OPS_RATE_LIMIT_LOGIN as well. While an account is
  over it, a client that has itself failed on that account within the
  window is refused for it; a client without such a failure still has its
  password checked, so a flood from elsewhere never locks the right password
  out (and a spread-out attack gets one guess per client and window);
- sensitive actions, per user: OPS_RATE_LIMIT_SENSITIVE, one counter over
  EXPLAIN, backups, restores and profiler starts, whether they come through
  the REST API or a page (a Dash callback fired by a control listed below).

Static files are not counted. A refused request gets 429 with Retry-After in
the API's JSON error shape (no other response carries Retry-After), and the
first refusal of each caller and limit per window is written to the audit
trail (not every one: a flood must not flood the store too). When Redis is
down the limits fall back to per-process memory rather than failing open or
failing every request.
"""
from __future__ import annotations

import json
import logging
import math
import time

from flask import Flask, current_app, jsonify, request
from flask_limiter import ApplicationLimit, Limit, Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded
from limits import RateLimitItem, parse_many

from dashapp.security import audit

logger = logging.getLogger(__name__)

KEY_PREFIX = "ops:ratelimit"
# Shared scopes: every route of a group counts against one counter.
LOGIN_SCOPE = "login"
SENSITIVE_SCOPE = "sensitive"
FAILURES_SCOPE = "login-failures"
# Routes that count against the sign-in limit (per IP).
LOGIN_ENDPOINTS = frozenset({"ops_auth.login", "api_auth.create_token"})
# What both sign-in routes answer to a wrong username or password.
FAILED_SIGN_IN = 401
# REST routes that count against the sensitive limit (per user); optimize
# runs EXPLAIN on the monitored database like POST /explain does.
SENSITIVE_ENDPOINTS = frozenset({
    "api_queries.post_explain", "api_queries.get_optimize", "api_backup.create",
    "api_backup.restore", "api_profiler.start",
})
# Page controls that do the same through Dash: (component id, property) of
# the input whose change fired the callback, dict ids as Dash spells them
# (sorted keys, no spaces). Opening a query on the SQL page EXPLAINs it.
SENSITIVE_DASH_INPUTS = frozenset({
    ("backups-create-go", "n_clicks"),
    ('{"dialog":"backups-restore","type":"ops-confirm-button"}', "n_clicks"),
    ("profiler-start", "n_clicks"),
    ("queries-table", "cellClicked"),
})
# Never counted: static files the browser fetches on every page load.
STATIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/_favicon.ico",
                   "/api/docs/")
AUDIT_DEDUP_SECONDS = 60
# Agents' batches: authorised by an ingest key, bounded in size, one a
# second per process; many processes share an address behind a NAT.
UNLIMITED_PATHS = frozenset({"/api/ingest"})


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
    if request.endpoint in SENSITIVE_ENDPOINTS:
        return True
    if request.method == "POST" and request.path.endswith("/_dash-update-component"):
        body = request.get_json(silent=True)
        changed = body.get("changedPropIds") if isinstance(body, dict) else None
        if isinstance(changed, list):
            return any(_dash_input(prop) in SENSITIVE_DASH_INPUTS for prop in changed)
    return False


def _dash_input(prop: object) -> tuple[str, str] | None:
    """(component id, property) of one of Dash's "changedPropIds"."""
    if not isinstance(prop, str) or "." not in prop:
        return None
    component, _, name = prop.rpartition(".")
    if component.startswith("{"):
        try:
            component = json.dumps(json.loads(component), sort_keys=True,
                                   separators=(",", ":"))
        except ValueError:
            return None
    return component, name


def _login_account() -> str | None:
    """The account a sign-in names (trimmed, lower case: names are unique
    whatever their case), from the form or the JSON body."""
    if request.endpoint == "ops_auth.login":
        name = request.form.get("username")
    else:
        body = request.get_json(silent=True)
        name = body.get("username") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        return None
    return name.strip()[:64].lower()


def _failure_keys(account: str, ip: str) -> tuple[list[str], list[str]]:
    """Storage identifiers of an account's failures, and of one client's."""
    return ([KEY_PREFIX, f"account:{account}", FAILURES_SCOPE],
            [KEY_PREFIX, f"account:{account}|ip:{ip}", FAILURES_SCOPE])


def _is_static() -> bool:
    """Not counted: static files, and agents' batches (UNLIMITED_PATHS)."""
    return request.path.startswith(STATIC_PREFIXES) or request.path in UNLIMITED_PATHS


def _audit_breach(limit: RequestLimit) -> None:
    _audit_refusal(_user_or_ip(), str(limit.limit))


def _audit_refusal(who: str, limit: str) -> None:
    """Audit a refusal once per caller ("kind:name"), limit and window."""
    ops = current_app.extensions["ops"]
    marker = f"ops:ratelimit-audited:{who}:{limit}"
    try:
        first = ops.redis.client.set(marker, 1, nx=True, ex=AUDIT_DEDUP_SECONDS)
    except Exception:  # noqa: BLE001 - Redis down: audit every refusal then
        first = True
    if not first:
        return
    kind, _, name = who.partition(":")
    audit.record(ops.store, actor=name, action="rate_limited",
                 outcome="denied", target=f"{request.method} {request.path}"[:255],
                 details={"limit": limit, "per": kind})


def _refusal(message: str, retry: int):
    """The 429: the sign-in form with the message, else the API's JSON."""
    if request.path.startswith("/login"):
        from flask import make_response

        from dashapp.security.views import render_login
        resp = make_response(render_login(
            message, (request.form.get("username") or "")[:64], 429))
    else:
        resp = jsonify({"error": {"code": "rate_limited", "message": message}})
        resp.status_code = 429
    resp.headers["Retry-After"] = str(retry)
    return resp


def _retry_after_only_on_429(response):
    """Flask-Limiter puts Retry-After on every limited response; it belongs
    on refusals only."""
    if response.status_code != 429:
        response.headers.pop("Retry-After", None)
    return response


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
            Limit(settings.rate_limit_login, key_function=_ip, scope=LOGIN_SCOPE,
                  shared=True, exempt_when=lambda: not _is_login()),
            Limit(settings.rate_limit_sensitive, key_function=_user_or_ip,
                  scope=SENSITIVE_SCOPE, shared=True,
                  exempt_when=lambda: not _is_sensitive()),
        ],
        storage_uri="redis://",
        storage_options={"connection_pool": redis_client.connection_pool},
        strategy="moving-window",
        headers_enabled=True,
        key_prefix=KEY_PREFIX,
        in_memory_fallback_enabled=True,
        on_breach=_audit_breach,
        enabled=settings.rate_limit_enabled,
    )
    limiter.request_filter(_is_static)
    # Registered before the limiter's own hook, so it runs after it (Flask
    # runs after_request hooks in reverse order).
    app.after_request(_retry_after_only_on_429)
    limiter.init_app(app)
    if settings.rate_limit_enabled:
        _init_account_limits(app, limiter, parse_many(settings.rate_limit_login))

    @app.errorhandler(RateLimitExceeded)
    def too_many(exc: RateLimitExceeded):
        retry = _retry_after(limiter)
        return _refusal(f"Too many requests ({exc.limit.limit}); "
                        f"try again in {retry} seconds.", retry)

    return limiter


def _init_account_limits(app: Flask, limiter: Limiter, items: list[RateLimitItem]) -> None:
    """Count wrong passwords per account and per (account, client); refuse a
    client that has failed on an account that is over its budget."""

    @app.before_request
    def _account_guard():
        if not _is_login() or _is_static():
            return None
        account = _login_account()
        if account is None:
            return None
        every, mine = _failure_keys(account, _ip())
        try:
            strategy = limiter.limiter
            for item in items:
                if strategy.test(item, *every):
                    continue  # the account is within its budget
                stats = strategy.get_window_stats(item, *mine)
                if stats.remaining >= item.amount:
                    continue  # this client has not failed on it: let it try
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                _audit_refusal(f"account:{account}", f"{item} failures")
                return _refusal(f"Too many wrong passwords for this account ({item}); "
                                f"try again in {retry} seconds.", retry)
        except Exception as exc:  # noqa: BLE001 - storage hiccup: the IP limit still holds
            logger.warning("sign-in account limit not checked: %s", exc)
        return None

    @app.after_request
    def _count_failure(response):
        if response.status_code != FAILED_SIGN_IN or not _is_login():
            return response
        account = _login_account()
        if account is None:
            return response
        every, mine = _failure_keys(account, _ip())
        try:
            strategy = limiter.limiter
            for item in items:
                strategy.hit(item, *every)
                strategy.hit(item, *mine)
        except Exception as exc:  # noqa: BLE001 - storage hiccup: the IP limit still holds
            logger.warning("sign-in failure not counted: %s", exc)
        return response


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
