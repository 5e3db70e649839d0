"""What the agent costs a host, against the same app bare, in one run.

    .venv/bin/python benchmarks/monitor_overhead.py [--fmd-python PATH] [--rounds 15]
        [--wrk-rounds 25] [--redis-url redis://127.0.0.1:6379/9]

The host imports only `ops_agent` (`ops_agent.monitor(app, engine=..., dsn=...)`)
and sends its batches over HTTP to a real console started for the run
(`python app.py --no-demo --port P`, its own OPS_INSTANCE_DIR in a temporary
folder, SQLite store, an ingest key made through the REST API). The console's
scheduler is off by default (--console-scheduler turns it on) and it runs at
nice 19 (--console-nice): expanding the batches into rows is the console's
work, measured by ingest_capacity.py, and on a 2-core machine it would
compete with the host being measured; the console still accepts every
batch (HTTP, decode, one INSERT).

1. WSGI level: time calls of app.wsgi_app on a trivial endpoint, bare and
   monitored, interleaved in rounds; report the median per-request time of
   each and the median added time, with the shipper thread held off while
   a round is timed (the request path) and running (the total cost).
2. SQL capture: time `SELECT 1` on an SQLite engine with and without the
   agent's engine events; median added time per statement.
3. Throughput under gunicorn (1 sync worker) with wrk on 127.0.0.1: requests/s
   of bare and monitored, interleaved rounds, medians and the ratio paired
   by round.

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
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ----- a console for the run ------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(method: str, url: str, body: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


class Console:
    """A console process of its own for a benchmark: `python app.py --no-demo`
    (workers=0) or `gunicorn -c gunicorn.conf.py wsgi:server` with OPS_WORKERS
    workers, its instance folder under `tmp`. `dsn(app)` makes an ingest key
    through the REST API, as an admin would."""

    def __init__(self, tmp: Path, *, workers: int = 0, scheduler: bool = True,
                 database_url: str | None = None, redis_url: str | None = None,
                 extra_env: dict | None = None, nice: int = 0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(18)
        self.instance = tmp / "console-instance"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OPS_") and k not in ("REDIS_URL",)}
        env.update(OPS_INSTANCE_DIR=str(self.instance), OPS_ADMIN_PASSWORD=self.password,
                   OPS_SCHEDULER="1" if scheduler else "0", OPS_LOG_LEVEL="WARNING",
                   OPS_PORT=str(self.port), OPS_HOST="127.0.0.1", OPS_DEMO="0",
                   OPS_WORKERS=str(max(workers, 1)))
        if database_url:
            env["OPS_DATABASE_URL"] = database_url
        if redis_url:
            env["REDIS_URL"] = redis_url
        env.update(extra_env or {})
        if workers:
            cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                   "--workers", str(workers), "wsgi:server"]
        else:
            cmd = [sys.executable, "app.py", "--no-demo", "--port", str(self.port)]
        if nice:
            cmd = ["nice", "-n", str(nice), *cmd]
        self.log = open(tmp / "console.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(self.url + "/api/health", timeout=2).read()
                break
            except (OSError, urllib.error.HTTPError) as exc:
                if isinstance(exc, urllib.error.HTTPError) and exc.code < 500:
                    break
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("the console did not start:\n"
                                     + (tmp / "console.log").read_text()[-2000:])
                time.sleep(0.2)
        self.token = _http("POST", self.url + "/api/auth/token",
                           {"username": "admin", "password": self.password,
                            "name": "benchmark"})["token"]

    def new_key(self, app: str) -> dict:
        """{"key": ..., "dsn": ...} of a new ingest key for `app`."""
        return _http("POST", self.url + "/api/ingest-keys", {"app": app}, self.token)

    def sqlite_path(self) -> Path:
        return self.instance / "ops.db"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ----- part 1: the WSGI level -----------------------------------------------------------
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

    For ours, two figures: "ours" with the shipper thread running (the host
    pays for encoding and sending batches too: the total cost), and
    "ours_path" with the shipper held off while the round is timed (what a
    request itself waits for); the buffer is shipped between rounds.
    """
    from benchmarks import hosts
    variants = {"bare": hosts.bare(), kind: getattr(hosts, kind)()}
    if kind != "ours":
        res = wsgi_rounds(variants, rounds, n)
        return {name: statistics.median(v) * 1e6 for name, v in res.items()}
    app = variants["ours"]
    mon = app.config["OPS_MONITOR"]
    assert mon.enabled, "the agent is not enabled (OPS_DSN?)"
    for a in variants.values():
        _time_wsgi(a, 500)
    res = {"bare": [], "ours": [], "ours_path": []}
    for _ in range(rounds):
        order = list(res)
        random.shuffle(order)
        for name in order:
            if name == "ours_path":
                with mon.shipper._lock:  # the shipper's thread waits for this lock
                    res[name].append(_time_wsgi(app, n))
                mon.flush()
            else:
                res[name].append(_time_wsgi(variants[name], n))
    ok = mon.flush()
    out = {name: statistics.median(v) * 1e6 for name, v in res.items()}
    out["stats"] = {**mon.stats(), "last_flush_ok": ok}
    mon.close()
    return out


