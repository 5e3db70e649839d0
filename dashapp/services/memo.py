"""Figures shared by everyone looking at the same page for a few seconds.

Twenty people with the API metrics page open ask for the same window every
5 s; computing it once per few seconds and handing every caller the same
result makes the console's cost follow the number of distinct views, not the
number of viewers. Only one caller computes a missing entry; the others wait
for it (no stampede) and a failure is raised to each of them, never cached.
Entries belong to their owner (the store), so a new app never sees an old
app's figures.
"""
from __future__ import annotations

import threading
import time
import weakref
from typing import Any, Callable, Hashable

# How long a shared figure serves: under the 5 s of the fastest page refresh,
# so each refresh of each viewer sees figures computed since the last one.
SHARE_SECONDS = 4.0

_lock = threading.Lock()
_entries: "weakref.WeakKeyDictionary[Any, dict[Hashable, tuple[float, Any]]]" = \
    weakref.WeakKeyDictionary()
_flights: dict[tuple[int, Hashable], "_Flight"] = {}


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def shared(owner: Any, key: Hashable, ttl: float, compute: Callable[[], Any]) -> Any:
    """`compute()`'s result for (owner, key), at most `ttl` seconds old."""
    flight_key = (id(owner), key)
    with _lock:
        entry = _entries.get(owner, {}).get(key)
        if entry is not None and time.monotonic() - entry[0] < ttl:
            return entry[1]
        flight = _flights.get(flight_key)
        leader = flight is None
        if leader:
            flight = _flights[flight_key] = _Flight()
    if not leader:
        flight.done.wait(timeout=120)
        if flight.error is not None:
            raise flight.error
        return flight.value
    try:
        value = compute()
        flight.value = value
        with _lock:
            _entries.setdefault(owner, {})[key] = (time.monotonic(), value)
        return value
    except BaseException as exc:
        flight.error = exc
        raise
    finally:
        with _lock:
            _flights.pop(flight_key, None)
        flight.done.set()


def forget(owner: Any) -> None:
    """Drop every entry of `owner` (the next caller computes afresh)."""
    with _lock:
        _entries.pop(owner, None)
