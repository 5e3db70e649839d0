"""Profiling sessions: start and stop them, read and export their results.

Plain Python over the store (the REST API and the Profiler page call the
same functions). Start/stop only write `ops_profile_session`; the agents of
the monitored processes learn of it from the answers to their batches
(dashapp.ingest.profiler), do the sampling (ops_agent.profiler) and send
their parts back; here the parts are merged into one call tree, hotspot
table and memory report.
"""
from __future__ import annotations

import csv
import html
import io
import json
import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, update

from dashapp.ingest.profiler import ACTIVE, complete_if_ready
from dashapp.store.models import ProfilePart, ProfileSession, as_utc

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.001     # seconds between samples
MIN_INTERVAL, MAX_INTERVAL = 0.0001, 0.1
MAX_DURATION = 3600          # seconds
PART_GRACE = timedelta(seconds=10)  # a process that has not written its part by then is left out
PICKUP_GRACE = timedelta(seconds=5)  # stopped before any process took part: failed after this
TREE_NODES_SHOWN = 2_000     # nodes in the icicle chart
EXPORT_FORMATS = ("speedscope", "html", "csv")
OPEN = ("requested", "running", "stopping")


class ProfilerError(Exception):
    """A refusal the user can act on (message says why)."""


class SessionNotFound(ProfilerError):
    pass


class SessionBusy(ProfilerError):
    pass


class NotFinished(ProfilerError):
    pass


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None


# ----------------------------------------------------------------- control

def start_session(store, *, actor: str, duration: float | None = None,
                  endpoint: str | None = None, interval: float | None = None,
                  memory: bool = True, app: str | None = None) -> dict:
    """Ask the monitored processes of `app` (omitted or empty: of every
    application) to profile. One session at a time."""
    interval = DEFAULT_INTERVAL if interval is None else float(interval)
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise ValueError(f"interval: must be {MIN_INTERVAL} to {MAX_INTERVAL} seconds")
    if duration is not None and not 1 <= float(duration) <= MAX_DURATION:
        raise ValueError(f"duration: must be 1 to {MAX_DURATION} seconds")
    endpoint = (endpoint or "").strip() or None
    if endpoint is not None and len(endpoint) > 255:
        raise ValueError("endpoint: at most 255 characters")
    app = (app or "").strip()
    if len(app) > 64:
        raise ValueError("app: at most 64 characters")
    with store.engine.begin() as conn:
        _settle(conn)
        busy = conn.scalar(select(ProfileSession.id).where(
            ProfileSession.status.in_(OPEN)).limit(1))
        if busy is not None:
            raise SessionBusy(f"Session {busy} is still open; stop it first.")
        result = conn.execute(ProfileSession.__table__.insert().values(
            status="requested", requested_by=actor[:64], created_at=utcnow(),
            duration_s=float(duration) if duration is not None else None,
            interval_s=interval, endpoint=endpoint, memory=bool(memory), app=app))
        session_id = result.inserted_primary_key[0]
    return session_summary(store, session_id)


def stop_session(store, *, actor: str, session_id: int | None = None) -> dict:
    """Ask the processes to end the open session (or the one named) and
    write their parts. Stopping one that has already ended is a no-op."""
    with store.engine.begin() as conn:
        if session_id is None:
            session_id = conn.scalar(select(ProfileSession.id).where(
                ProfileSession.status.in_(OPEN)).order_by(ProfileSession.id.desc()).limit(1))
            if session_id is None:
                raise SessionNotFound("No profiling session is running.")
        elif conn.scalar(select(ProfileSession.id).where(
                ProfileSession.id == session_id)) is None:
            raise SessionNotFound(f"No profiling session {session_id}.")
        conn.execute(update(ProfileSession).where(
            ProfileSession.id == session_id, ProfileSession.status.in_(ACTIVE)).values(
            status="stopping", stop_requested_at=utcnow(), stopped_by=actor[:64]))
        _settle(conn)
    return session_summary(store, session_id)


def delete_session(store, session_id: int) -> dict:
    """Remove an ended session and its parts (an open one must be stopped first)."""
    with store.engine.begin() as conn:
        status = conn.scalar(select(ProfileSession.status).where(
            ProfileSession.id == session_id))
        if status is None:
            raise SessionNotFound(f"No profiling session {session_id}.")
        if status in OPEN:
            raise SessionBusy(f"Session {session_id} is still open; stop it first.")
        conn.execute(delete(ProfilePart).where(ProfilePart.session_id == session_id))
        conn.execute(delete(ProfileSession).where(ProfileSession.id == session_id))
    return {"id": session_id, "deleted": True}


