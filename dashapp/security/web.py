"""What every response and every state-changing request goes through:
CSRF checks (Flask-WTF), security headers with a Content-Security-Policy,
trusted reverse proxies (werkzeug ProxyFix), and compressed responses
(flask-compress).

CSRF: a request that changes something (POST, PUT, PATCH, DELETE) and is
authenticated by the session cookie must carry the session's CSRF token in
an `X-CSRF-Token` header. Pages get the token in the `ops_csrf` cookie
(readable by the page's script, SameSite=Strict) and assets/05-csrf.js adds
the header to every same-origin fetch, so Dash callbacks and the page's own
fetches carry it without any code of theirs. Requests with a bearer token
carry no ambient credential a forged page could borrow, so they need none.
The sign-in form has its own token (security/views.py).
"""
from __future__ import annotations

import logging

from flask import Flask, current_app, g, request
from flask_compress import Compress
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from werkzeug.middleware.proxy_fix import ProxyFix

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_COOKIE = "ops_csrf"
CSRF_HEADER = "X-CSRF-Token"
# The sign-in form checks its own token; signing out is harmless to force.
CSRF_EXEMPT_PREFIXES = ("/login", "/logout")
# Swagger UI (vendored by flask-openapi3-swagger) boots from inline scripts.
DOCS_PREFIX = "/api/docs"


def _csp(script_hashes: list[str], inline_scripts: bool = False) -> str:
    script = "'self' 'unsafe-inline'" if inline_scripts else \
        " ".join(["'self'", *script_hashes])
    return "; ".join([
        "default-src 'self'",
        f"script-src {script}",
        # Plotly and React set inline styles; styles cannot run code.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def init_web_security(app: Flask, dash_app, settings) -> None:
    """Call once the Dash app exists (its inline scripts are hashed)."""
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)

    app.config.update(
        WTF_CSRF_CHECK_DEFAULT=False,       # checked in _check_csrf, below
        WTF_CSRF_TIME_LIMIT=None,           # valid as long as the session
        WTF_CSRF_HEADERS=[CSRF_HEADER, "X-CSRFToken"],
        WTF_CSRF_SSL_STRICT=True,           # HTTPS: the Referer must be us
        # Never buffer a stream (the live log view is Server-Sent Events).
        COMPRESS_STREAMS=False,
        COMPRESS_MIN_SIZE=1024,
        COMPRESS_ALGORITHM=["br", "gzip"],
    )
    csrf = CSRFProtect(app)
    Compress(app)
    policy: dict[str, str] = {}

    def content_security_policy(docs: bool) -> str:
        key = "docs" if docs else "app"
        if key not in policy:
            # Hashed on first use: every page module has registered its
            # callbacks by then.
            policy[key] = _csp(list(dash_app.csp_hashes()), inline_scripts=docs)
        return policy[key]

    @app.before_request
    def _check_csrf():
        if request.method in SAFE_METHODS or request.path.startswith(CSRF_EXEMPT_PREFIXES):
            return None
        principal = g.get("ops_principal")
        if principal is None or principal.via != "session":
            return None  # bearer token, or refused by the guard already
        from dashapp.security.roles import PUBLIC, access_of
        view = current_app.view_functions.get(request.endpoint or "")
        if view is not None and access_of(view) == PUBLIC:
            return None  # e.g. POST /api/auth/token: the password authorises it
        csrf.protect()  # raises CSRFError -> 400 below
        return None

    @app.errorhandler(CSRFError)
    def _csrf_failed(exc: CSRFError):
        from dashapp.api.common import error
        from dashapp.security import audit
        principal = g.get("ops_principal")
        audit.record(current_app.extensions["ops"].store,
                     actor=principal.username if principal else "?",
                     action="csrf_rejected", outcome="denied",
                     target=f"{request.method} {request.path}"[:255],
                     details={"reason": exc.description})
        return error(400, "csrf_failed",
                     "The request's security token is missing or expired; "
                     "reload the page and try again.")

    @app.after_request
    def _headers(response):
        headers = response.headers
        if response.status_code not in (429, 503):
            # Flask-Limiter's Retry-After belongs on refusals only.
            headers.pop("Retry-After", None)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Permissions-Policy",
                           "camera=(), microphone=(), geolocation=(), payment=()")
        headers.setdefault("Content-Security-Policy",
                           content_security_policy(request.path.startswith(DOCS_PREFIX)))
        if request.is_secure:
            # Browsers ignore (and complain about) these over plain HTTP.
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if response.mimetype == "text/html":
            # Pages and the sign-in form: never cached (they carry who you are).
            response.headers["Cache-Control"] = "no-store"
            principal = g.get("ops_principal")
            if principal is not None and principal.via == "session":
                response.set_cookie(CSRF_COOKIE, generate_csrf(), httponly=False,
                                    samesite="Strict", secure=request.is_secure,
                                    path="/")
        return response
