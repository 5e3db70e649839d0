"""dashapp.services.memo.shared: one computation for many viewers."""
from __future__ import annotations

import threading
import time

import pytest

from dashapp.services.memo import shared


class Owner:
    pass


def test_concurrent_callers_share_one_computation():
    owner, calls = Owner(), []
    gate = threading.Event()

    def compute():
        calls.append(1)
        gate.wait(5)
        return {"figures": len(calls)}

    results = []
    threads = [threading.Thread(target=lambda: results.append(
        shared(owner, "k", 10, compute))) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1
    assert results == [{"figures": 1}] * 8


def test_entries_expire_and_belong_to_their_owner():
    first, second, calls = Owner(), Owner(), []

    def compute():
        calls.append(1)
        return len(calls)

    assert shared(first, "k", 0.2, compute) == 1
    assert shared(first, "k", 0.2, compute) == 1
    assert shared(second, "k", 0.2, compute) == 2, "another owner never sees it"
    time.sleep(0.25)
    assert shared(first, "k", 0.2, compute) == 3


def test_failures_reach_every_caller_and_are_not_cached():
    owner = Owner()

    def fail():
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError, match="store down"):
        shared(owner, "k", 10, fail)
    assert shared(owner, "k", 10, lambda: "back") == "back"
