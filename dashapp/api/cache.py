"""/api/cache: @cached namespace stats, keys, values, TTLs, clearing, warming.

Thin: validate, call dashapp.services.cache (the same functions the Cache
page calls), jsonify. Every route takes `?instance=<name>` (default
"default"; see GET /api/cache/instances). A Redis that cannot be reached
answers 503 `redis_unavailable` in the usual error shape.

Naming a key. Keys are binary-safe, so a key route takes it either as
`?key=<UTF-8 text>` or `?key_b64=<URL-safe base64 of the bytes>` on
`/api/cache/key` (works for every key, the listing gives both), or in the
path, `/api/cache/key/<key>` (URL-encoded; fine for keys with ':' and
single '/', but not for keys with '//', a leading '/', or that are not
UTF-8: use the query form for those).
"""
from __future__ import annotations

import logging
from typing import Literal

import redis as redis_lib
from flask import current_app, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, SECURITY, ErrorBody, current_actor, error,
                                example, guarded, redis_handle, redis_unavailable,
                                tidy_docs)
from dashapp.config import INSTANCE_NAME
from dashapp.security.roles import requires
from dashapp.services import cache as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_cache", __name__, url_prefix="/api/cache",
                  abp_tags=[Tag(name="cache", description="Cache namespaces, keys, clearing")])

ERRORS = {**INPUT_ERRORS, 404: ErrorBody, 502: ErrorBody, 503: ErrorBody}
CHANGE_ERRORS = {**ERRORS, 409: ErrorBody}
INSTANCE = Field("default", min_length=1, max_length=32, pattern=INSTANCE_NAME.pattern,
                 description="Which Redis: 'default' (REDIS_URL) or a name from "
                             "OPS_REDIS_INSTANCES")
COUNT = Field(100, ge=1, le=svc.MAX_PAGE, description="Elements per page (1-1000)")
MAX_SCAN_CURSOR = 2**64 - 1  # Redis refuses a larger cursor ("invalid cursor")
VALUE_CURSOR = Field("0", max_length=48, description=(
    "Where the page starts: 0 first; then the previous answer's next_cursor "
    "(a byte offset for strings, an index for lists and sorted sets, the "
    "HSCAN/SSCAN cursor for hashes and sets, the last entry id for streams)"))


# ------------------------------------------------------------------ models

class InstanceQuery(BaseModel):
    instance: str = INSTANCE


class KeysQuery(BaseModel):
    instance: str = INSTANCE
    pattern: str = Field("*", min_length=1, max_length=svc.MAX_PATTERN,
                         description="SCAN MATCH glob: * any, ? one character, [abc] a set, "
                                     "\\ escapes")
    cursor: str = Field("0", pattern=r"^\d{1,20}$",
                        description="0 to start, then the previous page's cursor")
    count: int = Field(100, ge=1, le=svc.MAX_PAGE,
                       description="About how many keys per page (1-1000)")
    type: Literal["string", "hash", "list", "set", "zset", "stream"] | None = Field(
        None, description="Only keys of this type")

    @field_validator("cursor")
    @classmethod
    def _cursor(cls, value):
        if int(value) > MAX_SCAN_CURSOR:
            raise ValueError("a SCAN cursor is at most 2**64-1")
        return value


# Longest key a URL may name: with every character percent-encoded, the
# longest valid request line stays inside gunicorn's limit_request_line
# (gunicorn.conf.py; tests/api/test_server_limits.py checks every route).
MAX_KEY_CHARS = 1024
MAX_KEY_B64 = 1368  # base64 of MAX_KEY_CHARS bytes


class KeyRefQuery(BaseModel):
    instance: str = INSTANCE
    key: str | None = Field(None, max_length=MAX_KEY_CHARS,
                            description="The key as UTF-8 text")
    key_b64: str | None = Field(None, max_length=MAX_KEY_B64,
                                description="The key's bytes, URL-safe base64 (any key). "
                                            "Give exactly one of key and key_b64")


class KeyReadQuery(KeyRefQuery):
    cursor: str = VALUE_CURSOR
    count: int = COUNT


class KeyPageQuery(BaseModel):
    instance: str = INSTANCE
    cursor: str = VALUE_CURSOR
    count: int = COUNT


