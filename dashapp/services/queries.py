"""The query analyzer: what SQL the monitored application runs, how long it
takes, what repeats inside one request, and what would make it faster.

Plain Python: functions take the console's `Store` (ops_query/ops_request) and,
for plans and suggestions, an `Engine` on the *monitored* database (never the
store). The REST routes and the page call the same functions.

Definitions used throughout:

* **p95** is exact: the durations of every call in the window are fetched per
  fingerprint and `numpy.percentile(..., 95)` (linear interpolation between
  the two closest ranks, numpy's default) is taken over them.
* **N+1**: one fingerprint run at least `N_PLUS_ONE_MIN` (10) times within
  one request (same request id): typically a loop issuing one query per row.
* **Duplicate query**: one fingerprint run 2 to 9 times within one request.
  Values are redacted before they reach the store, so "duplicate" means the
  same statement shape, which is either a true repeat or a small N+1; both
  are usually one query the request could have run once.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import desc, func, inspect, select
from sqlalchemy.engine import Engine

from dashapp.services import explain as ex
from dashapp.services.explain import (DatabaseUnavailable, ExplainError, UnsafeSQL,
                                      check_sql, monitored_engine)
from dashapp.store import Store
from dashapp.store.models import QueryLog, RequestLog, as_utc

logger = logging.getLogger(__name__)

N_PLUS_ONE_MIN = 10
MANY_ROWS = 1000
WIDE_TABLE_COLUMNS = 8
MAX_MINUTES = 30 * 24 * 60

__all__ = ["recent", "slow", "stats", "query_detail", "issues", "explain", "optimize",
           "explain_query", "monitored_engine", "engine_for", "NoMonitoredDatabase",
           "NotFound", "UnsafeSQL", "ExplainError", "DatabaseUnavailable"]


class NotFound(LookupError):
    """No stored query with that id."""


class NoMonitoredDatabase(RuntimeError):
    """EXPLAIN needs the monitored application's database, and none is set."""

    def __init__(self):
        super().__init__("no monitored database configured: set OPS_APP_DATABASE_URL "
                         "to the application's SQLAlchemy URL")


def engine_for(settings) -> Engine:
    """The (cached, read-only) engine on the monitored database of `settings`."""
    url = settings.monitored_database_url
    if not url:
        raise NoMonitoredDatabase()
    return monitored_engine(url)


def _since(minutes: float) -> datetime:
    minutes = max(1.0, min(float(minutes), MAX_MINUTES))
    return datetime.now(timezone.utc) - timedelta(minutes=minutes)


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value is not None else None


def _row(q: QueryLog) -> dict[str, Any]:
    return {"id": q.id, "time": _iso(q.time), "fingerprint": q.fingerprint, "sql": q.sql,
            "duration_ms": round(q.duration_ms, 3), "rows": q.rows,
            "request_id": q.request_id, "endpoint": q.endpoint, "process": q.process,
            "error_type": q.error_type}


def recent(store: Store, limit: int = 100, minutes: float = 60) -> list[dict[str, Any]]:
    """The latest statements, newest first."""
    with store.session() as sess:
        rows = sess.scalars(select(QueryLog).where(QueryLog.time >= _since(minutes))
                            .order_by(desc(QueryLog.time), desc(QueryLog.id))
                            .limit(limit)).all()
        return [_row(q) for q in rows]


def slow(store: Store, threshold_ms: float, minutes: float = 60,
         limit: int = 100) -> list[dict[str, Any]]:
    """Statements that took at least `threshold_ms`, slowest first."""
    with store.session() as sess:
        rows = sess.scalars(select(QueryLog).where(QueryLog.time >= _since(minutes),
                                                   QueryLog.duration_ms >= threshold_ms)
                            .order_by(desc(QueryLog.duration_ms)).limit(limit)).all()
        return [_row(q) for q in rows]