def _settle(conn) -> None:
    """Move stopping sessions on: done once every part is written; parts a
    process never wrote (it died) are left out after PART_GRACE; a session no
    process picked up fails after PICKUP_GRACE."""
    now = utcnow()
    rows = conn.execute(select(ProfileSession.id, ProfileSession.stop_requested_at,
                               ProfileSession.started_at).where(
        ProfileSession.status == "stopping")).all()
    for session_id, stop_at, started_at in rows:
        if complete_if_ready(conn, session_id):
            continue
        stop_at = as_utc(stop_at) or now
        parts = conn.scalar(select(ProfilePart.id).where(
            ProfilePart.session_id == session_id).limit(1))
        if parts is None and now - stop_at >= PICKUP_GRACE:
            conn.execute(update(ProfileSession).where(
                ProfileSession.id == session_id, ProfileSession.status == "stopping").values(
                status="failed", ended_at=now,
                error="No monitored process took part: is the app running with "
                      "the agent (ops_agent.monitor) and reaching this console?"))
        elif parts is not None and now - stop_at >= PART_GRACE:
            conn.execute(update(ProfilePart).where(
                ProfilePart.session_id == session_id, ProfilePart.status == "running").values(
                status="failed", ended_at=now,
                error="The process did not write its profile (stopped or unreachable)."))
            complete_if_ready(conn, session_id)
    # A running session whose duration passed while no process was left to end it.
    for row in conn.execute(select(ProfileSession.__table__).where(
            ProfileSession.status == "running",
            ProfileSession.duration_s.is_not(None))).all():
        started = as_utc(row.started_at)
        if started and now >= started + timedelta(seconds=row.duration_s) + PART_GRACE:
            conn.execute(update(ProfileSession).where(
                ProfileSession.id == row.id, ProfileSession.status == "running").values(
                status="stopping", stop_requested_at=now))


def settle(store) -> None:
    with store.engine.begin() as conn:
        _settle(conn)


def audited(store, actor: str, action: str, target: str, details: dict, work):
    """Run `work()` (start or stop) and audit it: the row is written first
    (AuditUnavailable, and no work, when it cannot be), then success with the
    session, or failure with the reason (then re-raise)."""
    from dashapp.security import audit
    entry = audit.begin(store, actor=actor, action=action, target=target, details=details)
    try:
        result = work()
    except Exception as exc:
        entry.finish("failure", {**details, "error": str(exc)[:300]})
        raise
    entry.finish("success", details, target=f"profile:{result['id']}")
    return result


# ----------------------------------------------------------------- reading

def _session_dict(row: ProfileSession, parts: list[ProfilePart]) -> dict:
    started = as_utc(row.started_at)
    ended = as_utc(row.ended_at)
    elapsed = None
    if started is not None:
        elapsed = ((ended or utcnow()) - started).total_seconds()
    requests = sum(p.requests for p in parts)
    overhead = sum(p.overhead_seconds for p in parts)
    return {
        "id": row.id, "status": row.status, "app": row.app or "",
        "requested_by": row.requested_by,
        "stopped_by": row.stopped_by, "created_at": _iso(row.created_at),
        "started_at": _iso(started), "ended_at": _iso(ended),
        "duration_requested": row.duration_s, "elapsed_seconds": elapsed,
        "interval": row.interval_s, "endpoint": row.endpoint, "memory": row.memory,
        "error": row.error, "requests": requests, "samples": sum(p.samples for p in parts),
        "profiled_seconds": round(sum(p.profiled_seconds for p in parts), 6),
        "overhead_per_request_ms": round(overhead / requests * 1000, 4) if requests else None,
        "processes": [{"process": p.process, "status": p.status, "requests": p.requests,
                       "samples": p.samples, "profiled_seconds": round(p.profiled_seconds, 6),
                       "overhead_per_request_ms": (round(p.overhead_seconds / p.requests * 1000, 4)
                                                   if p.requests else None),
                       "error": p.error} for p in parts],
    }