class KeyPath(BaseModel):
    key: str = Field(min_length=1, max_length=MAX_KEY_CHARS,
                     description="The key, URL-encoded")


class TtlBody(BaseModel):
    model_config = example({'ttl': 600})
    ttl: int | None = Field(description="Seconds until the key expires (1 or more); "
                                        "null or -1 removes the expiry")

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value):
        if value is not None and value != -1 and not 1 <= value <= 3_153_600_000:
            raise ValueError("must be 1 to 3153600000 seconds, or null/-1 to persist")
        return value


class ClearBody(BaseModel):
    model_config = example({'pattern': 'cache:products:*', 'dry_run': True, 'confirm': None})
    pattern: str = Field(min_length=1, max_length=svc.MAX_PATTERN,
                         description="SCAN MATCH glob of the keys to delete")
    dry_run: bool = Field(True, description="true (default): only count the matching "
                                            "keys; false: delete them")
    confirm: str | None = Field(None, max_length=8,
                                description="Must be \"*\" to delete with the pattern \"*\"")


class NamespacePath(BaseModel):
    namespace: str = Field(min_length=1, max_length=64,
                           description="A @cached namespace")


class MetricsQuery(BaseModel):
    instance: str = INSTANCE
    minutes: int = Field(60, ge=1, le=43200, description="Window: the last N minutes")


class CacheInstancesResponse(BaseModel):
    model_config = example({'default': 'default', 'instances': ['default']})
    instances: list[str] = Field(description="Names only; 'default' first")
    default: str


class CacheStatsResponse(BaseModel):
    model_config = example({'instance': 'default',
                            'memory_estimate': {'estimated': True,
                                                'method': 'mean MEMORY USAGE (SAMPLES 5) of up to 5 live '
                                                          'index entries per namespace, times its entry '
                                                          'count',
                                                'sample_size': 5},
                            'namespaces': [{'errors': 0,
                                            'hit_rate': 0.5625,
                                            'hits': 9,
                                            'invalidations': 0,
                                            'keys': 13,
                                            'memory_bytes': 39957,
                                            'memory_sampled': 5,
                                            'misses': 7,
                                            'namespace': 'product-lists',
                                            'sets': 25,
                                            'warm_runs': 3,
                                            'warm_status': {'last_duration_ms': None,
                                                            'last_entries': 6,
                                                            'last_error': None,
                                                            'last_finished': '2026-11-26T22:34:30.094+00:00',
                                                            'last_request_id': None,
                                                            'last_started': '2026-11-26T22:34:30.038+00:00',
                                                            'process': 'vm:22070',
                                                            'runs': 3},
                                            'warmer': {'description': 'first listing page, overall and '
                                                                      'per category',
                                                       'every': 30,
                                                       'process': 'vm:22070',
                                                       'registered_at': '2026-11-26T22:33:57.914+00:00'}}],
                            'overall': {'errors': 0,
                                        'hit_rate': 0.3934,
                                        'hits': 24,
                                        'invalidations': 28,
                                        'keys': 63,
                                        'memory_bytes': 54117,
                                        'misses': 37,
                                        'namespaces': 2,
                                        'sets': 95,
                                        'warm_runs': 5},
                            'prefix': 'cache',
                            'redis': {'keys': 75,
                                      'keyspace_hit_rate': 0.9457,
                                      'keyspace_hits': 178979,
                                      'keyspace_misses': 10285},
                            'time': '2026-11-26T22:34:46+00:00',
                            'warm_queue': 0})
    instance: str
    prefix: str
    time: str
    namespaces: list[dict] = Field(description="Per namespace: hits, misses, errors, sets, "
                                               "invalidations, warm_runs, hit_rate, keys, "
                                               "memory_bytes (estimated), memory_sampled, "
                                               "warmer, warm_status")
    overall: dict = Field(description="The same figures over all namespaces")
    redis: dict = Field(description="Redis-wide: keyspace_hits, keyspace_misses, "
                                    "keyspace_hit_rate, keys (DBSIZE)")
    memory_estimate: dict = Field(description="How memory_bytes is estimated, sample size")
    warm_queue: int = Field(description="Warm requests waiting for a host process")


