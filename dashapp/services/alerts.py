"""Alert rules: thresholds on figures the console already measures,
evaluated on a schedule with a "for N minutes" condition, firing and
resolved events, and webhook delivery (issue 7).

A rule names a *kind* (see KINDS: p95 latency or error rate of an
endpoint, slow queries, cache hit rate, Redis memory or evictions, failed
jobs, backup age, model accuracy or drift), a target (endpoint, namespace,
Redis instance, job, backup target or model), a comparison and threshold,
and for how many minutes the figure must stay past it. Each kind's figure
is read through the public functions of the service that owns it.

Evaluation (`evaluate`, every OPS_ALERT_INTERVAL seconds in every console
process that runs the scheduler):

* each scheduled round is claimed in the store (ops_alert_round: the first
  worker to insert the round's slot evaluates it, the others skip it);
* per rule: ok -> pending when the figure first crosses the threshold,
  pending -> firing once it has stayed past it for `for_minutes` (one
  AlertEvent per episode), pending -> ok when it comes back, firing ->
  resolved (the event is closed) when it comes back. A figure that cannot
  be read leaves a firing alert firing and clears a pending one, except for
  kinds where "nothing there" is itself the problem (no successful backup).
* every state change is a compare-and-set on the rule's `version`, so two
  evaluations at once (two workers, "Evaluate now" during a scheduled
  round) never open two events for one episode;
* the worker that opened or closed an event POSTs it to the rule's webhook
  (JSON, short timeout, ATTEMPTS attempts with backoff, each attempt
  recorded in ops_alert_delivery). Webhook URLs are http(s) only and are
  only ever shown or logged masked (no userinfo, no query string).
"""
from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import delete, desc, func, select, update
from sqlalchemy.exc import IntegrityError

from dashapp.security import audit
from dashapp.store.models import AlertDelivery, AlertEvent, AlertRound, AlertRule, as_utc

logger = logging.getLogger(__name__)

COMPARISONS = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}
SEVERITIES = ("info", "warning", "critical")
STATES = ("ok", "pending", "firing")
EVENT_STATES = ("firing", "resolved")
MAX_FOR_MINUTES = 24 * 60
MAX_WINDOW_MINUTES = 24 * 60
MAX_NAME = 100
MAX_TARGET = 255
MAX_URL = 2000
ATTEMPTS = 3                 # webhook attempts per event
BACKOFF_S = (1.0, 3.0)       # waits between attempts
TIMEOUT_S = 5.0              # per attempt
ROUND_KEEP = timedelta(days=1)
CONSOLE_PATH = "/alerts"
ACTOR = "alerts"             # the audit actor of evaluation rounds
SLOW_QUERY_CAP = 10_000      # slow queries counted per evaluation, at most


# ------------------------------------------------------------------ errors

class AlertError(Exception):
    """A refusal the API turns into a 4xx (see dashapp.api.alerts)."""
    status = 400
    code = "invalid_request"


class InvalidRule(AlertError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class RuleNotFound(AlertError):
    status = 404
    code = "not_found"


class DuplicateName(AlertError):
    status = 409
    code = "duplicate_name"


class Conflict(AlertError):
    status = 409
    code = "conflict"


# ------------------------------------------------------------------- kinds

@dataclass(frozen=True)
class Kind:
    key: str
    label: str
    unit: str
    target_label: str          # what the target field holds, for a person
    target_required: bool
    comparison: str            # the usual comparison
    threshold: float           # a sensible default
    help: str
    missing_breaches: bool = False


KINDS: dict[str, Kind] = {k.key: k for k in (
    Kind("endpoint_p95", "Endpoint p95 latency", "ms",
         "Endpoint path (blank: the slowest endpoint)", False, ">", 800,
         "95th percentile response time over the window."),
    Kind("endpoint_error_rate", "Endpoint error rate", "%",
         "Endpoint path (blank: all requests)", False, ">", 5,
         "Share of 5xx responses over the window, in percent."),
    Kind("slow_queries", "Slow queries", "queries", "", False, ">", 10,
         "SQL statements at or above OPS_SLOW_QUERY_MS in the window."),
    Kind("cache_hit_rate", "Cache hit rate", "%",
         "Cache namespace (blank: every @cached namespace)", False, "<", 80,
         "Hits / (hits + misses) of the @cached counters, in percent."),
    Kind("redis_memory", "Redis memory", "MB",
         "Redis instance (blank: default)", False, ">", 512,
         "used_memory of the newest sample in the window."),
    Kind("redis_evictions", "Redis evictions", "/min",
         "Redis instance (blank: default)", False, ">", 0,
         "Keys evicted per minute, averaged over the window's samples."),
    Kind("failed_jobs", "Failed jobs", "runs",
         "Job id (blank: any job)", False, ">", 0,
         "Job runs that failed in the window."),
    Kind("backup_age", "Backup age", "h",
         "Backup target (blank: the oldest of all)", False, ">", 26,
         "Hours since the newest successful backup; none at all counts as too old.",
         missing_breaches=True),
    Kind("model_accuracy", "Model accuracy", "%", "Model name", True, "<", 90,
         "Live accuracy (R² for regressors) of labelled predictions in the window, "
         "in percent."),
    Kind("model_drift", "Model drift", "features", "Model name", True, ">", 0,
         "Features flagged as drifted (PSI/KS) in the window's live inputs."),
)}


@dataclass
class Reading:
    value: float | None
    message: str
    breach: bool | None = None   # forced breach (e.g. no backup at all)


# ---------------------------------------------------------------- helpers

def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat(timespec="seconds") if value else None


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:96]


