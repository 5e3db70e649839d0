"""The caching toolkit for monitored applications.

    from ops_agent.cache import cached, invalidate, warm, register_warmer

    @cached("products", ttl=300)
    def product(product_id: int) -> Optional[dict]: ...

    invalidate("products", 7)     # one entry (same key as product(7))
    invalidate("products")        # the whole namespace
    register_warmer("products", lambda: [product(i) for i in popular()], every=300)
    warm("products")              # now, in this process

Results live in Redis as JSON under `<prefix>:<namespace>:<digest of the
arguments>` with per-namespace counters every worker process adds to (the
layout is in `keys`; the console's Cache page reads it).

Settings come from keyword arguments and OPS_ variables only, never from
the host's own configuration:

* Redis: `configure(client=...)`, else the client given to
  `ops_agent.monitor(app, redis=client)`, else `OPS_REDIS_URL`
  (e.g. redis://cache-host:6379/0; the toolkit then makes its own
  fail-fast client), else none and @cached functions run uncached. The
  host's REDIS_URL is not read: its Redis may not be the cache's.
* Key prefix: `configure(prefix=...)`, else `OPS_CACHE_PREFIX`, else
  "cache" (the console reads OPS_CACHE_PREFIX too).

redis-py is the host's: it is imported only when a client is made from
OPS_REDIS_URL or something goes wrong with the host's client. A Redis outage
never breaks the host: calls run the function directly. Nothing happens at
import time.
"""
from .core import attach, cache_key, cached, configure, invalidate, ping, stats
from .warming import (register_warmer, stop_warm_worker, unregister_warmer, warm,
                      warm_worker_stats)

__all__ = ["cached", "invalidate", "warm", "register_warmer", "unregister_warmer",
           "configure", "cache_key", "ping", "stats", "warm_worker_stats",
           "stop_warm_worker", "reset"]


def reset() -> None:
    """Back to a fresh import's state (tests): stop the worker, forget the
    warmers, configuration (the monitor's client too), breakers and
    counters. Which function owns which namespace is kept: that is code,
    not state."""
    from .toolkit import _toolkit
    from .warming import reset_warmers
    reset_warmers()
    _toolkit.reset()