class KeyRow(BaseModel):
    key: str = Field(description="The key as text (non-UTF-8 bytes escaped as \\xNN)")
    key_b64: str = Field(description="URL-safe base64 of the exact key bytes")
    binary: bool
    type: str
    ttl: int | None = Field(description="Seconds to expiry; null: no expiry")
    memory_bytes: int | None = Field(description="MEMORY USAGE (SAMPLES 5)")


class CacheKeysResponse(BaseModel):
    model_config = example({'count': 100,
                            'cursor': '0',
                            'done': True,
                            'instance': 'default',
                            'keys': [{'binary': False,
                                      'key': 'cache:_meta:stats:product-lists',
                                      'key_b64': 'Y2FjaGU6X21ldGE6c3RhdHM6cHJvZHVjdC1saXN0cw==',
                                      'memory_bytes': 136,
                                      'ttl': None,
                                      'type': 'hash'}],
                            'pattern': '*',
                            'scan_calls': 1,
                            'type': None})
    instance: str
    keys: list[KeyRow]
    cursor: str = Field(description="Pass back for the next page; '0' when done")
    done: bool
    pattern: str
    type: str | None
    count: int
    scan_calls: int


class KeyResponse(BaseModel):
    model_config = example({'binary': False,
                            'count': 100,
                            'cursor': '0',
                            'encoding': 'raw',
                            'format': 'json',
                            'instance': 'default',
                            'key': 'cache:products:d6381450d9ab50ebe153a13f595d027f',
                            'key_b64': 'Y2FjaGU6cHJvZHVjdHM6ZDYzODE0NTBkOWFiNTBlYmUxNTNhMTNmNTk1ZDAyN2Y=',
                            'length': 167,
                            'memory_bytes': 296,
                            'next_cursor': None,
                            'offset': 0,
                            'truncated': False,
                            'ttl': 282,
                            'type': 'string',
                            'value': '{\n'
                                     '  "id": 136,\n'
                                     '  "sku": "SKU-00136",\n'
                                     '  "name": "Vintage Steel Camping Chair",\n'
                                     '  "description": "A vintage camping chair made of steel.",\n'
                                     '  "category": "outdo...'})
    instance: str
    key: str
    key_b64: str
    binary: bool
    type: str
    ttl: int | None
    memory_bytes: int | None
    encoding: str | None
    length: int | None = Field(description="Bytes (string) or elements")
    cursor: str
    next_cursor: str | None = Field(description="Next page; null on the last")
    value: str | None = Field(None, description="Strings: this page of the value")
    format: str | None = Field(None, description="Strings: json (pretty-printed), "
                                                 "text or binary (escaped)")
    items: list[dict] | None = Field(None, description="Other types: this page of "
                                                       "elements")


class CacheDeletedResponse(BaseModel):
    model_config = example({'deleted': 1,
                            'instance': 'default',
                            'key': 'cache:products:d6381450d9ab50ebe153a13f595d027f'})
    instance: str
    key: str
    deleted: int


class TtlResponse(BaseModel):
    model_config = example({'instance': 'default',
                            'key': 'cache:products:d6381450d9ab50ebe153a13f595d027f',
                            'ttl': 600})
    instance: str
    key: str
    ttl: int | None


class ClearResponse(BaseModel):
    model_config = example({'dry_run': True,
                            'instance': 'default',
                            'matched': 49,
                            'pattern': 'cache:products:*',
                            'sample': [{'binary': False,
                                        'key': 'cache:products:6b57d909512ed825f954e0dd33a2c563',
                                        'key_b64': 'Y2FjaGU6cHJvZHVjdHM6NmI1N2Q5MDk1MTJlZDgyNWY5NTRlMGRkMzNhMmM1NjM='}],
                            'seconds': 0.0})
    instance: str
    pattern: str
    dry_run: bool
    matched: int | None = Field(None, description="Dry run: keys matching now")
    sample: list[dict] | None = Field(None, description="Dry run: some of them")
    deleted: int | None = Field(None, description="Real run: keys deleted")
    seconds: float


class WarmResponse(BaseModel):
    model_config = example({'at': '2026-11-26T22:34:48+00:00',
                            'id': '019134e7aeef4f8c94797157c835f169',
                            'namespace': 'product-lists',
                            'queue_length': 1,
                            'requested_by': 'admin'})
    id: str
    namespace: str
    requested_by: str
    at: str
    queue_length: int


