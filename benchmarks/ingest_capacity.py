"""How many events a second one console stores from agents sending flat out.

    .venv/bin/python benchmarks/ingest_capacity.py \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB \
        --redis-url redis://127.0.0.1:6379/N [--senders 4] [--batches 30]
        [--events 5000] [--workers 0] [--truncate]

What runs, as real processes on 127.0.0.1:
- the console: `python app.py --no-demo` (--workers 0: the single-process
  server) or `gunicorn -c gunicorn.conf.py --workers W wsgi:server`, store at
  --database-url, Redis at --redis-url, its scheduler on (it expands the
  packed batches every 2 s, `ops_ingest`); an ingest key made through the
  REST API;
- N sender processes, each an agent at full speed: it builds a few distinct
  batches with `ops_agent.protocol` as the shipper does (requests and their
  statements, fingerprinted with `ops_agent.fingerprint`, ~--events events a
  batch), encodes them, then, once every sender is ready, POSTs them in turn
  to /api/ingest with the key in X-Ops-Key, each as soon as the console has
  answered the previous one. Batches are built before the clock starts:
  encoding is the hosts' cost, on their own machines.

Measured: events accepted (HTTP 200) and stored (rows added to ops_request +
ops_query, counted exactly at the end), the time from the first send to the
moment the last row was expanded (polled every --poll seconds), the
`ops_ingest` backlog over time (events accepted, not yet expanded), and the
CPU time the console's processes, the PostgreSQL backends of its database
and the senders used meanwhile (from /proc).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENDPOINTS = [("/", "GET"), ("/products", "GET"), ("/products/<int:id>", "GET"),
             ("/cart", "GET"), ("/cart", "POST"), ("/checkout", "POST"),
             ("/api/orders", "GET"), ("/api/orders/<int:id>", "GET"),
             ("/api/search", "GET"), ("/login", "POST"), ("/account", "GET"),
             ("/static/<path:filename>", "GET")]
STATEMENTS = [
    "SELECT products.id, products.name, products.price FROM products WHERE products.id = {n}",
    "SELECT products.id, products.name FROM products ORDER BY products.name LIMIT {n} OFFSET 0",
    "SELECT count(*) AS count_1 FROM orders WHERE orders.customer_id = {n}",
    "SELECT customers.id, customers.email FROM customers WHERE customers.email = 'u{n}@x.io'",
    "INSERT INTO orders (customer_id, total, created_at) VALUES ({n}, 19.5, '2026-12-07')",
    "UPDATE carts SET updated_at='2026-12-07 10:00:00' WHERE carts.id = {n}",
    "SELECT order_items.id, order_items.qty FROM order_items WHERE order_items.order_id IN "
    "({n}, {n}, {n})",
    "SELECT sessions.data FROM sessions WHERE sessions.token = 'tok{n}'",
    "DELETE FROM cart_items WHERE cart_items.cart_id = {n}",
    "SELECT products.id FROM products WHERE products.name ILIKE '%shoe{n}%' LIMIT 20",
]


def build_batch(sender: int, seq: int, n_requests: int, queries_per_request: int,
                rng: random.Random) -> dict:
    """One batch as the agent's shipper builds it (protocol format 1)."""
    from ops_agent import __version__, protocol
    from ops_agent.fingerprint import fingerprint
    now = time.time()
    requests: list = []
    queries: list = []
    prefix = os.urandom(5).hex()
    for i in range(n_requests):
        endpoint, method = rng.choice(ENDPOINTS)
        epoch = now - 1.0 + i / n_requests
        rid = f"{prefix}{seq * n_requests + i}"
        duration = rng.lognormvariate(3.0, 0.8)
        failed = rng.random() < 0.01
        requests.extend((epoch, endpoint, method, 500 if failed else 200, duration, rid,
                         "OperationalError" if failed else None,
                         "database is locked" if failed else None))
        for _ in range(queries_per_request):
            fp, sql = fingerprint(rng.choice(STATEMENTS).format(n=rng.randint(1, 10_000)))
            queries.append([epoch, fp, sql, rng.lognormvariate(0.5, 1.0), rng.randint(0, 50),
                            rid, endpoint, None])
    pid = 40_000 + sender
    return {"v": protocol.VERSION, "app": "bench", "release": "1.0.0",
            "process": f"bench-host-{sender}:{pid}", "host": f"bench-host-{sender}",
            "pid": pid, "started_at": now - 60, "sent_at": now, "seq": seq,
            "agent": __version__, "dropped": 0,
            "stats": {"recorded_requests": 0, "recorded_queries": 0},
            "events": {"requests": requests, "queries": queries}}