def fmt_value(value: float | None, unit: str) -> str:
    """'812 ms', '4.2 %', '3 runs', '—' when unknown."""
    if value is None:
        return "—"
    if float(value).is_integer() or abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    if unit == "%":
        return f"{text}%"
    return f"{text} {unit}" if unit else text


def condition_text(kind: str, target: str, comparison: str, threshold: float,
                   for_minutes: int) -> str:
    """'Endpoint p95 latency of /checkout above 800 ms for 5 min'."""
    k = KINDS.get(kind)
    label = k.label if k else kind
    unit = k.unit if k else ""
    what = f"{label} of {target}" if target else label
    when = f" for {for_minutes} min" if for_minutes else ""
    return f"{what} {COMPARISONS.get(comparison, comparison)} {fmt_value(threshold, unit)}{when}"


# ------------------------------------------------------------- webhook URL

_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_CONTROL_TEXT = re.compile(r"[\x00-\x1f\x7f]")


def check_webhook_url(url: str) -> str:
    """The URL if it is an http(s) URL with a host; InvalidRule otherwise."""
    if len(url) > MAX_URL:
        raise InvalidRule("webhook_url", f"at most {MAX_URL} characters")
    if _CONTROL.search(url):
        raise InvalidRule("webhook_url", "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidRule("webhook_url", f"not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidRule("webhook_url", "only http:// and https:// URLs are allowed")
    if not host:
        raise InvalidRule("webhook_url", "the URL needs a host name")
    return url


def mask_url(url: str | None) -> str | None:
    """The URL without secrets: user:password and the query string become
    ***, the fragment is dropped. Safe for logs, the API and the page."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = ("***@" if parts.username or parts.password else "") + host + port
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def _scrub(text: str, url: str) -> str:
    """An error message with the webhook's URL (and its secrets) masked."""
    masked = mask_url(url) or ""
    text = text.replace(url, masked)
    try:
        parts = urlsplit(url)
        for secret in (parts.password, parts.query, parts.username):
            if secret and len(secret) >= 3:
                text = text.replace(secret, "***")
    except ValueError:
        pass
    return text


# ---------------------------------------------------------------- validation

def _text(data: dict, field: str, max_len: int, *, required: bool = False) -> str:
    value = data.get(field)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidRule(field, "must be text")
    value = value.strip()
    if required and not value:
        raise InvalidRule(field, "is required")
    if len(value) > max_len:
        raise InvalidRule(field, f"at most {max_len} characters")
    if _CONTROL_TEXT.search(value):
        raise InvalidRule(field, "must not contain control characters")
    return value


def _int(data: dict, field: str, low: int, high: int) -> int:
    value = data.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not value.is_integer()):
        raise InvalidRule(field, "must be a whole number")
    if not low <= value <= high:
        raise InvalidRule(field, f"must be between {low} and {high}")
    return int(value)


def validate(data: dict, current: AlertRule | None = None) -> dict[str, Any]:
    """A complete, checked rule from `data` (on top of `current` for an
    edit). Raises InvalidRule naming the first bad field."""
    base: dict[str, Any] = {} if current is None else {
        "name": current.name, "kind": current.kind, "target": current.target,
        "comparison": current.comparison, "threshold": current.threshold,
        "for_minutes": current.for_minutes, "window_minutes": current.window_minutes,
        "severity": current.severity, "enabled": current.enabled,
        "webhook_url": current.webhook_url}
    merged = {**base, **{k: v for k, v in data.items() if k in RULE_FIELDS}}
    kind_key = merged.get("kind")
    if kind_key not in KINDS:
        raise InvalidRule("kind", "one of " + ", ".join(KINDS))
    kind = KINDS[kind_key]
    merged.setdefault("comparison", kind.comparison)
    merged.setdefault("for_minutes", 5)
    merged.setdefault("window_minutes", 5)
    merged.setdefault("severity", "warning")
    merged.setdefault("enabled", True)
    out: dict[str, Any] = {"kind": kind_key}
    out["name"] = _text(merged, "name", MAX_NAME, required=True)
    out["target"] = _text(merged, "target", MAX_TARGET, required=kind.target_required)
    if merged["comparison"] not in COMPARISONS:
        raise InvalidRule("comparison", "one of " + ", ".join(COMPARISONS))
    out["comparison"] = merged["comparison"]
    threshold = merged.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not math.isfinite(threshold):
        raise InvalidRule("threshold", "must be a finite number")
    if abs(threshold) > 1e15:
        raise InvalidRule("threshold", "is out of range")
    out["threshold"] = float(threshold)
    out["for_minutes"] = _int(merged, "for_minutes", 0, MAX_FOR_MINUTES)
    out["window_minutes"] = _int(merged, "window_minutes", 1, MAX_WINDOW_MINUTES)
    if merged["severity"] not in SEVERITIES:
        raise InvalidRule("severity", "one of " + ", ".join(SEVERITIES))
    out["severity"] = merged["severity"]
    if not isinstance(merged["enabled"], bool):
        raise InvalidRule("enabled", "must be true or false")
    out["enabled"] = merged["enabled"]
    url = merged.get("webhook_url")
    if url is not None and not isinstance(url, str):
        raise InvalidRule("webhook_url", "must be text")
    url = (url or "").strip()
    if current is not None and current.webhook_url and url == mask_url(current.webhook_url):
        url = current.webhook_url  # the form sent back the masked URL: unchanged
    out["webhook_url"] = check_webhook_url(url) if url else None
    return out


