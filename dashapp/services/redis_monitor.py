"""The Redis server monitor: health, memory, keyspace, clients, slowlog,
command statistics and plain-language advice for one Redis server.

Every function takes the `redis.Redis` client of the instance to read (the
REST routes and the Redis page pass `ops.redis_named(name).client`), so the
page and `/api/redis/...` show the same figures.

Only cheap commands reach the server: INFO, DBSIZE, CLIENT LIST, SLOWLOG GET,
CONFIG GET of named, non-secret parameters, SCAN with a COUNT, and pipelined
TYPE / MEMORY USAGE ... SAMPLES n / TTL / O(1) length commands on a bounded
sample of keys. Never KEYS, DEBUG, CONFIG GET *, or a read of a whole
collection: the console must not show up in the slowlog it displays.

Errors: connection problems raise `redis.ConnectionError`/`TimeoutError`/
`OSError` (the callers answer 503); a command the server refuses raises
`redis.ResponseError` (the callers answer 502), except where a figure is
optional (MEMORY USAGE, CONFIG GET), which then reads as None.
"""
from __future__ import annotations

import heapq
import logging
import math
import re
import time
from datetime import datetime, timezone
from typing import Any, Iterable

import redis as redis_lib

from dashapp.formatting import human_bytes  # also used by dashapp.ui.redis_monitor
from dashapp.services.redis_collector import SAMPLE_SECONDS

logger = logging.getLogger(__name__)

# ------------------------------------------------------------- key sampling
DEFAULT_SAMPLE = 10_000     # keys read by key_distribution() by default
MAX_SAMPLE = 100_000        # the most a request may ask for
SCAN_COUNT = 1_000          # SCAN's COUNT hint: work per call stays ~1 ms
PIPELINE_CHUNK = 1_000      # keys per pipelined TYPE/MEMORY USAGE round trip
MEMORY_SAMPLES = 5          # MEMORY USAGE ... SAMPLES: nested values read per key
TOP_KEYS = 20               # biggest keys reported
MAX_NAMESPACES = 60         # namespaces reported; the rest are folded together
TIME_BUDGET_S = 1.5         # sampling stops early (and says so) past this
NO_PREFIX = "(no prefix)"
OTHER_NAMESPACES = "(other namespaces)"

# -------------------------------------------------------------- slowlog etc.
SLOWLOG_DEFAULT = 128
SLOWLOG_MAX = 1024
ARG_MAX_CHARS = 64          # slowlog arguments longer than this are cut
ARGS_MAX = 16               # arguments shown per slowlog command
REDACTED = "(redacted)"
_REDIS_CUT = re.compile(r"\.\.\. \((\d+) more bytes\)$")

# ------------------------------------------------------------ advice rules
FRAGMENTATION_WARN = 1.5            # mem_fragmentation_ratio above this ...
FRAGMENTATION_MIN_BYTES = 64 << 20  # ... and at least this much wasted RSS
SWAP_MIN_BYTES = 64 << 20           # ratio < 1 on a dataset at least this big
MEMORY_NEAR_LIMIT = 0.9             # used_memory / maxmemory
CLIENTS_WARN_RATIO = 0.8            # connected_clients / maxclients
IDLE_CLIENT_S = 3600                # a client idle this long ...
IDLE_CLIENTS_WARN = 50              # ... this many of them look like a leak

# Never returned by CONFIG GET here; named so a test can check it.
SECRET_CONFIG = ("requirepass", "masterauth", "masteruser", "tls-key-file-pass",
                 "tls-client-key-file-pass")
_SAFE_CONFIG = ("save", "appendonly", "appendfsync", "maxclients",
                "slowlog-log-slower-than", "slowlog-max-len", "maxmemory",
                "maxmemory-policy")

UNAVAILABLE = (redis_lib.ConnectionError, redis_lib.TimeoutError, OSError)


# ------------------------------------------------------------------ helpers

def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return "" if value is None else str(value)


def _int(value: Any, default: int | None = 0) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


def _iso(epoch: Any) -> str | None:
    seconds = _int(epoch, None)
    if not seconds or seconds < 0:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def human_duration(seconds: float | None) -> str:
    """3725 -> '1 h 2 min'; for uptime and idle times."""
    if seconds is None:
        return "—"
    s = int(seconds)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def config_values(client: redis_lib.Redis, names: Iterable[str]) -> dict[str, str | None]:
    """CONFIG GET of the named (never secret) parameters; None for each that
    the server refuses (managed services often disable CONFIG)."""
    names = [n for n in names if n in _SAFE_CONFIG]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.execute_command("CONFIG", "GET", name)
    found: dict[str, str | None] = {name: None for name in names}
    for name, reply in zip(names, pipe.execute(raise_on_error=False)):
        if isinstance(reply, UNAVAILABLE):
            raise reply
        if isinstance(reply, Exception):
            continue
        pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2])
        for key, value in pairs:
            if _text(key) == name:
                found[name] = _text(value)
    return found


