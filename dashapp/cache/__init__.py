"""Old home of the @cached toolkit, kept so existing imports keep working.

The toolkit runs inside monitored applications, so it lives in the agent:
`ops_agent.cache`. This package only re-exports it. Its submodules are the
agent's own module objects (`dashapp.cache.core is ops_agent.cache.core`),
so there is one copy of the code and one toolkit state per process.
"""
import sys

from ops_agent import cache as _cache
from ops_agent.cache import (cache_key, cached, configure, core, invalidate, keys, ping,
                             register_warmer, reset, stats, stop_warm_worker,
                             unregister_warmer, warm, warm_worker_stats, warming)

for _name in ("core", "keys", "warming"):
    sys.modules[f"{__name__}.{_name}"] = getattr(_cache, _name)

__all__ = list(_cache.__all__)
