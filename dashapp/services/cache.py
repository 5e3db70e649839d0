"""Cache management: @cached namespace stats, browsing keys, reading values,
changing TTLs, clearing by pattern, warming and invalidating namespaces.

The Cache page and /api/cache both call these functions, with the Redis
client of the chosen instance (bytes in, bytes out: keys are binary-safe).

Why it is written this way: the console must never stall the Redis it
watches. Every command it sends does bounded work: SCAN/HSCAN/SSCAN with a
COUNT, LRANGE/ZRANGE ranges, XRANGE with a COUNT, GETRANGE slices, MEMORY
USAGE with a few SAMPLES, UNLINK in batches. Per-key reads of a page are
pipelined (one round trip). Namespace stats come from the toolkit's meta keys
(see ops_agent.cache.keys), never from a SCAN.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import redis as redis_lib
from ops_agent.cache import keys as layout

from dashapp.security import audit

logger = logging.getLogger(__name__)

TYPES = ("string", "hash", "list", "set", "zset", "stream")
MAX_PATTERN = 512
MAX_PAGE = 1000              # keys or value elements per page, at most
SCAN_COUNT_MAX = 2000        # largest COUNT hint one SCAN call of a key page uses
CLEAR_SCAN_COUNT = 1000      # COUNT of the SCAN calls that count or clear keys
UNLINK_BATCH = 500           # keys per UNLINK
MEMORY_SAMPLES = 5           # MEMORY USAGE ... SAMPLES for aggregate values
STATS_SAMPLE = 5             # index members measured per namespace for memory
PAGE_BUDGET_S = 0.05         # time a key page may spend looking for matches
STRING_PAGE = 64 * 1024      # bytes of a string value per page
ELEMENT_LIMIT = 4096         # characters shown of one field, member or item
CLEAR_SAMPLE = 20            # matching keys a dry run shows
META_SCAN_LIMIT = 5000       # namespaces/warmers read, at most

# The errors that mean "Redis cannot be reached", as opposed to a refused command.
UNAVAILABLE = (redis_lib.ConnectionError, redis_lib.TimeoutError, OSError)


class CacheError(Exception):
    """Base of the errors a route turns into a 4xx answer."""


class KeyNotFound(CacheError):
    pass


class KeyChanged(CacheError):
    """The key changed type (or vanished) while it was being read."""


class NamespaceNotFound(CacheError):
    pass


class NoWarmer(CacheError):
    pass


class PatternRefused(CacheError):
    """A clear pattern that is not allowed as given (see check_clear)."""


class ClearInterrupted(CacheError):
    """Redis failed part-way through a clear; `deleted` keys are gone."""

    def __init__(self, deleted: int, cause: Exception):
        super().__init__(f"stopped after deleting {deleted} keys: "
                         f"{type(cause).__name__}: {str(cause)[:200]}")
        self.deleted = deleted
        self.cause = cause


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, ClearInterrupted):
        exc = exc.cause
    return isinstance(exc, UNAVAILABLE)


# ------------------------------------------------------------ key naming

def text_of(raw: bytes | str, limit: int | None = None) -> tuple[str, bool, bool]:
    """(text, binary, truncated) for bytes from Redis.

    Valid UTF-8 comes back as is; anything else with its bad bytes escaped
    (\\xff), so it can be shown and never be mistaken for markup or code.
    """
    if isinstance(raw, str):
        raw = raw.encode()
    truncated = limit is not None and len(raw) > limit
    if truncated:
        raw = raw[:limit]
    try:
        return raw.decode("utf-8"), False, truncated
    except UnicodeDecodeError as exc:
        # A slice may end inside a multi-byte character: that alone is not binary.
        if truncated and exc.start >= len(raw) - 3:
            try:
                return raw[:exc.start].decode("utf-8"), False, truncated
            except UnicodeDecodeError:
                pass
        return escape_bytes(raw), True, truncated


def escape_bytes(raw: bytes) -> str:
    """Bytes as ASCII: printable characters as is, the rest as \\xNN, a
    backslash doubled (like Python's bytes repr, without the quotes)."""
    return "".join("\\\\" if b == 92 else chr(b) if 32 <= b < 127 else f"\\x{b:02x}"
                   for b in raw)


def key_ref(raw: bytes) -> dict[str, Any]:
    """How a key is named in answers: `key` (its text, escaped when it is not
    UTF-8), `key_b64` (URL-safe base64 of the exact bytes) and `binary`."""
    text, binary, _ = text_of(raw)
    return {"key": text, "key_b64": base64.urlsafe_b64encode(raw).decode("ascii"),
            "binary": binary}


_B64 = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


def key_from(key: str | None = None, key_b64: str | None = None) -> bytes:
    """The raw key named by exactly one of `key` (UTF-8 text) or `key_b64`."""
    if (key is None) == (key_b64 is None):
        raise ValueError("give exactly one of key or key_b64")
    if key is not None:
        return key.encode("utf-8")
    if not _B64.match(key_b64 or "") or len(key_b64) % 4:
        raise ValueError("key_b64 must be URL-safe base64 with padding")
    try:
        return base64.urlsafe_b64decode(key_b64)
    except (binascii.Error, ValueError):
        raise ValueError("key_b64 is not valid base64") from None


def _s(value: Any) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def _int(value: Any, default: int | None = 0) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _ok(value: Any) -> Any:
    """A pipeline reply, or None where that one command failed."""
    return None if isinstance(value, Exception) else value


def _rate(hits: int, misses: int) -> float | None:
    total = hits + misses
    return round(hits / total, 4) if total else None


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------- stats

def _scan_members(client: redis_lib.Redis, key: str) -> list[bytes]:
    out = []
    for member in client.sscan_iter(key, count=500):
        out.append(member)
        if len(out) >= META_SCAN_LIMIT:
            break
    return out


def _scan_hash(client: redis_lib.Redis, key: str) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for field, value in client.hscan_iter(key, count=500):
        out[field] = value
        if len(out) >= META_SCAN_LIMIT:
            break
    return out


def _warmer(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return {"description": "(unreadable warmer entry)", "every": None,
                "process": None, "registered_at": None}
    if not isinstance(data, dict):
        data = {}
    return {"description": str(data.get("description") or ""),
            "every": _int(data.get("every"), None),
            "process": None if data.get("process") is None else str(data.get("process")),
            "registered_at": data.get("registered_at")}


def _warm_status(raw: dict[bytes, bytes]) -> dict[str, Any] | None:
    if not raw:
        return None
    s = {_s(k): _s(v) for k, v in raw.items()}
    return {"last_request_id": s.get("last_request_id") or None,
            "last_started": s.get("last_started") or None,
            "last_finished": s.get("last_finished") or None,
            "last_duration_ms": _int(s.get("last_duration_ms"), None),
            "last_entries": _int(s.get("last_entries"), None),
            "last_error": s.get("last_error") or None,
            "runs": _int(s.get("runs"), 0),
            "process": s.get("process") or None}


def _entry_key(prefix: str, namespace: str, member: bytes) -> bytes:
    """An index member is the entry's full key, or (tolerated) its digest."""
    head = f"{prefix}:{namespace}:".encode()
    return member if member.startswith(head) else head + member


def cache_stats(client: redis_lib.Redis, prefix: str, *, sample: int = STATS_SAMPLE,
                now: float | None = None) -> dict[str, Any]:
    """Hits, misses, hit rate, live entries and estimated memory of every
    @cached namespace and all of them together, plus Redis-wide keyspace
    counters. Entry counts are ZCOUNT(index, now, +inf); memory is the mean
    MEMORY USAGE of up to `sample` index members times the count (an
    estimate, said so in the answer); `sample=0` skips it (memory_bytes is
    then None for a namespace holding entries), for callers that only want
    the counters, such as a Prometheus scrape."""
    now = time.time() if now is None else now
    names = {_s(m) for m in _scan_members(client, layout.namespaces_key(prefix))}
    warmers = {_s(k): v for k, v in _scan_hash(client, layout.warmers_key(prefix)).items()}
    names = sorted(n for n in names | set(warmers) if layout.NAMESPACE_RE.match(n))

    pipe = client.pipeline(transaction=False)
    for ns in names:
        pipe.hmget(layout.stats_key(prefix, ns), *layout.STAT_FIELDS)
        pipe.zcount(layout.index_key(prefix, ns), now, "+inf")
        if sample > 0:
            pipe.zrangebyscore(layout.index_key(prefix, ns), now, "+inf", start=0, num=sample)
        else:
            pipe.exists(layout.index_key(prefix, ns))  # keeps four replies a namespace
        pipe.hgetall(layout.warm_status_key(prefix, ns))  # a handful of fixed fields
    pipe.llen(layout.warm_requests_key(prefix))
    pipe.info("stats")
    pipe.dbsize()
    replies = pipe.execute(raise_on_error=False)
    info = _ok(replies[-2]) or {}
    dbsize = _int(_ok(replies[-1]), None)
    queue = _int(_ok(replies[-3]), 0)

    rows: list[dict[str, Any]] = []
    samples: list[list[bytes]] = []
    for i, ns in enumerate(names):
        counters, count, members, status = (_ok(r) for r in replies[4 * i:4 * i + 4])
        values = dict(zip(layout.STAT_FIELDS, (_int(v) for v in (counters or []))))
        row = {"namespace": ns, **{f: values.get(f, 0) for f in layout.STAT_FIELDS}}
        row["hit_rate"] = _rate(row["hits"], row["misses"])
        row["keys"] = _int(count)
        row["warmer"] = _warmer(warmers.get(ns))
        row["warm_status"] = _warm_status(status or {})
        rows.append(row)
        samples.append([_entry_key(prefix, ns, m) for m in (members or [])]
                       if sample > 0 else [])

    pipe = client.pipeline(transaction=False)
    for keys in samples:
        for key in keys:
            pipe.memory_usage(key, samples=MEMORY_SAMPLES)
    sizes = iter(pipe.execute(raise_on_error=False) if any(samples) else [])
    for row, keys in zip(rows, samples):
        measured = [s for s in (_ok(next(sizes)) for _ in keys) if isinstance(s, int)]
        row["memory_sampled"] = len(measured)
        row["memory_bytes"] = (round(sum(measured) / len(measured) * row["keys"])
                               if measured else (0 if not row["keys"] else None))

    total = {f: sum(r[f] for r in rows) for f in layout.STAT_FIELDS}
    memory = [r["memory_bytes"] for r in rows if r["memory_bytes"] is not None]
    overall = {**total, "hit_rate": _rate(total["hits"], total["misses"]),
               "keys": sum(r["keys"] for r in rows), "memory_bytes": sum(memory),
               "namespaces": len(rows)}
    hits, misses = _int(info.get("keyspace_hits")), _int(info.get("keyspace_misses"))
    return {
        "prefix": prefix,
        "time": _now_iso(),
        "namespaces": rows,
        "overall": overall,
        "redis": {"keyspace_hits": hits, "keyspace_misses": misses,
                  "keyspace_hit_rate": _rate(hits, misses), "keys": dbsize},
        "memory_estimate": {
            "estimated": True, "sample_size": sample,
            "method": f"mean MEMORY USAGE (SAMPLES {MEMORY_SAMPLES}) of up to {sample} "
                      "live index entries per namespace, times its entry count"},
        "warm_queue": queue,
    }


# ------------------------------------------------------------------ keys

def _scan(client: redis_lib.Redis, cursor: int, pattern: str, count: int,
          type_: str | None) -> tuple[int, list[bytes], bool]:
    """One SCAN call; (next cursor, keys, type filtered by Redis)."""
    if type_:
        try:
            nxt, batch = client.scan(cursor=cursor, match=pattern, count=count, _type=type_)
            return int(nxt), batch, True
        except redis_lib.ResponseError:
            pass  # Redis < 6 has no SCAN ... TYPE: filter after TYPE instead
    nxt, batch = client.scan(cursor=cursor, match=pattern, count=count)
    return int(nxt), batch, False


def describe_keys(client: redis_lib.Redis, keys: list[bytes]) -> list[dict[str, Any]]:
    """TYPE, TTL and MEMORY USAGE of each key, pipelined; vanished keys dropped."""
    if not keys:
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.ttl(key)
        pipe.memory_usage(key, samples=MEMORY_SAMPLES)
    replies = pipe.execute(raise_on_error=False)
    rows = []
    for i, key in enumerate(keys):
        type_, ttl, memory = (_ok(r) for r in replies[3 * i:3 * i + 3])
        type_ = _s(type_) if type_ is not None else "unknown"
        if type_ == "none" or ttl == -2:
            continue  # deleted between SCAN and now
        rows.append({**key_ref(key), "type": type_,
                     "ttl": None if ttl is None or ttl < 0 else int(ttl),
                     "memory_bytes": memory if isinstance(memory, int) else None})
    return rows


def scan_keys(client: redis_lib.Redis, pattern: str = "*", cursor: int = 0,
              count: int = 100, type_: str | None = None, *,
              budget_s: float = PAGE_BUDGET_S) -> dict[str, Any]:
    """One page of keys matching `pattern` from `cursor`, with type, TTL and memory.

    SCAN is called until about `count` keys matched, the walk ended (cursor
    0) or `budget_s` passed, so a rare pattern can give a short or empty page
    with a cursor to continue from. Every key a SCAN call returned is kept
    (a call cannot be resumed half way), so a page may hold a little more
    than `count`; keys repeated within the page are dropped. Following the
    cursors until it is "0" yields every key present the whole time, each
    once (Redis may repeat a key across pages only while it resizes).
    """
    if type_ is not None and type_ not in TYPES:
        raise ValueError(f"type must be one of {', '.join(TYPES)}")
    count = max(1, min(int(count), MAX_PAGE))
    deadline = time.monotonic() + budget_s
    found: dict[bytes, None] = {}
    hint, calls, filtered = count, 0, True
    while True:
        cursor, batch, filtered = _scan(client, cursor, pattern, hint, type_)
        calls += 1
        for key in batch:
            found.setdefault(key, None)
        if cursor == 0 or len(found) >= count or time.monotonic() >= deadline:
            break
        # Scan further per call when matches are sparse (COUNT is a hint of
        # how many slots to visit, not of how many keys come back).
        remaining = count - len(found)
        hint = SCAN_COUNT_MAX if not batch else min(
            SCAN_COUNT_MAX, max(count, int(remaining * hint / len(batch)) + 1))
    rows = describe_keys(client, list(found))
    if type_ and not filtered:
        rows = [r for r in rows if r["type"] == type_]
    return {"keys": rows, "cursor": str(cursor), "done": cursor == 0,
            "pattern": pattern, "type": type_, "count": count, "scan_calls": calls}


# ----------------------------------------------------------------- values

def _cursor_int(cursor: str, what: str) -> int:
    if not re.fullmatch(r"\d{1,20}", cursor or "") or int(cursor) > 2**63 - 1:
        raise ValueError(f"cursor must be an integer from 0 to 2**63-1 ({what})")
    return int(cursor)


def _item(raw: bytes, name: str = "value") -> dict[str, Any]:
    text, binary, truncated = text_of(raw, ELEMENT_LIMIT)
    item: dict[str, Any] = {name: text}
    if binary:
        item[f"{name}_binary"] = True
    if truncated:
        item[f"{name}_truncated"] = True
        item[f"{name}_bytes"] = len(raw)
    return item


def _next_stream_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _decode_slice(raw: bytes) -> tuple[str, bool, int]:
    """(text, binary, bytes used) for a slice of a string: a character cut in
    two at the end is left for the next page instead of making it "binary"."""
    try:
        return raw.decode("utf-8"), False, len(raw)
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(raw) - 3:
            try:
                return raw[:exc.start].decode("utf-8"), False, exc.start
            except UnicodeDecodeError:
                pass
        return escape_bytes(raw), True, len(raw)


def _string_page(client, key: bytes, offset: int) -> dict[str, Any]:
    length = client.strlen(key)
    if offset == 0 and length <= STRING_PAGE:
        raw = client.get(key)
        if raw is None:
            raise KeyChanged("the key vanished while it was read")
    else:
        raw = client.getrange(key, offset, offset + STRING_PAGE - 1) if offset < length else b""
    complete = offset == 0 and len(raw) >= length
    if complete:
        text, binary, _ = text_of(raw)
        used = len(raw)
    else:
        text, binary, used = _decode_slice(raw)
    end = offset + used
    fmt = "binary" if binary else "text"
    if complete and not binary:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        else:
            if isinstance(parsed, (dict, list)):
                text, fmt = json.dumps(parsed, indent=2, ensure_ascii=False), "json"
    return {"length": length, "value": text, "format": fmt, "offset": offset,
            "next_cursor": str(end) if end < length else None,
            "truncated": not complete}


def key_detail(client: redis_lib.Redis, key: bytes, cursor: str = "0",
               count: int = 100) -> dict[str, Any]:
    """A key's type, TTL, memory, encoding, length and one page of its value.

    Strings: up to 64 KiB per page (`cursor` is the byte offset), pretty JSON
    when the whole value is JSON. Hash/set: HSCAN/SSCAN (`cursor` is Redis's);
    list/zset: LRANGE/ZRANGE by index (`cursor` is the offset); stream: XRANGE
    (`cursor` is the last entry id seen, "0" to start). `next_cursor` is null
    on the last page. Raises KeyNotFound, KeyChanged or ValueError.
    """
    count = max(1, min(int(count), MAX_PAGE))
    pipe = client.pipeline(transaction=False)
    pipe.type(key)
    pipe.ttl(key)
    pipe.memory_usage(key, samples=MEMORY_SAMPLES)
    pipe.object("encoding", key)
    type_, ttl, memory, encoding = (_ok(r) for r in pipe.execute(raise_on_error=False))
    type_ = _s(type_) if type_ is not None else "none"
    if type_ == "none":
        raise KeyNotFound("no such key")
    out: dict[str, Any] = {**key_ref(key), "type": type_,
                           "ttl": None if ttl is None or ttl < 0 else int(ttl),
                           "memory_bytes": memory if isinstance(memory, int) else None,
                           "encoding": _s(encoding) if encoding is not None else None,
                           "cursor": cursor, "count": count}
    try:
        out.update(_value_page(client, key, type_, cursor, count))
    except redis_lib.ResponseError as exc:
        if "WRONGTYPE" in str(exc):
            raise KeyChanged("the key changed type while it was read; try again") from None
        raise
    if out.get("length") == 0 and not client.exists(key):
        raise KeyNotFound("no such key")
    return out


def _value_page(client, key: bytes, type_: str, cursor: str, count: int) -> dict[str, Any]:
    if type_ == "string":
        return _string_page(client, key, _cursor_int(cursor, "a byte offset"))
    if type_ == "hash":
        nxt, fields = client.hscan(key, _cursor_int(cursor, "HSCAN"), count=count)
        items = [{**_item(f, "field"), **_item(v)} for f, v in fields.items()]
        return {"length": client.hlen(key), "items": items,
                "next_cursor": str(nxt) if int(nxt) else None}
    if type_ == "set":
        nxt, members = client.sscan(key, _cursor_int(cursor, "SSCAN"), count=count)
        items = [_item(m, "member") for m in dict.fromkeys(members)]
        return {"length": client.scard(key), "items": items,
                "next_cursor": str(nxt) if int(nxt) else None}
    if type_ == "list":
        start = _cursor_int(cursor, "an index")
        length = client.llen(key)
        values = client.lrange(key, start, start + count - 1) if start < length else []
        items = [{"index": start + i, **_item(v)} for i, v in enumerate(values)]
        end = start + len(values)
        return {"length": length, "items": items,
                "next_cursor": str(end) if end < length and values else None}
    if type_ == "zset":
        start = _cursor_int(cursor, "an index")
        length = client.zcard(key)
        pairs = client.zrange(key, start, start + count - 1, withscores=True) \
            if start < length else []
        items = [{"rank": start + i, **_item(m, "member"), "score": s}
                 for i, (m, s) in enumerate(pairs)]
        end = start + len(pairs)
        return {"length": length, "items": items,
                "next_cursor": str(end) if end < length and pairs else None}
    if type_ == "stream":
        if cursor in ("0", "-", ""):
            first = "-"
        elif re.fullmatch(r"\d{1,20}-\d{1,20}", cursor):
            first = _next_stream_id(cursor)
        else:
            raise ValueError("cursor must be a stream entry id like 1700000000000-0, or 0")
        entries = client.xrange(key, min=first, max="+", count=count)
        items = [{"id": _s(eid), "fields": [{**_item(f, "field"), **_item(v)}
                                            for f, v in fields.items()]}
                 for eid, fields in entries]
        return {"length": client.xlen(key), "items": items,
                "next_cursor": items[-1]["id"] if len(items) == count else None}
    return {"length": None, "items": [], "next_cursor": None,
            "note": f"values of type {type_!r} are not shown"}


# ---------------------------------------------------------------- changes

def delete_key(client: redis_lib.Redis, key: bytes) -> int:
    """UNLINK one key (freed in the background when big). KeyNotFound if absent."""
    if not client.unlink(key):
        raise KeyNotFound("no such key")
    return 1


def set_ttl(client: redis_lib.Redis, key: bytes, ttl: int | None) -> int | None:
    """Expire the key in `ttl` seconds, or persist it (None or -1); the new TTL."""
    if ttl is not None and ttl != -1 and ttl < 1:
        raise ValueError("ttl must be a positive number of seconds, or null/-1 to persist")
    pipe = client.pipeline(transaction=False)
    pipe.exists(key)
    if ttl is None or ttl == -1:
        pipe.persist(key)
    else:
        pipe.expire(key, int(ttl))
    pipe.ttl(key)
    exists, _changed, now_ttl = pipe.execute()
    if not exists:
        raise KeyNotFound("no such key")
    return None if now_ttl is None or now_ttl < 0 else int(now_ttl)


def matches_everything(pattern: str) -> bool:
    """A glob made only of * and ? with at least one *: (almost) every key."""
    return bool(pattern) and "*" in pattern and set(pattern) <= {"*", "?"}


def check_clear(pattern: str, dry_run: bool, confirm: str | None = None) -> None:
    """The clear rules: a non-empty pattern of at most 512 characters; clearing
    every key takes exactly "*" plus confirm="*" (a dry run needs no confirm);
    other match-everything globs ("**", "?*") are refused."""
    if not pattern:
        raise PatternRefused("pattern must not be empty")
    if len(pattern) > MAX_PATTERN:
        raise PatternRefused(f"pattern must be at most {MAX_PATTERN} characters")
    if matches_everything(pattern) and pattern != "*":
        raise PatternRefused(f"{pattern!r} matches every key: to clear everything use "
                             "exactly '*' with confirm '*'")
    if pattern == "*" and not dry_run and confirm != "*":
        raise PatternRefused("clearing every key needs \"confirm\": \"*\" "
                             "(the page asks you to type a confirmation first)")


def count_matching(client: redis_lib.Redis, pattern: str) -> dict[str, Any]:
    """A dry run: how many keys match (SCAN with COUNT, nothing changed) and
    a few of them. For "*" the count is DBSIZE."""
    started = time.monotonic()
    sample: list[bytes] = []
    if pattern == "*":
        matched = int(client.dbsize())
        _cursor, first = client.scan(0, count=CLEAR_SAMPLE)
        sample = first[:CLEAR_SAMPLE]
    else:
        matched, cursor = 0, 0
        while True:
            cursor, batch = client.scan(cursor, match=pattern, count=CLEAR_SCAN_COUNT)
            matched += len(batch)
            if len(sample) < CLEAR_SAMPLE:
                sample.extend(batch[:CLEAR_SAMPLE - len(sample)])
            if int(cursor) == 0:
                break
    return {"pattern": pattern, "dry_run": True, "matched": matched,
            "sample": [key_ref(k) for k in sample],
            "seconds": round(time.monotonic() - started, 3)}


def clear_pattern(client: redis_lib.Redis, pattern: str, *,
                  batch: int = UNLINK_BATCH) -> dict[str, Any]:
    """Delete every key matching `pattern`: SCAN (COUNT 1000) and UNLINK in
    batches, so no single command blocks Redis. Returns how many were deleted
    (UNLINK's own count). Raises ClearInterrupted when Redis fails part-way."""
    started = time.monotonic()
    deleted, cursor, pending = 0, 0, []
    try:
        while True:
            cursor, keys = client.scan(cursor, match=pattern, count=CLEAR_SCAN_COUNT)
            pending.extend(keys)
            while len(pending) >= batch:
                deleted += client.unlink(*pending[:batch])
                del pending[:batch]
            if int(cursor) == 0:
                break
        if pending:
            deleted += client.unlink(*pending)
    except redis_lib.RedisError as exc:
        raise ClearInterrupted(deleted, exc) from exc
    return {"pattern": pattern, "dry_run": False, "deleted": deleted,
            "seconds": round(time.monotonic() - started, 3)}


# ------------------------------------------------------------- namespaces

def _known_namespace(client: redis_lib.Redis, prefix: str, namespace: str) -> bool:
    pipe = client.pipeline(transaction=False)
    pipe.sismember(layout.namespaces_key(prefix), namespace)
    pipe.hexists(layout.warmers_key(prefix), namespace)
    pipe.exists(layout.index_key(prefix, namespace))
    return any(pipe.execute())


def invalidate_namespace(client: redis_lib.Redis, prefix: str,
                         namespace: str) -> dict[str, Any]:
    """Drop every entry of a namespace (SCAN MATCH + UNLINK in batches), its
    index, and count the invalidation in its stats."""
    try:
        layout.check_namespace(namespace)
    except ValueError as exc:
        raise NamespaceNotFound(str(exc)) from None
    if not _known_namespace(client, prefix, namespace):
        raise NamespaceNotFound(f"no cache namespace {namespace!r}")
    result = clear_pattern(client, layout.namespace_pattern(prefix, namespace))
    pipe = client.pipeline(transaction=False)
    pipe.unlink(layout.index_key(prefix, namespace))
    pipe.hincrby(layout.stats_key(prefix, namespace), "invalidations", 1)
    pipe.execute()
    return {"namespace": namespace, "deleted": result["deleted"],
            "seconds": result["seconds"]}


def request_warm(client: redis_lib.Redis, prefix: str, namespace: str,
                 requested_by: str) -> dict[str, Any]:
    """Queue a warm request for a host process running the namespace's warmer."""
    try:
        layout.check_namespace(namespace)
    except ValueError as exc:
        raise NamespaceNotFound(str(exc)) from None
    if not client.hexists(layout.warmers_key(prefix), namespace):
        raise NoWarmer(f"no warmer is registered for namespace {namespace!r}")
    request = {"id": uuid.uuid4().hex, "namespace": namespace,
               "requested_by": requested_by, "at": _now_iso()}
    queued = client.lpush(layout.warm_requests_key(prefix), json.dumps(request))
    return {**request, "queue_length": int(queued)}


# ---------------------------------------------------------------- metrics

def metrics(store, instance: str, minutes: int) -> dict[str, Any]:
    """Hit rates, ops/s, memory and key count over time, from the samples
    the scheduler stores every 15 s (dashapp.services.redis_collector)."""
    from dashapp.services import redis_collector
    df = redis_collector.history(store, instance, minutes)
    series = []
    for row in df.to_dict("records"):
        point = {"time": row["time"].isoformat()}
        for col in ("hit_rate", "cache_hit_rate", "ops_per_sec", "used_memory", "keys"):
            value = row.get(col)
            point[col] = None if value is None or value != value else (
                int(value) if col in ("used_memory", "keys") else round(float(value), 4))
        series.append(point)
    return {"instance": instance, "minutes": minutes, "samples": len(series),
            "sample_seconds": redis_collector.SAMPLE_SECONDS, "series": series}


def metrics_note(scheduler_on: bool) -> str:
    """Why there are no samples, in words (the API and the page say the same)."""
    from dashapp.services.redis_collector import SAMPLE_SECONDS
    if not scheduler_on:
        return ("No samples: the console's scheduler is off (OPS_SCHEDULER=false), "
                "so nothing samples Redis.")
    return (f"No samples in this window yet: the scheduler samples every "
            f"{SAMPLE_SECONDS} s; the first appear shortly after start-up.")


# ------------------------------------------------------------------ audit

# One audited() for every module: success with what the caller adds to the
# yielded dict, or failure with the error (see dashapp.security.audit).
audited = audit.audited


def audit_target(instance: str, key: bytes | str) -> str:
    text = key if isinstance(key, str) else text_of(key, 200)[0]
    return f"redis:{instance}:{text}"[:255]