def _load(conn, session_id: int, *, with_data: bool = False):
    row = conn.execute(select(ProfileSession.__table__).where(
        ProfileSession.id == session_id)).first()
    if row is None:
        raise SessionNotFound(f"No profiling session {session_id}.")
    columns = [ProfilePart.__table__] if with_data else [
        ProfilePart.process, ProfilePart.status, ProfilePart.requests, ProfilePart.samples,
        ProfilePart.profiled_seconds, ProfilePart.overhead_seconds, ProfilePart.error]
    query = select(*columns).where(ProfilePart.session_id == session_id).order_by(
        ProfilePart.process)
    parts = (conn.execute(query).all() if with_data
             else conn.execute(query).all())
    return row, parts


def session_summary(store, session_id: int) -> dict:
    """Status, duration, requests, samples, per-process contributions."""
    with store.engine.begin() as conn:
        _settle(conn)
        row, parts = _load(conn, session_id)
    return _session_dict(row, parts)


def current_session(store) -> dict | None:
    """The open session (requested, running or stopping), if any."""
    with store.engine.begin() as conn:
        _settle(conn)
        session_id = conn.scalar(select(ProfileSession.id).where(
            ProfileSession.status.in_(OPEN)).order_by(ProfileSession.id.desc()).limit(1))
    return session_summary(store, session_id) if session_id is not None else None


def list_sessions(store, limit: int = 50) -> list[dict]:
    """Recent sessions, newest first."""
    with store.engine.begin() as conn:
        _settle(conn)
        rows = conn.execute(select(ProfileSession.__table__).order_by(
            ProfileSession.id.desc()).limit(limit)).all()
        out = []
        for row in rows:
            parts = conn.execute(select(
                ProfilePart.process, ProfilePart.status, ProfilePart.requests,
                ProfilePart.samples, ProfilePart.profiled_seconds,
                ProfilePart.overhead_seconds, ProfilePart.error).where(
                ProfilePart.session_id == row.id)).all()
            out.append(_session_dict(row, parts))
    return out


def _finished_parts(store, session_id: int) -> tuple[ProfileSession, list[ProfilePart]]:
    with store.engine.begin() as conn:
        _settle(conn)
        row, parts = _load(conn, session_id, with_data=True)
    if row.status in OPEN:
        raise NotFinished(f"Session {session_id} is {row.status}; results come when it ends.")
    return row, [p for p in parts if p.status == "done"]


# ----------------------------------------------------------------- merging

def merge_trees(trees: list[dict]) -> dict:
    """Several processes' call trees as one (same function+file+line merge)."""
    root = {"function": "<requests>", "file": "", "line": 0, "self": 0.0, "total": 0.0,
            "children": []}

    def add(target: dict, node: dict) -> None:
        target["self"] += node.get("self", 0.0)
        target["total"] += node.get("total", 0.0)
        index = {(c["function"], c["file"], c["line"]): c for c in target["children"]}
        for child in node.get("children", []):
            key = (child["function"], child["file"], child["line"])
            mine = index.get(key)
            if mine is None:
                mine = {"function": child["function"], "file": child["file"],
                        "line": child["line"], "self": 0.0, "total": 0.0, "children": []}
                target["children"].append(mine)
                index[key] = mine
            add(mine, child)

    for tree in trees:
        if tree:
            add(root, tree)
    return root


def _merged_tree(parts: list[ProfilePart]) -> dict:
    return merge_trees([p.tree for p in parts if p.tree])


def hotspots(tree: dict) -> list[dict]:
    """Per function (name, file, line): self time, total time (a recursive
    call counted once per path), share of all sampled time."""
    table: dict[tuple, dict] = {}
    grand = tree.get("total", 0.0) or 0.0

    def walk(node: dict, on_path: set) -> None:
        for child in node["children"]:
            key = (child["function"], child["file"], child["line"])
            entry = table.setdefault(key, {"function": key[0], "file": key[1], "line": key[2],
                                           "self_seconds": 0.0, "total_seconds": 0.0})
            entry["self_seconds"] += child["self"]
            if key not in on_path:
                entry["total_seconds"] += child["total"]
            walk(child, on_path | {key})

    walk(tree, set())
    rows = []
    for entry in table.values():
        entry["location"] = f"{entry['file']}:{entry['line']}"
        entry["self_share"] = entry["self_seconds"] / grand if grand else 0.0
        entry["total_share"] = entry["total_seconds"] / grand if grand else 0.0
        entry["self_seconds"] = round(entry["self_seconds"], 6)
        entry["total_seconds"] = round(entry["total_seconds"], 6)
        rows.append(entry)
    rows.sort(key=lambda r: (-r["self_seconds"], -r["total_seconds"]))
    return rows


