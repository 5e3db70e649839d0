"""Log capture: a handler on the host's root logger.

`emit()` runs in whatever thread logged: it builds one small list (time,
level, logger, bounded message, the current request id, bounded extras)
and appends it to the "logs" channel; when the channel is full the record
is dropped and counted. The agent's own records, and every record logged
by the shipper's own thread, are ignored, so an outage cannot feed itself.
The console masks secrets in the message and the extras before it stores
them.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Optional

from ops_agent.scrub import strip_sql_values

MAX_MESSAGE = 8_000       # characters of a message (with its traceback) kept
MAX_EXTRA = 500           # characters of one extra field's value kept
MAX_EXTRAS = 20           # extra fields kept per record
# LogRecord attributes that are not "extra" fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> Optional[Dict[str, Any]]:
    found: Dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if len(found) >= MAX_EXTRAS:
            break
        if not isinstance(value, (str, int, float, bool, type(None))):
            value = repr(value)
        if isinstance(value, str):
            value = value[:MAX_EXTRA]
        found[str(key)[:100]] = value
    return found or None


class CaptureHandler(logging.Handler):
    """Buffer the host's records; the shipper sends them."""

    def __init__(self, channel, *, level: int = logging.INFO,
                 request_id: Optional[Callable[[], Optional[str]]] = None,
                 ignore_thread: Callable[[], Optional[int]] = lambda: None):
        super().__init__(level)
        self.channel = channel
        self.request_id = request_id or (lambda: None)
        self._ignore_thread = ignore_thread

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name.startswith("ops_agent"):
                # the agent's own lines (an outage warning logged by a
                # flush() in the host's thread) are not the host's records
                self._last_resort(record)
                return
            if threading.get_ident() == self._ignore_thread():
                return
            if len(self.channel.items) >= self.channel.limit:
                self.channel.dropped += 1
                return
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                message = f"{message}\n{record.exc_text}"
            self.channel.put([record.created, record.levelname, record.levelno,
                              record.name, strip_sql_values(message[:MAX_MESSAGE]),
                              self.request_id(), _extras(record)])
        except Exception:  # noqa: BLE001 - never raise into the host
            self.channel.dropped += 1

    def _last_resort(self, record: logging.LogRecord) -> None:
        """The agent's own warnings reach stderr when the host configured no
        logging: this handler on the root logger would otherwise keep
        Python's last-resort handler from printing them."""
        last = logging.lastResort
        if last is not None and record.levelno >= last.level and not any(
                h is not self for h in logging.getLogger().handlers):
            last.handle(record)

    def close(self) -> None:
        logging.getLogger().removeHandler(self)
        super().close()


def attach(channel, *, level: int, request_id=None, ignore_thread=lambda: None) -> CaptureHandler:
    """Start capturing the host's logging (root logger). The root logger's
    own level is left alone (lowering it would make the host's other
    handlers chattier): a logger with a level of its own hands its records
    to this handler whatever root's is."""
    handler = CaptureHandler(channel, level=level, request_id=request_id,
                             ignore_thread=ignore_thread)
    logging.getLogger().addHandler(handler)
    return handler