class InvalidateResponse(BaseModel):
    model_config = example({'deleted': 13,
                            'instance': 'default',
                            'namespace': 'product-lists',
                            'seconds': 0.004})
    instance: str
    namespace: str
    deleted: int
    seconds: float


class CacheMetricsResponse(BaseModel):
    model_config = example({'instance': 'default',
                            'minutes': 60,
                            'note': None,
                            'sample_seconds': 15,
                            'samples': 3,
                            'series': [{'cache_hit_rate': None,
                                        'hit_rate': None,
                                        'keys': 182,
                                        'ops_per_sec': None,
                                        'time': '2026-11-26T22:34:00+00:00',
                                        'used_memory': 2740432}]})
    instance: str
    minutes: int
    samples: int
    sample_seconds: int
    series: list[dict] = Field(description="time, hit_rate (keyspace), cache_hit_rate "
                                           "(@cached), ops_per_sec, used_memory, keys")
    note: str | None = None


# ----------------------------------------------------------------- helpers

def _ops():
    return current_app.extensions["ops"]


def _instance() -> str:
    return request.args.get("instance") or "default"


def _failure(exc: Exception):
    """A service error as the API's error response."""
    instance = _instance()
    if isinstance(exc, svc.ClearInterrupted):
        if svc.is_unavailable(exc):
            logger.warning("cache clear on %s interrupted: %s", instance, exc)
            return error(503, "redis_unavailable",
                         f"Redis ({instance}) became unavailable: the clear {exc}.")
        return error(502, "redis_error", f"Redis ({instance}) refused the clear: {exc}.")
    if svc.is_unavailable(exc):
        return redis_unavailable(exc, instance)
    if isinstance(exc, svc.KeyNotFound):
        return error(404, "not_found", "No such key in Redis "
                                       f"({instance}); it may have expired or been deleted.")
    if isinstance(exc, svc.NamespaceNotFound):
        return error(404, "not_found", str(exc))
    if isinstance(exc, svc.NoWarmer):
        return error(409, "no_warmer", str(exc))
    if isinstance(exc, svc.KeyChanged):
        return error(409, "key_changed", str(exc))
    if isinstance(exc, svc.PatternRefused):
        return error(400, "pattern_refused", str(exc))
    if isinstance(exc, ValueError):
        return error(400, "invalid_request", str(exc))
    if isinstance(exc, redis_lib.RedisError):
        logger.warning("cache API: Redis %s refused a command: %s", instance, exc)
        return error(502, "redis_error", f"Redis ({instance}) refused the command: "
                                         f"{str(exc)[:200]}")
    raise exc


# Redis and service errors become the API's error shape.
_guarded = guarded((redis_lib.RedisError, OSError, svc.CacheError, ValueError), _failure)


def _client(instance: str):
    """(client, None) or (None, 404 response)."""
    handle, failure = redis_handle(instance)
    return (None, failure) if failure is not None else (handle.client, None)


def _path_key(text: str) -> bytes:
    return text.encode("utf-8")


def _read(instance: str, key: bytes, cursor: str, count: int):
    client, failure = _client(instance)
    if failure is not None:
        return failure
    return {"instance": instance, **svc.key_detail(client, key, cursor, count)}


def _delete(instance: str, key: bytes):
    client, failure = _client(instance)
    if failure is not None:
        return failure
    with svc.audited(_ops().store, actor=current_actor(), action="cache_key_delete",
                     target=svc.audit_target(instance, key),
                     details={"instance": instance}) as info:
        info["deleted"] = svc.delete_key(client, key)
    return {"instance": instance, "key": svc.key_ref(key)["key"], "deleted": 1}


def _set_ttl(instance: str, key: bytes, ttl: int | None):
    client, failure = _client(instance)
    if failure is not None:
        return failure
    with svc.audited(_ops().store, actor=current_actor(), action="cache_key_ttl",
                     target=svc.audit_target(instance, key),
                     details={"instance": instance, "ttl": ttl}) as info:
        info["ttl_now"] = svc.set_ttl(client, key, ttl)
    return {"instance": instance, "key": svc.key_ref(key)["key"], "ttl": info["ttl_now"]}