def keyspace(info: dict) -> list[dict[str, Any]]:
    """INFO keyspace as rows: db, keys, expires, avg_ttl_ms."""
    rows = []
    for name, value in info.items():
        if name.startswith("db") and name[2:].isdigit() and isinstance(value, dict):
            rows.append({"db": int(name[2:]), "keys": _int(value.get("keys")),
                         "expires": _int(value.get("expires")),
                         "avg_ttl_ms": _int(value.get("avg_ttl"))})
    return sorted(rows, key=lambda r: r["db"])


def client_db(client: redis_lib.Redis) -> int:
    """The database number this client reads (db of its URL)."""
    return _int(client.connection_pool.connection_kwargs.get("db"), 0) or 0


# ------------------------------------------------------------------- status

def status(client: redis_lib.Redis) -> dict[str, Any]:
    """Version, uptime, role and replication, clients, ops/s, hit rate,
    evictions, expirations, persistence, keyspace; one INFO plus CONFIG GET
    of save/maxclients (optional)."""
    info = client.info()
    config = config_values(client, ("save", "maxclients"))
    hits, misses = _int(info.get("keyspace_hits")), _int(info.get("keyspace_misses"))
    rows = keyspace(info)
    maxclients = _int(info.get("maxclients"), None) or _int(config.get("maxclients"), None)
    return {
        "version": _text(info.get("redis_version")),
        "mode": _text(info.get("redis_mode")) or "standalone",
        "os": _text(info.get("os")),
        "executable": _text(info.get("executable")) or None,
        "config_file": _text(info.get("config_file")) or None,
        "tcp_port": _int(info.get("tcp_port"), None),
        "uptime_seconds": _int(info.get("uptime_in_seconds")),
        "uptime_human": human_duration(_int(info.get("uptime_in_seconds"))),
        "replication": replication(info),
        "connected_clients": _int(info.get("connected_clients")),
        "blocked_clients": _int(info.get("blocked_clients")),
        "maxclients": maxclients,
        "rejected_connections": _int(info.get("rejected_connections")),
        "ops_per_sec": _int(info.get("instantaneous_ops_per_sec")),
        "total_commands": _int(info.get("total_commands_processed")),
        "keyspace_hits": hits,
        "keyspace_misses": misses,
        "hit_rate": (hits / (hits + misses)) if hits + misses else None,
        "evicted_keys": _int(info.get("evicted_keys")),
        "expired_keys": _int(info.get("expired_keys")),
        "used_memory": _int(info.get("used_memory")),
        "maxmemory": _int(info.get("maxmemory")),
        "maxmemory_policy": _text(info.get("maxmemory_policy")) or None,
        "keys": sum(r["keys"] for r in rows),
        "keyspace": rows,
        "persistence": persistence(info, config.get("save")),
    }


def replication(info: dict) -> dict[str, Any]:
    """Role and the state of each link (masters list their replicas)."""
    role = _text(info.get("role")) or "master"
    result: dict[str, Any] = {"role": role,
                              "connected_replicas": _int(info.get("connected_slaves")),
                              "replicas": []}
    for name, value in info.items():
        if name.startswith("slave") and name[5:].isdigit():
            if isinstance(value, dict):
                result["replicas"].append({
                    "ip": _text(value.get("ip")), "port": _int(value.get("port"), None),
                    "state": _text(value.get("state")),
                    "offset": _int(value.get("offset"), None),
                    "lag": _int(value.get("lag"), None)})
    if role == "slave":
        result.update({
            "master_host": _text(info.get("master_host")),
            "master_port": _int(info.get("master_port"), None),
            "master_link_status": _text(info.get("master_link_status")),
            "master_last_io_seconds_ago": _int(info.get("master_last_io_seconds_ago"), None),
            "master_sync_in_progress": bool(_int(info.get("master_sync_in_progress"))),
        })
    result["repl_offset"] = _int(info.get("master_repl_offset"), None)
    return result


