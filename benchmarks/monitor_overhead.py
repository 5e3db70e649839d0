"""What monitor() costs a host, against the same app bare, in one run.

    .venv/bin/python benchmarks/monitor_overhead.py [--fmd-python PATH] [--rounds 15]

1. WSGI level: time calls of app.wsgi_app on a trivial endpoint, bare and
   monitored, interleaved in rounds; report the median per-request time of
   each and the median added time.
2. SQL capture: time `SELECT 1` on an SQLite engine with and without
   monitor's engine events; median added time per statement.
3. Throughput under gunicorn (1 sync worker) with wrk on 127.0.0.1: requests/s
   of bare and monitored, interleaved rounds, medians and the ratio.

With --fmd-python (a Python where Flask-MonitoringDashboard is installed,
e.g. a separate venv: it is not a project dependency) parts 1 and 3 are
also run for Flask-MonitoringDashboard with its default settings, each with
its own bare baseline measured in the same process.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _environ() -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/ping", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": False,
            "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.version": (1, 0),
            "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1"}


def _time_wsgi(app, n: int) -> float:
    """Mean seconds per request over n calls of app.wsgi_app."""
    def start_response(status, headers, exc_info=None):
        return None
    wsgi = app.wsgi_app
    base = _environ()
    t0 = time.perf_counter()
    for _ in range(n):
        env = dict(base)
        env["wsgi.input"] = io.BytesIO(b"")
        for chunk in wsgi(env, start_response):
            pass
    return (time.perf_counter() - t0) / n


def wsgi_rounds(variants: dict, rounds: int, n: int) -> dict[str, list[float]]:
    for app in variants.values():
        _time_wsgi(app, 500)  # warm up
    results = {name: [] for name in variants}
    for _ in range(rounds):
        order = list(variants)
        random.shuffle(order)
        for name in order:
            results[name].append(_time_wsgi(variants[name], n))
    return results


def wsgi_worker(kind: str, rounds: int, n: int) -> dict:
    """Part 1 for `kind` (ours|fmd) with a bare baseline, in this process.

    For ours, two figures: "ours" with the writer thread running (the host
    pays for turning events into rows too: the total cost), and
    "ours_path" with the writer held off while the round is timed (what a
    request itself waits for); the buffer is flushed between rounds.
    """
    from benchmarks import hosts
    variants = {"bare": hosts.bare(), kind: getattr(hosts, kind)()}
    if kind != "ours":
        res = wsgi_rounds(variants, rounds, n)
        return {name: statistics.median(v) * 1e6 for name, v in res.items()}
    app = variants["ours"]
    mon = app.config["OPS_MONITOR"]
    for a in variants.values():
        _time_wsgi(a, 500)
    res = {"bare": [], "ours": [], "ours_path": []}
    for _ in range(rounds):
        order = list(res)
        random.shuffle(order)
        for name in order:
            if name == "ours_path":
                with mon._write_lock:  # the writer waits for this lock
                    res[name].append(_time_wsgi(app, n))
                mon.flush()
            else:
                res[name].append(_time_wsgi(variants[name], n))
    mon.flush()
    return {name: statistics.median(v) * 1e6 for name, v in res.items()}


def sql_overhead(rounds: int, n: int) -> dict:
    from sqlalchemy import create_engine, text

    from dashapp import monitor
    from dashapp.config import load_settings
    from benchmarks import hosts
    bare_engine = create_engine("sqlite://")
    mon_engine = create_engine("sqlite://")
    mon = monitor(hosts.make_app(), engine=mon_engine, settings=load_settings())
    stmt = text("SELECT 1")

    def run(engine):
        with engine.connect() as conn:
            t0 = time.perf_counter()
            for _ in range(n):
                conn.execute(stmt)
            return (time.perf_counter() - t0) / n
    run(bare_engine), run(mon_engine)
    results = {"bare": [], "monitored": []}
    for _ in range(rounds):
        pair = [("bare", bare_engine), ("monitored", mon_engine)]
        random.shuffle(pair)
        for name, engine in pair:
            results[name].append(run(engine))
    mon.flush()
    mon.close()
    return {name: statistics.median(v) * 1e6 for name, v in results.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wrk_rps(python: str, target: str, cwd: Path, env: dict, seconds: int) -> float:
    port = free_port()
    proc = subprocess.Popen([python, "-m", "gunicorn", "--workers", "1", "--worker-class",
                             "sync", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
                             target], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/ping"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"gunicorn {target} did not start")
                time.sleep(0.1)
        subprocess.run(["wrk", "-t1", "-c4", "-d2s", url], capture_output=True)  # warm-up
        out = subprocess.run(["wrk", "-t1", "-c4", f"-d{seconds}s", url],
                             capture_output=True, text=True).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a busy worker (FMD's) ignoring TERM
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fmd-python", help="a Python with Flask-MonitoringDashboard")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--wrk-rounds", type=int, default=3)
    parser.add_argument("--fmd-wrk-rounds", type=int, default=3,
                        help="rounds of Flask-MonitoringDashboard under wrk (it is slow)")
    parser.add_argument("--fmd-n", type=int, default=300,
                        help="requests per round for Flask-MonitoringDashboard "
                             "(it costs milliseconds per request)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:  # a child run of part 1 (e.g. inside the FMD venv)
        print(json.dumps(wsgi_worker(args.worker, args.rounds, args.n)))
        return

    tmp = Path(tempfile.mkdtemp(prefix="ops-bench-"))
    os.environ["OPS_INSTANCE_DIR"] = str(tmp / "instance")
    os.environ.pop("OPS_DATABASE_URL", None)
    try:
        print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
              f"rounds {args.rounds} x {args.n} requests")
        ours = wsgi_worker("ours", args.rounds, args.n)
        print(f"[wsgi] bare {ours['bare']:.1f} us/request; monitor() request path "
              f"{ours['ours_path']:.1f} us -> added {ours['ours_path'] - ours['bare']:.1f} us; "
              f"with its writer thread running {ours['ours']:.1f} us -> added "
              f"{ours['ours'] - ours['bare']:.1f} us (medians of rounds)")
        if args.fmd_python:
            fmd_dir = tmp / "fmd"
            fmd_dir.mkdir()
            out = subprocess.run(
                [args.fmd_python, str(Path(__file__).resolve()), "--worker", "fmd",
                 "--rounds", str(args.rounds), "--n", str(args.fmd_n)],
                cwd=fmd_dir, capture_output=True, text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            if out.returncode:
                print("[wsgi] Flask-MonitoringDashboard run failed:", out.stderr[-800:])
            else:
                fmd = json.loads([line for line in out.stdout.splitlines()
                                  if line.startswith("{")][-1])
                print(f"[wsgi] bare {fmd['bare']:.1f} us/request, Flask-MonitoringDashboard "
                      f"{fmd['fmd']:.1f} us/request -> added {fmd['fmd'] - fmd['bare']:.1f} us")

        sql = sql_overhead(args.rounds, args.n)
        print(f"[sql] bare {sql['bare']:.1f} us/statement, monitored {sql['monitored']:.1f} "
              f"us/statement -> added {sql['monitored'] - sql['bare']:.1f} us")

        if shutil.which("wrk"):
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            targets = [("bare", sys.executable, "benchmarks.hosts:bare_app"),
                       ("monitor()", sys.executable, "benchmarks.hosts:ours_app")]
            if args.fmd_python:
                targets.append(("Flask-MonitoringDashboard", args.fmd_python,
                                "benchmarks.hosts:fmd_app"))
            rps = {name: [] for name, _, _ in targets}
            for round_no in range(args.wrk_rounds):
                # FMD is ten times slower: a few rounds of it say enough.
                todo = [t for t in targets if t[0] != "Flask-MonitoringDashboard"
                        or round_no < args.fmd_wrk_rounds]
                random.shuffle(todo)
                for name, python, target in todo:
                    cwd = tmp / re.sub(r"\W", "", name)
                    cwd.mkdir(exist_ok=True)
                    # Each runs in its own folder: FMD writes its SQLite file to cwd.
                    rps[name].append(wrk_rps(python, target, cwd, env, args.wrk_seconds))
            base = statistics.median(rps["bare"])
            for name, values in rps.items():
                med = statistics.median(values)
                print(f"[gunicorn 1 sync worker, wrk -t1 -c4] {name}: median {med:.0f} req/s "
                      f"({med / base * 100:.1f}% of bare) rounds={[round(v) for v in values]}")
            # Each round's ratio to the bare run of the same round: the
            # machine's drift between rounds cancels out.
            paired = [o / b for o, b in zip(rps["monitor()"], rps["bare"])]
            print(f"[gunicorn] monitor() / bare, paired by round: median "
                  f"{statistics.median(paired) * 100:.1f}% over {len(paired)} rounds "
                  f"(quartiles {statistics.quantiles(paired, n=4)[0] * 100:.1f}%"
                  f"-{statistics.quantiles(paired, n=4)[2] * 100:.1f}%)")
        else:
            print("[gunicorn] wrk not installed (apt-get install wrk): throughput skipped")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