def stats(store: Store, minutes: float = 60) -> list[dict[str, Any]]:
    """Per fingerprint: calls, total/mean/p95/max ms, rows; by total time.

    Also `last_id` (the newest stored call, for detail/optimize) and
    `endpoints` (how many endpoints ran it).
    """
    since = _since(minutes)
    postgres = store.engine.dialect.name == "postgresql"
    figures = [QueryLog.fingerprint, func.count().label("calls"),
               func.sum(QueryLog.duration_ms), func.max(QueryLog.duration_ms),
               func.sum(QueryLog.rows), func.max(QueryLog.id),
               func.count(func.distinct(QueryLog.endpoint)),
               func.count(QueryLog.error_type)]
    if postgres:  # the database computes p95 (linear, like numpy): no rows cross the wire
        figures.append(func.percentile_cont(0.95).within_group(QueryLog.duration_ms))
    with store.session() as sess:
        agg = sess.execute(select(*figures).where(QueryLog.time >= since)
                           .group_by(QueryLog.fingerprint)).all()
        if not agg:
            return []
        durations = [] if postgres else sess.execute(
            select(QueryLog.fingerprint, QueryLog.duration_ms)
            .where(QueryLog.time >= since)).all()
        last_ids = [r[5] for r in agg]
        sqls = dict(sess.execute(select(QueryLog.id, QueryLog.sql)
                                 .where(QueryLog.id.in_(last_ids))).all())
    per_fp: dict[str, list[float]] = {}
    for fp, ms in durations:
        per_fp.setdefault(fp, []).append(ms)
    out = []
    for fp, calls, total, max_ms, rows, last_id, endpoints, errors, *pg_p95 in agg:
        p95 = float(pg_p95[0] or 0.0) if postgres else \
            float(np.percentile(np.asarray(per_fp.get(fp) or [0.0], dtype=float), 95))
        out.append({"fingerprint": fp, "sql": sqls.get(last_id, ""), "calls": int(calls),
                    "total_ms": round(float(total or 0.0), 3),
                    "mean_ms": round(float(total or 0.0) / calls, 3),
                    "p95_ms": round(p95, 3),
                    "max_ms": round(float(max_ms or 0.0), 3),
                    "rows": int(rows) if rows is not None else None,
                    "last_id": int(last_id), "endpoints": int(endpoints),
                    "errors": int(errors or 0)})
    out.sort(key=lambda r: r["total_ms"], reverse=True)
    return out


def _per_request_counts(store: Store, since: datetime, fingerprint: str | None = None,
                        minimum: int = 2) -> list[tuple]:
    """(endpoint, request_id, fingerprint, count) for repeats within a request."""
    with store.session() as sess:
        query = (select(QueryLog.endpoint, QueryLog.request_id, QueryLog.fingerprint,
                        func.count().label("n"))
                 .where(QueryLog.time >= since, QueryLog.request_id.is_not(None))
                 .group_by(QueryLog.endpoint, QueryLog.request_id, QueryLog.fingerprint)
                 .having(func.count() >= minimum))
        if fingerprint is not None:
            query = query.where(QueryLog.fingerprint == fingerprint)
        return sess.execute(query).all()


def _findings(rows: list[tuple], store: Store) -> list[dict[str, Any]]:
    groups: dict[tuple, list[tuple]] = {}
    for endpoint, rid, fp, n in rows:
        groups.setdefault((endpoint, fp), []).append((n, rid))
    if not groups:
        return []
    fps = {fp for _e, fp in groups}
    with store.session() as sess:
        latest = dict(sess.execute(select(QueryLog.fingerprint, func.max(QueryLog.id))
                                   .where(QueryLog.fingerprint.in_(fps))
                                   .group_by(QueryLog.fingerprint)).all())
        sqls = dict(sess.execute(select(QueryLog.id, QueryLog.sql)
                                 .where(QueryLog.id.in_(list(latest.values())))).all())
    out = []
    for (endpoint, fp), items in groups.items():
        counts = np.asarray([n for n, _ in items])
        worst = max(items)
        out.append({"endpoint": endpoint or "(no endpoint)", "fingerprint": fp,
                    "sql": sqls.get(latest.get(fp), ""), "query_id": latest.get(fp),
                    "requests": len(items), "max_per_request": int(counts.max()),
                    "median_per_request": float(np.median(counts)),
                    "extra_queries": int((counts - 1).sum()),
                    "example_request_id": worst[1]})
    out.sort(key=lambda f: f["extra_queries"], reverse=True)
    return out


