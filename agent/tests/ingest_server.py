"""A console for the agent's tests: a real HTTP server on a free port.

It speaks the agent's side of the contract only (what any console must
do): decode each POSTed batch with `ops_agent.protocol.decode`, remember
it, and answer as a test tells it to: 200 with commands, 429 with
Retry-After, 503, 400 unsupported_format, 401, or hang; it can be stopped
and started again on the same port (an outage). The real console is
tested end to end elsewhere.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

from ops_agent import protocol


class Attempt:
    """One POST the server received, whatever it answered."""

    def __init__(self, at: float, status: int, batch: Optional[Dict[str, Any]],
                 raw: str, headers: Dict[str, str]):
        self.at = at              # time.monotonic() when it arrived
        self.status = status      # what the server answered (0: held, "hang")
        self.batch = batch        # the decoded batch (None when undecodable)
        self.raw = raw            # the batch's JSON text, as sent
        self.headers = headers

    @property
    def accepted(self) -> bool:
        return self.status == 200


class IngestServer:
    """`mode` decides the answer to the next POSTs: "ok", "429", "503",
    "unsupported", "401" or "hang" (hold the request `hang_seconds`, then
    answer 503; recorded with status 0)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.retry_after: Optional[str] = None
        self.hang_seconds = 5.0
        self.attempts: List[Attempt] = []
        self._commands: List[Dict[str, Any]] = []
        self._changed = threading.Condition()
        self.hanging = threading.Event()      # set while a request is held
        self._release = threading.Event()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.port = self._free_port()

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    # ----- the agent's view -------------------------------------------------------
    def dsn(self, app: str = "shop", key: str = "test-key-123") -> str:
        return f"http://{key}@127.0.0.1:{self.port}/{app}"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}{protocol.INGEST_PATH}"

    # ----- lifecycle -------------------------------------------------------------
    def start(self) -> "IngestServer":
        handler = _handler_for(self)
        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="test-ingest-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down: connections are refused until `start()`."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def hang(self, seconds: float) -> None:
        """Hold every POST up to `seconds` (a console that does not answer)."""
        self.hang_seconds = seconds
        self._release.clear()
        self.mode = "hang"

    def release(self) -> None:
        """Let a held ("hang") request go on (answered 200)."""
        self._release.set()

    def send_commands(self, *commands: Dict[str, Any]) -> None:
        """Commands for the next accepted batch's answer."""
        with self._changed:
            self._commands.extend(commands)

    # ----- what arrived ------------------------------------------------------------
    def accepted(self) -> List[Dict[str, Any]]:
        with self._changed:
            return [a.batch for a in self.attempts if a.accepted and a.batch is not None]

    def events(self, kind: str) -> List[Any]:
        """Every record of `kind` in the accepted batches (requests as
        lists of REQUEST_STRIDE values)."""
        found: List[Any] = []
        for batch in self.accepted():
            records = protocol.records(batch["events"], kind)
            if kind == "requests":
                stride = protocol.REQUEST_STRIDE
                found.extend(records[i:i + stride] for i in range(0, len(records), stride))
            else:
                found.extend(records)
        return found

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until `predicate()` is truthy (checked after each POST); its
        value, or AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not seen within {timeout} s; "
                                         f"{len(self.attempts)} POSTs arrived")
                self._changed.wait(min(left, 0.1))

    def wait_for_attempts(self, n: int, timeout: float = 5.0) -> List[Attempt]:
        return self.wait_for(lambda: len(self.attempts) >= n and self.attempts[:], timeout)

    # ----- the server's side ---------------------------------------------------------
    def _answer(self, raw_body: bytes, headers: Dict[str, str]):
        """(status, extra headers, JSON body) for one POST."""
        gzipped = headers.get("content-encoding", "").lower() == "gzip"
        try:
            batch: Optional[Dict[str, Any]] = protocol.decode(raw_body, gzipped=gzipped)
            raw = json.dumps(batch)
        except protocol.ProtocolError as exc:
            batch, raw = None, ""
            self._record(Attempt(time.monotonic(), 400, None, raw, headers))
            return 400, {}, {"error": {"code": exc.code, "message": str(exc)}}
        mode = self.mode
        if mode == "hang":
            # The agent gives up waiting first; whatever it gets afterwards
            # (503), the batch was not accepted.
            self.hanging.set()
            self._release.wait(self.hang_seconds)
            self.hanging.clear()
            self._record(Attempt(time.monotonic(), 0, batch, raw, headers))
            return 503, {}, {"error": {"code": "unavailable", "message": "too slow"}}
        status, extra, body = 200, {}, {}
        if mode == "429":
            status, body = 429, {"error": {"code": "rate_limited", "message": "slow down"}}
        elif mode == "503":
            status, body = 503, {"error": {"code": "unavailable", "message": "store down"}}
        elif mode == "unsupported":
            status, body = 400, {"error": {
                "code": "unsupported_format",
                "message": "batch format 1 is not one this console reads (2); upgrade "
                           "the agent or the console so they match"}}
        elif mode == "401":
            status, body = 401, {"error": {"code": "unauthorized",
                                           "message": "unknown or revoked ingest key"}}
        if status in (429, 503) and self.retry_after is not None:
            extra["Retry-After"] = self.retry_after
        with self._changed:
            if status == 200:
                commands, self._commands = self._commands, []
                body = {"accepted": protocol.count_events(batch["events"]),
                        "commands": commands}
        self._record(Attempt(time.monotonic(), status, batch, raw, headers))
        return status, extra, body

    def _record(self, attempt: Attempt) -> None:
        with self._changed:
            self.attempts.append(attempt)
            self._changed.notify_all()


def _handler_for(server: IngestServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            if self.path != protocol.INGEST_PATH:
                status, extra, answer = 404, {}, {"error": {"code": "not_found"}}
            else:
                status, extra, answer = server._answer(body, headers)
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the agent gave up waiting (a "hang")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
