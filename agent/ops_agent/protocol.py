"""The batch format between the agent and the console (versioned).

One batch is a gzip-compressed JSON object, POSTed to the console's
`/api/ingest` with `Content-Encoding: gzip` and `X-Ops-Format: <VERSION>`:

    {"v": 1, "app": "shop", "release": "1.4.2", "process": "web-1:4242",
     "host": "web-1", "pid": 4242, "started_at": 1765100000.0,
     "sent_at": 1765100042.5, "seq": 42, "dropped": 0, "agent": "0.2.0",
     "events": {"requests": [...], "queries": [...], "logs": [...], ...}}

`dropped` is how many events the agent dropped since its last accepted
batch (an outage, a full buffer, a refused batch). Event kinds and the
shape of one record of each:

- requests: one flat list, REQUEST_STRIDE values per request: epoch,
  endpoint (the URL rule), method, status, duration_ms, request_id,
  exception type, exception message.
- queries: [epoch, statement fingerprint, normalised SQL, duration_ms,
  rows or None, request_id, endpoint, error type or None]. SQL values never
  leave the host: the statement is normalised (`?` for every value).
- logs: [epoch, level name, level number, logger, message, request_id,
  extras dict or None].
- other kinds (jobs, schedules, command_results, ml_models, ml_predictions,
  ml_labels, profiles): one JSON object per record, described by the
  integration that sends it.

The console answers 200 with `{"accepted": <events>, "commands": [...]}`;
each command is an object with an "id" and a "type" ("job", "profile") the
agent hands to the integration registered for that type. 400 with code
`unsupported_format` means this agent's format is too old or too new for
the console; 401/403 a wrong or revoked ingest key; 413 a batch too large;
429/503 come back later (`Retry-After`).

This module is the one copy of the format: the agent encodes with it and
the console decodes with it. It imports nothing but the standard library.
"""
from __future__ import annotations

import gzip
import io
import json
from typing import Any, Dict, List

VERSION = 1
SUPPORTED = (1,)
CONTENT_TYPE = "application/json"
FORMAT_HEADER = "X-Ops-Format"
KEY_HEADER = "X-Ops-Key"
INGEST_PATH = "/api/ingest"

REQUEST_STRIDE = 8
QUERY_FIELDS = 8
LOG_FIELDS = 7
# Kinds whose records describe state the console keeps up to date (a job
# run's end, a command's outcome, a model's registration): a batch that
# fails is retried with them, bounded; other kinds are dropped and counted.
DURABLE_KINDS = frozenset({"jobs", "schedules", "command_results", "ml_models",
                           "profiles"})
# Limits the console enforces (and the agent keeps under).
MAX_BODY_BYTES = 8 * 1024 * 1024          # compressed
MAX_JSON_BYTES = 64 * 1024 * 1024         # after decompression
MAX_EVENTS = 200_000


class ProtocolError(ValueError):
    """A batch the console cannot read; `code` is the error code it answers."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def count_events(events: Dict[str, Any]) -> int:
    """How many events a batch's `events` holds (requests are flat)."""
    total = 0
    for kind, records in events.items():
        if not isinstance(records, list):
            continue
        total += len(records) // REQUEST_STRIDE if kind == "requests" else len(records)
    return total


def encode(batch: Dict[str, Any]) -> bytes:
    """A batch as the gzip JSON body the agent POSTs."""
    body = json.dumps(batch, separators=(",", ":"), default=str).encode("utf-8")
    return gzip.compress(body, compresslevel=1)


def decode(body: bytes, *, gzipped: bool) -> Dict[str, Any]:
    """The batch in a POSTed body; ProtocolError when it is not one this
    console reads (bounded: a gzip bomb stops at MAX_JSON_BYTES)."""
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError("too_large", f"batch over {MAX_BODY_BYTES} bytes")
    if gzipped:
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
                raw = stream.read(MAX_JSON_BYTES + 1)
        except (OSError, EOFError) as exc:
            raise ProtocolError("invalid_batch", f"not gzip data: {exc}") from None
        if len(raw) > MAX_JSON_BYTES:
            raise ProtocolError("too_large", f"batch over {MAX_JSON_BYTES} bytes unpacked")
    else:
        raw = body
    try:
        batch = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("invalid_batch", f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(batch, dict):
        raise ProtocolError("invalid_batch", "a batch is a JSON object")
    version = batch.get("v")
    if version not in SUPPORTED:
        raise ProtocolError("unsupported_format",
                            f"batch format {version!r} is not one this console reads "
                            f"({', '.join(map(str, SUPPORTED))}); upgrade the agent "
                            "or the console so they match")
    events = batch.get("events")
    if events is None:
        batch["events"] = events = {}
    if not isinstance(events, dict) or not all(isinstance(v, list) for v in events.values()):
        raise ProtocolError("invalid_batch", "events is an object of lists")
    if count_events(events) > MAX_EVENTS:
        raise ProtocolError("too_large", f"over {MAX_EVENTS} events in one batch")
    if len(events.get("requests", ())) % REQUEST_STRIDE:
        raise ProtocolError("invalid_batch", "requests are not whole records")
    return batch


def records(events: Dict[str, Any], kind: str) -> List[Any]:
    """The records of one kind (an empty list when the batch has none)."""
    found = events.get(kind)
    return found if isinstance(found, list) else []
