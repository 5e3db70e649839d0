"""Start the Ops Console (and, unless --no-demo, the bundled demo shop).

    python app.py [--host 127.0.0.1] [--port 8050] [--no-demo]
    python app.py --reset-admin-password

For production, serve with gunicorn instead (see README): this entry point
uses the single-process development server.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import sys
import time

START = time.monotonic()


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Ops Console")
    parser.add_argument("--host", default=os.environ.get("OPS_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("OPS_PORT", "8050")))
    parser.add_argument("--no-demo", action="store_true",
                        help="do not start the bundled demo application")
    parser.add_argument("--reset-admin-password", action="store_true",
                        help="set a new random admin password, print it and exit")
    args = parser.parse_args(argv)
    # Where this console listens: the bundled demo's agent sends to it.
    os.environ["OPS_HOST"], os.environ["OPS_PORT"] = args.host, str(args.port)

    from dashapp.config import SettingsError, configure_logging, load_settings
    try:
        overrides = {"demo": False} if args.no_demo else {}
        settings = load_settings(**overrides)
    except SettingsError as exc:
        _fail(str(exc))
    configure_logging(settings.log_level)

    if args.reset_admin_password:
        _reset_admin_password(settings)
        return

    if not _port_free(args.host, args.port):
        _fail(f"port {args.port} on {args.host} is in use; choose another with --port")

    from dashapp.factory import StartupError, create_app
    try:
        app = create_app(settings)
    except (SettingsError, StartupError) as exc:
        _fail(str(exc))
    ops = app.server.extensions["ops"]

    url = f"http://{args.host}:{args.port}"
    lines = ["", "  Ops Console is starting", f"  URL:      {url}",
             f"  Sign in:  {settings.admin_user}"]
    if ops.generated_admin_password:
        lines.append(f"  Password: {ops.generated_admin_password}   "
                     "(generated on first start; shown only now, stored hashed)")
    elif settings.admin_password:
        lines.append("  Password: the value of OPS_ADMIN_PASSWORD")
    else:
        lines.append("  Password: the one printed on first start "
                     "(forgot it? python app.py --reset-admin-password)")
    if ops.demo is not None:
        lines.append(f"  Demo app: {ops.demo.url} (traffic {settings.demo_rps:g} req/s)")
    elif ops.demo_error:
        lines.append(f"  Demo app: not started: {ops.demo_error}")
    redis_state = ops.redis.ping()
    if not redis_state["ok"]:
        lines.append(f"  Warning:  Redis is unreachable ({redis_state['error']}); "
                     "the console runs degraded until it returns")
    lines.append(f"  Ready in {time.monotonic() - START:.1f} s. Ctrl+C to stop.")
    print("\n".join(lines) + "\n", flush=True)

    # SIGTERM (systemd, docker stop, a test harness) ends like Ctrl+C: through
    # the finally below and the atexit hooks, so buffered events are written
    # and the embedded Redis server is shut down, not orphaned.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # Requests the server refuses itself (a URL over 64 KiB, a header line
    # too long, a malformed request line) answer in the JSON error shape.
    from dashapp.security.edge import JsonErrorRequestHandler
    try:
        app.run(host=args.host, port=args.port, debug=False,
                request_handler=JsonErrorRequestHandler)
    finally:
        ops.close()


def _exit_on_sigterm(_signum, _frame) -> None:
    raise SystemExit(0)


def _reset_admin_password(settings) -> None:
    from dashapp.store import Store
    from dashapp.security.auth import UserService
    store = Store(settings.store_url)
    store.upgrade()
    users = UserService(store)
    password = secrets.token_urlsafe(12)
    from dashapp.security import audit
    # Audited first: the password is not changed unless the audit row is written.
    try:
        entry = audit.begin(store, actor="cli", action="admin_password_reset",
                            target=f"user:{settings.admin_user}", ip="local")
    except audit.AuditUnavailable as exc:
        store.close()
        _fail(str(exc))
    if users.by_name(settings.admin_user) is None:
        users.create_user(settings.admin_user, password, "admin")
    else:
        users.set_password(settings.admin_user, password)
    entry.finish("success")
    print(f"New password for {settings.admin_user}: {password}")
    store.close()


if __name__ == "__main__":
    main()