def issues(store: Store, minutes: float = 60) -> dict[str, Any]:
    """N+1 and duplicate-query findings per endpoint (definitions: module doc)."""
    rows = _per_request_counts(store, _since(minutes))
    n1 = [r for r in rows if r[3] >= N_PLUS_ONE_MIN]
    dup = [r for r in rows if r[3] < N_PLUS_ONE_MIN]
    return {
        "n_plus_one": _findings(n1, store),
        "duplicates": _findings(dup, store),
        "definitions": {
            "n_plus_one": f"the same fingerprint run at least {N_PLUS_ONE_MIN} times "
                          "within one request",
            "duplicates": f"the same fingerprint run 2 to {N_PLUS_ONE_MIN - 1} times "
                          "within one request (values are redacted, so: same statement "
                          "shape)"},
    }


def _get(store: Store, query_id: int) -> dict[str, Any]:
    with store.session() as sess:
        q = sess.get(QueryLog, query_id)
        if q is None:
            raise NotFound(f"no stored query {query_id}")
        return _row(q)


def query_detail(store: Store, query_id: int, minutes: float = 24 * 60,
                 limit: int = 50) -> dict[str, Any]:
    """One stored statement, its fingerprint's figures and the requests that
    ran that fingerprint (newest first; with how often each ran it)."""
    row = _get(store, query_id)
    since = _since(minutes)
    with store.session() as sess:
        durations = [d for (d,) in sess.execute(
            select(QueryLog.duration_ms).where(QueryLog.fingerprint == row["fingerprint"],
                                               QueryLog.time >= since))]
        reqs = sess.execute(
            select(QueryLog.request_id, QueryLog.endpoint, func.count(),
                   func.sum(QueryLog.duration_ms), func.max(QueryLog.time))
            .where(QueryLog.fingerprint == row["fingerprint"], QueryLog.time >= since,
                   QueryLog.request_id.is_not(None))
            .group_by(QueryLog.request_id, QueryLog.endpoint)
            .order_by(desc(func.max(QueryLog.time))).limit(limit)).all()
        ids = [r[0] for r in reqs]
        info = {r.request_id: r for r in sess.scalars(
            select(RequestLog).where(RequestLog.request_id.in_(ids)))} if ids else {}
    values = np.asarray(durations or [row["duration_ms"]], dtype=float)
    requests = []
    for rid, endpoint, n, total, last in reqs:
        req = info.get(rid)
        requests.append({"request_id": rid, "endpoint": endpoint, "times_run": int(n),
                         "query_ms": round(float(total or 0), 3), "time": _iso(last),
                         "method": req.method if req else None,
                         "status": req.status if req else None,
                         "request_ms": round(req.duration_ms, 3) if req else None})
    return {**row, "fingerprint_stats": {
        "minutes": minutes, "calls": len(durations),
        "mean_ms": round(float(values.mean()), 3),
        "p95_ms": round(float(np.percentile(values, 95)), 3),
        "max_ms": round(float(values.max()), 3)}, "requests": requests}


# ----------------------------------------------------------------- explain

def explain(engine: Engine, sql: str, analyze: bool = False) -> dict[str, Any]:
    """EXPLAIN one user-typed read-only SELECT (see services.explain)."""
    return ex.explain(engine, sql, analyze=analyze)


def explain_query(store: Store, engine: Engine, query_id: int,
                  analyze: bool = False) -> dict[str, Any]:
    """EXPLAIN a stored statement (placeholders substituted, see services.explain)."""
    return ex.explain_stored(engine, _get(store, query_id)["sql"], analyze=analyze)


# ------------------------------------------------------------- suggestions