# ------------------------------------------------------------------ routes

@bp.get("/instances", responses={200: CacheInstancesResponse, **INPUT_ERRORS}, security=SECURITY)
@requires("viewer")
def instances():
    """The Redis instances the Cache and Redis pages can switch between (names only)."""
    return {"instances": list(_ops().redis_instances), "default": "default"}


@bp.get("/stats", responses={200: CacheStatsResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def stats(query: InstanceQuery):
    """Per @cached namespace and overall: hits, misses, hit rate, live entries,
    estimated memory; warmers and their last run; Redis keyspace hits/misses.

    No SCAN: counts come from each namespace's index (ZCOUNT), memory is the
    mean MEMORY USAGE of a few entries times the count (see memory_estimate).
    """
    client, failure = _client(query.instance)
    if failure is not None:
        return failure
    data = svc.cache_stats(client, _ops().settings.cache_prefix)
    return {"instance": query.instance, **data}


@bp.get("/keys", responses={200: CacheKeysResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def keys(query: KeysQuery):
    """One page of keys from SCAN (never KEYS), each with type, TTL and memory.

    Pass `cursor` back until `done`. A page can hold a few more or fewer keys
    than `count`, even none with `done` false (a rare pattern): continue with
    the cursor. Over a full walk every key present throughout comes once.
    """
    client, failure = _client(query.instance)
    if failure is not None:
        return failure
    page = svc.scan_keys(client, query.pattern, int(query.cursor), query.count, query.type)
    return {"instance": query.instance, **page}


@bp.get("/key", responses={200: KeyResponse, **ERRORS, 409: ErrorBody}, security=SECURITY)
@requires("viewer")
@_guarded
def get_key(query: KeyReadQuery):
    """A key's type, TTL, memory, length and one page of its value (any type).

    Name it with `key` (UTF-8) or `key_b64`. Strings come in 64 KiB pages
    (pretty JSON when the whole value is JSON); hashes and sets by HSCAN/SSCAN,
    lists and sorted sets by index range, streams by XRANGE: never the whole
    of a big value at once.
    """
    key = svc.key_from(query.key, query.key_b64)
    return _read(query.instance, key, query.cursor, query.count)


@bp.get("/key/<path:key>", responses={200: KeyResponse, **ERRORS, 409: ErrorBody},
        security=SECURITY)
@requires("viewer")
@_guarded
def get_key_by_path(path: KeyPath, query: KeyPageQuery):
    """The same as GET /key?key=, with the key (URL-encoded) in the path."""
    return _read(query.instance, _path_key(path.key), query.cursor, query.count)


@bp.delete("/key", responses={200: CacheDeletedResponse, **CHANGE_ERRORS}, security=SECURITY)
@requires("operator")
@_guarded
def delete_key(query: KeyRefQuery):
    """Delete one key (UNLINK). Operator; audited. 404 when it does not exist."""
    return _delete(query.instance, svc.key_from(query.key, query.key_b64))


@bp.delete("/key/<path:key>", responses={200: CacheDeletedResponse, **CHANGE_ERRORS},
           security=SECURITY)
@requires("operator")
@_guarded
def delete_key_by_path(path: KeyPath, query: InstanceQuery):
    """The same as DELETE /key?key=, with the key in the path."""
    return _delete(query.instance, _path_key(path.key))


@bp.patch("/key", responses={200: TtlResponse, **CHANGE_ERRORS}, security=SECURITY)
@requires("operator")
@_guarded
def patch_key(query: KeyRefQuery, body: TtlBody):
    """Change a key's TTL: {"ttl": seconds}, or {"ttl": null} (or -1) to remove
    the expiry. Operator; audited."""
    return _set_ttl(query.instance, svc.key_from(query.key, query.key_b64), body.ttl)


@bp.patch("/key/<path:key>", responses={200: TtlResponse, **CHANGE_ERRORS},
          security=SECURITY)
@requires("operator")
@_guarded
def patch_key_by_path(path: KeyPath, query: InstanceQuery, body: TtlBody):
    """The same as PATCH /key?key=, with the key in the path."""
    return _set_ttl(query.instance, _path_key(path.key), body.ttl)


@bp.post("/clear", responses={200: ClearResponse, **ERRORS}, security=SECURITY)
@requires("admin")
@_guarded
def clear(query: InstanceQuery, body: ClearBody):
    """Delete the keys matching a pattern, or (dry_run, the default) count them.

    Rules: the pattern is a non-empty SCAN glob of at most 512 characters.
    Clearing every key takes exactly `"pattern": "*"` together with
    `"confirm": "*"` (the page sets it only after you type a confirmation);
    other globs that match everything ("**", "?*") are refused with 400
    `pattern_refused`. The real run walks SCAN (COUNT 1000) and UNLINKs in
    batches of 500, so Redis is never blocked, and returns how many keys it
    deleted. Admin; the real run is audited (also when it fails part-way).
    """
    svc.check_clear(body.pattern, body.dry_run, body.confirm)
    client, failure = _client(query.instance)
    if failure is not None:
        return failure
    if body.dry_run:
        return {"instance": query.instance, **svc.count_matching(client, body.pattern)}
    with svc.audited(_ops().store, actor=current_actor(), action="cache_clear",
                     target=f"redis:{query.instance}:{body.pattern}"[:255],
                     details={"instance": query.instance, "pattern": body.pattern}) as info:
        try:
            result = svc.clear_pattern(client, body.pattern)
        except svc.ClearInterrupted as exc:
            info["deleted"] = exc.deleted
            raise
        info["deleted"] = result["deleted"]
    return {"instance": query.instance, **result}


@bp.post("/warm/<namespace>", responses={202: WarmResponse, **CHANGE_ERRORS},
         security=SECURITY)
@requires("operator")
@_guarded
def warm(path: NamespacePath, query: InstanceQuery):
    """Ask the host process running this namespace's warmer to run it now.

    The request is queued in Redis; the warmer's last run (started, duration,
    entries, error) shows in GET /stats under warm_status. Operator; audited.
    409 `no_warmer` when no warmer is registered for the namespace.
    """
    client, failure = _client(query.instance)
    if failure is not None:
        return failure
    with svc.audited(_ops().store, actor=current_actor(), action="cache_warm",
                     target=f"redis:{query.instance}:{path.namespace}"[:255],
                     details={"instance": query.instance}) as info:
        result = svc.request_warm(client, _ops().settings.cache_prefix, path.namespace,
                                  current_actor())
        info["request_id"] = result["id"]
    return result, 202


@bp.post("/invalidate/<namespace>", responses={200: InvalidateResponse, **ERRORS},
         security=SECURITY)
@requires("operator")
@_guarded
def invalidate(path: NamespacePath, query: InstanceQuery):
    """Invalidate a whole namespace: delete its entries (SCAN + UNLINK in
    batches) and its index, and count it under `invalidations`. Operator;
    audited."""
    client, failure = _client(query.instance)
    if failure is not None:
        return failure
    with svc.audited(_ops().store, actor=current_actor(), action="cache_invalidate",
                     target=f"redis:{query.instance}:{path.namespace}"[:255],
                     details={"instance": query.instance}) as info:
        result = svc.invalidate_namespace(client, _ops().settings.cache_prefix,
                                          path.namespace)
        info["deleted"] = result["deleted"]
    return {"instance": query.instance, **result}


@bp.get("/metrics", responses={200: CacheMetricsResponse, **INPUT_ERRORS, 404: ErrorBody,
                               503: ErrorBody}, security=SECURITY)
@requires("viewer")
def metrics(query: MetricsQuery):
    """Hit rate (keyspace and @cached), ops/s, memory and key count over time.

    Sampled every 15 s by the console's scheduler into its store; with the
    scheduler off (OPS_SCHEDULER=false) there are no samples and `note` says so.
    """
    _handle, failure = redis_handle(query.instance)
    if failure is not None:
        return failure
    try:
        data = svc.metrics(_ops().store, query.instance, query.minutes)
    except SQLAlchemyError as exc:
        from dashapp.store import _short_error
        logger.warning("cache metrics: store unavailable: %s", _short_error(exc))
        return error(503, "store_unavailable",
                     "The console's store cannot be read right now: " + _short_error(exc))
    data["note"] = None if data["samples"] else svc.metrics_note(_ops().settings.scheduler)
    return data


tidy_docs(bp)
