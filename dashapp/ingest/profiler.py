"""Profiling sessions between the console and the agents.

`commands()` runs for every batch an agent sends: a session of the batch's
application (or of every application: app '') that this process has not
joined yet is joined here (its `ops_profile_part` inserted, status
running; the session goes requested -> running) and handed to the agent as
a "profile" start command; a stopping session whose part from this process
is still running is handed over as a stop command, every batch until the
part arrives (the agent ignores a stop it already carried out). With no
open session this costs one indexed SELECT per batch.

The agent answers with one "profiles" record per part (`apply_profiles`),
or with a failed command result when it cannot take part (`apply_result`);
either way the session is done once every joined part is in
(`complete_if_ready`).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from dashapp.store import Store
from dashapp.store.models import ProfilePart, ProfileSession, as_utc

logger = logging.getLogger(__name__)

ACTIVE = ("requested", "running")
OPEN = ("requested", "running", "stopping")
MAX_SESSION = timedelta(hours=1)  # a session without a duration ends after this
MAX_NODES = 20_000                # call-tree nodes kept from one part
MAX_DEPTH = 120
MAX_SITES = 200                   # memory sites kept per list
TEXT = 1_000


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def complete_if_ready(conn, session_id: int) -> bool:
    """A stopping session whose parts are all written becomes done."""
    status = conn.scalar(select(ProfileSession.status).where(ProfileSession.id == session_id))
    if status != "stopping":
        return status == "done"
    pending = conn.scalar(select(ProfilePart.id).where(
        ProfilePart.session_id == session_id, ProfilePart.status == "running").limit(1))
    has_parts = conn.scalar(select(ProfilePart.id).where(
        ProfilePart.session_id == session_id).limit(1))
    if pending is not None or has_parts is None:
        return False
    conn.execute(update(ProfileSession).where(
        ProfileSession.id == session_id, ProfileSession.status == "stopping").values(
        status="done", ended_at=utcnow()))
    return True


# ----------------------------------------------------------------- commands

def commands(store: Store, meta) -> list[dict]:
    """Start and stop commands for the process that sent this batch."""
    with store.engine.connect() as conn:
        sessions = conn.execute(select(ProfileSession.__table__).where(
            ProfileSession.status.in_(OPEN),
            ProfileSession.app.in_(("", meta.app))).order_by(ProfileSession.id)).all()
        if not sessions:
            return []
        parts = dict(conn.execute(select(ProfilePart.session_id, ProfilePart.status).where(
            ProfilePart.session_id.in_([s.id for s in sessions]),
            ProfilePart.process == meta.process)).all())
    out = []
    for session in sessions:
        part = parts.get(session.id)
        if part is None and session.status in ACTIVE:
            command = _join(store, meta, session.id)
            if command is not None:
                out.append(command)
        elif part == "running" and session.status == "stopping":
            out.append({"id": f"profile:{session.id}:stop", "type": "profile",
                        "action": "stop", "session": session.id})
    return out


def _join(store: Store, meta, session_id: int) -> dict | None:
    """This process takes part: its part row, the session running; the
    start command (None when the session ended meanwhile)."""
    now = utcnow()
    try:
        with store.engine.begin() as conn:
            conn.execute(update(ProfileSession).where(
                ProfileSession.id == session_id, ProfileSession.status == "requested",
            ).values(status="running", started_at=now))
            current = conn.execute(select(ProfileSession.__table__).where(
                ProfileSession.id == session_id)).first()
            if current is None or current.status not in ACTIVE:
                return None
            started = as_utc(current.started_at) or now
            length = (timedelta(seconds=current.duration_s) if current.duration_s
                      else MAX_SESSION)
            seconds = (started + length - now).total_seconds()
            if seconds <= 0:
                return None  # its time is up; the console's settle() ends it
            conn.execute(insert(ProfilePart).values(
                session_id=session_id, process=meta.process, status="running",
                started_at=now, requests=0, samples=0, profiled_seconds=0.0,
                overhead_seconds=0.0, app=meta.app, release=meta.release))
    except IntegrityError:
        return None  # joined by a concurrent batch of the same process
    logger.info("profiler: %s (%s) joins session %s", meta.process, meta.app, session_id)
    return {"id": f"profile:{session_id}", "type": "profile", "action": "start",
            "session": session_id, "interval": current.interval_s,
            "endpoint": current.endpoint, "memory": bool(current.memory),
            "seconds": round(seconds, 3)}


# ----------------------------------------------------------------- results

def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) \
        and 0 <= value < 2**31 else 0


def _num(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and 0 <= value < 1e9:
        return float(value)
    return 0.0


def _big(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) \
        and -2**62 < value < 2**62 else 0


def _node(raw: dict) -> dict:
    return {"function": str(raw.get("function") or "?")[:TEXT],
            "file": str(raw.get("file") or "")[:TEXT],
            "line": _int(raw.get("line")), "self": _num(raw.get("self")),
            "total": _num(raw.get("total")), "children": []}


def clean_tree(raw: Any) -> dict | None:
    """An agent's call tree in the shape the service reads, bounded in
    nodes and depth (walked without recursion)."""
    if not isinstance(raw, dict):
        return None
    root = _node(raw)
    root["truncated"] = bool(raw.get("truncated"))
    if raw.get("sampler"):
        root["sampler"] = str(raw["sampler"])[:200]
    nodes = 1
    stack = [(raw, root, 0)]
    while stack:
        source, target, depth = stack.pop()
        children = source.get("children")
        if not isinstance(children, list):
            continue
        for child in children:
            if not isinstance(child, dict):
                continue
            if nodes >= MAX_NODES or depth >= MAX_DEPTH:
                root["truncated"] = True
                break
            copy = _node(child)
            target["children"].append(copy)
            nodes += 1
            stack.append((child, copy, depth + 1))
    return root


def clean_memory(raw: Any) -> dict | None:
    if not isinstance(raw, dict):
        return None

    def sites(key: str, fields: tuple[str, ...]) -> list[dict]:
        found = raw.get(key)
        out = []
        for site in found[:MAX_SITES] if isinstance(found, list) else []:
            if isinstance(site, dict):
                out.append({"file": str(site.get("file") or "")[:TEXT],
                            "line": _int(site.get("line")),
                            **{f: _big(site.get(f)) for f in fields}})
        return out

    return {"by_size": sites("by_size", ("size", "count")),
            "by_count": sites("by_count", ("size", "count")),
            "growth": sites("growth", ("size_diff", "count_diff", "size", "count")),
            "total_size": _big(raw.get("total_size")),
            "total_count": _big(raw.get("total_count")),
            "growth_total": _big(raw.get("growth_total")), "peak": _big(raw.get("peak"))}


def _session_of(conn, meta, session_id: Any):
    """The session's status when it is one this application may write to."""
    if not isinstance(session_id, int) or isinstance(session_id, bool):
        return None
    row = conn.execute(select(ProfileSession.status, ProfileSession.app).where(
        ProfileSession.id == session_id)).first()
    if row is None or row.app not in ("", meta.app):
        return None
    return row.status


