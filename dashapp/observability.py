"""Integrations with the tools a team already runs: Prometheus and Sentry.

GET /metrics answers in the Prometheus text format (prometheus-client renders
it) for a scraper that sends `Authorization: Bearer <OPS_METRICS_TOKEN>` or
any user's API token. Everything is read at scrape time from the shared store
and Redis, so every worker answers the same and a restart loses nothing:

- ops_requests_total{endpoint,method,status}: requests of the monitored
  apps, counted once when their batches are ingested (never purged);
- ops_request_duration_seconds{endpoint,method}: their latency histogram;
- ops_cache_hits_total / ops_cache_misses_total{namespace}: the @cached toolkit;
- ops_jobs{status}: background jobs in the store by status;
- ops_redis_used_memory_bytes / ops_redis_up{instance}: each watched Redis.

Sentry: with SENTRY_DSN set, `init_sentry()` reports errors of the console
(and `monitor()` calls it for the host) through sentry-sdk; nothing is sent
when it is unset, and no request data, user or frame variables are attached
(send_default_pii and include_local_variables stay off); messages,
exception values and breadcrumbs pass the console's scrubber (SQL values
included), so no secret leaves with an error.
"""
from __future__ import annotations

import hmac
import logging

from flask import Flask, Response, current_app, request

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"


def init_sentry(dsn: str | None, *, component: str, environment: str | None = None) -> bool:
    """Start sentry-sdk when `dsn` is set and no client is active yet (a host
    that already uses Sentry keeps its own set-up). True when reporting."""
    if not dsn:
        return False
    import sentry_sdk
    if sentry_sdk.get_client().is_active():
        return True
    from dashapp import __version__
    # No frame's local variables (they hold SQL parameters, form fields...),
    # and every message passes the console's scrubber before it leaves.
    sentry_sdk.init(dsn=dsn, environment=environment, release=f"ops-console@{__version__}",
                    send_default_pii=False, traces_sample_rate=0.0,
                    server_name=None, include_local_variables=False,
                    before_send=scrub_event, before_breadcrumb=_scrub_breadcrumb)
    sentry_sdk.set_tag("ops.component", component)
    logger.info("Sentry error reporting on (%s)", component)
    return True


def _scrub_breadcrumb(crumb: dict, hint: dict | None = None) -> dict:
    from dashapp.core.scrub import scrub_text, scrub_value
    if isinstance(crumb.get("message"), str):
        crumb["message"] = scrub_text(crumb["message"])
    if isinstance(crumb.get("data"), dict):
        crumb["data"] = scrub_value(crumb["data"])
    return crumb


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """An event as Sentry may receive it: exception messages (a database
    error's SQL values included), log messages, breadcrumbs and extras
    scrubbed by the console's one scrubber."""
    from dashapp.core.scrub import scrub_text, scrub_value
    for exc in (event.get("exception") or {}).get("values") or ():
        if isinstance(exc.get("value"), str):
            exc["value"] = scrub_text(exc["value"])
    if isinstance(event.get("message"), str):
        event["message"] = scrub_text(event["message"])
    entry = event.get("logentry")
    if isinstance(entry, dict):
        for key in ("message", "formatted"):
            if isinstance(entry.get(key), str):
                entry[key] = scrub_text(entry[key])
        if entry.get("params"):
            entry["params"] = scrub_value(entry["params"])
    crumbs = event.get("breadcrumbs")
    for crumb in (crumbs.get("values") if isinstance(crumbs, dict) else crumbs) or ():
        if isinstance(crumb, dict):
            _scrub_breadcrumb(crumb)
    if isinstance(event.get("extra"), dict):
        event["extra"] = scrub_value(event["extra"])
    return event


