"""`create_app()`: settings -> store -> Redis -> Flask (+ REST API) -> Dash.

No work happens at import time; every collaborator hangs off one `Ops`
object in `server.extensions["ops"]` so tests can build and close as many
apps as they like.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import dash
from flask import jsonify, redirect, request
from flask_openapi3 import Info, OpenAPI
from werkzeug.exceptions import HTTPException

from dashapp.config import ROOT, Settings, SettingsError, load_settings
from dashapp.store import Store
from dashapp.store.redis import RedisHandle

logger = logging.getLogger(__name__)

ASSETS_DIR = ROOT / "assets"
DEMO_STATS_INTERVAL = 3.0  # seconds between the demo's published figures
PAGES_DIR = ROOT / "pages"


class StartupError(Exception):
    """The console cannot start; the message says why in one line."""


@dataclass
class Ops:
    """Everything a route, page or service may need, built once per app."""
    settings: Settings
    store: Store
    redis: RedisHandle
    users: Any
    stylesheets: list[str] = field(default_factory=list)
    generated_admin_password: str | None = None
    redis_extra: dict[str, RedisHandle] = field(default_factory=dict)
    demo: Any = None
    demo_error: str | None = None
    scheduler: Any = None
    # (monotonic time, figures) of the overview's request/SQL figures.
    _stop: threading.Event = field(default_factory=threading.Event)
    _closed: bool = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.demo is not None:
            try:
                self.demo.stop()
            except Exception:  # noqa: BLE001 - shutting down anyway
                logger.exception("demo did not stop cleanly")
        for handle in self.redis_extra.values():
            handle.close()
        self.redis.close()
        self.store.close()

    @property
    def redis_instances(self) -> dict[str, RedisHandle]:
        """Every Redis server the console watches: "default" (REDIS_URL or
        the embedded one) first, then OPS_REDIS_INSTANCES in their order."""
        return {"default": self.redis, **self.redis_extra}

    def redis_named(self, name: str | None) -> RedisHandle:
        """The handle called `name` (None: default); KeyError when unknown."""
        if not name or name == "default":
            return self.redis
        return self.redis_extra[name]


def _stylesheets() -> list[str]:
    """The vendored CSS files, in the order Dash itself loads them."""
    if not ASSETS_DIR.exists():
        return []
    files = sorted(p.relative_to(ASSETS_DIR).as_posix()
                   for p in ASSETS_DIR.rglob("*.css"))
    return [f"/assets/{name}" for name in files]


def _open_store(settings: Settings) -> Store:
    store = Store(settings.store_url)
    if settings.run_migrations:
        try:
            store.upgrade()
        except Exception as exc:  # noqa: BLE001 - turned into one clear line
            from dashapp.store import _short_error
            store.close()
            raise StartupError(
                f"OPS_DATABASE_URL: cannot prepare the store ({_short_error(exc)})"
            ) from None
    return store


def _register_api(server: OpenAPI) -> None:
    from dashapp.api import BLUEPRINTS
    from dashapp.api.common import error
    from dashapp.security.roles import requires

    for bp in BLUEPRINTS:
        server.register_api(bp)
    # Every /api URL that no API route has is a 404 whatever the method (the
    # pages' catch-all would otherwise make it a 405).
    from werkzeug.exceptions import MethodNotAllowed

    from dashapp.api.common import unmatched_api_method
    server.register_error_handler(MethodNotAllowed, unmatched_api_method)
    # A change whose audit row cannot be written was not made: 503, any route.
    from dashapp.security.audit import AuditUnavailable
    server.register_error_handler(
        AuditUnavailable, lambda exc: error(exc.status, exc.code, str(exc)))

    @server.get("/api/openapi.json", doc_ui=False)
    @requires("viewer")
    def openapi_json():
        return jsonify(server.api_doc)

    @server.get("/api/docs", doc_ui=False)
    @requires("viewer")
    def api_docs():
        return redirect("/api/docs/swagger")

    # flask-openapi3's own doc routes (UI, static files, its JSON): signed-in.
    overrides = {name: "viewer" for name in server.view_functions
                 if name.startswith(("openapi.", "swagger."))}
    server.config["OPS_ACCESS_OVERRIDES"] = overrides

    def is_api() -> bool:
        return request.path == "/api" or request.path.startswith("/api/")

    @server.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Dash's own endpoints (/_dash-update-component, ...) are called by
        # script, not read by people: the error shape there too.
        if not is_api() and not request.path.startswith("/_dash-"):
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return error(exc.code or 500, code, exc.description or exc.name)

    @server.errorhandler(Exception)
    def unhandled(exc: Exception):
        if isinstance(exc, KeyError) and request.path.endswith("/_dash-update-component"):
            # A request for a callback this console does not have (a stale
            # tab after an upgrade, or a hand-made request): not our error.
            return error(400, "unknown_callback",
                         "This page is out of date; reload it.")
        logger.exception("unhandled error on %s %s", request.method, request.path)
        if is_api():
            return error(500, "internal_error",
                         "The console hit an unexpected error; it has been logged.")
        return ("<h1>Something went wrong</h1><p>The error has been logged.</p>", 500)


def _layout():
    from flask import has_request_context
    from dashapp.ui.shell import build_shell
    username = role = None
    if has_request_context():
        from dashapp.security.auth import current_principal
        principal = current_principal()
        if principal is not None:
            username, role = principal.username, principal.role
    return build_shell(dash.page_container, username=username, role=role)


def create_app(settings: Settings | None = None, **overrides) -> dash.Dash:
    """Build the console. Raises SettingsError/StartupError with one line."""
    from dashapp.api.common import validation_error_response
    from dashapp.security.auth import UserService, init_auth
    from dashapp.security.views import bp as auth_views

    settings = settings or load_settings(**overrides)
    problems = settings.production_problems()
    if problems:
        raise StartupError("OPS_ENV=production refuses to start: " + "; ".join(problems))
    settings.ensure_instance()
    from dashapp.observability import init_sentry
    init_sentry(settings.sentry_dsn, component="console", environment=settings.env)
    store = _open_store(settings)
    users = UserService(store)
    if settings.env == "production" and settings.admin_password is None:
        try:
            exists = users.by_name(settings.admin_user) is not None
        except Exception:  # noqa: BLE001 - reported by ensure_admin below
            exists = True
        if not exists:
            store.close()
            raise StartupError(
                "OPS_ENV=production refuses to start: OPS_ADMIN_PASSWORD: set the "
                f"password of the first admin ({settings.admin_user}); a generated "
                "one would only be printed to the logs")
    redis = RedisHandle(settings.redis_url, settings.instance_dir)
    try:
        generated = users.ensure_admin(settings.admin_user, settings.admin_password)
    except Exception as exc:  # noqa: BLE001
        redis.close()
        store.close()
        raise StartupError(f"OPS_DATABASE_URL: cannot create the admin account ({exc})") from None

    server = OpenAPI(
        "dashapp",
        info=Info(title="Ops Console API", version=_version(),
                  description="Every page of the console reads the same services "
                              "these routes call. Authenticate with a session "
                              "cookie or `Authorization: Bearer <token>` "
                              "from POST /api/auth/token."),
        security_schemes={
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "session"},
        },
        doc_prefix="/api/docs", doc_url="/openapi.json",
        validation_error_status=400,
        validation_error_callback=validation_error_response,
    )
    server.secret_key = settings.resolved_secret_key()
    # Swagger UI would otherwise send the spec to validator.swagger.io.
    server.config["SWAGGER_CONFIG"] = {"validatorUrl": None}
    server.config["SESSION_COOKIE_SECURE"] = settings.env == "production"
    ops = Ops(settings=settings, store=store, redis=redis, users=users,
              stylesheets=_stylesheets(), generated_admin_password=generated,
              redis_extra={name: RedisHandle(url, settings.instance_dir)
                           for name, url in settings.extra_redis.items()})
    server.extensions["ops"] = ops

    # The limiter first: it counts a request before the guard may refuse it.
    from dashapp.security.limits import init_limits
    init_limits(server, settings, redis.client)
    # Bodies the JSON parser cannot take are refused before the sign-in check.
    from dashapp.security.edge import init_request_bodies
    init_request_bodies(server)
    init_auth(server, users)
    server.register_blueprint(auth_views)
    _register_api(server)
    from dashapp.observability import init_metrics
    init_metrics(server)

    from dashapp.ui.errors import on_callback_error
    app = dash.Dash(
        __name__, server=server, use_pages=True, pages_folder=str(PAGES_DIR),
        assets_folder=str(ASSETS_DIR), title="Ops Console",
        suppress_callback_exceptions=True, serve_locally=True,
        update_title=None, on_error=on_callback_error,
    )
    from dashapp.ui.shell import index_string
    # The theme boot script in <head>: no flash of the wrong theme on load.
    app.index_string = index_string(app.get_asset_url("00-theme-boot.js"))
    app.layout = _layout
    from dashapp.security.web import init_web_security
    from dashapp.webassets import init_assets
    init_web_security(server, app, settings)
    init_assets(server, ASSETS_DIR)
    if settings.demo:
        _start_demo(ops)
    if settings.scheduler:
        from dashapp.scheduler import start_scheduler
        ops.scheduler = start_scheduler(ops)
    return app


def _demo_dsn(ops: Ops) -> str | None:
    """OPS_DSN for the bundled demo: an ingest key of its own (made on first
    start, kept in <instance>/demo-ingest.key, 0600) and this console's
    address (OPS_CONSOLE_URL, else 127.0.0.1 on OPS_PORT)."""
    import os

    from dashapp.demo import DEMO_APP
    from dashapp.ingest.api import dsn_for
    from dashapp.ingest.keys import ensure_key
    settings = ops.settings
    url = settings.console_url
    if not url:
        host = os.environ.get("OPS_HOST", "127.0.0.1")
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        url = f"http://{host}:{os.environ.get('OPS_PORT', '8050')}"
    try:
        key = ensure_key(ops.store, DEMO_APP, settings.instance_dir / "demo-ingest.key")
    except Exception as exc:  # noqa: BLE001 - the demo runs unmonitored, the console on
        logger.warning("demo not instrumented: could not make its ingest key: %s", exc)
        return None
    return dsn_for(key, DEMO_APP, url)


def _start_demo(ops: Ops) -> None:
    """Run the demo shop in this process and publish its figures to Redis.

    Under several workers only the first to bind the demo port runs it; the
    others read the figures it publishes, so every worker shows the same.
    """
    from dashapp.demo import DemoApp
    from dashapp.services.overview import publish_demo_stats, record_traffic_sample
    settings = ops.settings
    if settings.config_dir is None:
        # The demo's sample files go only into the default <instance>/config,
        # never into a folder the user named, and only when it is empty.
        from dashapp.demo.config_seed import seed_config_folder
        seed_config_folder(settings.config_folder)
    demo = DemoApp(settings.demo_dir, ops.redis.client, port=settings.demo_port,
                   rps=settings.demo_rps, settings=settings, dsn=_demo_dsn(ops))
    try:
        demo.start()
    except RuntimeError as exc:
        logger.warning("demo not started in this process: %s", exc)
        ops.demo_error = str(exc)
        return
    ops.demo = demo

    def publish() -> None:
        while not ops._stop.is_set():
            try:
                stats = demo.stats()
                publish_demo_stats(ops.redis.client, stats)
                record_traffic_sample(ops.redis.client, stats.get("traffic"))
            except Exception:  # noqa: BLE001 - a stats hiccup must not kill the loop
                logger.exception("could not collect demo stats")
            ops._stop.wait(DEMO_STATS_INTERVAL)

    threading.Thread(target=publish, name="ops-demo-stats", daemon=True).start()


def _version() -> str:
    from dashapp import __version__
    return __version__


__all__ = ["create_app", "Ops", "StartupError", "SettingsError"]