def persistence(info: dict, save: str | None) -> dict[str, Any]:
    """RDB/AOF state and a one-line summary a person can read."""
    aof = bool(_int(info.get("aof_enabled")))
    rdb_status = _text(info.get("rdb_last_bgsave_status")) or None
    aof_status = _text(info.get("aof_last_write_status")) or None
    rdb_on = bool(save) if save is not None else None
    if rdb_status not in (None, "ok") or (aof and aof_status not in (None, "ok")):
        state = "failing"
    elif bool(_int(info.get("loading"))):
        state = "loading"
    elif rdb_on is False and not aof:
        state = "off"
    else:
        state = "ok"
    parts = []
    if rdb_on:
        parts.append(f"RDB snapshots (save {save})")
    elif rdb_on is None:
        parts.append("RDB schedule unknown (CONFIG is not allowed)")
    if aof:
        parts.append("AOF")
    if rdb_on is False and not aof:
        parts.append("none: data is lost when Redis restarts")
    return {
        "state": state,
        "summary": " + ".join(parts),
        "rdb_save": save,
        "rdb_last_save_time": _iso(info.get("rdb_last_save_time")),
        "rdb_changes_since_last_save": _int(info.get("rdb_changes_since_last_save")),
        "rdb_bgsave_in_progress": bool(_int(info.get("rdb_bgsave_in_progress"))),
        "rdb_last_bgsave_status": rdb_status,
        "aof_enabled": aof,
        "aof_rewrite_in_progress": bool(_int(info.get("aof_rewrite_in_progress"))),
        "aof_last_write_status": aof_status,
        "loading": bool(_int(info.get("loading"))),
    }


# ------------------------------------------------------------------- memory

def memory(client: redis_lib.Redis) -> dict[str, Any]:
    """INFO memory: used, peak, RSS, fragmentation, maxmemory and policy,
    dataset vs overhead."""
    info = client.info("memory")
    used = _int(info.get("used_memory"))
    maxmemory = _int(info.get("maxmemory"))
    return {
        "used": used,
        "used_human": human_bytes(used),
        "peak": _int(info.get("used_memory_peak")),
        "peak_human": human_bytes(_int(info.get("used_memory_peak"))),
        "rss": _int(info.get("used_memory_rss")),
        "rss_human": human_bytes(_int(info.get("used_memory_rss"))),
        "fragmentation_ratio": _float(info.get("mem_fragmentation_ratio")),
        "fragmentation_bytes": _int(info.get("mem_fragmentation_bytes"), None),
        "maxmemory": maxmemory,
        "maxmemory_human": human_bytes(maxmemory) if maxmemory else "unlimited",
        "maxmemory_policy": _text(info.get("maxmemory_policy")) or None,
        "used_of_max": (used / maxmemory) if maxmemory else None,
        "dataset": _int(info.get("used_memory_dataset"), None),
        "overhead": _int(info.get("used_memory_overhead"), None),
        "startup": _int(info.get("used_memory_startup"), None),
        "dataset_perc": _float(str(info.get("used_memory_dataset_perc", "")).rstrip("%")),
        "lua": _int(info.get("used_memory_lua"), None),
        "allocator": _text(info.get("mem_allocator")) or None,
        "total_system_memory": _int(info.get("total_system_memory"), None) or None,
    }


def history_note(scheduler_running: bool) -> str:
    """Why there is no memory history yet, in words."""
    if not scheduler_running:
        return ("No samples yet: the console's scheduler is off (OPS_SCHEDULER=0), so "
                "nothing records this server's figures over time. Live figures still work.")
    return ("No samples in this window yet: the scheduler samples every "
            f"{SAMPLE_SECONDS} s; the chart fills in within a minute.")


def history_records(df) -> list[dict[str, Any]]:
    """redis_collector.history() rows as JSON-ready dicts (ISO times, no NaN)."""
    records = []
    for row in df.to_dict("records"):
        clean = {}
        for key, value in row.items():
            if key == "time":
                clean[key] = value.isoformat() if hasattr(value, "isoformat") else str(value)
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                clean[key] = None
            elif hasattr(value, "item"):
                clean[key] = value.item()
            else:
                clean[key] = value
        records.append(clean)
    return records


# --------------------------------------------------------- key distribution

def namespace_of(key: str, separator: str = ":", depth: int = 1) -> str:
    """The key's prefix up to its `depth`-th separator, never its last part:
    'cache:products:9f' -> 'cache' (depth 1) or 'cache:products' (depth 2);
    a key without the separator has no prefix."""
    parts = key.split(separator)
    if len(parts) < 2:
        return NO_PREFIX
    return separator.join(parts[:min(depth, len(parts) - 1)])


