"""What every REST route shares: the error shape, its OpenAPI models, helpers."""
from __future__ import annotations

import logging
from functools import wraps

from flask import jsonify
from pydantic import BaseModel, Field, ValidationError

logger = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable code, e.g. invalid_request")
    message: str = Field(description="What went wrong, for a person")
    fields: list[dict] | None = Field(
        None, description="For invalid_request: each bad field and why")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the API has this shape."""
    error: ErrorDetail


# Standard error responses for the OpenAPI document.
AUTH_ERRORS = {401: ErrorBody, 403: ErrorBody}
INPUT_ERRORS = {400: ErrorBody, **AUTH_ERRORS}
SECURITY = [{"bearer": []}, {"session": []}]


def error(status: int, code: str, message: str, **extra):
    body = {"error": {"code": code, "message": message, **extra}}
    resp = jsonify(body)
    resp.status_code = status
    return resp


def validation_error_response(exc: ValidationError):
    """pydantic's errors as a 400 that names each bad field."""
    fields = []
    for err in exc.errors(include_url=False, include_context=False,
                          include_input=False):
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        fields.append({"field": loc or "body", "message": err.get("msg", "invalid")})
    first = fields[0] if fields else {"field": "body", "message": "invalid"}
    message = f"{first['field']}: {first['message']}"
    if len(fields) > 1:
        message += f" (and {len(fields) - 1} more)"
    return error(400, "invalid_request", message, fields=fields)


def redis_handle(instance: str | None):
    """(handle, None) for a watched Redis by name, else (None, 404 response)."""
    from flask import current_app
    ops = current_app.extensions["ops"]
    try:
        return ops.redis_named(instance), None
    except KeyError:
        names = ", ".join(ops.redis_instances)
        return None, error(404, "unknown_instance",
                           f"No Redis instance called {instance!r}; known: {names}")


def redis_unavailable(exc: Exception, instance: str | None = None):
    """503 for a Redis that cannot be reached, without leaking its URL."""
    name = instance or "default"
    logger.warning("Redis %s unavailable: %s", name, exc)
    return error(503, "redis_unavailable",
                 f"Redis ({name}) is unavailable: {type(exc).__name__}: {str(exc)[:200]}")


def current_actor() -> str:
    """The signed-in caller's name for the audit trail ("?" if none)."""
    from dashapp.security.auth import current_principal
    principal = current_principal()
    return principal.username if principal else "?"


def store_unavailable(exc: Exception, where: str):
    """503 for a console store that cannot be reached, without its URL."""
    from dashapp.store import _short_error
    logger.warning("%s: store unavailable: %s", where, _short_error(exc))
    return error(503, "store_unavailable",
                 "The console's store cannot be read right now: " + _short_error(exc))


def guarded(catch: tuple[type[BaseException], ...], failure):
    """A route decorator: the exceptions in `catch` become `failure(exc)`, the
    API's error response, so a service refusal or an outage is never a 500."""
    def decorate(func):
        @wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except catch as exc:
                return failure(exc)
        return wrapper
    return decorate