RULE_FIELDS = ("name", "kind", "target", "comparison", "threshold", "for_minutes",
               "window_minutes", "severity", "enabled", "webhook_url")


# ------------------------------------------------------------------- reads

def rule_info(row: AlertRule) -> dict[str, Any]:
    kind = KINDS.get(row.kind)
    unit = kind.unit if kind else ""
    return {
        "id": row.id, "name": row.name, "kind": row.kind,
        "kind_label": kind.label if kind else row.kind, "target": row.target,
        "comparison": row.comparison, "threshold": row.threshold, "unit": unit,
        "for_minutes": row.for_minutes, "window_minutes": row.window_minutes,
        "severity": row.severity, "enabled": row.enabled,
        "webhook_url": mask_url(row.webhook_url), "has_webhook": bool(row.webhook_url),
        "condition": condition_text(row.kind, row.target, row.comparison, row.threshold,
                                    row.for_minutes),
        "state": row.state if row.enabled else "disabled",
        "pending_since": _iso(row.pending_since),
        "current_event_id": row.current_event_id,
        "last_value": row.last_value, "last_value_text": fmt_value(row.last_value, unit),
        "last_evaluated_at": _iso(row.last_evaluated_at), "last_message": row.last_message,
        "created_by": row.created_by, "created_at": _iso(row.created_at),
        "updated_by": row.updated_by, "updated_at": _iso(row.updated_at),
    }


def event_info(row: AlertEvent, delivery: str | None = None,
               now: datetime | None = None) -> dict[str, Any]:
    kind = KINDS.get(row.kind)
    unit = kind.unit if kind else ""
    started = as_utc(row.started_at)
    ended = as_utc(row.resolved_at) or (now or utcnow())
    return {
        "id": row.id, "rule_id": row.rule_id, "rule_name": row.rule_name, "kind": row.kind,
        "kind_label": kind.label if kind else row.kind, "target": row.target,
        "severity": row.severity, "comparison": row.comparison, "threshold": row.threshold,
        "unit": unit, "state": row.state, "value": row.value,
        "value_text": fmt_value(row.value, unit),
        "resolved_value": row.resolved_value,
        "started_at": _iso(row.started_at), "resolved_at": _iso(row.resolved_at),
        "duration_s": max(0, int((ended - started).total_seconds())),
        "message": row.message, "delivery": delivery,
    }


def delivery_info(row: AlertDelivery) -> dict[str, Any]:
    return {"id": row.id, "event_id": row.event_id, "rule_id": row.rule_id,
            "rule_name": row.rule_name, "state": row.state, "url": row.url,
            "attempt": row.attempt, "time": _iso(row.time),
            "duration_ms": None if row.duration_ms is None else round(row.duration_ms, 1),
            "status_code": row.status_code, "error": row.error, "outcome": row.outcome}


def list_rules(store) -> list[dict[str, Any]]:
    with store.session() as sess:
        rows = sess.scalars(select(AlertRule).order_by(AlertRule.name, AlertRule.id)).all()
    return [rule_info(r) for r in rows]


def _rule(sess, rule_id: int) -> AlertRule:
    row = sess.get(AlertRule, rule_id)
    if row is None:
        raise RuleNotFound(f"No alert rule #{rule_id}.")
    return row


def get_rule(store, rule_id: int) -> dict[str, Any]:
    with store.session() as sess:
        return rule_info(_rule(sess, rule_id))


def _latest_deliveries(sess, event_ids: list[int]) -> dict[int, str]:
    if not event_ids:
        return {}
    newest = (select(func.max(AlertDelivery.id)).where(AlertDelivery.event_id.in_(event_ids))
              .group_by(AlertDelivery.event_id))
    rows = sess.execute(select(AlertDelivery.event_id, AlertDelivery.outcome)
                        .where(AlertDelivery.id.in_(newest))).all()
    return {e: o for e, o in rows}


def list_events(store, *, state: str | None = None, rule_id: int | None = None,
                limit: int = 100, since: datetime | None = None) -> list[dict[str, Any]]:
    """Events newest first; `state` firing|resolved narrows the list."""
    query = select(AlertEvent)
    if state:
        query = query.where(AlertEvent.state == state)
    if rule_id is not None:
        query = query.where(AlertEvent.rule_id == rule_id)
    if since is not None:
        query = query.where((AlertEvent.resolved_at.is_(None))
                            | (AlertEvent.resolved_at >= since))
    order = (desc(AlertEvent.resolved_at), desc(AlertEvent.id)) if state == "resolved" \
        else (desc(AlertEvent.started_at), desc(AlertEvent.id))
    with store.session() as sess:
        rows = sess.scalars(query.order_by(*order).limit(limit)).all()
        outcomes = _latest_deliveries(sess, [r.id for r in rows])
    now = utcnow()
    return [event_info(r, outcomes.get(r.id), now) for r in rows]