_IDENT = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_$]*)'
_COLREF = re.compile(rf"({_IDENT})\s*\.\s*({_IDENT})|({_IDENT})")
_OPERATOR_AFTER = re.compile(r"\s*(=|<>|!=|<=|>=|<|>|\bIN\b|\bIS\b|\bBETWEEN\b|\bLIKE\b|"
                             r"\bILIKE\b|\bNOT\b)", re.I)
_OPERATOR_BEFORE = re.compile(r"(=|<>|!=|<=|>=|<|>)\s*$")
_FROM_ALIAS = re.compile(rf"\b(?:FROM|JOIN)\s+({_IDENT})(?:\s+(?:AS\s+)?({_IDENT}))?", re.I)
_CLAUSE = re.compile(r"\b(WHERE|ON)\b(.*?)(?=\b(?:GROUP\s+BY|ORDER\s+BY|LIMIT|OFFSET|"
                     r"HAVING|UNION|EXCEPT|INTERSECT|WINDOW|FETCH|(?:LEFT|RIGHT|FULL|"
                     r"INNER|CROSS|OUTER)?\s*JOIN)\b|\)|$)", re.I | re.S)
_LIKE_COL = re.compile(rf"(?:({_IDENT})\s*\.\s*)?({_IDENT})\s+(?:NOT\s+)?I?LIKE\s+('(?:[^']|'')*'|\?|\S+)", re.I)
_AGGREGATE = re.compile(r"\b(COUNT|SUM|AVG|MIN|MAX|GROUP_CONCAT|STRING_AGG|ARRAY_AGG|"
                        r"BOOL_AND|BOOL_OR|EVERY)\s*\(|\bGROUP\s+BY\b|\bDISTINCT\b", re.I)
_LIMIT = re.compile(r"\bLIMIT\b|\bFETCH\s+(?:FIRST|NEXT)\b|\bTOP\s*\(", re.I)
_STAR = re.compile(rf"\bSELECT\s+(?:DISTINCT\s+)?(?:({_IDENT})\s*\.\s*)?\*", re.I)
_KEYWORDS = {"and", "or", "not", "null", "is", "in", "like", "ilike", "between", "true",
             "false", "exists", "select", "case", "when", "then", "else", "end", "as",
             "escape", "any", "all", "some", "lower", "upper", "coalesce"}


def _unquote(name: str | None) -> str | None:
    if name is None:
        return None
    if name[:1] in '"`[':
        return name[1:-1]
    return name


def _aliases(sql: str) -> dict[str, str]:
    """alias (lower) -> table, for every FROM/JOIN item (the table maps to itself)."""
    out: dict[str, str] = {}
    for m in _FROM_ALIAS.finditer(sql):
        table = _unquote(m.group(1))
        if table.lower() == "select" or table == "(":
            continue
        out[table.lower()] = table
        alias = _unquote(m.group(2))
        if alias and alias.lower() not in ("where", "on", "join", "left", "right", "inner",
                                           "outer", "full", "cross", "group", "order",
                                           "limit", "natural", "using"):
            out[alias.lower()] = table
    return out


def filtered_columns(sql: str) -> list[tuple[str | None, str]]:
    """(qualifier or None, column) pairs compared in WHERE / JOIN ... ON."""
    found: list[tuple[str | None, str]] = []
    for clause in _CLAUSE.finditer(sql):
        body = clause.group(2)
        for m in _COLREF.finditer(body):
            qual, col = (_unquote(m.group(1)), _unquote(m.group(2))) if m.group(2) \
                else (None, _unquote(m.group(3)))
            if col.lower() in _KEYWORDS:
                continue
            after = _OPERATOR_AFTER.match(body, m.end())
            before = _OPERATOR_BEFORE.search(body[:m.start()])
            if after or before:
                if (qual, col) not in found:
                    found.append((qual, col))
    return found


