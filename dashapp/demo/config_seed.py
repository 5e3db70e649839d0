"""Configuration files for the demo shop, so the Configuration page has
something real to show: written into the config folder when the demo runs and
the folder is empty (or missing). Never overwrites anything.

The secrets in them are fake, made up for the demo.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

SHOP_YAML = """\
# The demo shop's settings. Validated against shop.schema.json on every save.
shop:
  name: Ops Demo Shop
  currency: EUR
  max_cart_items: 50
  maintenance_mode: false

database:
  url: sqlite:///instance/demo/shop.db
  pool_size: 5
  password: demo-db-password-not-real

cache:
  ttl_seconds: 300
  namespaces:
    - products
    - categories
    - recommendations

payments:
  provider: fakepay
  api_token: tok_demo_4f9a2c71
  timeout_seconds: 10
"""

SHOP_SCHEMA = """\
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Demo shop settings",
  "type": "object",
  "required": ["shop", "database"],
  "properties": {
    "shop": {
      "type": "object",
      "required": ["name", "currency"],
      "properties": {
        "name": {"type": "string", "minLength": 1},
        "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
        "max_cart_items": {"type": "integer", "minimum": 1, "maximum": 500},
        "maintenance_mode": {"type": "boolean"}
      }
    },
    "database": {
      "type": "object",
      "required": ["url"],
      "properties": {
        "url": {"type": "string"},
        "pool_size": {"type": "integer", "minimum": 1, "maximum": 100},
        "password": {"type": "string"}
      }
    },
    "cache": {
      "type": "object",
      "properties": {
        "ttl_seconds": {"type": "integer", "minimum": 0},
        "namespaces": {"type": "array", "items": {"type": "string"}}
      }
    },
    "payments": {
      "type": "object",
      "properties": {
        "provider": {"type": "string"},
        "api_token": {"type": "string"},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0}
      }
    }
  }
}
"""

FEATURES_JSON = """\
{
  "new_checkout": {"enabled": true, "rollout_percent": 25},
  "recommendations": {"enabled": true, "model": "rf-v3"},
  "dark_launch_search": {"enabled": false, "rollout_percent": 0},
  "gift_cards": {"enabled": false}
}
"""

LOGGING_INI = """\
; Logging of the demo shop (logging.config.fileConfig format).
[loggers]
keys = root,shop

[handlers]
keys = console

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers = console

[logger_shop]
level = INFO
handlers = console
qualname = shop
propagate = 0

[handler_console]
class = StreamHandler
level = INFO
formatter = plain
args = (sys.stderr,)

[formatter_plain]
format = %(asctime)s %(levelname)s %(name)s: %(message)s
"""

WORKER_TOML = """\
# Background worker of the demo shop.
[worker]
concurrency = 4
queue = "shop-default"
max_retries = 3

[schedule]
refresh_recommendations = "*/15 * * * *"
nightly_report = "0 2 * * *"

[redis]
url = "redis://127.0.0.1:6379/0"
"""

DOT_ENV = """\
# Environment of the demo shop. The secrets below are fake.
SHOP_ENV=demo
SHOP_DEBUG=false
SHOP_SECRET_KEY=demo-secret-7d1e0c5b9a
SMTP_PASSWORD="not-a-real-password"
SENTRY_DSN=
"""

FILES = {"shop.yaml": SHOP_YAML, "shop.schema.json": SHOP_SCHEMA,
         "features.json": FEATURES_JSON, "logging.ini": LOGGING_INI,
         "worker.toml": WORKER_TOML, ".env": DOT_ENV}


def seed_config_folder(folder: Path) -> list[str]:
    """Write the demo's config files into `folder` if it is empty or missing.
    Returns the names written (none when the folder already had files)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if any(folder.iterdir()):
            return []
        written = []
        for name, text in FILES.items():
            try:
                fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:      # another worker is seeding too
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            written.append(name)
    except OSError as exc:
        logger.warning("could not seed the demo config folder %s: %s", folder, exc)
        return []
    if written:
        logger.info("seeded the demo config folder %s with %d files", folder, len(written))
    return written
