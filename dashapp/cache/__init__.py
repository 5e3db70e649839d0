"""The caching toolkit for monitored applications.

    from dashapp.cache import cached, invalidate, warm, register_warmer

    @cached("products", ttl=300)
    def product(product_id: int) -> dict | None: ...

    invalidate("products", 7)     # one entry (same key as product(7))
    invalidate("products")        # the whole namespace
    register_warmer("products", lambda: [product(i) for i in popular()], every=300)
    warm("products")              # now, in this process

Results live in Redis as JSON under `<prefix>:<namespace>:<digest of the
arguments>` with per-namespace counters every worker process adds to (the
layout is in `keys`; the console's Cache page reads it). Redis comes from
`configure(client=...)`, else REDIS_URL; the prefix from OPS_CACHE_PREFIX.
A Redis outage never breaks the host: calls run the function directly.
Nothing happens at import time.
"""
from .core import cache_key, cached, configure, invalidate, ping, stats
from .warming import (register_warmer, stop_warm_worker, unregister_warmer, warm,
                      warm_worker_stats)

__all__ = ["cached", "invalidate", "warm", "register_warmer", "unregister_warmer",
           "configure", "cache_key", "ping", "stats", "warm_worker_stats",
           "stop_warm_worker", "reset"]


def reset() -> None:
    """Back to a fresh import's state (tests): stop the worker, forget the
    warmers, configuration, breakers and counters. Which function owns which
    namespace is kept: that is code, not state."""
    from .core import _toolkit
    from .warming import reset_warmers
    reset_warmers()
    _toolkit.reset()