def _indexed_first_columns(insp, table: str) -> set[str]:
    cols: set[str] = set()
    try:
        pk = insp.get_pk_constraint(table) or {}
        if pk.get("constrained_columns"):
            cols.add(pk["constrained_columns"][0].lower())
        for idx in insp.get_indexes(table):
            names = [c for c in (idx.get("column_names") or []) if c]
            if names:
                cols.add(names[0].lower())
        for uq in insp.get_unique_constraints(table):
            if uq.get("column_names"):
                cols.add(uq["column_names"][0].lower())
    except Exception:  # noqa: BLE001 - best effort; no suggestion is the safe answer
        logger.debug("could not inspect indexes of %s", table, exc_info=True)
    return cols


def _scans(nodes: list[dict]) -> list[dict]:
    out = []
    for node in nodes:
        if node.get("full_scan") and node.get("relation"):
            out.append(node)
        out.extend(_scans(node.get("children", [])))
    return out


def _table_columns(insp, table: str) -> list[str]:
    try:
        return [c["name"] for c in insp.get_columns(table)]
    except Exception:  # noqa: BLE001
        return []


def suggest(engine: Engine, sql: str, plan: dict[str, Any] | None, *,
            max_rows: int | None = None, n_plus_one: list[dict] | None = None,
            stored: bool = False) -> list[dict[str, Any]]:
    """Suggestions for one statement: kind, message, why, evidence, sql."""
    out: list[dict[str, Any]] = []
    insp = inspect(engine)
    try:
        tables = set(insp.get_table_names())
    except Exception:  # noqa: BLE001
        tables = set()
    aliases = _aliases(sql)
    lookup = {t.lower(): t for t in tables}
    scans = _scans(plan["plan"]) if plan else []
    like_cols = {(_unquote(m.group(2)) or "").lower(): m.group(3)
                 for m in _LIKE_COL.finditer(sql)}

    # 1. full scan on a filtered or joined column -> CREATE INDEX
    for node in scans:
        table = lookup.get(node["relation"].lower(), node["relation"])
        columns = {c.lower(): c for c in _table_columns(insp, table)}
        indexed = _indexed_first_columns(insp, table)
        node_aliases = {a for a, t in aliases.items() if t.lower() == table.lower()}
        candidates = []
        for qual, col in filtered_columns(sql):
            if qual is not None and qual.lower() not in node_aliases:
                continue
            if qual is None and len({t.lower() for t in aliases.values()}) > 1 and \
                    not any(col.lower() in {c.lower() for c in _table_columns(insp, t)}
                            for t in [table]):
                continue
            if col.lower() in columns and col.lower() not in like_cols \
                    and columns[col.lower()] not in candidates:
                candidates.append(columns[col.lower()])
        for col in candidates:
            if col.lower() in indexed:
                continue
            name = f"ix_{table}_{col}".lower()[:63]
            rows_note = (f" (~{node['table_rows']:,.0f} rows)" if node.get("table_rows")
                         else "")
            out.append({
                "kind": "missing_index",
                "message": f"Add an index on {table}.{col}",
                "why": f"The plan reads every row of {table}{rows_note} to filter or join "
                       f"on {col}; an index lets the database go straight to the "
                       "matching rows.",
                "evidence": {"plan_node": node["label"], "table": table, "column": col,
                             "existing_indexes_lead_with": sorted(indexed)},
                "sql": f"CREATE INDEX {name} ON {table} ({col});"})

    # 2. N+1 from the request data
    for finding in n_plus_one or []:
        out.append({
            "kind": "n_plus_one",
            "message": f"N+1: {finding['endpoint']} runs this query up to "
                       f"{finding['max_per_request']} times per request",
            "why": "A loop runs one query per row. Fetch the rows in one query "
                   "(a JOIN, WHERE id IN (...), or eager loading such as SQLAlchemy's "
                   "selectinload) instead.",
            "evidence": {"endpoint": finding["endpoint"],
                         "requests": finding["requests"],
                         "max_per_request": finding["max_per_request"],
                         "median_per_request": finding["median_per_request"],
                         "example_request_id": finding["example_request_id"]},
            "sql": None})

    # 3. SELECT * on a wide table
    for m in _STAR.finditer(sql):
        qual = _unquote(m.group(1))
        targets = [aliases.get(qual.lower(), qual)] if qual else \
            sorted(set(aliases.values()))
        for target in targets:
            table = lookup.get((target or "").lower())
            if not table:
                continue
            ncols = len(_table_columns(insp, table))
            if ncols >= WIDE_TABLE_COLUMNS:
                out.append({
                    "kind": "select_star",
                    "message": f"SELECT * reads all {ncols} columns of {table}",
                    "why": "Fetching columns the code does not use costs I/O, memory and "
                           "network, and can prevent index-only scans. List the columns "
                           "you need.",
                    "evidence": {"table": table, "columns": ncols},
                    "sql": None})

    # 4. unbounded result set
    if re.match(r"\s*\(?\s*(SELECT|WITH)\b", sql, re.I) and not _LIMIT.search(sql) \
            and not _AGGREGATE.search(sql):
        big_scan = max((n.get("table_rows") or 0 for n in scans), default=0)
        evidence: dict[str, Any] = {}
        if max_rows is not None and max_rows >= MANY_ROWS:
            evidence["max_rows_returned"] = max_rows
        elif max_rows is None and scans:
            est = big_scan or _row_estimate(engine, scans[0]["relation"])
            if est and est >= MANY_ROWS and not filtered_columns(sql):
                evidence["table_rows"] = est
        if evidence:
            out.append({
                "kind": "unbounded",
                "message": "Unbounded result set: no LIMIT on a query that returns "
                           "many rows",
                "why": "Without a LIMIT the result grows with the table; page through "
                       "it (LIMIT/OFFSET or keyset pagination) or aggregate in SQL.",
                "evidence": evidence, "sql": None})

    # 5. leading-wildcard LIKE
    for col, pattern in like_cols.items():
        literal = pattern.startswith("'")
        leading = literal and pattern[1:2] in ("%", "_")
        scanned = any(n.get("full_scan") for n in scans)
        if leading or (pattern == "?" and stored and scanned):
            out.append({
                "kind": "leading_wildcard",
                "message": f"LIKE on {col} " + ("starts with a wildcard" if leading
                                                else "with a bound pattern forces a full scan"),
                "why": "A pattern that starts with % or _ cannot use a B-tree index, so "
                       "every row is read. Use a full-text index (PostgreSQL tsvector/GIN "
                       "or pg_trgm, SQLite FTS5) or anchor the pattern (LIKE 'abc%').",
                "evidence": {"column": col, "pattern": pattern if literal else
                             "(value redacted; the plan shows a full scan)"},
                "sql": None})
    return out


