"""Sending: one background thread per process ships batches to the console.

Integrations record into bounded in-memory buffers (`Channel`) from the
host's threads: an append, nothing else. Once a second the shipper's thread
(`ops-agent-shipper`) takes what every channel and source holds, sends it as
one batch (`protocol.encode`) and hands the commands in the console's answer
to the handlers registered for their type. The host's requests never wait
on it.

When the console is down, slow, or refuses a batch (429, 503, a format it
does not read, a revoked key) the batch's events are dropped and counted;
the count travels with the next batch the console accepts. Records of the
durable kinds (a job run's end, a command's outcome, a model's
registration) go back to the front of their channel instead, as long as it
has room. Sending backs off (1 s doubling to 30 s, or the server's
Retry-After), and the shipper logs one warning when an outage starts and
one line when it ends, never one per batch.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from typing import Any, Callable, Dict, List, Optional

from ops_agent import protocol

logger = logging.getLogger("ops_agent")

MAX_BACKOFF = 30.0
# A host often starts before its console does (one compose file, one boot):
# until the first batch is accepted, failures are reported only once they
# have lasted this long.
STARTUP_GRACE = 15.0


class SendError(Exception):
    """A batch the console did not accept. `retry_after`: seconds it asked
    for; `permanent`: retrying the same batch cannot help (bad key, format)."""

    def __init__(self, message: str, *, retry_after: Optional[float] = None,
                 permanent: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class Channel:
    """A bounded buffer of one kind of record. `put` is called from any of
    the host's threads: a deque append (atomic under the GIL) or a count."""

    def __init__(self, kind: str, limit: int):
        self.kind = kind
        self.limit = limit
        self.items: deque = deque()
        self.dropped = 0
        self.recorded = 0

    def put(self, record: Any) -> bool:
        if len(self.items) >= self.limit:
            self.dropped += 1
            return False
        self.items.append(record)
        self.recorded += 1
        return True

    def take(self, n: int) -> List[Any]:
        out: List[Any] = []
        pop = self.items.popleft
        try:
            for _ in range(n):
                out.append(pop())
        except IndexError:
            pass
        return out

    def give_back(self, records: List[Any]) -> int:
        """Put records of a failed batch back at the front; what does not
        fit is dropped and counted. Returns how many were dropped."""
        room = max(0, self.limit - len(self.items))
        keep = records[-room:] if room else []
        lost = len(records) - len(keep)
        self.items.extendleft(reversed(keep))
        self.dropped += lost
        return lost


