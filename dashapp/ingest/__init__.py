"""Ingest: what agents send (POST /api/ingest) and the keys they send it with.

keys.py     ingest keys: one or more per application, shown once, hashed,
            revocable, audited
service.py  accept(): one batch into the store; commands back to the agent
logs.py, jobs.py, ml.py, profiler.py
            each kind's applier (records -> rows) and command source
api.py      the routes
"""
