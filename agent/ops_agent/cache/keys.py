"""Where the @cached toolkit keeps things in Redis: one layout that the
toolkit (in the monitored app) writes and the console's Cache page reads,
so the console imports this module rather than a copy of it.

    <prefix>:<namespace>:<digest>          a cached value (JSON string)
    <prefix>:_meta:namespaces              SET of namespace names ever used
    <prefix>:_meta:stats:<namespace>       HASH hits, misses, errors, sets,
                                           invalidations, warm_runs (HINCRBY,
                                           so every worker process adds up)
    <prefix>:_meta:index:<namespace>       ZSET entry key -> expiry (epoch s),
                                           so key counts and memory need no SCAN

    <prefix>:_meta:warmers                 HASH namespace -> JSON {"description",
                                           "every" (seconds or null), "process",
                                           "registered_at" (ISO 8601)}: who can warm what
    <prefix>:_meta:warm_requests           LIST of JSON {"id", "namespace",
                                           "requested_by", "at"}: the console LPUSHes,
                                           a host process running the warmer pops
    <prefix>:_meta:warm_status:<namespace> HASH last_request_id, last_started,
                                           last_finished (ISO 8601), last_duration_ms,
                                           last_entries, last_error ("" when none),
                                           runs, process
    <prefix>:_meta:warm_lock:<namespace>:<period>
                                           STRING (SET NX PX) the process that runs a
                                           scheduled warm of that period, so several
                                           processes run it once

Namespaces never start with "_", so no namespace can collide with `_meta`.
"""
from __future__ import annotations

import re

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
STAT_FIELDS = ("hits", "misses", "errors", "sets", "invalidations", "warm_runs")


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
        raise ValueError(f"cache namespace {namespace!r} must be 1-64 letters, digits, "
                         "'_', '.' or '-', not starting with '_', '.' or '-'")
    return namespace


def entry_key(prefix: str, namespace: str, digest: str) -> str:
    return f"{prefix}:{namespace}:{digest}"


def namespace_pattern(prefix: str, namespace: str) -> str:
    """SCAN MATCH pattern for every entry of a namespace (glob chars escaped)."""
    return f"{_escape(prefix)}:{_escape(namespace)}:*"


def namespaces_key(prefix: str) -> str:
    return f"{prefix}:_meta:namespaces"


def stats_key(prefix: str, namespace: str) -> str:
    return f"{prefix}:_meta:stats:{namespace}"


def index_key(prefix: str, namespace: str) -> str:
    return f"{prefix}:_meta:index:{namespace}"


def _escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def warmers_key(prefix: str) -> str:
    return f"{prefix}:_meta:warmers"


def warm_requests_key(prefix: str) -> str:
    return f"{prefix}:_meta:warm_requests"


def warm_status_key(prefix: str, namespace: str) -> str:
    return f"{prefix}:_meta:warm_status:{namespace}"


def warm_lock_key(prefix: str, namespace: str, period: int) -> str:
    """Taken by the one process that runs period `period` of a scheduled warm."""
    return f"{prefix}:_meta:warm_lock:{namespace}:{period}"
