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
    requests = [[0, now, "/r", "GET", 200 if j % 10 else 500, 1.5, f"b{i}-{j}", None, None]
                for j in range(n)]
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
