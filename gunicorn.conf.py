"""gunicorn settings for the console: `gunicorn wsgi:server` (run in this
folder, gunicorn reads this file by itself; or pass `-c gunicorn.conf.py`).

- workers: OPS_WORKERS from the console's settings (environment or .env);
  more than one needs a PostgreSQL store in production.
- bind: OPS_HOST:OPS_PORT (the same variables app.py reads), default
  127.0.0.1:8050; put a reverse proxy with HTTPS in front.
- gthread workers: a live log stream (/api/logs/stream, Server-Sent Events)
  holds a thread for as long as the browser keeps the page open. Threaded
  workers keep serving other requests meanwhile, and their heartbeat does
  not depend on requests ending, so a long stream (or a long backup) is not
  killed by `timeout`. Each worker gets OPS_LOG_MAX_STREAMS + 4 threads: a
  full set of streams still leaves threads for pages and the API.
- preload off: each worker builds its own app (connections, the scheduler
  and the embedded Redis must not be shared across fork).
- access log off: pass `--access-logfile -` to turn it on.
- limit_request_line 8190, the largest bounded value gunicorn takes (and
  what nginx's default 8 KiB header buffer holds): the longest request line
  the API accepts as valid fits (tests/api/test_server_limits.py). Longer
  lines, over-long or too many headers, and malformed requests are refused
  by gunicorn itself, in the console's JSON error shape (the worker class
  below).

Options given on the command line win over this file.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gunicorn.workers.gthread import ThreadWorker  # noqa: E402

from dashapp.config import SettingsError, load_settings  # noqa: E402
from dashapp.security.edge import json_error_worker  # noqa: E402

try:
    _settings = load_settings()
except SettingsError as exc:
    print(f"error: {exc}", file=sys.stderr, flush=True)
    sys.exit(2)

bind = [f"{os.environ.get('OPS_HOST', '127.0.0.1')}:{os.environ.get('OPS_PORT', '8050')}"]
workers = _settings.workers
worker_class = json_error_worker(ThreadWorker)  # gthread; refusals in JSON
limit_request_line = 8190
threads = _settings.log_max_streams + 4
timeout = 60             # a worker silent this long (not a request this long) is restarted
graceful_timeout = 30    # on stop/reload: finish requests, end streams, flush buffers
keepalive = 5            # behind a proxy that reuses connections (nginx upstream keepalive)
preload_app = False
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
proc_name = "ops-console"
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/
# gunicorn.ctl): a second gunicorn of the same user (another console, the
# monitored app) would take it over. Nothing here uses it.
control_socket_disable = True
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat files on tmpfs: no stalls on a slow disk