# ----- part 2: SQL ------------------------------------------------------------------------
def sql_overhead(rounds: int, n: int, dsn: str) -> dict:
    from sqlalchemy import create_engine, text

    import ops_agent
    from benchmarks import hosts
    bare_engine = create_engine("sqlite://")
    mon_engine = create_engine("sqlite://")
    mon = ops_agent.monitor(hosts.make_app(), engine=mon_engine, dsn=dsn)
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
    ok = mon.flush()
    out = {name: statistics.median(v) * 1e6 for name, v in results.items()}
    out["stats"] = {**mon.stats(), "last_flush_ok": ok}
    mon.close()
    return out


# ----- part 3: gunicorn + wrk ---------------------------------------------------------------
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


def received_events(console: Console) -> tuple[int, int]:
    """(batches, events) waiting in the console's ops_ingest (scheduler off:
    everything the hosts sent and the console accepted)."""
    with sqlite3.connect(console.sqlite_path()) as conn:
        row = conn.execute("SELECT count(*), coalesce(sum(events), 0) FROM ops_ingest").fetchone()
    return int(row[0]), int(row[1])


def _last_json(text: str) -> dict:
    """The last JSON object a child printed (FMD may print lines of its own)."""
    decoder = json.JSONDecoder()
    found: dict = {}
    for line in text.splitlines():
        start = line.find('{"bare"')
        if start >= 0:
            try:
                found = decoder.raw_decode(line[start:])[0]
            except ValueError:
                continue
    return found


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
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                        help="the console's Redis (default REDIS_URL, else embedded)")
    parser.add_argument("--console-scheduler", action="store_true",
                        help="let the console expand batches during the run")
    parser.add_argument("--console-nice", type=int, default=19,
                        help="the console's niceness: on a 2-core machine its work on "
                             "the batches must not take CPU from the host being measured")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: wsgi,sql,wrk")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    if args.worker:  # a child run of part 1 (e.g. inside the FMD venv)
        print(json.dumps(wsgi_worker(args.worker, args.rounds, args.n)))
        return

    tmp = Path(tempfile.mkdtemp(prefix="ops-bench-"))
    console = None
    try:
        console = Console(tmp, scheduler=args.console_scheduler, redis_url=args.redis_url,
                          nice=args.console_nice)
        dsn = console.new_key("bench")["dsn"]
        os.environ["OPS_DSN"] = dsn
        load = os.getloadavg()
        print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; rounds {args.rounds} x "
              f"{args.n} requests; console {console.url} (app.py, SQLite, scheduler "
              f"{'on' if args.console_scheduler else 'off'}, nice {args.console_nice})")
        if "wsgi" not in skip:
            ours = wsgi_worker("ours", args.rounds, args.n)
            print(f"[wsgi] bare {ours['bare']:.1f} us/request; agent request path "
                  f"{ours['ours_path']:.1f} us -> added {ours['ours_path'] - ours['bare']:.1f} "
                  f"us; with its shipper thread running {ours['ours']:.1f} us -> added "
                  f"{ours['ours'] - ours['bare']:.1f} us (medians of rounds)")
            st = ours["stats"]
            print(f"[wsgi] agent: {st['recorded_requests']} requests accepted by the console, "
                  f"{st['dropped']} dropped, {st['buffered']} still buffered, last flush "
                  f"{'ok' if st['last_flush_ok'] else 'FAILED'}")
        if args.fmd_python and "wsgi" not in skip:
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
                fmd = _last_json(out.stdout)
                print(f"[wsgi] bare {fmd['bare']:.1f} us/request, Flask-MonitoringDashboard "
                      f"{fmd['fmd']:.1f} us/request -> added {fmd['fmd'] - fmd['bare']:.1f} us")

        if "sql" not in skip:
            sql = sql_overhead(args.rounds, args.n, dsn)
            print(f"[sql] bare {sql['bare']:.1f} us/statement, monitored "
                  f"{sql['monitored']:.1f} us/statement -> added "
                  f"{sql['monitored'] - sql['bare']:.1f} us")
            st = sql["stats"]
            print(f"[sql] agent: {st['recorded_queries']} statements accepted by the console, "
                  f"{st['dropped']} dropped, last flush "
                  f"{'ok' if st['last_flush_ok'] else 'FAILED'}")

        if "wrk" in skip:
            pass
        elif shutil.which("wrk"):
            before = received_events(console) if not args.console_scheduler else None
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            targets = [("bare", sys.executable, "benchmarks.hosts:bare_app"),
                       ("agent", sys.executable, "benchmarks.hosts:ours_app")]
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
            paired = [o / b for o, b in zip(rps["agent"], rps["bare"])]
            quart = statistics.quantiles(paired, n=4) if len(paired) > 1 else paired * 3
            print(f"[gunicorn] agent / bare, paired by round: median "
                  f"{statistics.median(paired) * 100:.1f}% over {len(paired)} rounds "
                  f"(quartiles {quart[0] * 100:.1f}%-{quart[2] * 100:.1f}%)")
            if before is not None:
                batches, events = received_events(console)
                served = sum(rps["agent"]) * args.wrk_seconds
                print(f"[gunicorn] the console received {batches - before[0]} batches, "
                      f"{events - before[1]} requests from the monitored workers (wrk counted "
                      f"~{served:.0f} in the timed runs, plus warm-ups)")
        else:
            print("[gunicorn] wrk not installed (apt-get install wrk): throughput skipped")
    finally:
        if console is not None:
            console.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
