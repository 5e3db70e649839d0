"""The audit trail: every state change and security event, in the store."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from flask import has_request_context, request
from sqlalchemy import update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from dashapp.core.scrub import scrub_mapping
from dashapp.store import Store
from dashapp.store.models import AuditEvent

logger = logging.getLogger(__name__)

# The outcome of a change's row until the change is done (success|failure).
PENDING = "pending"


def _redact(details: dict[str, Any] | None) -> dict[str, Any] | None:
    """Details as stored: a secret name's value is `***`, and text values
    (an error message, a URL) are scrubbed by the console's one scrubber."""
    if not details:
        return details
    return scrub_mapping(details)


class AuditUnavailable(Exception):
    """The audit row of a change could not be written, so the change was not
    made: routes answer 503 `audit_unavailable`, pages show a toast."""
    code = "audit_unavailable"
    status = 503


class AuditStoreDown(AuditUnavailable, SQLAlchemyError):
    """The same refusal when the whole store is unreachable: also a
    SQLAlchemyError, so callers that already say "the store is unavailable"
    (and answer 503 store_unavailable) keep saying so."""

    def __str__(self) -> str:  # without SQLAlchemy's "Background on this error" link
        return Exception.__str__(self)


# Errors that mean the store itself is down or locked, not just the audit table.
_STORE_DOWN = (OperationalError, InterfaceError, SQLAlchemyTimeoutError)


def client_ip() -> str | None:
    # Behind a reverse proxy, ProxyFix (enabled by OPS_PROXY_HOPS) rewrites
    # remote_addr; we never trust X-Forwarded-For ourselves.
    return request.remote_addr if has_request_context() else None


def record(store: Store, *, actor: str, action: str, outcome: str,
           target: str = "", details: dict[str, Any] | None = None,
           ip: str | None = None) -> None:
    """Write one audit event, best effort: for security events that change
    nothing (a failed sign-in, a refusal). A change uses begin()/audited(),
    which refuse the change when its row cannot be written."""
    try:
        _insert(store, actor, action, outcome, target, details, ip)
    except Exception:  # noqa: BLE001 - auditing must not crash the request
        logger.exception("could not write audit event %s/%s", action, outcome)


def _text(value: str | None, size: int) -> str:
    """A column's text: PostgreSQL refuses NUL bytes, which a refused input
    (e.g. a file name) may hold, so they are written as \\x00."""
    return (value or "").replace("\x00", "\\x00")[:size]


def _insert(store: Store, actor: str, action: str, outcome: str, target: str,
            details: dict[str, Any] | None, ip: str | None) -> int:
    with store.session() as sess:
        event = AuditEvent(actor=_text(actor, 64), action=_text(action, 64),
                           target=_text(target, 255), details=_redact(details),
                           outcome=outcome, ip=ip if ip is not None else client_ip())
        sess.add(event)
        sess.flush()
        return event.id


@dataclass
class Pending:
    """An audit row written before its change ("pending"); finish() says how
    the change went. A row left pending means: attempted, outcome unknown."""
    store: Store
    event_id: int
    action: str

    def finish(self, outcome: str, details: dict[str, Any] | None = None,
               target: str | None = None) -> None:
        """Set the outcome (and details, target); a failure here is logged:
        the row already says the change was attempted."""
        values: dict[str, Any] = {"outcome": outcome}
        if details is not None:
            values["details"] = _redact(details)
        if target is not None:
            values["target"] = _text(target, 255)
        try:
            with self.store.session() as sess:
                done = sess.execute(update(AuditEvent)
                                    .where(AuditEvent.id == self.event_id).values(**values))
                if done.rowcount != 1:
                    raise LookupError(f"audit event {self.event_id} is gone")
        except Exception:  # noqa: BLE001 - the change is done; say so in the log
            logger.exception("could not finish audit event %s (%s -> %s)",
                             self.event_id, self.action, outcome)


def begin(store: Store, *, actor: str, action: str, target: str = "",
          details: dict[str, Any] | None = None, ip: str | None = None) -> Pending:
    """Write the audit row of a change before making it. Raises
    AuditUnavailable when the row cannot be written: then do not act."""
    try:
        event_id = _insert(store, actor, action, PENDING, target, details, ip)
    except Exception as exc:  # noqa: BLE001 - any store failure refuses the change
        from dashapp.store import _short_error
        logger.error("audit trail unavailable, %s refused: %s", action, _short_error(exc))
        refusal = AuditStoreDown if isinstance(exc, _STORE_DOWN) else AuditUnavailable
        raise refusal(
            "The audit trail cannot be written right now, so nothing was done "
            f"({_short_error(exc)}). Try again once the console's store accepts "
            "writes.") from exc
    return Pending(store, event_id, action)


@contextmanager
def audited(store: Store, *, actor: str, action: str, target: str,
            details: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Audit one change: the row is written first (AuditUnavailable, and the
    body never runs, when it cannot be), then set to success with what the
    caller adds to the yielded dict, or failure with the error (re-raised).
    Detail names avoid the words the audit trail redacts ("key", "token", ...)."""
    info = dict(details or {})
    entry = begin(store, actor=actor, action=action, target=target, details=info)
    try:
        yield info
    except Exception as exc:
        info["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        entry.finish("failure", info)
        raise
    entry.finish("success", info)