def sender(index: int, url: str, key: str, batches: int, distinct: int, n_requests: int,
           qpr: int, ready, go, accepted, results) -> None:
    from ops_agent import protocol
    rng = random.Random(index)
    bodies = []
    for seq in range(distinct):
        batch = build_batch(index, seq, n_requests, qpr, rng)
        bodies.append((protocol.encode(batch), protocol.count_events(batch["events"])))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    headers = {"Content-Type": protocol.CONTENT_TYPE, "Content-Encoding": "gzip",
               protocol.FORMAT_HEADER: str(protocol.VERSION), protocol.KEY_HEADER: key,
               "User-Agent": "ops-agent/bench"}
    ready.put(index)
    go.wait()
    cpu0 = time.process_time()
    latencies, statuses, sent = [], {}, 0
    first = time.time()
    for i in range(batches):
        body, events = bodies[i % distinct]
        t0 = time.perf_counter()
        req = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with opener.open(req, timeout=120) as resp:
                resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            time.sleep(float(exc.headers.get("Retry-After") or 1) if exc.headers else 1)
        except OSError as exc:
            status = type(exc).__name__
            time.sleep(1)
        latencies.append(time.perf_counter() - t0)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            sent += events
            with accepted.get_lock():
                accepted.value += events
    results.put({"index": index, "first": first, "last": time.time(), "events": sent,
                 "cpu": time.process_time() - cpu0,
                 "latencies": latencies, "statuses": statuses,
                 "body_kib": statistics.mean(len(b) for b, _ in bodies) / 1024,
                 "batch_events": bodies[0][1]})


