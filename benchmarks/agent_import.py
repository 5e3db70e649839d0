"""What importing the agent and calling `monitor()` adds to a host's start.

    .venv/bin/python benchmarks/agent_import.py [--rounds 30] [--importtime]

Each round starts two fresh interpreters, in random order:
  bare:  `import flask; app = Flask(...)`
  agent: the same, then `import ops_agent; ops_agent.monitor(app,
         dsn="http://opsik_x@127.0.0.1:9/bench")` (nothing listens there:
         the shipper's first send is a second away and is not waited for)
Each child times its own steps with perf_counter (the interpreter's own
start-up, the same for both, is left out) and reads its VmRSS from
/proc/self/status and ru_maxrss when done, then leaves with os._exit (no
atexit flush). Printed: medians of each, and of the differences paired by
round.

Bytecode: by default the children write and read .pyc files under a
temporary PYTHONPYCACHEPREFIX (compiled in a warm-up run first), as after
`pip install` of a wheel; --no-bytecode measures with
PYTHONDONTWRITEBYTECODE=1 and no cache (a source checkout where bytecode
is never written: every import compiles).

--importtime prints, from `python -X importtime` of the agent child, the
modules the agent brings in beyond Flask's, by their own import time.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import os, resource, sys, time
t0 = time.perf_counter()
import flask
app = flask.Flask("bench")
t1 = time.perf_counter()
t2 = t3 = t1
before = set(sys.modules)
if sys.argv[1] == "agent":
    import ops_agent
    t2 = time.perf_counter()
    mon = ops_agent.monitor(app, dsn="http://opsik_x@127.0.0.1:9/bench")
    t3 = time.perf_counter()
    assert mon.enabled
rss = 0
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
print(__import__("json").dumps({
    "flask_ms": (t1 - t0) * 1e3, "import_ms": (t2 - t1) * 1e3, "monitor_ms": (t3 - t2) * 1e3,
    "total_ms": (t3 - t0) * 1e3, "rss_kib": rss,
    "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "new_modules": len(set(sys.modules) - before)}))
sys.stdout.flush()
os._exit(0)
"""


def child_env(pycache: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPS_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_child(mode: str, env: dict, cwd: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], env=env, cwd=cwd,
                         capture_output=True, text=True, timeout=120)
    if out.returncode:
        raise SystemExit(f"child {mode} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def importtime(env: dict, cwd: Path, top: int) -> None:
    """The agent's own imports (those after Flask's), by self time."""
    code = CHILD.replace('if sys.argv[1] == "agent":',
                         'print("---agent---", file=sys.stderr)\nif True:')
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code, "agent"],
                         env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    lines = out.stderr.split("---agent---", 1)[-1].splitlines()
    rows = []
    for line in lines:
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = (part.strip() for part in line[len("import time:"):].split("|"))
        rows.append((int(self_us), int(cum_us), name))
    total_self = sum(r[0] for r in rows)
    print(f"[importtime] {len(rows)} modules imported after Flask's, {total_self / 1000:.1f} ms "
          f"of their own import time in all; by self time:")
    for self_us, cum_us, name in sorted(rows, reverse=True)[:top]:
        print(f"[importtime]   {self_us / 1000:6.2f} ms self {cum_us / 1000:7.2f} ms cumulative  "
              f"{name.strip()}")


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-bytecode", action="store_true",
                        help="no .pyc cache (PYTHONDONTWRITEBYTECODE=1)")
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ops-import-"))
    try:
        env = child_env(None if args.no_bytecode else tmp / "pycache")
        for mode in ("bare", "agent", "bare", "agent"):  # compile, warm the disk cache
            run_child(mode, env, tmp)
        res: dict[str, list[dict]] = {"bare": [], "agent": []}
        for _ in range(args.rounds):
            order = ["bare", "agent"]
            random.shuffle(order)
            for mode in order:
                res[mode].append(run_child(mode, env, tmp))
        bare, agent = res["bare"], res["agent"]
        load = os.getloadavg()
        print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; load average "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.rounds} paired rounds of fresh "
              f"interpreters; bytecode "
              f"{'not cached (PYTHONDONTWRITEBYTECODE=1)' if args.no_bytecode else 'cached'}")
        print(f"[bare]  import flask + Flask(): median "
              f"{med([b['total_ms'] for b in bare]):.1f} ms; VmRSS "
              f"{med([b['rss_kib'] for b in bare]) / 1024:.1f} MiB, ru_maxrss "
              f"{med([b['maxrss_kib'] for b in bare]) / 1024:.1f} MiB")
        print(f"[agent] the same + import ops_agent + monitor(): median "
              f"{med([a['total_ms'] for a in agent]):.1f} ms (import flask "
              f"{med([a['flask_ms'] for a in agent]):.1f}, import ops_agent "
              f"{med([a['import_ms'] for a in agent]):.2f}, monitor() "
              f"{med([a['monitor_ms'] for a in agent]):.1f}); VmRSS "
              f"{med([a['rss_kib'] for a in agent]) / 1024:.1f} MiB, ru_maxrss "
              f"{med([a['maxrss_kib'] for a in agent]) / 1024:.1f} MiB; "
              f"{agent[0]['new_modules']} modules more")
        added_ms = [a["import_ms"] + a["monitor_ms"] for a in agent]
        added_total = [a["total_ms"] - b["total_ms"] for a, b in zip(agent, bare)]
        added_rss = [(a["rss_kib"] - b["rss_kib"]) / 1024 for a, b in zip(agent, bare)]
        added_max = [(a["maxrss_kib"] - b["maxrss_kib"]) / 1024 for a, b in zip(agent, bare)]
        q = statistics.quantiles(added_ms, n=4)
        print(f"[added] import ops_agent + monitor(), timed in the agent child: median "
              f"{med(added_ms):.1f} ms (quartiles {q[0]:.1f}-{q[2]:.1f}); whole child's steps, "
              f"agent minus bare paired by round: median {med(added_total):.1f} ms")
        print(f"[added] memory, agent minus bare paired by round: VmRSS median "
              f"{med(added_rss):+.2f} MiB (min {min(added_rss):+.2f}, max {max(added_rss):+.2f}); "
              f"ru_maxrss median {med(added_max):+.2f} MiB")
        if args.importtime:
            importtime(env, tmp, args.top)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