def key_distribution(client: redis_lib.Redis, *, sample: int = DEFAULT_SAMPLE,
                     separator: str = ":", depth: int = 1, scan_count: int = SCAN_COUNT,
                     top: int = TOP_KEYS, time_budget_s: float = TIME_BUDGET_S,
                     memory_samples: int = MEMORY_SAMPLES) -> dict[str, Any]:
    """Keys, memory and biggest keys per namespace, from a bounded sample.

    Reads at most `sample` keys of the client's database with SCAN (COUNT
    `scan_count`), then pipelines TYPE and MEMORY USAGE ... SAMPLES
    `memory_samples` for them, in chunks. When the scan covers every key the
    figures are exact; otherwise each namespace's share of the sample is
    scaled by DBSIZE (`estimate: True`, with a 95 % margin per namespace).
    SCAN walks the hash table in hashed order, so its first keys are an
    unbiased sample of the keyspace. Sampling stops early past
    `time_budget_s` and says so (`stopped_early`).
    """
    if not 1 <= sample <= MAX_SAMPLE:
        raise ValueError(f"sample must be between 1 and {MAX_SAMPLE:,}")
    if not separator or len(separator) > 8:
        raise ValueError("separator must be 1 to 8 characters")
    if not 1 <= depth <= 5:
        raise ValueError("depth must be between 1 and 5")
    started = time.perf_counter()
    deadline = started + time_budget_s
    dbsize = int(client.dbsize())
    keys: list[bytes] = []
    seen: set[bytes] = set()
    cursor, scan_calls, complete, stopped_early = 0, 0, False, False
    while True:
        cursor, batch = client.scan(cursor, count=scan_count)
        cursor = int(cursor)
        scan_calls += 1
        for key in batch:
            if key not in seen:   # SCAN may repeat a key while Redis rehashes
                seen.add(key)
                keys.append(key)
        if cursor == 0:
            complete = len(keys) <= sample
            break
        if len(keys) >= sample:
            break
        if time.perf_counter() > deadline:
            stopped_early = True
            break
    keys = keys[:sample]

    types: list[str] = []
    sizes: list[int | None] = []
    memory_ok = True
    for start in range(0, len(keys), PIPELINE_CHUNK):
        chunk = keys[start:start + PIPELINE_CHUNK]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.type(key)
            if memory_ok:
                pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", memory_samples)
        replies = pipe.execute(raise_on_error=False)
        step = 2 if memory_ok else 1
        for i in range(len(chunk)):
            kind = replies[i * step]
            if isinstance(kind, Exception):
                raise kind
            types.append(_text(kind))
            if memory_ok:
                size = replies[i * step + 1]
                if isinstance(size, UNAVAILABLE):
                    raise size
                if isinstance(size, Exception):
                    # MEMORY disabled or not allowed (ACL): no sizes at all.
                    logger.info("MEMORY USAGE refused: %s", size)
                    memory_ok = False
                    sizes = [None] * len(types)
                else:
                    sizes.append(_int(size, None))
            else:
                sizes.append(None)

    # Keys that expired between SCAN and TYPE read as "none": not counted.
    live = [(k, t, s) for k, t, s in zip(keys, types, sizes) if t != "none"]
    n = len(live)
    exact = complete and not stopped_early
    scale = 1.0 if exact or not n else dbsize / n
    groups: dict[str, dict[str, Any]] = {}
    type_counts: dict[str, int] = {}
    biggest: list[tuple[int, int, bytes, str]] = []
    for order, (key, kind, size) in enumerate(live):
        name = namespace_of(_text(key), separator, depth)
        group = groups.setdefault(name, {"namespace": name, "sampled_keys": 0,
                                         "sampled_memory": 0, "types": {}})
        group["sampled_keys"] += 1
        group["sampled_memory"] += size or 0
        group["types"][kind] = group["types"].get(kind, 0) + 1
        type_counts[kind] = type_counts.get(kind, 0) + 1
        if size is not None:
            item = (size, -order, key, kind)
            if len(biggest) < top:
                heapq.heappush(biggest, item)
            elif item > biggest[0]:
                heapq.heapreplace(biggest, item)

    ordered = sorted(groups.values(), key=lambda g: (-g["sampled_keys"], g["namespace"]))
    if len(ordered) > MAX_NAMESPACES:
        keep, rest = ordered[:MAX_NAMESPACES - 1], ordered[MAX_NAMESPACES - 1:]
        other = {"namespace": OTHER_NAMESPACES, "sampled_keys": 0, "sampled_memory": 0,
                 "types": {}, "namespaces_folded": len(rest)}
        for g in rest:
            other["sampled_keys"] += g["sampled_keys"]
            other["sampled_memory"] += g["sampled_memory"]
            for kind, count in g["types"].items():
                other["types"][kind] = other["types"].get(kind, 0) + count
        ordered = keep + [other]
    for g in ordered:
        share = g["sampled_keys"] / n if n else 0.0
        g["share"] = share
        g["keys"] = g["sampled_keys"] if exact else round(share * dbsize)
        # 95 % margin of the estimated count (normal approximation).
        g["keys_margin"] = 0 if exact or not n else round(
            1.96 * math.sqrt(share * (1 - share) / n) * dbsize)
        g["memory"] = round(g["sampled_memory"] * scale) if memory_ok else None
        g["avg_memory"] = round(g["sampled_memory"] / g["sampled_keys"]) \
            if memory_ok and g["sampled_keys"] else None
        if not memory_ok:
            g["sampled_memory"] = None

    top_keys = sorted(biggest, reverse=True)
    details = _key_details(client, [(k, t) for _s, _o, k, t in top_keys]) if top_keys else []
    biggest_rows = [{"key": _text(key), "namespace": namespace_of(_text(key), separator, depth),
                     "type": kind, "memory": size, **detail}
                    for (size, _o, key, kind), detail in zip(top_keys, details)]

    sampled_memory = sum(s or 0 for _k, _t, s in live) if memory_ok else None
    if exact:
        note = f"Exact: every key of db {client_db(client)} was read ({n:,} keys)."
    else:
        pct = (n / dbsize * 100) if dbsize else 0
        note = (f"Estimated: a SCAN sample of {n:,} of {dbsize:,} keys ({pct:.2g} %); "
                "each namespace's share of the sample is scaled by DBSIZE.")
        if stopped_early:
            note += f" Sampling stopped at the {time_budget_s:g} s time limit."
    return {
        "db": client_db(client),
        "dbsize": dbsize,
        "sample_size": n,
        "requested_sample": sample,
        "estimate": not exact,
        "complete_scan": complete,
        "stopped_early": stopped_early,
        "scale": scale,
        "separator": separator,
        "depth": depth,
        "memory_available": memory_ok,
        "sampled_memory": sampled_memory,
        "estimated_memory": round(sampled_memory * scale) if memory_ok else None,
        "namespaces": ordered,
        "types": dict(sorted(type_counts.items(), key=lambda kv: -kv[1])),
        "biggest": biggest_rows,
        "scan_calls": scan_calls,
        "scan_count": scan_count,
        "memory_samples": memory_samples,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
        "note": note,
    }


