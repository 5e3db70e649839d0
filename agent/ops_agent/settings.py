"""The agent's settings: one DSN, plus a few optional OPS_ variables.

    OPS_DSN=http://<ingest key>@console-host:8050/<application name>

The key is the ingest key an admin created for the application on the
console (Admin > Ingest keys); the last path segment is the application's
name; anything before it is the console's own path prefix (a console served
under https://ops.example.com/console/ gives
https://KEY@ops.example.com/console/shop). Keyword arguments to `monitor()`
win over the environment. Only variables that start with OPS_ are read:
the host's own REDIS_URL, DATABASE_URL or SENTRY_DSN are its own business.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional
from urllib.parse import unquote, urlsplit

APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RELEASE = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable, no spaces
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "OFF")


class SettingsError(ValueError):
    """A setting the agent cannot use; the message names it and says why."""


@dataclass(frozen=True)
class AgentSettings:
    endpoint: str           # the console's ingest URL
    key: str                # the ingest key (a secret: never logged)
    app: str
    release: str = ""
    log_level: str = "INFO"  # lowest level of captured log records; OFF: none
    timeout: float = 5.0     # seconds one POST may take
    interval: float = 1.0    # seconds between batches

    def __repr__(self) -> str:  # the key never reaches a log or a traceback
        return (f"AgentSettings(endpoint={self.endpoint!r}, app={self.app!r}, "
                f"release={self.release!r}, key=***)")


def parse_dsn(dsn: str) -> tuple:
    """(ingest URL, key, application) from a DSN; SettingsError says what is wrong."""
    if not isinstance(dsn, str):
        raise SettingsError(f"OPS_DSN must be a string, not {type(dsn).__name__}")
    parts = urlsplit(dsn.strip())
    if parts.scheme not in ("http", "https"):
        raise SettingsError("OPS_DSN must start with http:// or https://, e.g. "
                            "http://<ingest key>@console-host:8050/<application>")
    if not parts.username:
        raise SettingsError("OPS_DSN has no ingest key: http://<ingest key>@host:port/<app> "
                            "(an admin creates one on the console, Admin > Ingest keys)")
    if not parts.hostname:
        raise SettingsError("OPS_DSN has no host name")
    try:
        port = parts.port
    except ValueError:
        raise SettingsError("OPS_DSN has a port that is not a number") from None
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise SettingsError("OPS_DSN has no application name: http://<key>@host:port/<app>")
    app = unquote(segments[-1])
    if not APP_NAME.match(app):
        raise SettingsError("the application name in OPS_DSN must be 1-64 letters, digits, "
                            "'.', '_' or '-'")
    prefix = "/".join(segments[:-1])
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    base = f"{parts.scheme}://{netloc}" + (f"/{prefix}" if prefix else "")
    return base + "/api/ingest", unquote(parts.username), app


def load(*, dsn: Optional[str] = None, release: Optional[str] = None,
         app: Optional[str] = None, log_level: Optional[str] = None,
         environ: Optional[Mapping[str, str]] = None) -> Optional[AgentSettings]:
    """Settings from the keywords, then OPS_* variables. None when there is
    no DSN at all (the agent then records nothing and says so once)."""
    env = os.environ if environ is None else environ
    dsn = dsn if dsn is not None else env.get("OPS_DSN", "")
    if not dsn:
        return None
    endpoint, key, dsn_app = parse_dsn(dsn)
    release = release if release is not None else env.get("OPS_RELEASE", "")
    if release and not RELEASE.match(str(release)):
        raise SettingsError("OPS_RELEASE must be 1-64 printable characters without spaces "
                            "(a version or a commit)")
    level = str(log_level or env.get("OPS_LOG_CAPTURE_LEVEL") or "INFO").upper()
    if level not in LEVELS:
        raise SettingsError(f"OPS_LOG_CAPTURE_LEVEL must be one of {', '.join(LEVELS)}")
    app = app or dsn_app
    if not isinstance(app, str) or not APP_NAME.match(app):
        raise SettingsError("the application name must be 1-64 letters, digits, '.', '_' "
                            "or '-'")
    return AgentSettings(endpoint=endpoint, key=key, app=app, release=str(release or ""),
                         log_level=level)


def level_number(level: str) -> Optional[int]:
    """logging's number for a level name; None for OFF."""
    return None if level == "OFF" else logging.getLevelName(level)
