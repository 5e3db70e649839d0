"""What every REST route shares: the error shape, its OpenAPI models, helpers."""
from __future__ import annotations

import logging
import re
from functools import wraps

from flask import jsonify
from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable code, e.g. invalid_request")
    message: str = Field(description="What went wrong, for a person")
    fields: list[dict] | None = Field(
        None, description="For invalid_request: each bad field and why")


def example(value: dict, **config) -> ConfigDict:
    """A model_config documenting an example value of a model: shown in
    /api/docs, and sent as-is by the API fuzz test's explicit phase.
    (The schema's `example`: flask-openapi3 keeps it, not `examples`.)"""
    return ConfigDict(json_schema_extra={"example": value}, **config)


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the API has this shape."""
    error: ErrorDetail


# Standard error responses for the OpenAPI document.
# Every signed-in route may also be throttled (429) by the rate limits.
AUTH_ERRORS = {401: ErrorBody, 403: ErrorBody, 429: ErrorBody}
INPUT_ERRORS = {400: ErrorBody, **AUTH_ERRORS}
SECURITY = [{"bearer": []}, {"session": []}]

# Largest id a route accepts: the store's INTEGER (PostgreSQL int4) and
# BIGINT ids. A larger number is a 400 naming the field, not a driver overflow.
MAX_ID = 2_147_483_647
MAX_BIG_ID = 9_223_372_036_854_775_807


def file_response(description: str, *media_types: str, binary: bool = False,
                  examples: dict | None = None) -> dict:
    """An OpenAPI response object for a download, e.g. a CSV file; `examples`
    maps a media type to an example (a JSON value, or a string)."""
    schema = {"type": "string", **({"format": "binary"} if binary else {})}
    content = {}
    for media in media_types:
        content[media] = {"schema": {"type": "object"} if media.endswith("json") else schema}
        if media in (examples or {}):
            content[media]["example"] = examples[media]
    return {"description": description, "content": content}


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


def unmatched_api_method(exc):
    """405 for an /api URL only when an /api route has that URL (with other
    methods); otherwise 404. Without this, e.g. POST /api/jobs/abc/retry gets
    405 because the pages' GET catch-all (/<path>) is the only rule matching."""
    from flask import current_app, request
    path = request.path
    if path != "/api" and not path.startswith("/api/"):
        return exc
    adapter = current_app.url_map.bind_to_environ(request.environ)
    api_methods = set()
    for method in exc.valid_methods or ():
        try:
            rule, _ = adapter.match(path, method=method, return_rule=True)
        except Exception:  # noqa: BLE001 - no rule for this method, or a redirect
            continue
        if rule.rule.startswith("/api"):
            api_methods.add(method)
    if not api_methods:
        return error(404, "not_found", f"No API route {path}.")
    resp = error(405, "method_not_allowed",
                 f"{request.method} is not allowed here; use {', '.join(sorted(api_methods))}.")
    resp.headers["Allow"] = ", ".join(sorted(api_methods | {"OPTIONS"}))
    return resp


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


_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!vs)[.!?](?=\s|$)")
_LIST_ITEM = re.compile(r"^\s*(?:[-*]|\d+\.)\s")


def tidy_docs(bp) -> None:
    """Call at the end of a route module: turns each route's docstring into a
    one-sentence summary and a markdown description in /api/docs.

    flask-openapi3 takes a docstring's first line as the summary (often half
    a sentence) and joins the other lines with <br/> (hard breaks in the
    middle of sentences). Lines of a paragraph are joined; list items and
    paragraphs stay apart."""
    for item in bp.paths.values():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            summary = (operation.summary or "").strip()
            lines = (operation.description or "").split("<br/>")
            follow = lines[0].strip()[:1]
            # A summary that stops mid-sentence goes on into the description
            # (an explicit summary= and description= stay as they are).
            cut = (not summary.endswith((".", "!", "?", ")")) and bool(follow)
                   and (follow.islower() or follow.isdigit() or follow in "(`'\",;"))
            if cut:
                lines = [summary] + lines
            paragraphs, current = [], []
            for line in lines:
                line = line.strip()
                if not line:
                    if current:
                        paragraphs.append(current)
                    current = []
                elif current and not _LIST_ITEM.match(line):
                    current[-1] += " " + line
                else:
                    current.append(line)
            if current:
                paragraphs.append(current)
            if cut:
                first = paragraphs[0][0]
                end = _SENTENCE_END.search(first)
                if end and end.end() < len(first):
                    summary, paragraphs[0][0] = first[:end.end()], first[end.end():].strip()
                else:
                    summary = first
                    paragraphs[0].pop(0)
            operation.summary = summary
            operation.description = "\n\n".join(
                "\n".join(part for part in para if part) for para in paragraphs
                if any(para)) or None
