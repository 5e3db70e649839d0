"""The audit trail: every state change and security event, in the store."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

from flask import has_request_context, request

from dashapp.store import Store
from dashapp.store.models import AuditEvent

logger = logging.getLogger(__name__)

SECRET_WORDS = ("password", "token", "secret", "key", "authorization")


def _redact(details: dict[str, Any] | None) -> dict[str, Any] | None:
    if not details:
        return details
    return {k: ("***" if any(w in k.lower() for w in SECRET_WORDS) else v)
            for k, v in details.items()}


def client_ip() -> str | None:
    # Behind a reverse proxy, ProxyFix (enabled by OPS_PROXY_HOPS) rewrites
    # remote_addr; we never trust X-Forwarded-For ourselves.
    return request.remote_addr if has_request_context() else None


def record(store: Store, *, actor: str, action: str, outcome: str,
           target: str = "", details: dict[str, Any] | None = None,
           ip: str | None = None) -> None:
    """Write one audit event. Failure to audit is logged, never hidden."""
    try:
        with store.session() as sess:
            sess.add(AuditEvent(actor=actor[:64], action=action[:64],
                                target=(target or "")[:255],
                                details=_redact(details), outcome=outcome,
                                ip=ip if ip is not None else client_ip()))
    except Exception:  # noqa: BLE001 - auditing must not crash the request
        logger.exception("could not write audit event %s/%s", action, outcome)


@contextmanager
def audited(store: Store, *, actor: str, action: str, target: str,
            details: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Audit one change: success with what the caller adds to the yielded
    dict, or failure with the error (then re-raised). Detail names avoid
    the words the audit trail redacts ("key", "token", ...)."""
    info = dict(details or {})
    try:
        yield info
    except Exception as exc:
        info["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        record(store, actor=actor, action=action, outcome="failure",
               target=target, details=info)
        raise
    record(store, actor=actor, action=action, outcome="success",
           target=target, details=info)
