"""/api/redis: the Redis server monitor (health, memory, keyspace, clients,
slowlog, command statistics, advice) for every watched Redis instance.

Thin: validate the query, pick the instance (`?instance=<name>`, default
"default"; 404 when unknown), call `dashapp.services.redis_monitor` (the same
functions the Redis page calls), jsonify. A Redis that cannot be reached is
503 `redis_unavailable`; a command the server refuses is 502 `redis_error`.
Viewers read; killing a client and resetting the slowlog need admin and are
audited.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, SECURITY, ErrorBody, error, example,
                                redis_handle, redis_unavailable, tidy_docs)
from dashapp.security import audit
from dashapp.security.auth import current_principal
from dashapp.security.roles import requires
from dashapp.services import redis_collector
from dashapp.services import redis_monitor as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_redis", __name__, url_prefix="/api/redis",
                  abp_tags=[Tag(name="redis", description="Redis server health, memory, "
                                                          "keyspace, clients, slowlog")])

ERRORS = {**INPUT_ERRORS, 404: ErrorBody, 502: ErrorBody, 503: ErrorBody}
INSTANCE = Field("default", min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
                 description="Which watched Redis: 'default' (REDIS_URL) or a name "
                             "from OPS_REDIS_INSTANCES")
MIN_MINUTES, MAX_MINUTES = 15, 43_200


# ------------------------------------------------------------------ models

class InstanceQuery(BaseModel):
    instance: str = INSTANCE


class MemoryQuery(BaseModel):
    instance: str = INSTANCE
    minutes: int = Field(60, ge=MIN_MINUTES, le=MAX_MINUTES,
                         description="History window: the last N minutes (15 to 43200 = 30 days)")


class KeysQuery(BaseModel):
    instance: str = INSTANCE
    sample: int = Field(svc.DEFAULT_SAMPLE, ge=1, le=svc.MAX_SAMPLE,
                        description="At most this many keys are read (SCAN); never a full scan")
    separator: str = Field(":", min_length=1, max_length=8,
                           description="Namespace separator in key names")
    depth: int = Field(1, ge=1, le=5, description="Separators kept in a namespace "
                                                  "(1: 'cache', 2: 'cache:products')")


class SlowlogQuery(BaseModel):
    instance: str = INSTANCE
    limit: int = Field(svc.SLOWLOG_DEFAULT, ge=1, le=svc.SLOWLOG_MAX,
                       description="Newest entries to return")


class ClientPath(BaseModel):
    client_id: int = Field(ge=1, le=2**63 - 1, description="The id CLIENT LIST shows")


class InstanceRow(BaseModel):
    name: str
    default: bool


class RedisInstancesResponse(BaseModel):
    model_config = example({'instances': [{'default': True, 'name': 'default'}]})
    instances: list[InstanceRow]


class DbRow(BaseModel):
    db: int
    keys: int
    expires: int
    avg_ttl_ms: int


class Replica(BaseModel):
    ip: str
    port: int | None
    state: str
    offset: int | None
    lag: int | None


class Replication(BaseModel):
    role: str = Field(description="master or slave (replica)")
    connected_replicas: int
    replicas: list[Replica]
    repl_offset: int | None
    master_host: str | None = None
    master_port: int | None = None
    master_link_status: str | None = None
    master_last_io_seconds_ago: int | None = None
    master_sync_in_progress: bool | None = None


class Persistence(BaseModel):
    state: str = Field(description="ok, off (no RDB nor AOF), loading or failing")
    summary: str
    rdb_save: str | None = Field(description="CONFIG GET save; null when CONFIG is refused")
    rdb_last_save_time: str | None
    rdb_changes_since_last_save: int
    rdb_bgsave_in_progress: bool
    rdb_last_bgsave_status: str | None
    aof_enabled: bool
    aof_rewrite_in_progress: bool
    aof_last_write_status: str | None
    loading: bool


class StatusResponse(BaseModel):
    model_config = example({'blocked_clients': 0,
                            'config_file': None,
                            'connected_clients': 30,
                            'evicted_keys': 0,
                            'executable': '/redis-server',
                            'expired_keys': 719,
                            'hit_rate': 0.9457,
                            'instance': 'default',
                            'keys': 214,
                            'keyspace': [{'avg_ttl_ms': 59404, 'db': 1, 'expires': 4, 'keys': 4}],
                            'keyspace_hits': 179125,
                            'keyspace_misses': 10290,
                            'maxclients': 10000,
                            'maxmemory': 0,
                            'maxmemory_policy': 'noeviction',
                            'mode': 'standalone',
                            'ops_per_sec': 532,
                            'os': 'Linux 6.18.44-fc-v657 x86_64',
                            'persistence': {'aof_enabled': False,
                                            'aof_last_write_status': 'ok',
                                            'aof_rewrite_in_progress': False,
                                            'loading': False,
                                            'rdb_bgsave_in_progress': False,
                                            'rdb_changes_since_last_save': 120408,
                                            'rdb_last_bgsave_status': 'ok',
                                            'rdb_last_save_time': '2026-11-26T22:01:25+00:00',
                                            'rdb_save': '',
                                            'state': 'off',
                                            'summary': 'none: data is lost when Redis restarts'},
                            'rejected_connections': 0,
                            'replication': {'connected_replicas': 0,
                                            'repl_offset': 0,
                                            'replicas': [],
                                            'role': 'master'},
                            'tcp_port': 6379,
                            'total_commands': 399638,
                            'uptime_human': '33 min 22 s',
                            'uptime_seconds': 2002,
                            'used_memory': 2734880,
                            'version': '7.0.15'})
    instance: str
    version: str
    mode: str
    os: str
    executable: str | None
    config_file: str | None
    tcp_port: int | None
    uptime_seconds: int
    uptime_human: str
    replication: Replication
    connected_clients: int
    blocked_clients: int
    maxclients: int | None
    rejected_connections: int
    ops_per_sec: int
    total_commands: int
    keyspace_hits: int
    keyspace_misses: int
    hit_rate: float | None = Field(description="hits / (hits + misses) since start")
    evicted_keys: int
    expired_keys: int
    used_memory: int
    maxmemory: int
    maxmemory_policy: str | None
    keys: int
    keyspace: list[DbRow]
    persistence: Persistence


class HistoryPoint(BaseModel):
    time: str
    used_memory: int | None
    used_memory_peak: int | None
    used_memory_rss: int | None
    fragmentation: float | None
    maxmemory: int | None
    keys: int | None
    clients: int | None
    ops_per_sec: float | None
    hit_rate: float | None
    cache_hit_rate: float | None
    evicted_per_s: float | None
    expired_per_s: float | None


class RedisMemoryResponse(BaseModel):
    model_config = example({'allocator': 'jemalloc-5.3.0',
                            'dataset': 1610296,
                            'dataset_perc': 86.73,
                            'fragmentation_bytes': 5935288,
                            'fragmentation_ratio': 3.17,
                            'history': [{'cache_hit_rate': None,
                                         'clients': 28,
                                         'evicted_per_s': None,
                                         'expired_per_s': None,
                                         'fragmentation': 3.19,
                                         'hit_rate': None,
                                         'keys': 182,
                                         'maxmemory': 0,
                                         'ops_per_sec': None,
                                         'time': '2026-11-26T22:34:00+00:00',
                                         'used_memory': 2740432,
                                         'used_memory_peak': 3459952,
                                         'used_memory_rss': 8798208}],
                            'history_note': None,
                            'instance': 'default',
                            'lua': 36864,
                            'maxmemory': 0,
                            'maxmemory_human': 'unlimited',
                            'maxmemory_policy': 'noeviction',
                            'minutes': 60,
                            'overhead': 1122800,
                            'peak': 3459952,
                            'peak_human': '3.3 MiB',
                            'rss': 8667136,
                            'rss_human': '8.3 MiB',
                            'startup': 876328,
                            'total_system_memory': 25276510208,
                            'used': 2733096,
                            'used_human': '2.6 MiB',
                            'used_of_max': None})
    instance: str
    used: int
    used_human: str
    peak: int
    peak_human: str
    rss: int
    rss_human: str
    fragmentation_ratio: float | None
    fragmentation_bytes: int | None
    maxmemory: int = Field(description="0: no limit")
    maxmemory_human: str
    maxmemory_policy: str | None
    used_of_max: float | None
    dataset: int | None = Field(description="used_memory_dataset: the data itself")
    overhead: int | None = Field(description="used_memory_overhead: buffers, dicts, ...")
    startup: int | None
    dataset_perc: float | None
    lua: int | None
    allocator: str | None
    total_system_memory: int | None
    minutes: int
    history: list[HistoryPoint] = Field(description="The collector's samples (every "
                                                    f"{redis_collector.SAMPLE_SECONDS} s)")
    history_note: str | None = Field(description="Why the history is empty, when it is")


class NamespaceRow(BaseModel):
    namespace: str
    sampled_keys: int
    keys: int = Field(description="Exact, or the sample share scaled by DBSIZE")
    keys_margin: int = Field(description="95 % margin of `keys` (0 when exact)")
    share: float
    sampled_memory: int | None
    memory: int | None = Field(description="Bytes (MEMORY USAGE), scaled like keys")
    avg_memory: int | None
    types: dict[str, int]
    namespaces_folded: int | None = None


class BigKey(BaseModel):
    key: str
    namespace: str
    type: str
    memory: int | None
    ttl_s: int | None
    length: int | None = Field(description="Elements, or bytes for a string")


class RedisKeysResponse(BaseModel):
    model_config = example({'biggest': [{'key': 'cache:product-lists:50a64bef69ac8f5ffda0db2684ce41b1',
                                         'length': 3152,
                                         'memory': 3688,
                                         'namespace': 'cache',
                                         'ttl_s': 26,
                                         'type': 'string'}],
                            'complete_scan': True,
                            'db': 4,
                            'dbsize': 75,
                            'depth': 1,
                            'elapsed_ms': 2.3,
                            'estimate': False,
                            'estimated_memory': 67336,
                            'instance': 'default',
                            'keyspace': [{'avg_ttl_ms': 59406, 'db': 1, 'expires': 4, 'keys': 4}],
                            'memory_available': True,
                            'memory_samples': 5,
                            'namespaces': [{'avg_memory': 876,
                                            'keys': 72,
                                            'keys_margin': 0,
                                            'memory': 63072,
                                            'namespace': 'cache',
                                            'sampled_keys': 72,
                                            'sampled_memory': 63072,
                                            'share': 0.96,
                                            'types': {'hash': 5, 'set': 1, 'string': 64, 'zset': 2}}],
                            'note': 'Exact: every key of db 4 was read (75 keys).',
                            'requested_sample': 10000,
                            'sample_size': 75,
                            'sampled_memory': 67336,
                            'scale': 1.0,
                            'scan_calls': 1,
                            'scan_count': 1000,
                            'separator': ':',
                            'stopped_early': False,
                            'types': {'hash': 6, 'list': 1, 'set': 1, 'string': 65, 'zset': 2}})
    instance: str
    keyspace: list[DbRow]
    db: int
    dbsize: int
    sample_size: int = Field(description="Keys actually read")
    requested_sample: int
    estimate: bool = Field(description="False only when every key was read")
    complete_scan: bool
    stopped_early: bool
    scale: float
    separator: str
    depth: int
    memory_available: bool
    sampled_memory: int | None
    estimated_memory: int | None
    namespaces: list[NamespaceRow]
    types: dict[str, int]
    biggest: list[BigKey]
    scan_calls: int
    scan_count: int
    memory_samples: int
    elapsed_ms: float
    note: str


class ClientRow(BaseModel):
    id: int
    name: str | None
    addr: str | None
    laddr: str | None
    age: int | None
    idle: int | None
    flags: str | None
    db: int | None
    cmd: str | None = Field(description="The last command")
    user: str | None
    sub: int | None
    psub: int | None
    multi: int | None
    qbuf: int | None
    omem: int | None
    tot_mem: int | None
    resp: int | None
    lib_name: str | None
    lib_ver: str | None
    own: bool = Field(description="The console connection that read this list")
    age_human: str
    idle_human: str


class ClientsResponse(BaseModel):
    model_config = example({'clients': [{'addr': '127.0.0.1:51390',
                                         'age': 46,
                                         'age_human': '46 s',
                                         'cmd': 'client|list',
                                         'db': 4,
                                         'flags': 'N',
                                         'id': 1111,
                                         'idle': 0,
                                         'idle_human': '0 s',
                                         'laddr': '127.0.0.1:6379',
                                         'lib_name': None,
                                         'lib_ver': None,
                                         'multi': -1,
                                         'name': 'ops-console',
                                         'omem': 0,
                                         'own': True,
                                         'psub': 0,
                                         'qbuf': 50,
                                         'resp': 3,
                                         'sub': 0,
                                         'tot_mem': 22298,
                                         'user': 'default'}],
                            'count': 30,
                            'instance': 'default',
                            'own_id': 1111})
    instance: str
    clients: list[ClientRow]
    count: int
    own_id: int | None


class KillResponse(BaseModel):
    model_config = example({'client': {'addr': '127.0.0.1:33776',
                                       'age': 1113,
                                       'cmd': 'evalsha',
                                       'db': 3,
                                       'flags': 'N',
                                       'id': 604,
                                       'idle': 1081,
                                       'laddr': '127.0.0.1:6379',
                                       'lib_name': None,
                                       'lib_ver': None,
                                       'multi': -1,
                                       'name': 'ops-console',
                                       'omem': 0,
                                       'psub': 0,
                                       'qbuf': 0,
                                       'resp': 3,
                                       'sub': 0,
                                       'tot_mem': 1800,
                                       'user': 'default'},
                            'instance': 'default',
                            'killed': 604})
    instance: str
    killed: int
    client: dict[str, Any]


class SlowEntry(BaseModel):
    id: int
    time: str | None
    duration_us: int
    duration_ms: float
    command: str
    args: list[str] = Field(description="Passwords redacted, long arguments cut")
    text: str
    client_addr: str | None
    client_name: str | None


class SlowlogResponse(BaseModel):
    model_config = example({'entries': [],
                            'instance': 'default',
                            'length': 0,
                            'max_len': 128,
                            'threshold_us': 10000})
    instance: str
    entries: list[SlowEntry]
    length: int
    threshold_us: int | None = Field(description="slowlog-log-slower-than (µs)")
    max_len: int | None


class ResetResponse(BaseModel):
    model_config = example({'entries_removed': 0, 'instance': 'default', 'reset': True})
    instance: str
    reset: bool
    entries_removed: int


class CommandRow(BaseModel):
    command: str
    calls: int
    usec: int
    usec_per_call: float
    rejected_calls: int
    failed_calls: int
    time_share: float


class CommandStatsResponse(BaseModel):
    model_config = example({'commands': [{'calls': 41005,
                                          'command': 'evalsha',
                                          'failed_calls': 2,
                                          'rejected_calls': 0,
                                          'time_share': 0.6198,
                                          'usec': 1647771,
                                          'usec_per_call': 40.18}],
                            'instance': 'default',
                            'total_calls': 399430,
                            'total_usec': 2658351})
    instance: str
    commands: list[CommandRow]
    total_calls: int
    total_usec: int


class Advice(BaseModel):
    rule: str
    level: str = Field(description="warn or error")
    title: str
    message: str = Field(description="Plain language, naming the figure")
    figure: str
    value: Any
    threshold: Any


class AdviceResponse(BaseModel):
    model_config = example({'advice': [{'figure': 'maxmemory',
                                        'level': 'warn',
                                        'message': 'maxmemory is 0 (unlimited): Redis grows until the '
                                                   'operating system runs out of memory and kills it, '
                                                   'with no eviction before that. Set maxmemory below the '
                                                   'mac...',
                                        'rule': 'maxmemory_unset',
                                        'threshold': None,
                                        'title': 'No memory limit is set',
                                        'value': 0}],
                            'figures': {'connected_clients': 30,
                                        'evicted_keys': 0,
                                        'maxclients': 10000,
                                        'maxmemory': 0,
                                        'mem_fragmentation_ratio': 3.18,
                                        'rejected_connections': 0,
                                        'slowlog_length': 0,
                                        'slowlog_threshold_us': 10000,
                                        'used_memory': 2731928},
                            'instance': 'default'})
    instance: str
    advice: list[Advice]
    figures: dict[str, Any]


# ----------------------------------------------------------------- helpers

def _ops():
    return current_app.extensions["ops"]


def _call(instance: str, func, *args, **kwargs):
    """Run a service call on the named instance's client; (result, None) or
    (None, an error response)."""
    handle, failure = redis_handle(instance)
    if failure is not None:
        return None, failure
    try:
        return func(handle.client, *args, **kwargs), None
    except svc.UNAVAILABLE as exc:
        return None, redis_unavailable(exc, instance)
    except svc.redis_lib.ResponseError as exc:
        logger.warning("Redis %s refused a command: %s", instance, exc)
        return None, error(502, "redis_error",
                           f"Redis ({instance}) refused the command: {str(exc)[:200]}")
    except svc.redis_lib.RedisError as exc:  # any other client-side failure
        return None, redis_unavailable(exc, instance)
    except ValueError as exc:
        return None, error(400, "invalid_request", str(exc))


def _audit(action: str, target: str):
    """The change's audit row, written before the change (AuditUnavailable,
    a 503, when it cannot be); call the result with the outcome afterwards."""
    me = current_principal()
    entry = audit.begin(_ops().store, actor=me.username if me else "?",
                        action=action, target=target)

    def done(outcome: str, **details) -> None:
        entry.finish(outcome, details or None)
    return done


# ------------------------------------------------------------------ routes

@bp.get("/instances", responses={200: RedisInstancesResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
def instances():
    """The watched Redis servers by name (never their URLs)."""
    return {"instances": [{"name": name, "default": name == "default"}
                          for name in _ops().redis_instances]}


@bp.get("/status", responses={200: StatusResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
def status(query: InstanceQuery):
    """Version, uptime, role and replication, clients, ops/s, hit rate,
    evictions, expired keys, persistence and keys per db."""
    data, failure = _call(query.instance, svc.status)
    return failure if failure is not None else {"instance": query.instance, **data}


@bp.get("/memory", responses={200: RedisMemoryResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
def memory(query: MemoryQuery):
    """Used, peak, RSS, fragmentation, maxmemory and policy, dataset vs
    overhead; with the collector's history over `minutes`."""
    data, failure = _call(query.instance, svc.memory)
    if failure is not None:
        return failure
    ops = _ops()
    try:
        df = redis_collector.history(ops.store, query.instance, query.minutes)
    except SQLAlchemyError as exc:
        from dashapp.store import _short_error
        return error(503, "store_unavailable",
                     "The console's store cannot be read right now: " + _short_error(exc))
    history = svc.history_records(df)
    return {"instance": query.instance, **data, "minutes": query.minutes,
            "history": history,
            "history_note": None if history else svc.history_note(ops.scheduler is not None)}