def keys_report(client: redis_lib.Redis, *, sample: int = DEFAULT_SAMPLE,
                separator: str = ":", depth: int = 1) -> dict[str, Any]:
    """Keys per db (INFO keyspace) plus key_distribution() of the client's db."""
    rows = keyspace(client.info("keyspace"))
    return {"keyspace": rows,
            **key_distribution(client, sample=sample, separator=separator, depth=depth)}


_LENGTH_COMMANDS = {"string": "STRLEN", "list": "LLEN", "set": "SCARD", "zset": "ZCARD",
                    "hash": "HLEN", "stream": "XLEN"}


def _key_details(client: redis_lib.Redis, keys: list[tuple[bytes, str]]) -> list[dict]:
    """TTL and length (elements of a collection, bytes of a string) of a few
    keys, with O(1) commands only."""
    pipe = client.pipeline(transaction=False)
    for key, kind in keys:
        pipe.ttl(key)
        command = _LENGTH_COMMANDS.get(kind)
        if command:
            pipe.execute_command(command, key)
        else:
            pipe.echo("")  # keeps replies aligned for modules' own types
    replies = pipe.execute(raise_on_error=False)
    out = []
    for i, (_key, kind) in enumerate(keys):
        ttl, length = replies[2 * i], replies[2 * i + 1]
        ttl = None if isinstance(ttl, Exception) else _int(ttl, None)
        length = None if isinstance(length, Exception) or kind not in _LENGTH_COMMANDS \
            else _int(length, None)
        out.append({"ttl_s": ttl if ttl is not None and ttl >= 0 else None,
                    "length": length})
    return out


# ------------------------------------------------------------------ clients

CLIENT_FIELDS = ("id", "name", "addr", "laddr", "age", "idle", "flags", "db", "cmd",
                 "user", "sub", "psub", "multi", "qbuf", "omem", "tot-mem", "resp",
                 "lib-name", "lib-ver")
_CLIENT_INTS = {"id", "age", "idle", "db", "sub", "psub", "multi", "qbuf", "omem",
                "tot-mem", "resp"}


def parse_client_line(line: str) -> dict[str, Any]:
    """One CLIENT LIST line -> a row with the allowed fields only."""
    fields: dict[str, str] = {}
    for part in line.split(" "):
        key, sep, value = part.partition("=")
        if sep:
            fields[key] = value
    row: dict[str, Any] = {}
    for key in CLIENT_FIELDS:
        value = fields.get(key)
        name = key.replace("-", "_")
        row[name] = _int(value, None) if key in _CLIENT_INTS else value
    return row


def clients(client: redis_lib.Redis) -> dict[str, Any]:
    """Every connected client (none left out): id, name, address, age, idle,
    last command, db, flags, memory; `own: True` on the console connection
    that read the list."""
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("CLIENT", "ID")
    pipe.execute_command("CLIENT", "LIST")
    own_id, raw = pipe.execute()
    rows = [parse_client_line(line) for line in _text(raw).splitlines() if line.strip()]
    own_id = _int(own_id, None)
    for row in rows:
        row["own"] = row["id"] == own_id
        row["age_human"] = human_duration(row["age"])
        row["idle_human"] = human_duration(row["idle"])
    # The console's own connection first (it cannot be killed; the rest are
    # what an operator is looking for), then by id.
    rows.sort(key=lambda r: (not r["own"], r["id"] or 0))
    return {"clients": rows, "count": len(rows), "own_id": own_id}