class HttpSink:
    """POSTs batches to the console's /api/ingest with the standard library."""

    def __init__(self, endpoint: str, key: str, *, timeout: float = 5.0):
        self.endpoint = endpoint
        self._key = key
        self.timeout = timeout
        # No proxies from the environment: the console is addressed directly
        # (a host's HTTP_PROXY is for its own outgoing calls).
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def send(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        import json
        body = protocol.encode(batch)
        req = urllib.request.Request(self.endpoint, data=body, method="POST", headers={
            "Content-Type": protocol.CONTENT_TYPE, "Content-Encoding": "gzip",
            protocol.FORMAT_HEADER: str(protocol.VERSION), protocol.KEY_HEADER: self._key,
            "User-Agent": f"ops-agent/{batch.get('agent', '')}"})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                answer = json.loads(resp.read(1_000_000) or b"{}")
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except (OSError, ValueError) as exc:  # refused, reset, timeout, bad JSON
            raise SendError(f"console unreachable at {self.endpoint}: "
                            f"{getattr(exc, 'reason', exc)}") from None
        return answer if isinstance(answer, dict) else {}


def _refusal(exc: "urllib.error.HTTPError") -> SendError:
    import json
    code = exc.code
    try:
        detail = json.loads(exc.read(64_000) or b"{}").get("error", {})
    except (OSError, ValueError, AttributeError):
        detail = {}
    message = detail.get("message") if isinstance(detail, dict) else None
    retry_after = None
    try:
        retry_after = float(exc.headers.get("Retry-After", "")) if exc.headers else None
    except ValueError:
        retry_after = None
    text = f"console answered {code}" + (f": {message}" if message else "")
    return SendError(text, retry_after=retry_after,
                     permanent=code in (400, 401, 403, 404, 413, 415))


class Shipper:
    """The background thread that turns channels into batches."""

    def __init__(self, sink, *, app: str, release: str = "", interval: float = 1.0,
                 batch_events: int = 20_000, version: str = ""):
        self.sink = sink
        self.app = app
        self.release = release
        self.interval = interval
        self.batch_events = batch_events
        self.version = version
        self.channels: Dict[str, Channel] = {}
        self._sources: List[Callable[[int], Dict[str, List[Any]]]] = []
        self._drop_counters: List[Callable[[], int]] = []
        self._handlers: Dict[str, Callable[[Dict[str, Any]], Optional[Dict[str, Any]]]] = {}
        self._stats: List[Callable[[], Dict[str, Any]]] = []
        self._accepted: List[Callable[[Dict[str, List[Any]]], None]] = []
        self._dropped_reported = 0
        self._lost_here = 0         # events of batches that were not accepted
        self.sent_batches = 0
        self.accepted_events = 0
        self._seq = 0
        self._outage_since: Optional[float] = None
        self._outage_warned = False
        self._ever_accepted = False
        self._outage_dropped = 0
        self._next_try = 0.0
        self._backoff = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._identity()
        self.started_at = time.time()
        self._thread: Optional[threading.Thread] = None
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    # ----- wiring (the integrations) ------------------------------------------
    def channel(self, kind: str, limit: int = 20_000) -> Channel:
        found = self.channels.get(kind)
        if found is None:
            found = self.channels[kind] = Channel(kind, limit)
        return found

    def add_source(self, take: Callable[[int], Dict[str, List[Any]]],
                   dropped: Optional[Callable[[], int]] = None) -> None:
        """`take(max_events)` returns records by kind taken from a buffer of
        the integration's own (the request path's flat lists)."""
        self._sources.append(take)
        if dropped is not None:
            self._drop_counters.append(dropped)

    def on_command(self, type_: str, handler) -> None:
        """`handler(command)` runs in the shipper's thread for every command
        of `type_` the console sends; what it returns (a dict) is sent back
        as a command result."""
        self._handlers[type_] = handler

    def add_stats(self, fn: Callable[[], Dict[str, Any]]) -> None:
        self._stats.append(fn)

    def on_accepted(self, fn: Callable[[Dict[str, List[Any]]], None]) -> None:
        """`fn(events)` runs after the console accepted a batch."""
        self._accepted.append(fn)

    def wake(self) -> None:
        self._wake.set()

    # ----- the thread ----------------------------------------------------------
    def start(self) -> "Shipper":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ops-agent-shipper",
                                            daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            if time.monotonic() < self._next_try:
                continue
            try:
                self.ship()
            except Exception:  # noqa: BLE001 - the shipper must never die
                logger.exception("ops agent: shipper error")

    def ship(self, *, force: bool = False) -> bool:
        """Send what is buffered (at least one batch, a heartbeat when empty).
        True when everything was accepted. Never raises SendError."""
        with self._lock:
            while True:
                events, taken = self._collect()
                ok = self._send(events, taken)
                if not ok or taken < self.batch_events:
                    return ok

    def _collect(self):
        events: Dict[str, List[Any]] = {}
        budget = self.batch_events
        taken = 0
        for source in self._sources:
            for kind, records in source(max(budget - taken, 0)).items():
                if records:
                    events.setdefault(kind, []).extend(records)
                    taken += protocol.count_events({kind: records})
        for kind, chan in self.channels.items():
            if taken >= budget:
                break
            records = chan.take(budget - taken)
            if records:
                events.setdefault(kind, []).extend(records)
                taken += len(records)
        return events, taken

    def _dropped_total(self) -> int:
        return (self._lost_here + sum(c.dropped for c in self.channels.values())
                + sum(fn() for fn in self._drop_counters))

    def _send(self, events: Dict[str, List[Any]], taken: int) -> bool:
        self._seq += 1
        dropped_now = self._dropped_total()
        batch = {"v": protocol.VERSION, "app": self.app, "release": self.release,
                 "process": self.process, "host": self.host, "pid": self.pid,
                 "started_at": self.started_at, "sent_at": time.time(), "seq": self._seq,
                 "agent": self.version, "dropped": dropped_now - self._dropped_reported,
                 "stats": self._collect_stats(), "events": events}
        try:
            answer = self.sink.send(batch)
        except SendError as exc:
            self._failed(events, taken, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - a sink must not break the thread
            self._failed(events, taken, SendError(f"send failed: {exc}"))
            return False
        self._dropped_reported = dropped_now
        for fn in self._accepted:
            try:
                fn(events)
            except Exception:  # noqa: BLE001
                pass
        self.sent_batches += 1
        self.accepted_events += taken
        self._backoff = 0.0
        self._next_try = 0.0
        if self._outage_since is not None:
            if self._outage_warned:
                logger.warning("ops agent: console reachable again after %.0f s; %d events "
                               "dropped meanwhile", time.monotonic() - self._outage_since,
                               self._outage_dropped)
            self._outage_since = None
            self._outage_warned = False
            self._outage_dropped = 0
        self._ever_accepted = True
        self._run_commands(answer.get("commands") or [])
        return True

    def _failed(self, events: Dict[str, List[Any]], taken: int, exc: SendError) -> None:
        lost = 0
        for kind, records in events.items():
            if kind in protocol.DURABLE_KINDS and not exc.permanent:
                # back in front; what does not fit counts in its channel
                self._outage_dropped += self.channel(kind).give_back(records)
            else:
                lost += protocol.count_events({kind: records})
        self._lost_here += lost
        self._outage_dropped += lost
        self._backoff = min(MAX_BACKOFF, max(self.interval, self._backoff * 2 or 1.0))
        wait = exc.retry_after if exc.retry_after is not None else self._backoff
        self._next_try = time.monotonic() + min(max(wait, 0.0), 300.0)
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
        if not self._outage_warned and (
                self._ever_accepted or exc.permanent
                or now - self._outage_since >= STARTUP_GRACE):
            self._outage_warned = True
            logger.warning("ops agent: %s; events are dropped and counted until it "
                           "accepts them again", exc)

    def _run_commands(self, commands: List[Any]) -> None:
        results = self.channel("command_results", 1_000)
        for command in commands:
            if not isinstance(command, dict):
                continue
            handler = self._handlers.get(str(command.get("type")))
            if handler is None:
                results.put({"id": command.get("id"), "type": command.get("type"),
                             "outcome": "failed",
                             "message": "this agent has no integration for it"})
                continue
            try:
                result = handler(command)
            except Exception as exc:  # noqa: BLE001 - report, never raise
                result = {"outcome": "failed", "message": f"{type(exc).__name__}: {exc}"[:500]}
            if result is not None:
                results.put({"id": command.get("id"), "type": command.get("type"), **result})
        if results.items:
            self._wake.set()

    def _collect_stats(self) -> Dict[str, Any]:
        stats: Dict[str, Any] = {}
        for fn in self._stats:
            try:
                stats.update(fn())
            except Exception:  # noqa: BLE001
                pass
        return stats

    # ----- lifecycle -----------------------------------------------------------
    def _identity(self) -> None:
        self.host = socket.gethostname()[:64]
        self.pid = os.getpid()
        self.process = f"{self.host}:{self.pid}"[:96]

    def _after_fork(self) -> None:
        """A forked worker (gunicorn --preload) is a process of its own: new
        identity, empty buffers, a thread of its own on first use."""
        self._identity()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self.started_at = time.time()
        for chan in self.channels.values():
            chan.items.clear()
        self.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after one last send of what is buffered."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        if self._outage_since is None:
            try:
                self.ship()
            except Exception:  # noqa: BLE001
                pass

    @property
    def in_outage(self) -> bool:
        return self._outage_since is not None

    def dropped(self) -> int:
        return self._dropped_total()