def cpu(store, session_id: int, limit: int = 100) -> dict:
    """Hotspots of a finished session, and its merged call tree."""
    row, parts = _finished_parts(store, session_id)
    tree = _merged_tree(parts)
    return {"id": session_id, "total_seconds": round(tree["total"], 6),
            "truncated": any((p.tree or {}).get("truncated") for p in parts),
            "hotspots": hotspots(tree)[:limit], "tree": tree}


def memory(store, session_id: int, limit: int = 50) -> dict:
    """Top allocation sites by size and count, and growth start -> stop,
    summed over the processes (sites merged by file:line)."""
    row, parts = _finished_parts(store, session_id)
    reports = [p.memory for p in parts if p.memory]
    if not row.memory:
        note = "Memory tracking was off for this session."
    elif not reports:
        note = "No memory statistics were written."
    else:
        note = None

    def combine(key: str, fields: tuple[str, ...], sort: str) -> list[dict]:
        merged: dict[tuple, dict] = {}
        for report in reports:
            for site in report.get(key, []):
                k = (site["file"], site["line"])
                entry = merged.setdefault(k, {"file": k[0], "line": k[1],
                                              "location": f"{k[0]}:{k[1]}",
                                              **{f: 0 for f in fields}})
                for f in fields:
                    entry[f] += site.get(f, 0)
        return sorted(merged.values(), key=lambda e: -e[sort])[:limit]

    return {"id": session_id, "enabled": bool(row.memory), "note": note,
            "by_size": combine("by_size", ("size", "count"), "size"),
            "by_count": combine("by_count", ("size", "count"), "count"),
            "growth": combine("growth", ("size_diff", "count_diff", "size", "count"),
                              "size_diff"),
            "total_size": sum(r.get("total_size", 0) for r in reports),
            "growth_total": sum(r.get("growth_total", 0) for r in reports),
            "peak": sum(r.get("peak", 0) for r in reports)}


def results(store, session_id: int) -> dict:
    """The summary: duration, requests, samples, per-process parts."""
    return session_summary(store, session_id)


# ----------------------------------------------------------------- exports

def speedscope(tree: dict, name: str) -> dict:
    """The merged tree as a speedscope "sampled" profile: one sample per
    path that has self time, weighted by it (seconds)."""
    frames: list[dict] = []
    index: dict[tuple, int] = {}
    samples, weights = [], []

    def frame_id(node: dict) -> int:
        key = (node["function"], node["file"], node["line"])
        if key not in index:
            index[key] = len(frames)
            frame = {"name": node["function"]}
            if node["file"]:
                frame["file"] = node["file"]
                frame["line"] = node["line"]
            frames.append(frame)
        return index[key]

    def walk(node: dict, path: list[int]) -> None:
        if node["self"] > 0 and path:
            samples.append(list(path))
            weights.append(node["self"])
        for child in node["children"]:
            walk(child, path + [frame_id(child)])

    walk(tree, [])
    return {"$schema": "https://www.speedscope.app/file-format-schema.json",
            "name": name, "exporter": "ops-console", "activeProfileIndex": 0,
            "shared": {"frames": frames},
            "profiles": [{"type": "sampled", "name": name, "unit": "seconds",
                          "startValue": 0, "endValue": sum(weights),
                          "samples": samples, "weights": weights}]}


