"""20 dashboard users refreshing every page every 5 s, while a monitored host
takes traffic (issue 7).

    .venv/bin/python benchmarks/console_load.py [--users 20] [--seconds 120]
        [--workers 4] [--database-url postgresql+psycopg://...] [--host-rps 50]
        [--backfill-minutes 60] [--baseline-seconds 30]

What runs, all as real processes on 127.0.0.1:
- the console under gunicorn exactly as the README's production section
  starts it (`gunicorn --workers N wsgi:server`, sync workers, demo off),
  store at --database-url (default: OPS_DATABASE_URL, else a temporary
  SQLite file; use PostgreSQL with several workers), Redis at REDIS_URL
  (else the embedded one the console starts);
- a monitored host (tests/integration/host_app.py: monitor() + one SQL
  statement a request) under gunicorn with 2 workers, fed --host-rps
  requests per second by a process of its own; its events flow through the
  store into the console's pages while the users watch;
- the users: one account each (load01..load20, role admin so every page is
  theirs), signed in through the real sign-in form, each a thread with its
  own HTTP session. Every 5 s a user "refreshes" every page: it sends the
  Dash callbacks each page fires on its dcc.Interval (POST
  /_dash-update-component), one after the other, with the payloads a real
  browser sends. Those payloads are captured once at the start from
  headless Chromium (Playwright, /usr/bin/chromium): every page is opened
  and left until each of its intervals has fired.

Rate limits stay on with their defaults: the console is started as behind
one reverse proxy (OPS_TRUSTED_PROXIES=1) and each user sends its own
X-Forwarded-For address, so the per-user, per-IP and sign-in limits count
each user apart, as they would in production (20 users from one address
would be one "IP" over its 3000/minute).

Printed: callbacks sent, errors (any answer but 200/204 with a Dash body,
or no answer within 60 s), p50/p95/p99 latency per page and overall, with
the same pages' p50/p95 for one user alone measured first in the same run,
ticks missed (a user's round of pages outlasting the 5 s period), and the
host's throughput and errors during the run. --backfill-minutes first
stores that many minutes of host requests (at --host-rps), so the pages'
60-minute windows are as full as after that long in production.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.monitor_overhead import free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
PERIOD_S = 5.0
PASSWORD = "load-test-password-1234"
DASH_UPDATE = "/_dash-update-component"
# The console sits behind one trusted reverse proxy (as in production), so
# each user is counted from an address of its own (X-Forwarded-For) and
# every rate limit keeps its default.
RUN_ENV = {"OPS_TRUSTED_PROXIES": "1"}


# ----- processes -----------------------------------------------------------------------
def wait_http(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=3).read()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up (exit code {proc.poll()})")
            time.sleep(0.3)


def gunicorn(target: str, port: int, workers: int, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind",
         f"127.0.0.1:{port}", "--chdir", str(ROOT), "--log-level", "warning", target],
        env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def create_users(store_url: str, names: list[str]) -> None:
    """The load accounts, in the store the console will use (schema first)."""
    from dashapp.security.auth import UserService
    from dashapp.store import Store
    store = Store(store_url)
    try:
        store.upgrade()
        users = UserService(store)
        for name in names:
            if users.by_name(name) is None:
                users.create_user(name, PASSWORD, "admin")
            else:
                users.set_password(name, PASSWORD)
    finally:
        store.close()


def backfill(store_url: str, minutes: int, rps: float) -> int:
    """Rows as if the host had served `rps` for the last `minutes` (the pages'
    60-minute windows then hold what they hold in steady state); returns
    how many. Written straight into ops_request, like the console's
    ingest writes them."""
    import random
    from datetime import datetime, timedelta, timezone

    from dashapp.store import Store
    from dashapp.store.models import RequestLog
    rows = int(minutes * 60 * rps)
    start = datetime.now(timezone.utc) - timedelta(minutes=minutes)
    rng = random.Random(1)
    store = Store(store_url)
    try:
        for lo in range(0, rows, 20_000):
            batch = [{"time": start + timedelta(seconds=i / rps),
                      "endpoint": "/items/<int:item_id>", "method": "GET", "status": 200,
                      "duration_ms": rng.lognormvariate(2, 0.5),
                      "request_id": f"backfill{i:012x}", "process": "backfill:1"}
                     for i in range(lo, min(rows, lo + 20_000))]
            with store.engine.begin() as conn:
                conn.execute(RequestLog.__table__.insert(), batch)
    finally:
        store.close()
    return rows


def host_traffic(base: str, rps: float, stop_event, out) -> None:
    """A process of its own: GET the host at `rps` (4 threads, paced) until
    `stop_event` is set, then put [(wall time answered, ok), ...] on `out`."""
    import requests
    done: list[tuple[float, bool]] = []
    started = time.monotonic()
    threads = 4
    interval = threads / rps

    def run(k: int) -> None:
        session = requests.Session()
        next_at = started + k * interval / threads
        i = k
        while not stop_event.is_set():
            try:
                good = session.get(f"{base}/items/{i % 1000}", timeout=10).status_code == 200
            except requests.RequestException:
                good = False
            done.append((time.time(), good))
            i += threads
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    out.put(done)


def recorded_host_requests(base: str, username: str) -> int | None:
    """What the console's API says the host served in the last hour: the
    events went host -> store -> console while the users watched."""
    import requests
    try:
        token = requests.post(f"{base}/api/auth/token", timeout=30,
                              json={"username": username, "password": PASSWORD}
                              ).json()["token"]
        rows = requests.get(f"{base}/api/metrics/endpoints?minutes=60", timeout=30,
                            headers={"Authorization": f"Bearer {token}"}).json()["endpoints"]
    except (requests.RequestException, KeyError, ValueError):
        return None
    return sum(r["count"] for r in rows if r["endpoint"] == "/items/<int:item_id>")


# ----- sign-in and the payloads a browser sends --------------------------------------
def sign_in(base: str, username: str, address: str):
    """A requests.Session signed in through the real form (its CSRF field),
    coming from `address` through the (trusted) reverse proxy; the page it
    lands on sets the ops_csrf cookie, as in a browser."""
    import requests
    session = requests.Session()
    session.headers["X-Forwarded-For"] = address
    # gunicorn's sync worker closes every connection after its response
    # (while saying keep-alive): reusing one races that close and can end
    # in a reset. Ask for what happens anyway: a connection per request.
    session.headers["Connection"] = "close"
    page = session.get(f"{base}/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = session.post(f"{base}/login", data={"username": username, "password": PASSWORD,
                                               "csrf_token": token, "next": "/"},
                        timeout=30)
    if resp.status_code != 200 or urlsplit(resp.url).path.startswith("/login"):
        raise RuntimeError(f"sign-in of {username} failed: {resp.status_code} "
                           f"{resp.text[:200]}")
    return session


def dash_headers(session) -> dict:
    """What the page's JavaScript sends with a callback: JSON, and the CSRF
    header (the value of the ops_csrf cookie) once the console sets one."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    csrf = session.cookies.get("ops_csrf")
    if csrf:
        headers["X-CSRF-Token"] = csrf
    return headers