def apply_profiles(store: Store, meta, records: list) -> None:
    """Each record is one process's part: written over its running row,
    then the session completes if it was the last one."""
    for rec in records:
        if not isinstance(rec, dict):
            continue
        session_id = rec.get("session")
        notes = rec.get("notes") if isinstance(rec.get("notes"), list) else []
        error = "; ".join(str(n) for n in notes if n)[:2000] or None
        cancelled = rec.get("status") == "cancelled"
        if cancelled:
            error = error or "Cancelled in the monitored process."
        values = dict(status="failed" if cancelled else "done", ended_at=meta.received_at,
                      requests=_int(rec.get("requests")), samples=_int(rec.get("samples")),
                      profiled_seconds=_num(rec.get("profiled_seconds")),
                      overhead_seconds=_num(rec.get("overhead_seconds")),
                      tree=None if cancelled else clean_tree(rec.get("tree")),
                      memory=None if cancelled else clean_memory(rec.get("memory")),
                      error=error, release=meta.release)
        with store.engine.begin() as conn:
            status = _session_of(conn, meta, session_id)
            if status is None:
                logger.info("profiler: %s sent a part of unknown session %r; ignored",
                            meta.process, str(session_id)[:20])
                continue
            written = conn.execute(update(ProfilePart).where(
                ProfilePart.session_id == session_id, ProfilePart.process == meta.process,
                ProfilePart.status == "running").values(**values)).rowcount
            if not written:
                logger.info("profiler: part of session %s from %s came after it was "
                            "given up; ignored", session_id, meta.process)
            if rec.get("expired") and status in ACTIVE:
                conn.execute(update(ProfileSession).where(
                    ProfileSession.id == session_id, ProfileSession.status.in_(ACTIVE)
                ).values(status="stopping", stop_requested_at=meta.received_at))
            complete_if_ready(conn, session_id)


def apply_result(store: Store, meta, result: dict) -> None:
    """A command the agent could not carry out: its part fails with the
    agent's reason (a success needs nothing: the part comes as a record)."""
    if result.get("outcome") == "succeeded":
        return
    session_id = result.get("session")
    if session_id is None:  # a handler's exception: the id says which session
        try:
            session_id = int(str(result.get("id") or "").split(":")[1])
        except (IndexError, ValueError):
            return
    message = str(result.get("message") or "The agent refused the command.")[:2000]
    with store.engine.begin() as conn:
        if _session_of(conn, meta, session_id) is None:
            return
        conn.execute(update(ProfilePart).where(
            ProfilePart.session_id == session_id, ProfilePart.process == meta.process,
            ProfilePart.status == "running").values(
            status="failed", ended_at=meta.received_at, error=message))
        complete_if_ready(conn, session_id)


APPLIERS = {"profiles": apply_profiles}
RESULTS = {"profile": apply_result}
