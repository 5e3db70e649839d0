"""Latency histograms: fixed geometric buckets that merge by addition.

Per-minute roll-ups keep a histogram of request durations so percentiles over
any range can be estimated from them after the raw rows are gone. Bucket k
covers [BASE * GROWTH**k, BASE * GROWTH**(k+1)) ms; the estimate is the
bucket's geometric middle, so it is within about ±9.5% of the true value
(sqrt(1.2) - 1) for durations between 0.05 ms and 10 minutes.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

BASE_MS = 0.05
GROWTH = 1.2
_LOG_GROWTH = math.log(GROWTH)
MAX_BUCKET = int(math.log(600_000 / BASE_MS) / _LOG_GROWTH)  # ten minutes
RELATIVE_ERROR = math.sqrt(GROWTH) - 1


def bucket_of(ms: float) -> int:
    if ms <= BASE_MS:
        return 0
    return min(int(math.log(ms / BASE_MS) / _LOG_GROWTH), MAX_BUCKET)


def bucket_value(k: int) -> float:
    """The geometric middle of bucket k, in ms."""
    return BASE_MS * GROWTH ** (k + 0.5)


def histogram(durations: Iterable[float]) -> dict[int, int]:
    hist: dict[int, int] = {}
    for ms in durations:
        k = bucket_of(ms)
        hist[k] = hist.get(k, 0) + 1
    return hist


def merge(hists: Iterable[Mapping]) -> dict[int, int]:
    total: dict[int, int] = {}
    for hist in hists:
        for k, n in hist.items():
            total[int(k)] = total.get(int(k), 0) + int(n)
    return total


def quantile(hist: Mapping, q: float) -> float | None:
    """Nearest-rank q-quantile (0..1) estimated from a histogram."""
    return quantiles_dense(dense(hist), [q])[0]


def dense(hist: Mapping) -> np.ndarray:
    """A histogram as a dense count array indexed by bucket."""
    counts = np.zeros(MAX_BUCKET + 1, dtype=np.int64)
    for k, n in hist.items():
        counts[min(max(int(k), 0), MAX_BUCKET)] += int(n)
    return counts


def dense_of(durations) -> np.ndarray:
    """Durations (ms) straight into a dense count array (vectorised)."""
    ms = np.asarray(durations, dtype=float)
    if not ms.size:
        return np.zeros(MAX_BUCKET + 1, dtype=np.int64)
    ks = np.floor(np.log(np.maximum(ms, BASE_MS) / BASE_MS) / _LOG_GROWTH).astype(int)
    return np.bincount(np.clip(ks, 0, MAX_BUCKET), minlength=MAX_BUCKET + 1)


def quantiles_dense(counts, qs) -> list[float | None]:
    """Nearest-rank quantiles (0..1) from a dense count array."""
    total = int(counts.sum())
    if not total:
        return [None for _ in qs]
    cum = np.cumsum(counts)
    out = []
    for q in qs:
        rank = max(1, math.ceil(q * total))
        out.append(bucket_value(int(np.searchsorted(cum, rank))))
    return out