def interval_ids(payload: dict) -> list[str]:
    return [p.rsplit(".", 1)[0] for p in payload.get("changedPropIds", [])
            if isinstance(p, str) and p.endswith(".n_intervals")]


def capture(base: str, username: str, paths: list[str], max_wait: float) -> dict:
    """{path: [payload, ...]}: the interval callbacks each page fires, as
    headless Chromium sends them (one per callback, the last one seen)."""
    from playwright.sync_api import sync_playwright
    captured: dict[str, dict[str, dict]] = {p: {} for p in paths}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu",
                                           "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.goto(f"{base}/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{base}/")
        page.close()
        tabs = []
        for path in paths:
            tab = context.new_page()

            def on_request(req, path=path):
                target = urlsplit(req.url)
                if req.method != "POST" or not target.path.endswith(DASH_UPDATE):
                    return
                try:
                    payload = json.loads(req.post_data or "{}")
                except ValueError:
                    return
                if interval_ids(payload):
                    # Kept with the query string Dash adds (?endId=...).
                    payload["__url"] = target.path + (f"?{target.query}" if target.query
                                                      else "")
                    captured[path][json.dumps(payload.get("output"))] = payload
            tab.on("request", on_request)
            tab.goto(f"{base}{path}", wait_until="commit")
            tabs.append(tab)
        # Long enough for the longest interval of any page (30 s) to fire.
        tabs[0].wait_for_timeout(max_wait * 1000)
        browser.close()
    return {path: list(found.values()) for path, found in captured.items()}