class ClientNotFound(LookupError):
    """No connected client has that id."""


class OwnConnection(ValueError):
    """The id is the console connection that would send the kill."""


def kill_client(client: redis_lib.Redis, client_id: int) -> dict[str, Any]:
    """CLIENT KILL ID `client_id`; returns the killed client's row.

    Raises ClientNotFound when no such client is connected, OwnConnection
    when it is the connection issuing the command (other console
    connections may be killed: the client library reconnects them).
    SKIPME yes guards the issuing connection even if ids race.
    """
    if not isinstance(client_id, int) or client_id < 1:
        raise ValueError("client id must be a positive integer")
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_command("CLIENT", "ID")
        own_id = _int(conn.read_response(), None)
        if client_id == own_id:
            raise OwnConnection(f"client {client_id} is the console's own connection")
        conn.send_command("CLIENT", "LIST")
        raw = conn.read_response()
        target = next((r for r in (parse_client_line(line)
                                   for line in _text(raw).splitlines() if line.strip())
                       if r["id"] == client_id), None)
        if target is None:
            raise ClientNotFound(f"No client with id {client_id} is connected")
        conn.send_command("CLIENT", "KILL", "ID", client_id, "SKIPME", "yes")
        killed = _int(conn.read_response(), 0)
    except UNAVAILABLE:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    if not killed:
        raise ClientNotFound(f"Client {client_id} disconnected before it could be killed")
    return target


# ------------------------------------------------------------------ slowlog

def redact_command(args: list[Any]) -> list[str]:
    """Slowlog/command arguments safe to show: passwords redacted, long
    arguments cut, at most ARGS_MAX shown."""
    words = [_text(a) for a in args]
    if not words:
        return []
    name = words[0].upper()
    out = list(words)
    secret_from: int | None = None
    if name == "AUTH":
        secret_from = 1
    elif name in ("HELLO", "MIGRATE"):
        # HELLO ... AUTH user pass; MIGRATE ... AUTH pass | AUTH2 user pass
        hidden = {"AUTH": 2 if name == "HELLO" else 1, "AUTH2": 2}
        for i, word in enumerate(words):
            for j in range(i + 1, min(i + 1 + hidden.get(word.upper(), 0), len(out))):
                out[j] = REDACTED
    elif name == "CONFIG" and len(words) > 2 and words[1].upper() == "SET":
        for i in range(2, len(words) - 1, 2):
            if words[i].lower() in SECRET_CONFIG:
                out[i + 1] = REDACTED
    elif name == "ACL" and len(words) > 1 and words[1].upper() == "SETUSER":
        out = [REDACTED if w[:1] in (">", "<", "#", "!") else w for w in out]
    if secret_from is not None:
        out = out[:secret_from] + [REDACTED] * (len(out) - secret_from)
    shown = []
    for word in out[:ARGS_MAX]:
        # Redis itself cuts arguments past 128 bytes: "<start>... (N more bytes)".
        cut = _REDIS_CUT.search(word)
        size = cut.start() + int(cut.group(1)) if cut else len(word)
        if cut or len(word) > ARG_MAX_CHARS:
            word = f"{word[:min(ARG_MAX_CHARS, cut.start() if cut else len(word))]}… " \
                   f"({size:,} bytes)"
        shown.append(word)
    if len(out) > ARGS_MAX:
        shown.append(f"… ({len(out) - ARGS_MAX} more arguments)")
    return shown


def slowlog(client: redis_lib.Redis, limit: int = SLOWLOG_DEFAULT) -> dict[str, Any]:
    """The newest `limit` slowlog entries (arguments redacted and cut), the
    log's length and the server's threshold."""
    if not 1 <= limit <= SLOWLOG_MAX:
        raise ValueError(f"limit must be between 1 and {SLOWLOG_MAX}")
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("SLOWLOG", "GET", limit)
    pipe.execute_command("SLOWLOG", "LEN")
    raw, length = pipe.execute()
    config = config_values(client, ("slowlog-log-slower-than", "slowlog-max-len"))
    entries = []
    for item in raw or []:
        if len(item) >= 4 and isinstance(item[3], (list, tuple)):
            args, rest = item[3], item[4:]
        else:  # Redis Enterprise puts a complexity figure before the arguments
            args, rest = (item[4] if len(item) > 4 else []), item[5:]
        words = redact_command(list(args))
        entries.append({
            "id": _int(item[0]),
            "time": _iso(item[1]),
            "duration_us": _int(item[2]),
            "duration_ms": _int(item[2]) / 1000,
            "command": words[0].upper() if words else "",
            "args": words,
            "text": " ".join(words),
            "client_addr": _text(rest[0]) if len(rest) > 0 else None,
            "client_name": _text(rest[1]) if len(rest) > 1 else None,
        })
    threshold = _int(config.get("slowlog-log-slower-than"), None)
    return {"entries": entries, "length": _int(length),
            "threshold_us": threshold,
            "max_len": _int(config.get("slowlog-max-len"), None)}


