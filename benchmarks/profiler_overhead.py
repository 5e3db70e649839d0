"""What the profiler costs a host, in one run: profiling off vs on.

    .venv/bin/python benchmarks/profiler_overhead.py [--rounds 9] [--n 300]

Times calls of app.wsgi_app (no network) on two endpoints of a small Flask
app — /ping (trivial) and /work (about 1 ms of Python) — in interleaved
rounds for four variants:

- bare: no monitor();
- off: monitor() attached, no profiling session (the normal state);
- cpu: a profiling session with memory=false (pyinstrument per request);
- on: a profiling session with memory tracking (pyinstrument + tracemalloc);
- after: the same monitor after the session ended (the original dispatch
  function is back, tracemalloc stopped).

Each round starts a new session (driving the agent's sends directly), so
"on" pays for the per-request profiler and the merge into the call tree,
and tracemalloc's cost on allocations. Prints medians per request and the
added time against "off" (and "off" against "bare").
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _At:
    """An app whose wsgi_app serves `path` (monitor_overhead's timer always
    asks for /ping)."""

    def __init__(self, app, path: str):
        inner = app.wsgi_app
        self.wsgi_app = lambda environ, start: inner({**environ, "PATH_INFO": path}, start)


def _time(app, path: str, n: int) -> float:
    """Mean seconds per request over n calls of app.wsgi_app at `path`."""
    from benchmarks.monitor_overhead import _time_wsgi
    return _time_wsgi(_At(app, path), n)


def _app(name: str):
    from flask import Flask
    app = Flask(name)

    @app.get("/ping")
    def ping():
        return "pong"

    @app.get("/work")
    def work():
        total = 0
        for i in range(20_000):
            total += i % 7
        return {"total": total, "items": [str(i) for i in range(50)]}
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    logging.disable(logging.INFO)

    from dashapp import monitor
    from dashapp.config import load_settings
    from dashapp.services import profiler as svc

    folder = Path(tempfile.mkdtemp(prefix="ops-prof-bench-"))
    settings = load_settings(instance_dir=folder, database_url=f"sqlite:///{folder}/ops.db",
                             redis_url="redis://127.0.0.1:1/0", demo=False, scheduler=False,
                             secret_key="bench", admin_password="bench-pass-1234")
    bare = _app("bare")
    host = _app("host")
    mon = monitor(host, settings=settings)
    store = mon.store
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for path in ("/ping", "/work"):
            for app in (bare, host):  # warm up
                _time(app, path, 50)
        for _ in range(args.rounds):
            for path in ("/ping", "/work"):
                results.setdefault(("bare", path), []).append(_time(bare, path, args.n))
                results.setdefault(("off", path), []).append(_time(host, path, args.n))
            for variant, memory in (("cpu", False), ("on", True)):
                svc.start_session(store, actor="bench", memory=memory)
                mon.flush()  # the answer carries the start
                assert mon.profiler.active is not None
                for path in ("/ping", "/work"):
                    results.setdefault((variant, path), []).append(_time(host, path, args.n))
                svc.stop_session(store, actor="bench")
                mon.flush()  # the answer carries the stop
                mon.flush()  # and this one the part
                assert mon.profiler.active is None
            for path in ("/ping", "/work"):
                results.setdefault(("after", path), []).append(_time(host, path, args.n))
        sessions = svc.list_sessions(store, 2 * args.rounds)
    finally:
        mon.close()

    print(f"profiler overhead: {args.rounds} rounds x {args.n} requests per variant "
          f"(Python {sys.version.split()[0]})")
    print("medians, microseconds per request; cpu = pyinstrument only (memory=false), "
          "on = pyinstrument + tracemalloc")
    print(f"{'endpoint':8} {'bare':>8} {'off':>8} {'cpu':>8} {'on':>8} {'after':>8} "
          f"{'off-bare':>9} {'cpu-off':>9} {'on-off':>9} {'after-off':>10}")
    for path in ("/ping", "/work"):
        med = {k: statistics.median(results[(k, path)]) * 1e6
               for k in ("bare", "off", "cpu", "on", "after")}
        print(f"{path:8} {med['bare']:8.1f} {med['off']:8.1f} {med['cpu']:8.1f} "
              f"{med['on']:8.1f} {med['after']:8.1f} {med['off'] - med['bare']:+9.1f} "
              f"{med['cpu'] - med['off']:+9.1f} {med['on'] - med['off']:+9.1f} "
              f"{med['after'] - med['off']:+10.1f}")
    reported = [s["overhead_per_request_ms"] for s in sessions if s["overhead_per_request_ms"]]
    if reported:
        print(f"added cost per request as the sessions report it (profiler start/stop and "
          f"merge; tracemalloc's cost on allocations is not in it), median: "
              f"{statistics.median(reported) * 1000:.1f} us")


if __name__ == "__main__":
    main()