def _html(summary: dict, spots: list[dict], tree: dict, mem: dict) -> str:
    e = html.escape
    grand = tree["total"] or 1.0

    def node_html(node: dict, depth: int) -> str:
        if depth > 40:
            return ""
        share = node["total"] / grand * 100
        label = (f"<b>{e(node['function'])}</b> {node['total']:.4f}s ({share:.1f}%)"
                 f" <span class=f>{e(node['file'])}:{node['line']}</span>")
        kids = [c for c in node["children"] if c["total"] / grand >= 0.002]
        if not kids:
            return f"<li>{label}</li>"
        inner = "".join(node_html(c, depth + 1) for c in kids)
        opened = " open" if share >= 10 else ""
        return f"<li><details{opened}><summary>{label}</summary><ul>{inner}</ul></details></li>"

    rows = "".join(
        f"<tr><td>{e(r['function'])}</td><td class=f>{e(r['location'])}</td>"
        f"<td>{r['self_seconds']:.4f}</td><td>{r['total_seconds']:.4f}</td>"
        f"<td>{r['self_share'] * 100:.1f}%</td></tr>" for r in spots[:100])
    growth = "".join(
        f"<tr><td class=f>{e(r['location'])}</td><td>{r['size_diff']}</td>"
        f"<td>{r['count_diff']}</td></tr>" for r in mem.get("growth", [])[:50])
    tree_html = "".join(node_html(c, 0) for c in tree["children"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Profile {summary['id']}</title>
<style>body{{font:14px system-ui,sans-serif;margin:24px;color:#222}}
table{{border-collapse:collapse;margin:8px 0 24px}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
.f{{color:#666;font-family:monospace;font-size:12px}}ul{{list-style:none;padding-left:18px}}</style>
</head><body>
<h1>Profile {summary['id']}</h1>
<p>Status {e(summary['status'])}; started {e(str(summary['started_at']))}; ended {e(str(summary['ended_at']))};
{summary['requests']} requests, {summary['samples']} samples, {summary['profiled_seconds']}s profiled;
endpoint filter {e(summary['endpoint'] or 'all')}; interval {summary['interval']}s.</p>
<h2>Hotspots (self time)</h2>
<table><tr><th>Function</th><th>Location</th><th>Self s</th><th>Total s</th><th>Share</th></tr>{rows}</table>
<h2>Call tree</h2><ul>{tree_html}</ul>
<h2>Memory growth (start to stop)</h2>
<table><tr><th>Location</th><th>Bytes</th><th>Blocks</th></tr>{growth}</table>
</body></html>"""


def export(store, session_id: int, fmt: str) -> tuple[bytes, str, str]:
    """(content, mimetype, filename) of a finished session."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format: must be one of {', '.join(EXPORT_FORMATS)}")
    data = cpu(store, session_id, limit=10_000)
    name = f"profile-{session_id}"
    if fmt == "speedscope":
        body = json.dumps(speedscope(data["tree"], name)).encode()
        return body, "application/json", f"{name}.speedscope.json"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["function", "file", "line", "self_seconds", "total_seconds",
                         "self_share", "total_share"])
        for r in data["hotspots"]:
            writer.writerow([r["function"], r["file"], r["line"], r["self_seconds"],
                             r["total_seconds"], round(r["self_share"], 6),
                             round(r["total_share"], 6)])
        return out.getvalue().encode(), "text/csv", f"{name}-hotspots.csv"
    body = _html(session_summary(store, session_id), data["hotspots"], data["tree"],
                 memory(store, session_id))
    return body.encode(), "text/html", f"{name}.html"


def trim_tree(tree: dict, max_nodes: int = TREE_NODES_SHOWN) -> dict:
    """The biggest nodes of a tree (breadth-first by total), for drawing."""
    import heapq
    out = {k: tree[k] for k in ("function", "file", "line", "self", "total")}
    out["children"] = []
    heap: list[tuple[float, int, dict, dict]] = []
    counter = 0
    for child in tree["children"]:
        heapq.heappush(heap, (-child["total"], counter, child, out))
        counter += 1
    kept = 1
    while heap and kept < max_nodes:
        _neg, _n, node, parent = heapq.heappop(heap)
        copy = {k: node[k] for k in ("function", "file", "line", "self", "total")}
        copy["children"] = []
        parent["children"].append(copy)
        kept += 1
        for child in node["children"]:
            heapq.heappush(heap, (-child["total"], counter, child, copy))
            counter += 1
    return out


__all__ = ["ACTIVE", "OPEN", "ProfilerError", "SessionBusy", "SessionNotFound", "NotFinished",
           "complete_if_ready", "cpu",
           "current_session", "delete_session", "export", "hotspots", "list_sessions",
           "memory", "merge_trees", "results", "session_summary", "settle", "speedscope",
           "start_session", "stop_session", "trim_tree"]
