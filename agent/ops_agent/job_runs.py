"""What a background job's own code may call while it runs, and the picture
of a run's arguments that leaves the host.

    from ops_agent.apscheduler import JobCancelled, cancelled, report_progress

`report_progress()` and `cancelled()` only touch memory (the run they
belong to is found through a context variable), so they are cheap enough
for a loop and do nothing outside a recorded run: a job works the same
without the console.

Arguments leave the host as a JSON-ready picture (never the objects), with
the values of secret-sounding parameters masked by name. The console scrubs
the picture fully again (names and value shapes) before it stores it; the
check here is deliberately narrower than the console's, so it never masks
a value the console would show.
"""
from __future__ import annotations

import contextvars
import inspect
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

from ops_agent.scrub import strip_sql_values

PROGRESS_MIN_SECONDS = 0.5  # at most two progress records per second per run
MAX_TEXT = 20_000           # traceback characters kept
MASK = "***"


class JobCancelled(Exception):
    """Raise inside a job (after `cancelled()` returned True) to stop it; the
    run is recorded as `cancelled`, not `failed`."""


class Run:
    """A run executing in this process (what `report_progress` and
    `cancelled` see through the context variable). `id` is the agent's own
    id of the run (hex): the console maps it to its row."""
    __slots__ = ("id", "hook", "job_id", "progress", "progress_message", "progress_dirty",
                 "progress_sent", "saw_cancel", "cancel_requested")

    def __init__(self, hook: Any, job_id: str, run_id: str):
        self.id = run_id
        self.hook = hook
        self.job_id = job_id
        self.progress: Optional[float] = None
        self.progress_message: Optional[str] = None
        self.progress_dirty = False
        self.progress_sent = 0.0
        self.saw_cancel = False
        self.cancel_requested = False


CURRENT_RUN: "contextvars.ContextVar[Optional[Run]]" = contextvars.ContextVar(
    "ops_agent_job_run", default=None)


def report_progress(fraction: float, message: str = "") -> bool:
    """Record how far the current run is (0..1) and what it is doing.

    Cheap: the value is kept in memory and sent at most twice a second (the
    last value always lands). Outside a recorded run it does nothing and
    returns False."""
    run = CURRENT_RUN.get()
    if run is None:
        return False
    try:
        value = min(1.0, max(0.0, float(fraction)))
    except (TypeError, ValueError):
        return False
    run.progress = value
    run.progress_message = str(message)[:255] if message else None
    run.progress_dirty = True
    if time.monotonic() - run.progress_sent >= PROGRESS_MIN_SECONDS:
        run.hook.send_progress(run)
    return True


def cancelled() -> bool:
    """True once the console asked the current run to stop, or once the
    process is shutting down (the monitor is closing: a job that checks
    stops between steps instead of holding the exit until it is done)."""
    run = CURRENT_RUN.get()
    if run is None or not (run.cancel_requested or run.hook.stopping):
        return False
    run.saw_cancel = True
    return True


def current_run_id() -> Optional[str]:
    """The agent's id of the run this code executes in, else None."""
    run = CURRENT_RUN.get()
    return run.id if run is not None else None


# --------------------------------------------------------------- arguments

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORDS = re.compile(r"[a-z]+|[0-9]+")
# A subset of the console's deny-list (dashapp.core.scrub): a name is
# masked here only when the console would mask it too.
_SECRET_ENDINGS = ("password", "passwd", "passphrase", "pwd", "secret", "token", "apikey",
                   "secretkey", "privatekey", "accesskey", "credentials", "authorization",
                   "cookie", "sessionid", "dsn")


def secret_name(name: str) -> bool:
    """True for a parameter name that plainly holds a secret (`api_key`,
    `DB_PASSWORD`, `clientSecret`); `token_count` or `cache_key` are not."""
    if not name:
        return False
    words = _WORDS.findall(_CAMEL.sub("_", str(name)[:200]).lower())
    return bool(words) and "".join(words).endswith(_SECRET_ENDINGS)


def _shown(value: Any, depth: int = 0) -> Any:
    """A JSON-ready picture of an argument (never the object)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value[:500]
    if depth < 2 and isinstance(value, dict):
        return {str(k)[:100]: (MASK if secret_name(str(k)) else _shown(v, depth + 1))
                for k, v in list(value.items())[:50]}
    if depth < 2 and isinstance(value, (list, tuple, set, frozenset)):
        return [_shown(v, depth + 1) for v in list(value)[:50]]
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a repr may raise
        text = "<%s>" % type(value).__name__
    return text[:200]


def describe_call(func: Callable, args: tuple, kwargs: dict) -> Dict[str, Any]:
    """{"args": [...], "kwargs": {...}, "names": [...]}: keyword arguments
    masked by name, positional ones by the parameter they bind to; `names`
    (those parameters) lets the console mask by its own, fuller rules."""
    names: List[Optional[str]] = [None] * len(args)
    try:
        params = inspect.signature(func).parameters
        position = 0
        for name, param in params.items():
            if position >= len(args):
                break
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                names[position] = name
                position += 1
            elif param.kind == param.VAR_POSITIONAL:
                break
    except (TypeError, ValueError):
        pass
    shown_args = [MASK if n and secret_name(n) else _shown(a) for a, n in zip(args, names)]
    shown_kwargs = {str(k)[:100]: (MASK if secret_name(str(k)) else _shown(v))
                    for k, v in list(kwargs.items())[:50]}
    return {"args": shown_args, "kwargs": shown_kwargs, "names": names}


def callable_name(func: Callable) -> str:
    module = getattr(func, "__module__", None) or ""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) \
        or type(func).__name__
    return "%s:%s" % (module, name) if module else str(name)


# --------------------------------------------------------------- records

def new_id() -> str:
    """A run's id: made here, since the agent never sees the console's ids."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: Optional[datetime]) -> Optional[str]:
    """ISO 8601 in UTC (the scheduler's times may be in any zone)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def error_text(exc: BaseException) -> str:
    """An exception's message without SQL values (they never leave the host)."""
    return strip_sql_values(str(exc))[:2000]


def trace_text(text: str) -> str:
    return strip_sql_values(text)[-MAX_TEXT:]