class _Collector:
    """A prometheus-client collector that reads the store and Redis per scrape."""

    def __init__(self, ops):
        self.ops = ops

    def collect(self):
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                            HistogramMetricFamily)
        from sqlalchemy import func, select

        from dashapp.store.models import LATENCY_BUCKETS_MS, BackgroundJob, RequestTotal
        ops = self.ops
        up = GaugeMetricFamily("ops_store_up", "1 when the console's store answered this scrape")
        try:
            with ops.store.session() as sess:
                totals = sess.scalars(select(RequestTotal)).all()
                jobs = sess.execute(select(BackgroundJob.status, func.count())
                                    .group_by(BackgroundJob.status)).all()
            up.add_metric([], 1)
        except Exception as exc:  # noqa: BLE001 - a scrape must still answer
            logger.warning("/metrics: store unavailable: %s", type(exc).__name__)
            totals, jobs = [], []
            up.add_metric([], 0)
        yield up

        requests = CounterMetricFamily(
            "ops_requests", "Requests of the monitored apps, by endpoint, method and "
            "status class", labels=["endpoint", "method", "status"])
        hist: dict[tuple[str, str], list] = {}
        nb = len(LATENCY_BUCKETS_MS)
        for row in totals:
            requests.add_metric([row.endpoint, row.method, row.status_class], row.count)
            acc = hist.setdefault((row.endpoint, row.method), [0, 0.0] + [0] * nb)
            acc[0] += row.count
            acc[1] += row.sum_ms
            for i, bound in enumerate(LATENCY_BUCKETS_MS):
                acc[2 + i] += getattr(row, f"le_{bound}")
        yield requests

        duration = HistogramMetricFamily(
            "ops_request_duration_seconds", "Request latency of the monitored apps",
            labels=["endpoint", "method"])
        for (endpoint, method), acc in sorted(hist.items()):
            cumulative, buckets = 0, []
            for i, bound in enumerate(LATENCY_BUCKETS_MS):
                cumulative += acc[2 + i]
                buckets.append((_seconds(bound), cumulative))
            buckets.append(("+Inf", acc[0]))
            duration.add_metric([endpoint, method], buckets, sum_value=acc[1] / 1000.0)
        yield duration

        job_gauge = GaugeMetricFamily("ops_jobs", "Background jobs in the store, by status",
                                      labels=["status"])
        for status, count in jobs:
            job_gauge.add_metric([status], count)
        yield job_gauge

        yield from self._cache()
        yield from self._redis()

    def _cache(self):
        from prometheus_client.core import CounterMetricFamily

        from dashapp.services.cache import cache_stats
        hits = CounterMetricFamily("ops_cache_hits", "@cached hits per namespace",
                                   labels=["namespace"])
        misses = CounterMetricFamily("ops_cache_misses", "@cached misses per namespace",
                                     labels=["namespace"])
        try:
            # sample=0: the counters only, no MEMORY USAGE per scrape
            stats = cache_stats(self.ops.redis.client, self.ops.settings.cache_prefix,
                                sample=0)
            for ns in stats.get("namespaces", ()):
                hits.add_metric([ns["namespace"]], ns.get("hits") or 0)
                misses.add_metric([ns["namespace"]], ns.get("misses") or 0)
        except Exception as exc:  # noqa: BLE001 - Redis down: no cache figures
            logger.debug("/metrics: cache stats unavailable: %s", type(exc).__name__)
        yield hits
        yield misses

    def _redis(self):
        from prometheus_client.core import GaugeMetricFamily
        up = GaugeMetricFamily("ops_redis_up", "1 when the Redis server answered",
                               labels=["instance"])
        memory = GaugeMetricFamily("ops_redis_used_memory_bytes",
                                   "Memory the Redis server uses", labels=["instance"])
        evicted = GaugeMetricFamily("ops_redis_evicted_keys",
                                    "Keys evicted since the Redis server started",
                                    labels=["instance"])
        for name, handle in self.ops.redis_instances.items():
            try:
                info = handle.client.info("all")
            except Exception:  # noqa: BLE001 - down is a value here
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            memory.add_metric([name], info.get("used_memory", 0))
            evicted.add_metric([name], info.get("evicted_keys", 0))
        yield up
        yield memory
        yield evicted


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g}"


def _authorized(ops) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return False
    expected = ops.settings.metrics_token
    if expected and hmac.compare_digest(value.encode(), expected.encode()):
        return True
    try:
        return ops.users.user_for_token(value) is not None
    except Exception:  # noqa: BLE001 - store down: only the static token works
        return False


def init_metrics(app: Flask) -> None:
    """Register GET /metrics (its own bearer check; see the module doc)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    from dashapp.security.roles import public

    @public  # checked below: a scraper has a bearer token, never a session
    def metrics():
        ops = current_app.extensions["ops"]
        if not _authorized(ops):
            from dashapp.api.common import error
            resp = error(401, "unauthenticated",
                         "Send 'Authorization: Bearer <OPS_METRICS_TOKEN or an API token>'.")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return resp
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(ops))
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})

    app.add_url_rule(METRICS_PATH, "ops_metrics", metrics, methods=["GET"])