# ----- the users -----------------------------------------------------------------------
class User(threading.Thread):
    """Signs in, then on every tick (every PERIOD_S) sends every page's
    interval callbacks, one after the other. A tick that comes while the
    previous round still runs is missed (counted), as a browser tab whose
    callbacks are still pending would fall behind."""

    def __init__(self, base: str, name: str, address: str, pages: dict, start_at: float,
                 end_at: float, offset: float):
        super().__init__(name=name, daemon=True)
        self.base, self.address, self.pages = base, address, pages
        self.start_at, self.end_at, self.offset = start_at, end_at, offset
        self.samples: list[tuple[str, float]] = []  # (page, seconds)
        self.errors: list[str] = []
        self.rounds = 0
        self.missed = 0
        self.session = None

    def run(self) -> None:
        try:
            self.session = sign_in(self.base, self.name, self.address)
        except Exception as exc:  # noqa: BLE001 - reported as an error
            self.errors.append(f"sign-in: {exc}")
            return
        n = 1
        self._round(n, record=False)  # as the page load does: not measured
        tick = self.start_at + self.offset
        while tick < self.end_at:
            delay = tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            n += 1
            self._round(n, record=True)
            self.rounds += 1
            tick += PERIOD_S
            while tick < time.monotonic():  # the round outlasted the period
                self.missed += 1
                tick += PERIOD_S

    def _round(self, n: int, record: bool) -> None:
        import requests
        for path, payloads in self.pages.items():
            for payload in payloads:
                body = dict(payload)
                url = self.base + body.pop("__url")
                body["inputs"] = [dict(i, value=n) if i.get("property") == "n_intervals"
                                  else i for i in payload.get("inputs", [])]
                t0 = time.perf_counter()
                try:
                    resp = self.session.post(url, data=json.dumps(body),
                                             headers=dash_headers(self.session), timeout=60)
                    elapsed = time.perf_counter() - t0
                    ok = resp.status_code == 204 or (
                        resp.status_code == 200 and b'"response"' in resp.content)
                    problem = None if ok else f"{path}: HTTP {resp.status_code} " \
                                              f"{resp.text[:160]!r}"
                except requests.RequestException as exc:
                    elapsed = time.perf_counter() - t0
                    problem = f"{path}: {type(exc).__name__}: {exc}"
                if not record:
                    continue
                self.samples.append((path, elapsed))
                if problem:
                    self.errors.append(problem)


