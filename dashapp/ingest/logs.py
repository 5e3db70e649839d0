"""Log records an agent captured -> `ops_log_record`, secrets masked first."""
from __future__ import annotations

from datetime import datetime, timezone

from dashapp.store import Store
from dashapp.store.models import LogRecord

MAX_MESSAGE = 8_000


def _time(value) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(timezone.utc)


def apply_logs(store: Store, meta, records: list) -> None:
    from dashapp.services.logs import redact, redact_extras
    rows = []
    for rec in records:
        if not isinstance(rec, list) or len(rec) < 7:
            continue
        created, level, levelno, name, message, rid, extras = rec[:7]
        rows.append({
            "time": _time(created), "level": str(level)[:16],
            "levelno": levelno if isinstance(levelno, int) else 0,
            "logger": str(name)[:255], "message": redact(str(message)[:MAX_MESSAGE]),
            "request_id": str(rid)[:64] if rid else None,
            "extras": redact_extras(extras) if isinstance(extras, dict) and extras else None,
            "process": meta.process, "app": meta.app, "release": meta.release})
    if rows:
        with store.engine.begin() as conn:
            conn.execute(LogRecord.__table__.insert(), rows)


APPLIERS = {"logs": apply_logs}