def list_deliveries(store, *, event_id: int | None = None, rule_id: int | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
    query = select(AlertDelivery)
    if event_id is not None:
        query = query.where(AlertDelivery.event_id == event_id)
    if rule_id is not None:
        query = query.where(AlertDelivery.rule_id == rule_id)
    with store.session() as sess:
        rows = sess.scalars(query.order_by(desc(AlertDelivery.id)).limit(limit)).all()
    return [delivery_info(r) for r in rows]


def summary(store, *, resolved_hours: int = 24, limit: int = 10) -> dict[str, Any]:
    """What the overview shows: firing alerts, and those resolved lately."""
    since = utcnow() - timedelta(hours=resolved_hours)
    firing = list_events(store, state="firing", limit=limit)
    with store.session() as sess:
        firing_count = sess.scalar(select(func.count()).select_from(AlertEvent)
                                   .where(AlertEvent.state == "firing")) or 0
        rules = sess.scalar(select(func.count()).select_from(AlertRule)) or 0
    resolved = list_events(store, state="resolved", since=since, limit=limit)
    return {"firing_count": int(firing_count), "firing": firing, "resolved": resolved,
            "resolved_hours": resolved_hours, "rules": int(rules)}


# ----------------------------------------------------------------- changes

def _audited(store, actor: str, action: str, target: str, details: dict | None = None):
    return audit.audited(store, actor=actor, action=action, target=target[:255],
                         details=details)


def _audit_details(clean: dict[str, Any]) -> dict[str, Any]:
    """A rule's fields for the audit trail, the webhook masked."""
    return {**{k: v for k, v in clean.items() if k != "webhook_url"},
            "webhook": mask_url(clean.get("webhook_url"))}


def create_rule(store, data: dict, *, actor: str) -> dict[str, Any]:
    """A new rule (state ok). InvalidRule / DuplicateName refuse it."""
    with _audited(store, actor, "alert_rule_create",
                  f"alert_rule:{str(data.get('name'))[:100]}") as info:
        clean = validate(data)
        info.update(_audit_details(clean))
        now = utcnow()
        try:
            with store.session() as sess:
                row = AlertRule(**clean, created_by=actor, created_at=now, updated_by=actor,
                                updated_at=now, state="ok", version=0)
                sess.add(row)
                sess.flush()
                result = rule_info(row)
        except IntegrityError:
            raise DuplicateName(f"An alert rule called {clean['name']!r} already exists.") \
                from None
        info["rule_id"] = result["id"]
    return result


def update_rule(store, rule_id: int, changes: dict, *, actor: str) -> dict[str, Any]:
    """Change some fields. A change of what is measured (kind, target,
    comparison, threshold, minutes) restarts a pending rule; disabling a
    rule closes its open alert."""
    with _audited(store, actor, "alert_rule_update", f"alert_rule:{rule_id}") as info:
        with store.session() as sess:
            row = _rule(sess, rule_id)
        clean = validate(changes, row)
        info.update({k: v for k, v in _audit_details(clean).items()
                     if k in changes or (k == "webhook" and "webhook_url" in changes)})
        measured = ("kind", "target", "comparison", "threshold", "for_minutes",
                    "window_minutes")
        values: dict[str, Any] = {**clean, "updated_by": actor, "updated_at": utcnow(),
                                  "version": row.version + 1}
        if any(clean[k] != getattr(row, k) for k in measured) and row.state == "pending":
            values.update(state="ok", pending_since=None)
        try:
            with store.session() as sess:
                done = sess.execute(update(AlertRule).where(
                    AlertRule.id == rule_id, AlertRule.version == row.version)
                    .values(**values)).rowcount
        except IntegrityError:
            raise DuplicateName(f"An alert rule called {clean['name']!r} already exists.") \
                from None
        if done != 1:
            raise Conflict("The rule changed while you edited it (an evaluation or another "
                           "user); reload and try again.")
        if not clean["enabled"] and row.state == "firing":
            _close_open_event(store, rule_id, "Resolved: the rule was disabled.")
        return get_rule(store, rule_id)


def _close_open_event(store, rule_id: int, message: str) -> None:
    """Resolve the rule's open event without a webhook (disable/delete)."""
    now = utcnow()
    with store.session() as sess:
        sess.execute(update(AlertEvent).where(
            AlertEvent.rule_id == rule_id, AlertEvent.state == "firing")
            .values(state="resolved", resolved_at=now, message=message[:500]))
        sess.execute(update(AlertRule).where(AlertRule.id == rule_id).values(
            state="ok", pending_since=None, current_event_id=None,
            version=AlertRule.version + 1))


def delete_rule(store, rule_id: int, *, actor: str) -> dict[str, Any]:
    """Delete a rule; its events stay in the history (resolved)."""
    with _audited(store, actor, "alert_rule_delete", f"alert_rule:{rule_id}") as info:
        with store.session() as sess:
            row = _rule(sess, rule_id)
            info["name"] = row.name
        _close_open_event(store, rule_id, f"Resolved: the rule {row.name!r} was deleted.")
        with store.session() as sess:
            sess.execute(delete(AlertRule).where(AlertRule.id == rule_id))
    return {"deleted": rule_id, "name": row.name}


# ----------------------------------------------------------------- readers

def _endpoint_rows(ops, rule: AlertRule, now: datetime):
    from dashapp.services import api_metrics
    df = api_metrics.endpoint_summary(ops.store, rule.window_minutes, now=now)
    if rule.target and len(df):
        df = df[df["endpoint"] == rule.target]
    return df[df["count"] > 0] if len(df) else df


def _read_p95(ops, rule, now) -> Reading:
    df = _endpoint_rows(ops, rule, now).dropna(subset=["p95_ms"])
    where = rule.target or "any endpoint"
    if not len(df):
        return Reading(None, f"No requests to {where} in the last {rule.window_minutes} min.")
    worst = df.sort_values("p95_ms", ascending=False).iloc[0]
    return Reading(round(float(worst["p95_ms"]), 1),
                   f"p95 of {worst['method']} {worst['endpoint']}: "
                   f"{float(worst['p95_ms']):.0f} ms over {int(worst['count'])} requests "
                   f"in the last {rule.window_minutes} min.")


def _read_error_rate(ops, rule, now) -> Reading:
    df = _endpoint_rows(ops, rule, now)
    where = rule.target or "all endpoints"
    count = int(df["count"].sum()) if len(df) else 0
    if not count:
        return Reading(None, f"No requests to {where} in the last {rule.window_minutes} min.")
    errors = int(df["errors"].sum())
    rate = 100.0 * errors / count
    return Reading(round(rate, 3), f"{errors} of {count} requests to {where} failed (5xx) "
                                   f"in the last {rule.window_minutes} min.")


def _read_slow_queries(ops, rule, now) -> Reading:
    from dashapp.services import queries
    limit_ms = ops.settings.slow_query_ms
    found = queries.slow(ops.store, limit_ms, minutes=rule.window_minutes, limit=SLOW_QUERY_CAP)
    return Reading(float(len(found)), f"{len(found)} statements took {limit_ms:g} ms or more "
                                      f"in the last {rule.window_minutes} min.")


def _read_hit_rate(ops, rule, now) -> Reading:
    from dashapp.services import cache
    stats = cache.cache_stats(ops.redis.client, ops.settings.cache_prefix)
    if rule.target:
        row = next((r for r in stats["namespaces"] if r["namespace"] == rule.target), None)
        if row is None:
            return Reading(None, f"No @cached namespace called {rule.target!r}.")
    else:
        row = stats["overall"]
    rate = row.get("hit_rate")
    where = f"namespace {rule.target}" if rule.target else "all @cached namespaces"
    if rate is None:
        return Reading(None, f"No cache hits or misses counted yet for {where}.")
    return Reading(round(100.0 * rate, 3), f"{row['hits']} hits and {row['misses']} misses "
                                           f"counted for {where}.")


def _redis_history(ops, rule, now):
    from dashapp.services import redis_collector
    name = rule.target or "default"
    try:
        ops.redis_named(name)
    except KeyError:
        return name, None
    return name, redis_collector.history(ops.store, name, rule.window_minutes, now=now)


def _read_redis_memory(ops, rule, now) -> Reading:
    name, df = _redis_history(ops, rule, now)
    if df is None:
        return Reading(None, f"No watched Redis instance called {name!r}.")
    if not len(df):
        return Reading(None, f"No samples of Redis {name} in the last "
                             f"{rule.window_minutes} min (the scheduler takes them).")
    used = float(df["used_memory"].iloc[-1])
    return Reading(round(used / 1048576, 2), f"Redis {name} uses {used / 1048576:.1f} MB.")


def _read_evictions(ops, rule, now) -> Reading:
    name, df = _redis_history(ops, rule, now)
    if df is None:
        return Reading(None, f"No watched Redis instance called {name!r}.")
    rates = df["evicted_per_s"].dropna() if len(df) else []
    if not len(rates):
        return Reading(None, f"Fewer than two samples of Redis {name} in the last "
                             f"{rule.window_minutes} min.")
    per_min = float(rates.mean()) * 60
    return Reading(round(per_min, 3), f"Redis {name} evicted {per_min:.1f} keys per minute "
                                      f"on average in the last {rule.window_minutes} min.")


def _read_failed_jobs(ops, rule, now) -> Reading:
    from dashapp.services import jobs
    points = jobs.timeline(ops.store, rule.window_minutes, rule.target or None)
    failed = sum(1 for p in points if p["status"] == "failed")
    where = f"job {rule.target}" if rule.target else "all jobs"
    return Reading(float(failed), f"{failed} failed runs of {where} in the last "
                                  f"{rule.window_minutes} min.")


def _read_backup_age(ops, rule, now) -> Reading:
    from dashapp.services import backups
    found = backups.target_overview(ops.store, ops.settings, now)
    if rule.target:
        found = [t for t in found if t["name"] == rule.target]
        if not found:
            return Reading(None, f"No backup target called {rule.target!r}.")
    if not found:
        return Reading(None, "No backup targets are configured.")
    never = [t["name"] for t in found if t["newest_good_age_s"] is None]
    if never:
        return Reading(None, f"No successful backup of {', '.join(never)} yet.", breach=True)
    oldest = max(found, key=lambda t: t["newest_good_age_s"])
    hours = oldest["newest_good_age_s"] / 3600
    return Reading(round(hours, 2), f"The newest good backup of {oldest['name']} is "
                                    f"{hours:.1f} h old.")


def _read_accuracy(ops, rule, now) -> Reading:
    from dashapp.services import ml_metrics
    try:
        found = ml_metrics.model_metrics(ops.store, rule.target, source="live",
                                         minutes=rule.window_minutes)
    except ml_metrics.NotFound as exc:
        return Reading(None, str(exc))
    head = ml_metrics.headline(found["task"], found.get("metrics"))
    if not head or head["value"] is None:
        return Reading(None, found.get("message") or "No live metrics in this window.")
    return Reading(round(100.0 * float(head["value"]), 3),
                   f"Live {head['name']} of {rule.target} {found['version']}: "
                   f"{100 * float(head['value']):.1f}% in the last {rule.window_minutes} min.")


def _read_drift(ops, rule, now) -> Reading:
    from dashapp.services import ml_metrics
    try:
        found = ml_metrics.drift(ops.store, rule.target, minutes=rule.window_minutes)
    except ml_metrics.NotFound as exc:
        return Reading(None, str(exc))
    if not found["features"]:
        return Reading(None, found.get("message") or "No drift figures.")
    drifted = [f["feature"] for f in found["features"] if f["drifted"]]
    text = (f"{len(drifted)} of {len(found['features'])} features of {rule.target} drifted"
            + (f" ({', '.join(drifted[:5])})" if drifted else "")
            + f"; {found['n_live']} live inputs.")
    return Reading(float(len(drifted)), text)


READERS: dict[str, Callable[[Any, AlertRule, datetime], Reading]] = {
    "endpoint_p95": _read_p95, "endpoint_error_rate": _read_error_rate,
    "slow_queries": _read_slow_queries, "cache_hit_rate": _read_hit_rate,
    "redis_memory": _read_redis_memory, "redis_evictions": _read_evictions,
    "failed_jobs": _read_failed_jobs, "backup_age": _read_backup_age,
    "model_accuracy": _read_accuracy, "model_drift": _read_drift,
}


def read(ops, rule: AlertRule, now: datetime | None = None) -> Reading:
    """The rule's figure now; never raises (an outage is a Reading without
    a value that says what failed)."""
    now = now or utcnow()
    try:
        return READERS[rule.kind](ops, rule, now)
    except Exception as exc:  # noqa: BLE001 - one unreadable figure must not stop a round
        from dashapp.store import _short_error
        logger.warning("alert rule %s: cannot read %s: %s", rule.id, rule.kind,
                       _short_error(exc))
        return Reading(None, f"Cannot read the figure: {_short_error(exc)}")


def breaching(rule: AlertRule, reading: Reading) -> bool:
    if reading.value is None:
        return bool(reading.breach) and KINDS[rule.kind].missing_breaches
    v, t = reading.value, rule.threshold
    return {">": v > t, ">=": v >= t, "<": v < t, "<=": v <= t}[rule.comparison]


# -------------------------------------------------------------- evaluation

def claim_round(store, interval: int, now: datetime | None = None) -> bool:
    """True for the one worker that claims this round (a slot of `interval`
    seconds); every other caller in the same slot gets False."""
    now = now or utcnow()
    epoch = int(now.timestamp())
    slot = datetime.fromtimestamp(epoch - epoch % max(1, interval), timezone.utc)
    try:
        with store.session() as sess:
            sess.add(AlertRound(slot=slot, holder=_holder(), claimed_at=now))
    except IntegrityError:
        return False
    with store.session() as sess:
        sess.execute(delete(AlertRound).where(AlertRound.slot < now - ROUND_KEEP))
    return True


def purge(store, days: int, now: datetime | None = None) -> int:
    """Delete resolved alerts (with their deliveries) and webhook attempts
    older than `days`; firing alerts are kept whatever their age."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    with store.session() as sess:
        removed = sess.execute(delete(AlertDelivery).where(AlertDelivery.time < cutoff)).rowcount
        removed += sess.execute(delete(AlertEvent).where(
            AlertEvent.state == "resolved", AlertEvent.resolved_at < cutoff)).rowcount
    return removed


def _step(store, rule: AlertRule, reading: Reading, now: datetime) -> tuple[str, int] | None:
    """Move one rule along ok/pending/firing. Returns ("fired"|"resolved",
    event id) when this caller opened or closed an event, else None."""
    breach = breaching(rule, reading)
    base = {"last_value": reading.value, "last_evaluated_at": now,
            "last_message": reading.message[:500]}
    cas = (AlertRule.id == rule.id, AlertRule.version == rule.version)
    pending_since = as_utc(rule.pending_since)
    with store.session() as sess:
        if rule.state in ("ok", "pending") and breach:
            since = pending_since if rule.state == "pending" and pending_since else now
            if now - since >= timedelta(minutes=rule.for_minutes):
                if sess.execute(update(AlertRule).where(*cas).values(
                        **base, state="firing", pending_since=since,
                        version=rule.version + 1)).rowcount != 1:
                    return None  # another evaluator moved this rule first
                event = AlertEvent(
                    rule_id=rule.id, rule_name=rule.name, kind=rule.kind, target=rule.target,
                    severity=rule.severity, comparison=rule.comparison,
                    threshold=rule.threshold, state="firing", value=reading.value,
                    started_at=now, message=reading.message[:500])
                sess.add(event)
                sess.flush()
                sess.execute(update(AlertRule).where(AlertRule.id == rule.id)
                             .values(current_event_id=event.id))
                return "fired", event.id
            if rule.state == "ok":
                sess.execute(update(AlertRule).where(*cas).values(
                    **base, state="pending", pending_since=now, version=rule.version + 1))
                return None
        elif rule.state == "pending" and not breach:
            sess.execute(update(AlertRule).where(*cas).values(
                **base, state="ok", pending_since=None, version=rule.version + 1))
            return None
        elif rule.state == "firing" and not breach and reading.value is not None:
            if sess.execute(update(AlertRule).where(*cas).values(
                    **base, state="ok", pending_since=None, current_event_id=None,
                    version=rule.version + 1)).rowcount != 1:
                return None
            event_id = rule.current_event_id
            if event_id is None:
                return None
            sess.execute(update(AlertEvent).where(
                AlertEvent.id == event_id, AlertEvent.state == "firing").values(
                state="resolved", resolved_at=now, resolved_value=reading.value))
            return "resolved", event_id
        # no change of state: only the figure
        sess.execute(update(AlertRule).where(AlertRule.id == rule.id).values(**base))
    return None


def evaluate(ops, now: datetime | None = None, *, force: bool = False,
             deliver_webhooks: bool = True) -> dict[str, Any]:
    """One evaluation round of every enabled rule.

    The scheduler calls this with force=False: the round is claimed first,
    so with several workers only one evaluates it. "Evaluate now" passes
    force=True (each state change is still a compare-and-set). `now` lets
    tests step through the for-N-minutes window without waiting."""
    now = now or utcnow()
    try:
        if not force:
            if not claim_round(ops.store, ops.settings.alert_interval, now):
                return {"claimed": False, "evaluated": 0, "fired": [], "resolved": [],
                        "rules": []}
            purge(ops.store, ops.settings.rollup_retention_days, now)
        with ops.store.session() as sess:
            rules = sess.scalars(select(AlertRule).where(AlertRule.enabled.is_(True))
                                 .order_by(AlertRule.id)).all()
    except Exception as exc:  # noqa: BLE001 - the scheduler must keep running
        from dashapp.store import _short_error
        logger.warning("alert evaluation skipped: store unavailable: %s", _short_error(exc))
        return {"claimed": False, "evaluated": 0, "fired": [], "resolved": [], "rules": [],
                "error": _short_error(exc)}
    fired, resolved, results = [], [], []
    for rule in rules:
        reading = read(ops, rule, now)
        try:
            change = _step(ops.store, rule, reading, now)
        except Exception as exc:  # noqa: BLE001 - next rule, next round
            logger.warning("alert rule %s: state not saved: %s", rule.id, exc)
            continue
        results.append({"id": rule.id, "name": rule.name, "value": reading.value,
                        "message": reading.message, "breaching": breaching(rule, reading)})
        if change is None:
            continue
        what, event_id = change
        (fired if what == "fired" else resolved).append(event_id)
        logger.info("alert %s: %s (%s)", what, rule.name, reading.message)
        audit.record(ops.store, actor=ACTOR, action=f"alert_{what}", outcome="success",
                     target=f"alert_rule:{rule.id}",
                     details={"event_id": event_id, "value": reading.value,
                              "rule": rule.name})
        if deliver_webhooks and rule.webhook_url:
            notify(ops.store, event_id)
    return {"claimed": True, "evaluated": len(rules), "fired": fired, "resolved": resolved,
            "rules": results}


def evaluate_now(ops, *, actor: str, now: datetime | None = None) -> dict[str, Any]:
    """"Evaluate now" from the page or the API: forced, audited."""
    with _audited(ops.store, actor, "alert_evaluate", "alerts") as info:
        result = evaluate(ops, now, force=True)
        info.update(evaluated=result["evaluated"], fired=result["fired"],
                    resolved=result["resolved"])
    return result


# ----------------------------------------------------------------- webhooks

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is an answer, not followed
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def payload_for(event: dict[str, Any], rule: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON body a webhook receives for one event."""
    return {
        "state": event["state"],
        "rule": {"id": event["rule_id"], "name": event["rule_name"], "kind": event["kind"],
                 "target": event["target"], "severity": event["severity"],
                 "condition": rule["condition"] if rule else None},
        "value": event["resolved_value"] if event["state"] == "resolved" else event["value"],
        "threshold": event["threshold"], "comparison": event["comparison"],
        "unit": event["unit"],
        "time": event["resolved_at"] if event["state"] == "resolved" else event["started_at"],
        "started_at": event["started_at"], "resolved_at": event["resolved_at"],
        "message": event["message"], "event_id": event["id"],
        "path": f"{CONSOLE_PATH}?event={event['id']}",
    }


def _post(url: str, body: bytes, timeout: float) -> int:
    """POST; the HTTP status (any), or raises OSError/URLError. user:password
    in the URL is sent as HTTP Basic authentication."""
    headers = {"Content-Type": "application/json", "User-Agent": "ops-console-alerts/1"}
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        from urllib.parse import unquote
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        netloc = parts.netloc.rsplit("@", 1)[1]
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            resp.read(4096)
            return resp.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def deliver(store, url: str, payload: dict[str, Any], *, rule_id: int | None,
            rule_name: str, state: str, event_id: int | None = None,
            attempts: int | None = None, backoff: tuple[float, ...] | None = None,
            timeout: float | None = None) -> dict[str, Any]:
    """POST `payload` to `url` until a 2xx answer, at most `attempts` times
    (a 4xx other than 408/429 is final), recording every attempt. Returns
    {"outcome": delivered|failed, "attempts": n, "status_code", "error"}."""
    attempts = ATTEMPTS if attempts is None else attempts
    backoff = BACKOFF_S if backoff is None else backoff
    timeout = TIMEOUT_S if timeout is None else timeout
    masked = mask_url(url) or ""
    body = json.dumps(payload, default=str).encode()
    status = error = None
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        status = error = None
        try:
            status = _post(url, body, timeout)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", None) or exc
            error = _scrub(f"{type(exc).__name__}: {reason}", url)[:500]
        elapsed = (time.perf_counter() - started) * 1000
        ok = status is not None and 200 <= status < 300
        final = ok or attempt == attempts or (
            status is not None and 400 <= status < 500 and status not in (408, 429))
        if status is not None and not ok:
            error = f"HTTP {status}"
        outcome = "delivered" if ok else ("failed" if final else "retry")
        with store.session() as sess:
            sess.add(AlertDelivery(event_id=event_id, rule_id=rule_id,
                                   rule_name=rule_name[:100], state=state, url=masked[:500],
                                   attempt=attempt, time=utcnow(), duration_ms=elapsed,
                                   status_code=status, error=error, outcome=outcome))
        if ok:
            logger.info("webhook %s for %s delivered to %s (attempt %d)", state, rule_name,
                        masked, attempt)
            return {"outcome": "delivered", "attempts": attempt, "status_code": status,
                    "error": None}
        logger.warning("webhook %s for %s to %s: attempt %d %s", state, rule_name, masked,
                       attempt, error)
        if final:
            break
        time.sleep(backoff[min(attempt - 1, len(backoff) - 1)] if backoff else 0)
    return {"outcome": "failed", "attempts": attempt, "status_code": status, "error": error}


def notify(store, event_id: int, **options) -> dict[str, Any] | None:
    """Send one event to its rule's webhook (None when it has none)."""
    with store.session() as sess:
        event = sess.get(AlertEvent, event_id)
        rule = sess.get(AlertRule, event.rule_id) if event and event.rule_id else None
        if event is None or rule is None or not rule.webhook_url:
            return None
        info, rinfo, url = event_info(event), rule_info(rule), rule.webhook_url
    return deliver(store, url, payload_for(info, rinfo), rule_id=rinfo["id"],
                   rule_name=rinfo["name"], state=info["state"], event_id=event_id, **options)


def send_test_webhook(store, rule_id: int, *, actor: str, **options) -> dict[str, Any]:
    """Send a sample payload (state "test") to the rule's webhook, recorded
    and audited like a real delivery."""
    with _audited(store, actor, "alert_webhook_test", f"alert_rule:{rule_id}") as info:
        with store.session() as sess:
            rule = _rule(sess, rule_id)
            rinfo, url = rule_info(rule), rule.webhook_url
        if not url:
            raise InvalidRule("webhook_url", "this rule has no webhook URL")
        info["webhook"] = rinfo["webhook_url"]
        now = _iso(utcnow())
        payload = {
            "state": "test",
            "rule": {"id": rinfo["id"], "name": rinfo["name"], "kind": rinfo["kind"],
                     "target": rinfo["target"], "severity": rinfo["severity"],
                     "condition": rinfo["condition"]},
            "value": rinfo["last_value"], "threshold": rinfo["threshold"],
            "comparison": rinfo["comparison"], "unit": rinfo["unit"], "time": now,
            "started_at": None, "resolved_at": None,
            "message": f"A test of the webhook of {rinfo['name']!r}, sent by {actor}.",
            "event_id": None, "path": CONSOLE_PATH,
        }
        result = deliver(store, url, payload, rule_id=rinfo["id"], rule_name=rinfo["name"],
                         state="test", **options)
        info.update(outcome=result["outcome"], attempts=result["attempts"],
                    status_code=result["status_code"])
    return result