def pct(values: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 in milliseconds."""
    if len(values) < 2:
        v = values[0] * 1000 if values else float("nan")
        return v, v, v
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49] * 1000, q[94] * 1000, q[98] * 1000


# ----- main ----------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=120, help="measured duration")
    parser.add_argument("--workers", type=int, default=4, help="console gunicorn workers")
    parser.add_argument("--database-url", default=os.environ.get("OPS_DATABASE_URL"),
                        help="the console's store (default: a temporary SQLite file)")
    parser.add_argument("--baseline-seconds", type=int, default=30,
                        help="one user alone first, for the 'alone' columns")
    parser.add_argument("--host-rps", type=float, default=50.0)
    parser.add_argument("--backfill-minutes", type=int, default=0,
                        help="store this many minutes of host traffic (at --host-rps) "
                             "before the run: the pages as after that long in production")
    parser.add_argument("--capture-wait", type=float, default=36.0,
                        help="seconds the pages stay open in Chromium while their "
                             "intervals fire (the longest is 30 s)")
    args = parser.parse_args()

    from dashapp.modules import ADMIN_MODULES, MODULES
    paths = [m.path for m in MODULES + ADMIN_MODULES]
    tmp = Path(tempfile.mkdtemp(prefix="ops-load-"))
    instance = tmp / "instance"
    store_url = args.database_url or f"sqlite:///{instance / 'ops.db'}"
    names = [f"load{i:02d}" for i in range(1, args.users + 1)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPS_")}
    env.update({"OPS_INSTANCE_DIR": str(instance), "OPS_DATABASE_URL": store_url,
                "OPS_DEMO": "0", "OPS_ADMIN_PASSWORD": PASSWORD,
                "SECRET_KEY": "load-benchmark-secret", "PYTHONPATH": str(ROOT), **RUN_ENV})
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    procs: list[subprocess.Popen] = []
    try:
        instance.mkdir(parents=True)
        create_users(store_url, names)
        filled = backfill(store_url, args.backfill_minutes, args.host_rps) \
            if args.backfill_minutes else 0
        console_port, host_port = free_port(), free_port()
        console = gunicorn("wsgi:server", console_port, args.workers, env, tmp / "console.log")
        procs.append(console)
        host_env = {**env, "HOST_DATABASE_URL": f"sqlite:///{tmp / 'host.db'}"}
        host = gunicorn("tests.integration.host_app:app", host_port, 2, host_env,
                        tmp / "host.log")
        procs.append(host)
        base, host_base = f"http://127.0.0.1:{console_port}", f"http://127.0.0.1:{host_port}"
        wait_http(f"{base}/api/health", console)
        wait_http(f"{host_base}/items/1", host)
        health = json.loads(urllib.request.urlopen(f"{base}/api/health").read())

        # Host traffic from now on, so the pages have figures while captured.
        spawn = multiprocessing.get_context("spawn")
        host_out, host_stop = spawn.Queue(), spawn.Event()
        host_proc = spawn.Process(target=host_traffic,
                                  args=(host_base, args.host_rps, host_stop, host_out),
                                  daemon=True)
        host_proc.start()

        redis_kind = "embedded" if health["redis"].get("embedded") else "REDIS_URL"
        print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; console: "
              f"gunicorn --workers {args.workers} wsgi:server (sync), store "
              f"{health['store']['backend']}, Redis {redis_kind}"
              f"; host: gunicorn --workers 2 tests.integration.host_app:app at "
              f"{args.host_rps:g} req/s; rate limits: defaults, each user from an address "
              "of its own behind OPS_TRUSTED_PROXIES=1; "
              + (f"{filled:,} request rows backfilled over the last {args.backfill_minutes} "
                 "minutes" if filled else "empty store at the start"), flush=True)
        t0 = time.monotonic()
        pages = capture(base, names[0], paths, args.capture_wait)
        pages = {p: v for p, v in pages.items() if v}
        quiet = [p for p in paths if p not in pages]
        per_round = sum(len(v) for v in pages.values())
        print(f"captured in {time.monotonic() - t0:.0f} s from Chromium: {per_round} interval "
              f"callbacks over {len(pages)} pages ("
              + ", ".join(f"{p} {len(v)}" for p, v in pages.items())
              + f"); no interval: {', '.join(quiet) or '-'}", flush=True)
        if not per_round:
            raise SystemExit("no interval callback was captured")

        def run_users(group: list[str], seconds: float, first: int = 0):
            start_at = time.monotonic() + 15  # sign-ins and a warm-up round first
            end_at = start_at + seconds
            users = [User(base, name, f"10.0.{(first + i) // 250}.{(first + i) % 250 + 1}",
                          pages, start_at, end_at, offset=i * PERIOD_S / len(group))
                     for i, name in enumerate(group)]
            for u in users:
                u.start()
            time.sleep(max(0.0, start_at - time.monotonic()))
            window = (time.time(), time.time() + seconds)
            for u in users:
                u.join(timeout=seconds + 300)
            return users, window, max(seconds, time.monotonic() - start_at)

        # Baseline in the same run: one user alone, the same pages.
        alone, _, _ = run_users(names[:1], args.baseline_seconds)
        alone_by_page: dict[str, list[float]] = defaultdict(list)
        for path, secs in (x for u in alone for x in u.samples):
            alone_by_page[path].append(secs)
        load_before = os.getloadavg()[0]
        users, window, measured = run_users(names[1:] + names[:1], args.seconds, first=1)
        load_after = os.getloadavg()[0]

        samples = [x for u in users for x in u.samples]
        errors = [e for u in alone + users for e in u.errors]
        by_page: dict[str, list[float]] = defaultdict(list)
        for path, secs in samples:
            by_page[path].append(secs)
        rounds = sum(u.rounds for u in users)
        missed = sum(u.missed for u in users)
        print(f"{len(users)} users, each signed in as itself; every {PERIOD_S:g} s each "
              f"refreshes every page; measured {measured:.0f} s; rounds {rounds}, ticks "
              f"missed (a round longer than {PERIOD_S:g} s) {missed}; callbacks "
              f"{len(samples)} ({len(samples) / measured:.1f}/s; all on time would be "
              f"{per_round * len(users) / PERIOD_S:.0f}/s); errors {len(errors)}; "
              f"machine load average {load_before:.1f} before, {load_after:.1f} after")
        print(f"{'page':<12}{'callbacks':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
              f"{'max ms':>9}   alone: {'p50':>5}{'p95':>7}")

        def row(label: str, values: list[float], baseline: list[float]) -> str:
            p50, p95, p99 = pct(values)
            b50, b95, _ = pct(baseline)
            return (f"{label:<12}{len(values):>10}{p50:>9.0f}{p95:>9.0f}{p99:>9.0f}"
                    f"{max(values, default=float('nan')) * 1000:>9.0f}   "
                    f"{'':>6}{b50:>5.0f}{b95:>7.0f}")
        for path in pages:
            print(row(path, by_page.get(path, []), alone_by_page.get(path, [])))
        print(row("overall", [x for _, x in samples],
                  [x for v in alone_by_page.values() for x in v]))
        host_stop.set()
        done = host_out.get(timeout=120)
        host_proc.join(timeout=30)
        inside = [ok for t, ok in done if window[0] <= t <= window[1]]
        sent = len(done)
        time.sleep(6)  # the console's scheduler expands the last batches
        # (With a backfill the API's count mixes both: not comparable.)
        recorded = None if filled else recorded_host_requests(base, names[0])
        print(f"host during the measured window: {len(inside) / args.seconds:.1f} req/s "
              f"({sum(inside)} ok, {inside.count(False)} errors); whole run {sent} requests, "
              f"{sum(1 for _, ok in done if not ok)} errors"
              + (f"; the console's API shows {recorded} of them recorded"
                 if recorded is not None else ""))
        for e in errors[:10]:
            print("  error:", e)
        if errors:  # what the console said about them
            lines = (tmp / "console.log").read_text(errors="replace").splitlines()
            notable = [x for x in lines if re.search(r"ERROR|CRITICAL|Traceback|TIMEOUT", x)]
            print("  console log:", *(notable or lines)[-15:], sep="\n    ")
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
