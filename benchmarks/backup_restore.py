"""Backup, restore drill and restore of a SQLite database while an
application keeps writing to it, in one run.

    .venv/bin/python benchmarks/backup_restore.py [--mb 200] [--runs 3]

Builds a SQLite database of about `--mb` MB (WAL mode, as the demo's), then,
while a writer thread inserts a row every 10 ms, times the services the
Backups page and /api/backup call: create (online backup API + gzip +
sha256), verify (a restore drill into a scratch file), restore (checksum,
safety backup, scratch check, copy into the live database in one write
transaction). Reports medians of `--runs` runs, the file sizes, and what the
writer saw: how many of its inserts had to wait or failed during a restore
(the restore holds the write lock while it copies).
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashapp.config import load_settings  # noqa: E402
from dashapp.services import backups  # noqa: E402
from dashapp.store import Store  # noqa: E402


def build(path: Path, mb: int) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, body BLOB)")
    rows = mb * 1024  # ~1 KiB per row
    batch = [(f"item {i}", os.urandom(512) + b"x" * 512) for i in range(1024)]
    for _ in range(mb):
        conn.executemany("INSERT INTO item (name, body) VALUES (?, ?)", batch)
        conn.commit()
    conn.close()
    return rows


class Writer(threading.Thread):
    """The application: one insert every 10 ms; counts slow and failed ones."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.ok = self.failed = 0
        self.waits: list[float] = []

    def run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30)
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                conn.execute("INSERT INTO item (name, body) VALUES ('live', x'00')")
                conn.commit()
                self.ok += 1
            except sqlite3.Error:
                self.failed += 1
            self.waits.append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ops-bench-backup-") as tmp:
        tmp = Path(tmp)
        db = tmp / "app.db"
        t0 = time.perf_counter()
        rows = build(db, args.mb)
        print(f"database: {rows:,} rows, {db.stat().st_size / 2**20:.0f} MiB "
              f"(built in {time.perf_counter() - t0:.1f} s)")
        settings = load_settings(instance_dir=tmp / "instance", demo=False,
                                 scheduler=False, backup_targets=f"app=sqlite:///{db}",
                                 secret_key="bench", admin_password="bench-password-1")
        store = Store(settings.store_url)
        store.upgrade()
        writer = Writer(db)
        writer.start()
        timings: dict[str, list[float]] = {"create": [], "verify": [], "restore": []}
        restore_waits: list[float] = []
        size = None
        for _ in range(args.runs):
            started = time.perf_counter()
            made = backups.create_backup(store, settings, "app", actor="bench", note="bench")
            timings["create"].append(time.perf_counter() - started)
            size = made["size"]
            started = time.perf_counter()
            drill = backups.verify_backup(store, settings, made["id"])
            timings["verify"].append(time.perf_counter() - started)
            assert drill["ok"], drill
            before = len(writer.waits)
            started = time.perf_counter()
            backups.restore_backup(store, settings, made["id"], actor="bench", note="bench")
            timings["restore"].append(time.perf_counter() - started)
            restore_waits.extend(writer.waits[before:])
        writer.stop.set()
        writer.join()
        store.close()
        print(f"backup file: {size / 2**20:.1f} MiB gzip")
        for name, values in timings.items():
            print(f"{name:8s} median {statistics.median(values):6.2f} s  "
                  f"(runs: {', '.join(f'{v:.2f}' for v in values)})")
        print(f"writer: {writer.ok:,} inserts ok, {writer.failed} failed; during restores "
              f"{len(restore_waits)} inserts, slowest waited {max(restore_waits, default=0):.0f} ms")


if __name__ == "__main__":
    main()
