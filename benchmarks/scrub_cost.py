"""What the one scrubber costs the log viewer, against the redaction it replaced.

    .venv/bin/python benchmarks/scrub_cost.py [--rounds 8]

The log viewer scrubs every line it shows, so the scrubber's fast path (a
line holding no hint word) decides the cost of a tail. Measured in one run,
alternating, on the log lines benchmarks/log_viewer.py generates:

1. per line: `scrub_text` vs the previous `redact` (a copy below, its
   baseline), on plain lines and on a mix with 10% secret-bearing lines;
2. a tail of 1,000 lines of a 1 MB file through the service, with either
   function in place.

The previous redact masked less (no PEM keys, SQL values, flow maps,
connection strings...): the ratio is the price of that.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.log_viewer import block, make_file  # noqa: E402
from dashapp.config import load_settings  # noqa: E402
from dashapp.core.scrub import scrub_text  # noqa: E402
from dashapp.services import logs as svc  # noqa: E402

# The log viewer's redaction before the scrubber, kept here as the baseline.
_OLD_WORDS = r"(?:password|passwd|pwd|secret|token|api[_-]?key|authorization|cookie)"
_OLD_KV = re.compile(
    r"(?i)(\b" + _OLD_WORDS + r"\w*\"?\s*[=:]\s*\"?)(?:Bearer\s+|Basic\s+)?[^\s\"',;&]+")
_OLD_URL = re.compile(r"(\w+://[^:/@\s]*:)[^@/\s]+(@)")
_OLD_HINTS = ("pass", "pwd", "secret", "token", "key", "authorization", "cookie")


def old_redact(text: str) -> str:
    if not text:
        return text
    low = text.lower()
    if any(word in low for word in _OLD_HINTS):
        text = _OLD_KV.sub(r"\1***", text)
    if "://" in text and "@" in text:
        text = _OLD_URL.sub(r"\1***\2", text)
    return text


SECRET_LINES = [
    "2026-11-26 12:00:00,000 INFO auth: login ok user=bob token=abcdef12345 via api",
    "2026-11-26 12:00:00,000 INFO shop.cache: cache key products:42 miss in 3 ms",
    "2026-11-26 12:00:00,000 ERROR db: connect postgres://app:pw@db/shop failed",
]


def per_line(lines: list[str], fn, rounds: int) -> float:
    best = min(_time(lambda: [fn(line) for line in lines]) for _ in range(rounds))
    return best / len(lines) * 1e6


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    plain = block(3).decode().splitlines()[:2000]
    mixed = plain[:1800] + SECRET_LINES * 67
    for name, lines in (("plain lines", plain), ("10% with secrets", mixed)):
        old, new = per_line(lines, old_redact, args.rounds), per_line(lines, scrub_text,
                                                                        args.rounds)
        print(f"{name:17s} previous redact {old:5.2f} us/line, scrubber {new:5.2f} us/line"
              f" -> {new / old:.2f}x")
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.log"
        make_file(small, 1)
        settings = load_settings(instance_dir=Path(tmp) / "instance", demo=False,
                                 log_files=str(small))
        times: dict[str, list[float]] = {"previous redact": [], "scrubber": []}
        original = svc.redact
        try:
            for _ in range(args.rounds):
                for name, fn in (("previous redact", old_redact), ("scrubber", original)):
                    svc.redact = fn
                    svc.tail(settings, None, str(small), 1000)
                    times[name] += [_time(lambda: svc.tail(settings, None, str(small), 1000))
                                    for _ in range(10)]
        finally:
            svc.redact = original
        medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
        for name, ms in medians.items():
            print(f"tail 1,000 lines of 1 MB, {name:15s}: median {ms:6.2f} ms "
                  f"(min {min(times[name]) * 1000:.2f})")
        print(f"  -> {medians['scrubber'] / medians['previous redact']:.2f}x (medians), "
              f"{min(times['scrubber']) / min(times['previous redact']):.2f}x (minima)")


if __name__ == "__main__":
    main()