def reset_slowlog(client: redis_lib.Redis) -> int:
    """SLOWLOG RESET; returns how many entries there were."""
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("SLOWLOG", "LEN")
    pipe.execute_command("SLOWLOG", "RESET")
    length, _ok = pipe.execute()
    return _int(length)


# ------------------------------------------------------------ commandstats

def commandstats(client: redis_lib.Redis) -> dict[str, Any]:
    """INFO commandstats per command: calls, total and mean time, failures,
    share of all command time; busiest first."""
    info = client.info("commandstats")
    rows = []
    for name, value in info.items():
        if not name.startswith("cmdstat_") or not isinstance(value, dict):
            continue
        rows.append({
            "command": name[len("cmdstat_"):].replace("|", " "),
            "calls": _int(value.get("calls")),
            "usec": _int(value.get("usec")),
            "usec_per_call": _float(value.get("usec_per_call")) or 0.0,
            "rejected_calls": _int(value.get("rejected_calls")),
            "failed_calls": _int(value.get("failed_calls")),
        })
    total = sum(r["usec"] for r in rows)
    for row in rows:
        row["time_share"] = row["usec"] / total if total else 0.0
    rows.sort(key=lambda r: (-r["usec"], r["command"]))
    return {"commands": rows, "total_calls": sum(r["calls"] for r in rows),
            "total_usec": total}


# ------------------------------------------------------------------- advice

def _advice(rule: str, level: str, title: str, message: str, figure: str,
            value: Any, threshold: Any = None) -> dict[str, Any]:
    return {"rule": rule, "level": level, "title": title, "message": message,
            "figure": figure, "value": value, "threshold": threshold}


