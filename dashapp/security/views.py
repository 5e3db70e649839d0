"""The sign-in form and sign-out: plain Flask, so they work before any JS."""
from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import urlparse

from flask import (Blueprint, current_app, redirect, render_template, request,
                   session, url_for)
from flask_login import login_user, logout_user

from dashapp.api.common import error
from dashapp.security import audit
from dashapp.security.auth import Principal, current_principal

logger = logging.getLogger(__name__)

bp = Blueprint("ops_auth", __name__, template_folder="../templates")


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: no open redirect to another host, and
    no control characters (CR/LF cannot go into a Location header)."""
    if not target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") \
            or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _csrf_token() -> str:
    token = session.get("ops_login_csrf")
    if not token:
        token = session["ops_login_csrf"] = secrets.token_urlsafe(24)
    return token


def render_login(error: str | None = None, username: str = "", status: int = 200):
    ops = current_app.extensions["ops"]
    return render_template(
        "login.html", error=error, username=username, csrf_token=_csrf_token(),
        next=_safe_next(request.values.get("next")),
        stylesheets=ops.stylesheets), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if current_principal() is not None:
            return redirect(_safe_next(request.args.get("next")))
        return render_login()

    ops = current_app.extensions["ops"]
    if not request.mimetype.startswith(("application/x-www-form-urlencoded",
                                        "multipart/form-data")):
        # Scripts sign in with POST /api/auth/token; only the form posts here.
        return error(400, "invalid_request",
                     "Sign in with the sign-in form, or get an API token from "
                     "POST /api/auth/token.")
    username = (request.form.get("username") or "").strip()[:64]
    password = request.form.get("password") or ""
    sent = request.form.get("csrf_token") or ""
    expected = session.get("ops_login_csrf") or ""
    if not expected or not hmac.compare_digest(sent, expected):
        return render_login("Your sign-in form expired. Please try again.", username, 400)
    if not username or not password:
        return render_login("Enter your username and password.", username, 400)
    try:
        user = ops.users.authenticate(username, password)
        key = ops.users.start_session(user.id) if user is not None else ""
    except Exception:  # noqa: BLE001 - store down: say so, don't crash
        logger.exception("sign-in failed: store unavailable")
        return render_login("The console's database is unavailable; try again shortly.",
                       username, 503)
    if user is None:
        audit.record(ops.store, actor=username, action="login", outcome="failure",
                     details={"reason": "bad credentials"})
        return render_login("Wrong username or password.", username, 401)
    session.clear()  # a fresh session on sign-in (no fixation)
    login_user(Principal.of(user, session_key=key))
    audit.record(ops.store, actor=user.username, action="login", outcome="success")
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    principal = current_principal()
    if principal is not None:
        ops = current_app.extensions["ops"]
        if principal.via == "session":
            try:
                ops.users.end_session(principal.session_key)
            except Exception:  # noqa: BLE001 - the cookie is cleared below anyway
                logger.warning("sign-out: could not end the session in the store")
        audit.record(ops.store, actor=principal.username,
                     action="logout", outcome="success")
    logout_user()
    session.clear()
    return redirect(url_for("ops_auth.login"))
