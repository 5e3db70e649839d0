"""WSGI entry point for production servers:

    gunicorn --workers 4 --bind 127.0.0.1:8050 wsgi:server

Bad settings print one line naming the variable and stop the worker.
"""
import os
import sys

from dashapp.config import SettingsError, configure_logging
from dashapp.factory import StartupError, create_app

configure_logging(os.environ.get("OPS_LOG_LEVEL", "INFO"))
try:
    app = create_app()
except (SettingsError, StartupError) as exc:
    print(f"error: {exc}", file=sys.stderr, flush=True)
    sys.exit(4)
server = app.server