def evaluate(stat: dict[str, Any], mem: dict[str, Any], slow: dict[str, Any],
             client_rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The advice rules over figures already read (pure: testable with any
    figures). Each piece of advice names the figure that triggered it."""
    out: list[dict[str, Any]] = []
    ratio, frag_bytes = mem.get("fragmentation_ratio"), mem.get("fragmentation_bytes")
    rss, used = mem.get("rss") or 0, mem.get("used") or 0
    wasted = frag_bytes if frag_bytes is not None else rss - used
    if ratio is not None and ratio > FRAGMENTATION_WARN and wasted >= FRAGMENTATION_MIN_BYTES:
        out.append(_advice(
            "fragmentation", "warn", "Memory is fragmented",
            f"mem_fragmentation_ratio is {ratio:.2f}: the process holds "
            f"{human_bytes(rss)} of RAM for {human_bytes(used)} of data "
            f"({human_bytes(wasted)} wasted). Enable active defragmentation "
            "(CONFIG SET activedefrag yes, jemalloc builds) or restart the server "
            "in a quiet hour.", "mem_fragmentation_ratio", ratio, FRAGMENTATION_WARN))
    elif ratio is not None and 0 < ratio < 1 and used >= SWAP_MIN_BYTES:
        out.append(_advice(
            "swapping", "error", "Redis may be swapping",
            f"mem_fragmentation_ratio is {ratio:.2f}: RSS ({human_bytes(rss)}) is below "
            f"used memory ({human_bytes(used)}), so part of the dataset is in swap and "
            "every access to it is slow. Give the machine more RAM or lower maxmemory.",
            "mem_fragmentation_ratio", ratio, 1.0))

    evicted = stat.get("evicted_keys") or 0
    if evicted > 0:
        out.append(_advice(
            "evictions", "warn", "Keys are being evicted",
            f"evicted_keys is {evicted:,}: Redis reached maxmemory "
            f"({mem.get('maxmemory_human')}) and dropped keys under the "
            f"{mem.get('maxmemory_policy')} policy since it started "
            f"{stat.get('uptime_human')} ago. If these keys are not a cache, raise "
            "maxmemory or shorten TTLs; if they are, check the hit rate.",
            "evicted_keys", evicted, 0))

    maxmemory = mem.get("maxmemory") or 0
    if not maxmemory:
        out.append(_advice(
            "maxmemory_unset", "warn", "No memory limit is set",
            "maxmemory is 0 (unlimited): Redis grows until the operating system runs "
            "out of memory and kills it, with no eviction before that. Set maxmemory "
            "below the machine's RAM and choose a maxmemory-policy.",
            "maxmemory", 0, None))
    elif used / maxmemory >= MEMORY_NEAR_LIMIT:
        level = "error" if mem.get("maxmemory_policy") == "noeviction" else "warn"
        consequence = ("writes will be refused with OOM errors"
                       if level == "error" else "keys will be evicted")
        out.append(_advice(
            "memory_near_limit", level, "Memory is near its limit",
            f"used_memory is {human_bytes(used)}, {used / maxmemory:.0%} of maxmemory "
            f"{human_bytes(maxmemory)}; at the limit {consequence} "
            f"(policy {mem.get('maxmemory_policy')}).",
            "used_memory / maxmemory", round(used / maxmemory, 3), MEMORY_NEAR_LIMIT))

    connected, maxclients = stat.get("connected_clients") or 0, stat.get("maxclients")
    if maxclients and connected >= CLIENTS_WARN_RATIO * maxclients:
        out.append(_advice(
            "clients_near_limit", "warn", "Clients are piling up",
            f"connected_clients is {connected:,} of maxclients {maxclients:,} "
            f"({connected / maxclients:.0%}); at the limit new connections are refused. "
            "Look for connection leaks (many idle clients) or raise maxclients.",
            "connected_clients", connected, round(CLIENTS_WARN_RATIO * maxclients)))
    rejected = stat.get("rejected_connections") or 0
    if rejected:
        out.append(_advice(
            "rejected_connections", "error", "Connections were refused",
            f"rejected_connections is {rejected:,}: clients were turned away because "
            f"maxclients ({maxclients if maxclients else '?'}) was reached.",
            "rejected_connections", rejected, 0))
    if client_rows:
        idle = [r for r in client_rows if (r.get("idle") or 0) >= IDLE_CLIENT_S
                and "S" not in (r.get("flags") or "") and "M" not in (r.get("flags") or "")]
        if len(idle) >= IDLE_CLIENTS_WARN:
            out.append(_advice(
                "idle_clients", "warn", "Many idle connections",
                f"{len(idle):,} clients have been idle for over "
                f"{human_duration(IDLE_CLIENT_S)}: often a connection pool that never "
                "closes, or a leak. Set the server's timeout or fix the pool size.",
                "idle clients", len(idle), IDLE_CLIENTS_WARN))

    entries = slow.get("entries") or []
    length = slow.get("length") or 0
    if length:
        worst = max(entries, key=lambda e: e["duration_us"]) if entries else None
        threshold = slow.get("threshold_us")
        limit = f"{threshold / 1000:g} ms" if threshold is not None else "the threshold"
        detail = (f" The slowest shown took {worst['duration_ms']:,.1f} ms "
                  f"({worst['command']})." if worst else "")
        out.append(_advice(
            "slowlog", "warn", "Slow commands were logged",
            f"The slowlog holds {length:,} entr{'y' if length == 1 else 'ies'} slower than "
            f"{limit}.{detail} Commands that touch whole collections (KEYS, SMEMBERS, "
            "HGETALL, LRANGE 0 -1 on big keys) are the usual cause.",
            "slowlog length", length, 0))

    pers = stat.get("persistence") or {}
    if pers.get("state") == "failing":
        out.append(_advice(
            "persistence_failing", "error", "Persistence is failing",
            f"rdb_last_bgsave_status is {pers.get('rdb_last_bgsave_status')}, "
            f"aof_last_write_status is {pers.get('aof_last_write_status')}: recent "
            "writes are not safely on disk. Check the server's log and free disk space.",
            "rdb_last_bgsave_status", pers.get("rdb_last_bgsave_status"), "ok"))
    repl = stat.get("replication") or {}
    if repl.get("role") == "slave" and repl.get("master_link_status") not in (None, "", "up"):
        out.append(_advice(
            "replication_down", "error", "Replica lost its master",
            f"master_link_status is {repl.get('master_link_status')}: this replica is not "
            "receiving writes and serves stale data.",
            "master_link_status", repl.get("master_link_status"), "up"))
    return out


def advice(client: redis_lib.Redis) -> dict[str, Any]:
    """Read the figures and apply the rules; also returns the figures used."""
    stat = status(client)
    mem = memory(client)
    slow = slowlog(client, 10)
    client_rows = clients(client)["clients"]
    return {"advice": evaluate(stat, mem, slow, client_rows),
            "figures": {"mem_fragmentation_ratio": mem["fragmentation_ratio"],
                        "evicted_keys": stat["evicted_keys"],
                        "maxmemory": mem["maxmemory"],
                        "used_memory": mem["used"],
                        "connected_clients": stat["connected_clients"],
                        "maxclients": stat["maxclients"],
                        "rejected_connections": stat["rejected_connections"],
                        "slowlog_length": slow["length"],
                        "slowlog_threshold_us": slow["threshold_us"]}}
