"""Packed monitor batches: expanded into rows exactly once, even by several
console workers at once; a bad batch is skipped, not fatal."""
from __future__ import annotations

import threading
import time

from sqlalchemy import func, insert, select

from dashapp.services import ingest
from dashapp.store import Store
from dashapp.store.models import IngestBatch, QueryLog, RequestLog, utcnow


def _batch(i: int, n: int = 50) -> dict:
    now = time.time()
    requests = [value for j in range(n)  # flat, as monitor() records them
                for value in (now, "/r", "GET", 200 if j % 10 else 500, 1.5, f"b{i}-{j}",
                              None, None)]
    queries = [[now, "abcd", "SELECT ?", 0.5, 1, f"b{i}-{j}", "/r"] for j in range(n)]
    return {"created_at": utcnow(), "process": f"host:{i}", "events": 2 * n,
            "payload": ingest.pack(requests, queries)}


def test_batches_expand_exactly_once_with_two_ingesters(store_url):
    store = Store(store_url)
    store.upgrade()
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(IngestBatch), [_batch(i) for i in range(60)])
            conn.execute(insert(IngestBatch), [{"created_at": utcnow(), "process": "bad",
                                                "events": 1, "payload": "{not json"}])
        assert ingest.pending(store) == 60 * 100 + 1
        results = []
        workers = [threading.Thread(target=lambda: results.append(ingest.ingest(store,
                                                                                batches=5)))
                   for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert sum(results) == 60 * 100
        with store.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(RequestLog)) == 3000
            assert conn.scalar(select(func.count(func.distinct(RequestLog.request_id)))) == 3000
            assert conn.scalar(select(func.count()).select_from(QueryLog)) == 3000
            assert conn.scalar(select(func.count()).where(RequestLog.status >= 500)) == 300
        assert ingest.pending(store) == 0
        assert ingest.ingest(store) == 0
    finally:
        store.close()


def test_a_batch_from_the_previous_release_still_expands(store_url):
    """Hosts upgraded after the console still write format 2 (one list per
    request, led by its kind): expanded the same way; a torn flat list is
    refused as unreadable rather than shifting every later field."""
    import json
    store = Store(store_url)
    store.upgrade()
    now = time.time()
    old = json.dumps({"format": 2, "queries": [],
                      "requests": [[0, now, "/old", "POST", 503, 12.5, "old-1", "Boom", "x"]]})
    torn = json.dumps({"format": ingest.FORMAT, "queries": [],
                       "requests": [now, "/torn", "GET", 200, 1.0, "t-1", None]})
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(IngestBatch), [
                {"created_at": utcnow(), "process": "old:1", "events": 1, "payload": old},
                {"created_at": utcnow(), "process": "torn:1", "events": 1, "payload": torn}])
        assert ingest.ingest(store) == 1
        with store.engine.connect() as conn:
            row = conn.execute(select(RequestLog)).one()
        assert (row.endpoint, row.method, row.status, row.duration_ms, row.request_id,
                row.exception_type, row.process) == \
            ("/old", "POST", 503, 12.5, "old-1", "Boom", "old:1")
        assert ingest.pending(store) == 0
    finally:
        store.close()


def test_a_batch_the_store_refuses_is_dropped_and_the_others_expand(store_url):
    """A value the driver cannot write (a lone surrogate: valid JSON, not
    UTF-8) fails its whole round; that batch is found and dropped, the
    batches around it are stored, and nothing stays pending."""
    store = Store(store_url)
    store.upgrade()
    now = time.time()
    good = [_batch(i, n=5) for i in range(4)]
    bad = {"created_at": utcnow(), "process": "bad:1", "events": 1,
           "payload": ingest.pack([now, "/a\ud800", "GET", 200, 1.0, "bad-1", None, None], [])}
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(IngestBatch), good[:2] + [bad] + good[2:])
        assert ingest.ingest(store) == 4 * 10
        with store.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(RequestLog)) == 20
            assert conn.scalar(select(func.count()).where(RequestLog.process == "bad:1")) == 0
        assert ingest.pending(store) == 0
    finally:
        store.close()
