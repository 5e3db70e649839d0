"""The exact 60-minute window on PostgreSQL: this tree's `_exact_window`
against an earlier revision's, on the same rows, in the same run.

    .venv/bin/python benchmarks/exact_window.py --baseline REV
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--rows-per-second 50] [--rounds 15]

`_exact_window` answers the API metrics page and the overview for windows up
to 60 minutes (totals, exact p50/p95/p99 and the per-minute series). The
script creates a scratch database `<name>_exactwin` beside --database-url
(dropped first), migrates it, writes 60 minutes of requests at
--rows-per-second (180,000 rows at 50/s, as benchmarks/console_load.py's
backfill does), checks that both versions give the same figures, then times
them alternately, --rounds each, and prints the medians. The baseline's
module is read from git (`git show REV:dashapp/services/api_metrics.py`).
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.console_load import backfill  # noqa: E402
from dashapp.services import api_metrics  # noqa: E402
from dashapp.store import Store  # noqa: E402


def baseline_module(rev: str, folder: Path):
    source = subprocess.run(["git", "show", f"{rev}:dashapp/services/api_metrics.py"],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    path = folder / "api_metrics_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("api_metrics_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scratch_database(url: str) -> str:
    base = make_url(url)
    name = f"{base.database}_exactwin"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows-per-second", type=float, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    url = scratch_database(args.database_url)
    store = Store(url)
    store.upgrade()
    store.close()
    rows = backfill(url, 60, args.rows_per_second)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    end = datetime.now(timezone.utc)
    start = end - timedelta(minutes=60)
    t = api_metrics._t
    cond = (t.c.time >= start) & (t.c.time <= end)
    with tempfile.TemporaryDirectory() as folder:
        versions = {f"baseline {args.baseline}": baseline_module(args.baseline, Path(folder)),
                    "this tree": api_metrics}
        timings: dict[str, list[float]] = {name: [] for name in versions}
        with engine.connect() as conn:
            answers = [m._exact_window(conn, cond, start, end, 60) for m in versions.values()]
            assert answers[0][0] == answers[1][0], answers
            assert answers[0][1].equals(answers[1][1]), "the series differ"
            order = list(versions.items())
            for i in range(args.rounds):
                for name, module in (order if i % 2 == 0 else order[::-1]):
                    t0 = time.perf_counter()
                    module._exact_window(conn, cond, start, end, 60)
                    timings[name].append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    print(f"{rows:,} request rows in the window; same figures from both versions")
    for name, values in timings.items():
        print(f"{name}: median {statistics.median(values):.1f} ms "
              f"(min {min(values):.1f}, max {max(values):.1f}, n={len(values)})")


if __name__ == "__main__":
    main()
