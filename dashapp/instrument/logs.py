"""The logging handler behind monitor()'s log capture.

`CaptureHandler` sits on the host's root logger. `emit()` runs in whatever
thread logged: it only builds a small tuple (time, level, logger, bounded
message, the current request id, extras) and appends it to a bounded deque;
when the deque is full the record is dropped and counted. A thread of its own
(`ops-monitor-logs`) writes the buffered records in batches into
`ops_log_record`. Nothing here raises into the host: a store that is down
drops the batch (counted, logged at most every 30 s), and the handler ignores
records logged by its own writer thread so an outage cannot feed itself.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import datetime, timezone

logger = logging.getLogger(__name__)

MAX_MESSAGE = 8_000       # characters of a message (with its traceback) kept
MAX_EXTRA = 500           # characters of one extra field's value kept
MAX_EXTRAS = 20           # extra fields kept per record
# LogRecord attributes that are not "extra" fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict | None:
    from dashapp.services.logs import redact_extras
    found = {}
    for key, value in record.__dict__.items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if len(found) >= MAX_EXTRAS:
            break
        if not isinstance(value, (str, int, float, bool, type(None))):
            value = repr(value)
        if isinstance(value, str):
            value = value[:MAX_EXTRA]
        found[key] = value
    return redact_extras(found) if found else None


class CaptureHandler(logging.Handler):
    """Buffer the host's records in memory; a background thread stores them."""

    def __init__(self, store, process: str, *, level: int = logging.INFO,
                 request_id=None, buffer_size: int = 20_000, batch_size: int = 2_000,
                 flush_interval: float = 1.0):
        super().__init__(level)
        self.store = store
        self.process = process
        self.request_id = request_id or (lambda: None)
        self.buffer: deque = deque()
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.recorded = 0
        self.dropped = 0
        self._last_error_log = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ops-monitor-logs",
                                        daemon=True)
        self._thread.start()

    # ----- the host's threads ------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            if threading.get_ident() == self._thread.ident:
                return  # the writer's own complaints never feed back into it
            if len(self.buffer) >= self.buffer_size:
                self.dropped += 1
                return
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                message = f"{message}\n{record.exc_text}"
            self.buffer.append((record.created, record.levelname, record.levelno,
                                record.name, message[:MAX_MESSAGE], self.request_id(),
                                _extras(record)))
            if len(self.buffer) >= self.batch_size:
                self._wake.set()
        except Exception:  # noqa: BLE001 - never raise into the host
            self.dropped += 1

    # ----- the writer thread --------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.flush()  # never raises: the writer must not die

    def write_pending(self) -> None:
        """Write every buffered record now (in batches)."""
        from dashapp.services.logs import redact
        from dashapp.store.models import LogRecord

        with self._lock:
            while self.buffer:
                batch = []
                pop = self.buffer.popleft
                try:
                    for _ in range(self.batch_size):
                        batch.append(pop())
                except IndexError:
                    pass
                rows = [{"time": datetime.fromtimestamp(created, timezone.utc),
                         "level": level[:16], "levelno": levelno, "logger": name[:255],
                         "message": redact(message), "request_id": rid,
                         "process": self.process, "extras": extras}
                        for created, level, levelno, name, message, rid, extras in batch]
                try:
                    with self.store.engine.begin() as conn:
                        conn.execute(LogRecord.__table__.insert(), rows)
                    self.recorded += len(rows)
                except Exception as exc:  # noqa: BLE001 - store down: drop and count
                    self.dropped += len(rows)
                    now = time.monotonic()
                    if now - self._last_error_log > 30:
                        self._last_error_log = now
                        logger.warning("ops monitor: store unavailable, dropped %d log "
                                       "records: %s", len(rows),
                                       str(exc).splitlines()[0][:200])

    def flush(self) -> None:
        try:
            self.write_pending()
        except Exception:  # noqa: BLE001 - never raise into the host
            pass

    def close(self) -> None:
        """Detach from the root logger, write what is buffered, stop."""
        logging.getLogger().removeHandler(self)
        if not self._stop.is_set():
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=5)
            self.flush()
        super().close()


def attach(store, process: str, *, level: str = "INFO", request_id=None) -> CaptureHandler:
    """Start capturing the host's logging into the store (root logger)."""
    handler = CaptureHandler(store, process, level=logging.getLevelName(level),
                             request_id=request_id)
    root = logging.getLogger()
    # The root logger's own level is left alone (lowering it would make the
    # host's other handlers chattier): a logger with a level of its own, e.g.
    # "demo" at INFO, hands its records to this handler whatever root's is.
    root.addHandler(handler)
    return handler