def _procs() -> list[tuple[int, int, float, str]]:
    """(pid, ppid, CPU seconds, command line) of every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out.append((int(entry), int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, cmd))
    return out


def cpu_snapshot(console_pid: int, dbname: str) -> dict[str, float]:
    """CPU seconds used so far by the console (its process and children),
    the PostgreSQL backends connected to `dbname`, and PostgreSQL's shared
    processes (WAL writer, checkpointer: shared with anything else using
    the server)."""
    procs = _procs()
    family = {console_pid}
    grew = True
    while grew:
        grew = False
        for pid, ppid, _, _ in procs:
            if ppid in family and pid not in family:
                family.add(pid)
                grew = True
    found = {"console": 0.0, "postgres backends": 0.0, "postgres shared": 0.0}
    for pid, _, cpu, cmd in procs:
        if pid in family:
            found["console"] += cpu
        elif cmd.startswith("postgres: ") and f" {dbname} " in cmd:
            found["postgres backends"] += cpu
        elif cmd.startswith("postgres: ") and any(
                w in cmd for w in ("walwriter", "checkpointer", "background writer")):
            found["postgres shared"] += cpu
    return found


class Store:
    """The benchmark's own view of the console's PostgreSQL tables."""

    def __init__(self, url: str):
        import psycopg
        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                                    autocommit=True)

    def one(self, sql: str):
        return self.conn.execute(sql).fetchone()

    def max_ids(self) -> tuple[int, int]:
        """The highest committed ids: rows stored since `base_ids()`, read
        from the primary keys' indexes (a count(*) every poll would load
        the server being measured)."""
        return self.one("SELECT (SELECT coalesce(max(id), 0) FROM ops_request), "
                        "(SELECT coalesce(max(id), 0) FROM ops_query)")

    def base_ids(self) -> tuple[int, int]:
        """The ids' sequences now: the next rows get ids above these."""
        return self.one(
            "SELECT (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
            "FROM ops_request_id_seq), (SELECT CASE WHEN is_called THEN last_value "
            "ELSE last_value - 1 END FROM ops_query_id_seq)")

    def backlog(self) -> tuple[int, int]:
        row = self.one("SELECT count(*), coalesce(sum(events), 0) FROM ops_ingest")
        return int(row[0]), int(row[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=os.environ.get("OPS_DATABASE_URL"),
                        required="OPS_DATABASE_URL" not in os.environ)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--batches", type=int, default=30, help="batches per sender")
    parser.add_argument("--events", type=int, default=5000, help="events a batch (about)")
    parser.add_argument("--queries-per-request", type=int, default=3)
    parser.add_argument("--distinct", type=int, default=4,
                        help="distinct batches each sender builds and cycles through")
    parser.add_argument("--workers", type=int, default=0,
                        help="console under gunicorn with this many workers (0: app.py)")
    parser.add_argument("--poll", type=float, default=0.25)
    parser.add_argument("--drain-timeout", type=float, default=600)
    parser.add_argument("--truncate", action="store_true",
                        help="empty ops_request, ops_query, ops_ingest first (a benchmark "
                             "database only)")
    args = parser.parse_args()

    import tempfile
    import shutil
    from benchmarks.monitor_overhead import Console
    tmp = Path(tempfile.mkdtemp(prefix="ops-ingest-"))
    console = None
    procs: list = []
    try:
        console = Console(tmp, workers=args.workers, scheduler=True,
                          database_url=args.database_url, redis_url=args.redis_url)
        key = console.new_key("bench")["key"]
        db = Store(args.database_url)
        if args.truncate:
            db.conn.execute("TRUNCATE ops_request, ops_query, ops_ingest RESTART IDENTITY")
        base_ids = db.base_ids()
        base_counts = db.one("SELECT (SELECT count(*) FROM ops_request), "
                             "(SELECT count(*) FROM ops_query)")
        n_requests = max(1, args.events // (1 + args.queries_per_request))
        ctx = mp.get_context("spawn")
        ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        accepted = ctx.Value("q", 0)
        for i in range(args.senders):
            p = ctx.Process(target=sender, args=(
                i, console.url + "/api/ingest", key, args.batches, args.distinct, n_requests,
                args.queries_per_request, ready, go, accepted, results), daemon=True)
            p.start()
            procs.append(p)
        for _ in procs:
            ready.get(timeout=300)
        load = os.getloadavg()
        print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; load average "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        kind = (f"gunicorn, {args.workers} workers" if args.workers
                else "app.py (one process)")
        print(f"console: {kind}; PostgreSQL store; scheduler on (ops_ingest every 2 s); "
              f"rows before: ops_request {base_counts[0]}, ops_query {base_counts[1]}")

        timeline: list = []
        stop = threading.Event()
        dbname = args.database_url.rsplit("/", 1)[-1].split("?")[0]
        cpu_before = cpu_snapshot(console.proc.pid, dbname)
        t_start = time.time()
        go.set()

        def poll() -> None:
            poller = Store(args.database_url)
            while not stop.is_set():
                ids = poller.max_ids()
                batches, events = poller.backlog()
                timeline.append((time.time() - t_start, accepted.value,
                                 ids[0] - base_ids[0] + ids[1] - base_ids[1], batches, events))
                stop.wait(args.poll)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        done = [results.get(timeout=3600) for _ in procs]
        t_sent = max(d["last"] for d in done)
        total = sum(d["events"] for d in done)
        deadline = time.time() + args.drain_timeout
        t_done = None
        while time.time() < deadline:
            if timeline and timeline[-1][2] >= total and timeline[-1][4] == 0:
                t_done = t_start + timeline[-1][0]
                break
            time.sleep(args.poll / 2)
        stop.set()
        poller.join()
        cpu_after = cpu_snapshot(console.proc.pid, dbname)
        wall = time.time() - t_start
        counts = db.one("SELECT (SELECT count(*) FROM ops_request), "
                        "(SELECT count(*) FROM ops_query)")
        stored = counts[0] - base_counts[0] + counts[1] - base_counts[1]
        first = min(d["first"] for d in done)
        lat = sorted(x for d in done for x in d["latencies"])
        statuses: dict = {}
        for d in done:
            for k, v in d["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        print(f"senders: {args.senders} processes x {args.batches} batches of "
              f"{done[0]['batch_events']} events ({n_requests} requests + "
              f"{n_requests * args.queries_per_request} statements; "
              f"{done[0]['body_kib']:.0f} KiB gzip JSON); answers {statuses}")
        send_s = t_sent - first
        print(f"[accept] {total} events accepted in {send_s:.1f} s: {total / send_s:,.0f} "
              f"events/s; POST latency median {statistics.median(lat) * 1000:.0f} ms, p95 "
              f"{lat[int(len(lat) * 0.95) - 1] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
        if t_done is None:
            print(f"[stored] NOT DRAINED within {args.drain_timeout:.0f} s after the last send: "
                  f"{stored} of {total} events stored; backlog {timeline[-1][4]} events")
        else:
            span = t_done - first
            print(f"[stored] {stored} events stored (ops_request +{counts[0] - base_counts[0]}, "
                  f"ops_query +{counts[1] - base_counts[1]}), first send -> last row expanded "
                  f"{span:.1f} s: {stored / span:,.0f} events/s into PostgreSQL "
                  f"(last row {t_done - t_sent:.1f} s after the last send was answered)")
        used = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
        used["senders"] = sum(d["cpu"] for d in done)
        print(f"[cpu] over the {wall:.1f} s run: " + ", ".join(
            f"{k} {v:.1f} s ({v / wall:.2f} cores)" for k, v in used.items())
            + f"; {sum(used.values()) / stored * 1e6 if stored else 0:.0f} us of CPU per event "
            "stored")
        peak = max(timeline, key=lambda r: r[4])
        print(f"[backlog] peak {peak[4]} events ({peak[3]} batches) at t={peak[0]:.1f} s; "
              f"at the last send {next((r[4] for r in timeline if r[0] >= send_s), 0)} events")
        print("[timeline] t(s)  accepted  stored  backlog(events)")
        step, next_t = max(1.0, (timeline[-1][0] if timeline else 1) / 30), 0.0
        for row in timeline:
            if row[0] >= next_t or row is timeline[-1]:
                print(f"[timeline] {row[0]:5.1f} {row[1]:9d} {row[2]:8d} {row[4]:9d}")
                next_t = row[0] + step
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        if console is not None:
            console.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
