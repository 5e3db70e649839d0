"""accept(): one agent batch into the store, and the commands that go back.

Requests and statements (the bulk: thousands a second per busy host) go
into one packed `ops_ingest` row per batch, which the scheduler expands
into indexed rows (dashapp.services.ingest): accepting a batch costs one
INSERT whatever its size. The other kinds are applied at once by their
capability's applier (`APPLIERS`): log records, job events, models,
profiles. Every row keeps the batch's application and release.

The answer carries the commands waiting for this process (job retries,
profiling sessions), claimed atomically so two processes of one
application never both carry one out.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from ops_agent import protocol
from sqlalchemy import select, update

from dashapp.ingest.keys import IngestError
from dashapp.store import Store
from dashapp.store.models import IngestBatch, MonitorProcess

logger = logging.getLogger(__name__)

Applier = Callable[[Store, "Meta", list], None]
ResultHandler = Callable[[Store, "Meta", dict], None]
CommandSource = Callable[[Store, "Meta"], list]


@dataclass(frozen=True)
class Meta:
    """Who sent a batch: the key's application, the agent's release and process."""
    app: str
    release: str
    process: str
    received_at: datetime


def _registry() -> tuple[dict[str, Applier], dict[str, ResultHandler], list[CommandSource]]:
    """Each capability's appliers, command-result handlers and command
    sources (imported on first use: no work at import time)."""
    from dashapp.ingest import jobs, logs, ml, profiler
    appliers: dict[str, Applier] = {}
    results: dict[str, ResultHandler] = {}
    sources: list[CommandSource] = []
    for module in (logs, jobs, ml, profiler):
        appliers.update(getattr(module, "APPLIERS", {}))
        results.update(getattr(module, "RESULTS", {}))
        source = getattr(module, "commands", None)
        if source is not None:
            sources.append(source)
    return appliers, results, sources


_REGISTRY: list = []


def registry():
    if not _REGISTRY:
        _REGISTRY.append(_registry())
    return _REGISTRY[0]


def _text(value: Any, size: int) -> str:
    return str(value if value is not None else "")[:size]


def accept(store: Store, app: str, batch: dict[str, Any]) -> dict[str, Any]:
    """Store one decoded batch (protocol.decode) sent with a key of `app`.
    IngestError (403) when the batch names another application."""
    named = batch.get("app")
    if named is not None and named != app:
        raise IngestError(f"This ingest key is for {app!r}, not {str(named)[:64]!r}.",
                          "wrong_app", 403)
    now = datetime.now(timezone.utc)
    meta = Meta(app=app, release=_text(batch.get("release"), 64),
                process=_text(batch.get("process") or "?", 96), received_at=now)
    events = batch["events"]
    appliers, results, sources = registry()
    requests = protocol.records(events, "requests")
    queries = protocol.records(events, "queries")
    packed = len(requests) // protocol.REQUEST_STRIDE + len(queries)
    if packed:
        from dashapp.services.ingest import pack
        with store.engine.begin() as conn:
            conn.execute(IngestBatch.__table__.insert().values(
                created_at=now, process=meta.process, app=meta.app, release=meta.release,
                events=packed, payload=pack(requests, queries)))
    for kind, records in events.items():
        if kind in ("requests", "queries", "command_results") or not records:
            continue
        applier = appliers.get(kind)
        if applier is None:
            logger.info("ingest: %s sent %d records of unknown kind %r; ignored",
                        meta.process, len(records), kind[:40])
            continue
        applier(store, meta, records)
    for result in protocol.records(events, "command_results"):
        if isinstance(result, dict):
            handler = results.get(str(result.get("type")))
            if handler is not None:
                handler(store, meta, result)
    _heartbeat(store, meta, batch)
    commands: list = []
    for source in sources:
        commands.extend(source(store, meta))
    return {"accepted": protocol.count_events(events), "commands": commands}


def _heartbeat(store: Store, meta: Meta, batch: dict[str, Any]) -> None:
    """The process's row: when it was last heard from, and what it recorded
    and dropped, summed here from the batches themselves (events accepted;
    `dropped`, what the agent lost since its last accepted batch)."""
    events = batch["events"]
    requests = len(protocol.records(events, "requests")) // protocol.REQUEST_STRIDE
    queries = len(protocol.records(events, "queries"))
    dropped = batch.get("dropped")
    dropped = dropped if isinstance(dropped, int) and 0 <= dropped < 2**62 else 0
    values = {"last_seen": meta.received_at, "app": meta.app, "release": meta.release,
              "app_name": meta.app}
    started = batch.get("started_at")
    t = MonitorProcess
    with store.engine.begin() as conn:
        row = conn.execute(select(t.id).where(t.process == meta.process)).first()
        if row is None:
            try:
                began = datetime.fromtimestamp(float(started), timezone.utc)
            except (TypeError, ValueError, OverflowError, OSError):
                began = meta.received_at
            conn.execute(t.__table__.insert().values(
                process=meta.process, started_at=began, dropped=dropped,
                recorded_requests=requests, recorded_queries=queries, **values))
        else:
            conn.execute(update(t).where(t.id == row.id).values(
                dropped=t.dropped + dropped,
                recorded_requests=t.recorded_requests + requests,
                recorded_queries=t.recorded_queries + queries, **values))


class DirectSink:
    """The agent's sink for an application inside the console's own process
    (old code calling `dashapp.monitor(app, settings=...)`, tests): the same
    accept() as POST /api/ingest, without the HTTP. The batch goes through
    the protocol's encode/decode, so it is exactly what the route reads.
    `expand`: expand packed batches at once (what a test's flush wants)."""

    def __init__(self, store: Store, app: str, *, expand: bool = True):
        self.store = store
        self.app = app
        self.expand = expand

    def send(self, batch: dict[str, Any]) -> dict[str, Any]:
        from ops_agent.transport import SendError
        try:
            decoded = protocol.decode(protocol.encode(batch), gzipped=True)
            answer = accept(self.store, self.app, decoded)
        except protocol.ProtocolError as exc:
            raise SendError(str(exc), permanent=True) from None
        except Exception as exc:  # noqa: BLE001 - a store outage is an outage
            raise SendError(f"store unavailable: {str(exc).splitlines()[0][:200]}") from None
        if self.expand:
            # Accepted is accepted: a failed expansion is retried by the next
            # one (or the scheduler), it does not make the batch a drop.
            from dashapp.services.ingest import ingest
            try:
                ingest(self.store)
            except Exception as exc:  # noqa: BLE001
                logger.warning("ingest: expansion deferred: %s",
                               str(exc).splitlines()[0][:200])
        return json.loads(json.dumps(answer, default=str))