def _row_estimate(engine: Engine, table: str) -> int | None:
    try:
        from sqlalchemy import text
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                return int(conn.execute(text("SELECT reltuples FROM pg_class WHERE "
                                             "relname = :t"), {"t": table}).scalar() or 0)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
            return None
        with engine.connect() as conn:
            return int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar() or 0)
    except Exception:  # noqa: BLE001
        return None


def optimize(store: Store, engine: Engine, query_id: int,
             minutes: float = 24 * 60) -> dict[str, Any]:
    """Suggestions for a stored statement, from its plan and its request data."""
    row = _get(store, query_id)
    plan = None
    plan_error = None
    try:
        plan = ex.explain_stored(engine, row["sql"])
    except UnsafeSQL as exc:
        plan_error = f"not explained: {exc}"
    except ExplainError as exc:
        plan_error = str(exc)
    findings = _findings([r for r in _per_request_counts(store, _since(minutes),
                                                         row["fingerprint"])
                          if r[3] >= N_PLUS_ONE_MIN], store)
    with store.session() as sess:
        max_rows = sess.scalar(select(func.max(QueryLog.rows))
                               .where(QueryLog.fingerprint == row["fingerprint"]))
    suggestions = suggest(engine, row["sql"], plan, max_rows=max_rows,
                          n_plus_one=findings, stored=True)
    return {"query": row, "plan": plan, "plan_error": plan_error,
            "suggestions": suggestions}


def check(sql: str, dialect: str | None = None) -> str:
    """The EXPLAIN safety check (re-exported for the API and tests)."""
    return check_sql(sql, dialect)
