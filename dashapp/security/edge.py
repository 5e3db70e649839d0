"""The HTTP edge: what is refused before any route runs.

- JSON bodies nested deeper than MAX_JSON_DEPTH are a 400 `invalid_json` in
  the error shape, on every route, signed in or not. Python's json parser
  recurses once per level and raises RecursionError (a 500 with a traceback)
  somewhere below a thousand levels; nothing the console receives is nested
  anywhere near MAX_JSON_DEPTH. Bodies up to PRESCAN_BYTES are measured
  before the sign-in check; a larger one is read only by the route that
  wants it, whose parser (SafeJSONProvider) turns the recursion into an
  ordinary "invalid JSON".
- The HTTP servers' own refusals (a request line or header too long, a
  malformed request) come in the same JSON error shape: `JsonErrorRequestHandler`
  for the development server under app.py, `JsonErrorThreadWorker` for
  gunicorn (gunicorn.conf.py).
"""
from __future__ import annotations

import html
import json
import logging
import re
from http import HTTPStatus

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.serving import WSGIRequestHandler

logger = logging.getLogger(__name__)

MAX_JSON_DEPTH = 128
PRESCAN_BYTES = 1024 * 1024

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = (ord("["), ord("{"))


def json_too_deep(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects deeper than `limit`, measured
    without parsing (so without recursion). Brackets inside strings do not
    count; malformed text is measured all the same (its parser refuses it)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # cannot be deeper than it has openers
    depth = 0
    for byte in _STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        if byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _too_deep_message() -> str:
    return f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep."


class SafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that a body too deep for the parser is invalid
    JSON (ValueError: a 400 from whoever asked) rather than a RecursionError."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError(_too_deep_message()) from None


def _refuse_deep_json():
    if not request.is_json:
        return None
    if (request.headers.get("Content-Encoding") or "identity").strip().lower() != "identity":
        # Compressed (an agent's gzip batch): its bytes are not JSON text, and
        # counting brackets in them refused good batches; /api/ingest decodes
        # them itself, bounded (ops_agent.protocol.decode).
        return None
    length = request.content_length
    if length is None or length > PRESCAN_BYTES:
        return None  # not read before the sign-in check; see SafeJSONProvider
    if json_too_deep(request.get_data(cache=True)):
        from dashapp.api.common import error
        return error(400, "invalid_json", _too_deep_message())
    return None


def init_request_bodies(app: Flask) -> None:
    """Before the sign-in check: deep JSON is refused whoever sends it."""
    app.json = SafeJSONProvider(app)
    app.before_request(_refuse_deep_json)


# ----- the HTTP servers' own refusals -----------------------------------------
_CODES = {400: "bad_request", 413: "too_large", 414: "uri_too_long",
          431: "request_header_fields_too_large", 500: "internal_error",
          501: "not_implemented", 505: "http_version_not_supported"}


def error_code(status: int) -> str:
    """uri_too_long for 414 and so on: the error shape's code for a status."""
    if status in _CODES:
        return _CODES[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": {"code": error_code(status), "message": message}}).encode()


class JsonErrorRequestHandler(WSGIRequestHandler):
    """The development server (app.py): requests it refuses itself, before
    the console sees them, are answered in the JSON error shape, not HTML."""

    def send_error(self, code, message=None, explain=None):
        short, long = self.responses.get(code, ("Error", ""))
        self.log_error("code %d, message %s", code, message or short)
        text = message or long or short
        if explain and explain != text:
            text = f"{text}: {explain}"
        body = error_body(code, text)
        if getattr(self, "request_version", "") == "HTTP/0.9":
            # A request line it could not parse: a status line all the same.
            self.request_version = "HTTP/1.0"
        self.send_response(code, message or short)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3}) ([^\r\n]*)\r\n")
_TAGS = re.compile(r"<[^>]+>")


def json_error_response(raw: bytes) -> bytes:
    """gunicorn's own error response (an HTML page) as the JSON error shape:
    same status, `Connection: close`, the page's text as the message."""
    match = _STATUS_LINE.match(raw)
    if match is None:
        return raw
    status, reason = int(match.group(1)), match.group(2).decode("latin-1")
    page = raw.partition(b"\r\n\r\n")[2].decode("latin-1")
    # The page is <title>, <h1> with the reason, then the escaped message.
    text = html.unescape(_TAGS.sub(" ", page.split("</h1>")[-1]))
    message = " ".join(text.split()) or reason
    body = error_body(status, message)
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class _JsonErrorSocket:
    """A client socket whose one write (gunicorn's error page) becomes the
    JSON error shape; everything else goes to the socket itself."""

    def __init__(self, sock):
        self._sock = sock

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def sendall(self, data, *args):
        return self._sock.sendall(json_error_response(bytes(data)), *args)

    def send(self, data, *args):
        self.sendall(data, *args)
        return len(data)


def json_error_worker(base):
    """A gunicorn worker class like `base` whose refusals are JSON."""

    class JsonErrorWorker(base):
        def handle_error(self, req, client, addr, exc):
            super().handle_error(req, _JsonErrorSocket(client), addr, exc)

    JsonErrorWorker.__name__ = JsonErrorWorker.__qualname__ = f"JsonError{base.__name__}"
    return JsonErrorWorker