@bp.get("/keys", responses={200: RedisKeysResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
def keys(query: KeysQuery):
    """Keys per db, and keys, memory and biggest keys per namespace from a
    bounded SCAN sample (the sample size and whether figures are estimates
    are in the answer)."""
    data, failure = _call(query.instance, svc.keys_report, sample=query.sample,
                          separator=query.separator, depth=query.depth)
    return failure if failure is not None else {"instance": query.instance, **data}


@bp.get("/clients", responses={200: ClientsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
def clients(query: InstanceQuery):
    """Every connected client: name, address, age, idle time, last command."""
    data, failure = _call(query.instance, svc.clients)
    return failure if failure is not None else {"instance": query.instance, **data}


@bp.post("/clients/<client_id>/kill",
         responses={200: KillResponse, 409: ErrorBody, **ERRORS}, security=SECURITY)
@requires("admin")
def kill_client(path: ClientPath, query: InstanceQuery):
    """Disconnect one client (CLIENT KILL ID). Admin only; audited. The
    console's own connection is refused (409)."""
    target = f"redis:{query.instance}:client:{path.client_id}"
    handle, failure = redis_handle(query.instance)
    if failure is not None:
        return failure
    done = _audit("redis_client_kill", target)
    try:
        killed = svc.kill_client(handle.client, path.client_id)
    except svc.ClientNotFound as exc:
        done("failure", reason="not found")
        return error(404, "not_found", f"{exc} on Redis ({query.instance}).")
    except svc.OwnConnection:
        done("failure", reason="own connection")
        return error(409, "own_connection",
                     f"Client {path.client_id} is the console's own connection; "
                     "it is not killed.")
    except svc.UNAVAILABLE as exc:
        done("failure", reason="redis unavailable")
        return redis_unavailable(exc, query.instance)
    except svc.redis_lib.RedisError as exc:
        done("failure", reason=str(exc)[:200])
        return error(502, "redis_error",
                     f"Redis ({query.instance}) refused the command: {str(exc)[:200]}")
    done("success", addr=killed.get("addr"), name=killed.get("name"),
         last_command=killed.get("cmd"))
    return {"instance": query.instance, "killed": path.client_id, "client": killed}


@bp.get("/slowlog", responses={200: SlowlogResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
def slowlog(query: SlowlogQuery):
    """The newest slowlog entries (arguments redacted and cut), the log's
    length and the server's threshold."""
    data, failure = _call(query.instance, svc.slowlog, query.limit)
    return failure if failure is not None else {"instance": query.instance, **data}


@bp.post("/slowlog/reset", responses={200: ResetResponse, **ERRORS}, security=SECURITY)
@requires("admin")
def reset_slowlog(query: InstanceQuery):
    """Empty the slowlog (SLOWLOG RESET). Admin only; audited."""
    target = f"redis:{query.instance}:slowlog"
    _handle, failure = redis_handle(query.instance)
    if failure is not None:
        return failure
    done = _audit("redis_slowlog_reset", target)
    removed, failure = _call(query.instance, svc.reset_slowlog)
    if failure is not None:
        done("failure", reason=(failure.get_json() or {}).get("error", {}).get("code"))
        return failure
    done("success", entries_removed=removed)
    return {"instance": query.instance, "reset": True, "entries_removed": removed}


@bp.get("/commandstats", responses={200: CommandStatsResponse, **ERRORS},
        security=SECURITY)
@requires("viewer")
def commandstats(query: InstanceQuery):
    """INFO commandstats: calls, total and mean time, failures per command."""
    data, failure = _call(query.instance, svc.commandstats)
    return failure if failure is not None else {"instance": query.instance, **data}


@bp.get("/advice", responses={200: AdviceResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
def advice(query: InstanceQuery):
    """Plain-language warnings (fragmentation, evictions, no maxmemory,
    clients piling up, slow commands, ...), each naming its figure."""
    data, failure = _call(query.instance, svc.advice)
    return failure if failure is not None else {"instance": query.instance, **data}


tidy_docs(bp)
