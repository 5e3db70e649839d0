"""The profiler end to end: a real host app under dashapp.monitor() (the
agent, delivering through the ingest service), the console's API, a real
store (SQLite, then PostgreSQL) and real Redis.

The agent is driven by `exchange()`: a send whose answer carries the
console's start or stop (handled in that send), then a send that delivers
the part the agent queued (its shipper thread sends every second too; both
are safe together)."""
from __future__ import annotations

import csv
import io
import json
import time

import pytest
from flask import Flask

from dashapp.services import profiler as svc

KEPT: list = []


def deliberately_slow() -> int:
    """Burns CPU in its own frame: pure bytecode, no calls (pyinstrument
    charges time inside a C call such as sleep or perf_counter to that call)."""
    total = 0
    for i in range(600_000):
        total += i * i
    return total


def quick() -> int:
    return sum(range(50))


def allocate() -> None:
    KEPT.append(bytearray(2_000_000))  # ALLOC_LINE


ALLOC_LINE = next(i for i, text in enumerate(open(__file__), 1) if "# ALLOC_LINE" in text
                  and "KEPT.append" in text)


@pytest.fixture
def host(settings, app):
    """A monitored host app on the console's store (the console `app` first,
    so the store is migrated)."""
    from dashapp import monitor

    host_app = Flask("shop")

    @host_app.get("/slow")
    def slow():
        return {"n": deliberately_slow()}

    @host_app.get("/fast")
    def fast():
        return {"n": quick()}

    @host_app.get("/alloc")
    def alloc():
        allocate()
        return {"kept": len(KEPT)}

    mon = monitor(host_app, settings=settings)
    yield host_app, mon
    mon.close()
    KEPT.clear()


def _store(app):
    return app.extensions["ops"].store


def exchange(*mons) -> None:
    """Commands to each agent, and what it answered back to the console."""
    for mon in mons:
        mon.flush()
        mon.flush()


def _run_session(app, host_app, mon, paths, **start):
    store = _store(app)
    session = svc.start_session(store, actor="otto", **start)
    exchange(mon)
    client = host_app.test_client()
    for path in paths:
        assert client.get(path).status_code == 200
    svc.stop_session(store, actor="otto")
    exchange(mon)
    return session["id"]


def test_slow_function_is_the_top_hotspot_and_allocation_shows_at_its_line(app, host):
    host_app, mon = host
    store = _store(app)
    session_id = _run_session(app, host_app, mon, ["/slow"] * 4 + ["/fast"] * 4
                              + ["/alloc"] * 5, interval=0.001)

    summary = svc.session_summary(store, session_id)
    assert summary["status"] == "done"
    assert summary["requests"] == 13
    assert summary["samples"] > 0
    assert summary["overhead_per_request_ms"] is not None
    assert [p["process"] for p in summary["processes"]] == [mon.shipper.process]

    spots = svc.cpu(store, session_id)["hotspots"]
    top = spots[0]
    assert top["function"] == "deliberately_slow"
    assert top["file"] == __file__
    assert top["self_share"] > 0.5
    # The profile starts at the view, not at werkzeug or the profiler wrapper.
    tree = svc.cpu(store, session_id)["tree"]
    names = {c["function"] for c in tree["children"]}
    assert "ops_profiled_dispatch" not in names

    mem = svc.memory(store, session_id)
    grown = mem["growth"][0]
    assert (grown["file"], grown["line"]) == (__file__, ALLOC_LINE)
    assert grown["size_diff"] >= 5 * 2_000_000
    assert grown["count_diff"] >= 5
    assert any((s["file"], s["line"]) == (__file__, ALLOC_LINE) for s in mem["by_size"][:3])


def test_no_session_means_the_unprofiled_request_path(app, host):
    host_app, mon = host
    before = host_app.__dict__["full_dispatch_request"]
    exchange(mon)
    assert host_app.__dict__["full_dispatch_request"] is before  # nothing to do: untouched

    store = _store(app)
    svc.start_session(store, actor="otto", memory=False)
    exchange(mon)
    during = host_app.__dict__["full_dispatch_request"]
    assert during is not before and during.__name__ == "ops_profiled_dispatch"
    svc.stop_session(store, actor="otto")
    exchange(mon)
    assert host_app.__dict__["full_dispatch_request"] is before


def test_tracemalloc_is_left_as_the_host_had_it(app, host):
    import tracemalloc
    host_app, mon = host
    assert not tracemalloc.is_tracing()
    _run_session(app, host_app, mon, ["/alloc"])
    assert not tracemalloc.is_tracing()

    tracemalloc.start()
    try:
        _run_session(app, host_app, mon, ["/alloc"])
        assert tracemalloc.is_tracing()  # the host's own tracing is not stopped
    finally:
        tracemalloc.stop()


def test_endpoint_filter_profiles_only_matching_requests(app, host):
    host_app, mon = host
    store = _store(app)
    session_id = _run_session(app, host_app, mon, ["/slow", "/fast", "/fast", "/alloc"],
                              endpoint="/fa*", memory=False)
    summary = svc.session_summary(store, session_id)
    assert summary["requests"] == 2
    functions = {r["function"] for r in svc.cpu(store, session_id)["hotspots"]}
    assert "deliberately_slow" not in functions
    assert svc.memory(store, session_id)["note"] == "Memory tracking was off for this session."


def test_duration_ends_the_session_in_the_host(app, host):
    host_app, mon = host
    store = _store(app)
    before = host_app.__dict__["full_dispatch_request"]
    session = svc.start_session(store, actor="otto", duration=2, memory=False)
    exchange(mon)
    host_app.test_client().get("/fast")
    deadline = time.monotonic() + 15  # the host ends it ~2 s after it started
    while svc.session_summary(store, session["id"])["status"] != "done":
        assert time.monotonic() < deadline, "the duration never ended the session"
        time.sleep(0.2)
        exchange(mon)
    assert host_app.__dict__["full_dispatch_request"] is before
    summary = svc.session_summary(store, session["id"])
    assert summary["requests"] == 1 and summary["elapsed_seconds"] >= 2


def test_parts_from_two_processes_are_merged(app, host, settings):
    """Two monitored apps (as two workers would be) on one store."""
    from dashapp import monitor
    host_app, mon = host
    other = Flask("shop2")

    @other.get("/slow")
    def slow():
        return {"n": deliberately_slow()}

    mon2 = monitor(other, settings=settings)
    mon2.shipper.process = mon.shipper.process + "-b"  # a second worker's name
    try:
        store = _store(app)
        session = svc.start_session(store, actor="otto", memory=False)
        exchange(mon, mon2)
        host_app.test_client().get("/slow")
        other.test_client().get("/slow")
        other.test_client().get("/slow")
        svc.stop_session(store, actor="otto")
        exchange(mon)
        assert svc.session_summary(store, session["id"])["status"] == "stopping"
        exchange(mon2)
        summary = svc.session_summary(store, session["id"])
        assert summary["status"] == "done"
        assert sorted(p["requests"] for p in summary["processes"]) == [1, 2]
        assert summary["requests"] == 3
        spots = svc.cpu(store, session["id"])["hotspots"]
        assert spots[0]["function"] == "deliberately_slow"
        slow_row = spots[0]
        assert slow_row["self_seconds"] == pytest.approx(
            svc.cpu(store, session["id"])["tree"]["total"] * slow_row["self_share"], rel=1e-3)
    finally:
        mon2.close()


def _parts(app, session_id):
    from sqlalchemy import select

    from dashapp.store.models import ProfilePart
    with _store(app).engine.connect() as conn:
        return conn.execute(select(ProfilePart.__table__).where(
            ProfilePart.session_id == session_id)).all()


def test_standard_library_sampler_when_pyinstrument_is_missing(app, host, monkeypatch):
    """The agent depends on nothing: without pyinstrument its own sampler
    (a thread reading the profiled threads' stacks) makes the same tree."""
    import ops_agent.profiler as agent_profiler
    host_app, mon = host
    monkeypatch.setattr(agent_profiler, "_load_pyinstrument", lambda: None)
    before = host_app.__dict__["full_dispatch_request"]
    store = _store(app)
    session_id = _run_session(app, host_app, mon, ["/slow"] * 3 + ["/fast"], memory=False)
    summary = svc.session_summary(store, session_id)
    assert summary["status"] == "done" and summary["requests"] == 4
    assert summary["samples"] > 0
    cpu = svc.cpu(store, session_id)
    top = cpu["hotspots"][0]
    assert (top["function"], top["file"]) == ("deliberately_slow", __file__)
    assert top["self_share"] > 0.5
    assert "ops_profiled_dispatch" not in {c["function"] for c in cpu["tree"]["children"]}
    (part,) = _parts(app, session_id)
    assert part.tree["sampler"] == agent_profiler.STDLIB_SAMPLER
    assert host_app.__dict__["full_dispatch_request"] is before
    assert not any(t.name == "ops-agent-sampler" for t in __import__("threading").enumerate())


def test_a_session_targets_one_application_or_all(app, host, monkeypatch):
    from datetime import timedelta
    monkeypatch.setattr(svc, "PICKUP_GRACE", timedelta(0))  # billing's fails at once
    host_app, mon = host
    store = _store(app)
    before = host_app.__dict__["full_dispatch_request"]
    other = svc.start_session(store, actor="otto", app="billing", memory=False)
    assert other["app"] == "billing"
    exchange(mon)
    assert host_app.__dict__["full_dispatch_request"] is before  # not shop's session
    assert _parts(app, other["id"]) == []
    assert svc.stop_session(store, actor="otto")["status"] == "failed"

    mine = svc.start_session(store, actor="otto", app="shop", memory=False)
    exchange(mon)
    assert host_app.__dict__["full_dispatch_request"].__name__ == "ops_profiled_dispatch"
    host_app.test_client().get("/fast")
    svc.stop_session(store, actor="otto")
    exchange(mon)
    (part,) = _parts(app, mine["id"])
    assert (part.app, part.status, part.requests) == ("shop", "done", 1)
    assert svc.session_summary(store, mine["id"])["status"] == "done"


def test_the_agent_joins_and_ends_on_its_own_shipper_thread(app, host):
    """No flush: the batch the agent sends each second carries the session."""
    host_app, mon = host
    store = _store(app)
    session = svc.start_session(store, actor="otto", memory=False)
    started = time.monotonic()
    while host_app.__dict__["full_dispatch_request"].__name__ != "ops_profiled_dispatch":
        assert time.monotonic() - started < 2.5, "the session did not reach the agent"
        time.sleep(0.05)
    host_app.test_client().get("/fast")
    svc.stop_session(store, actor="otto")
    deadline = time.monotonic() + 10
    while svc.session_summary(store, session["id"])["status"] != "done":
        assert time.monotonic() < deadline, "the part never came back"
        time.sleep(0.1)
    assert svc.session_summary(store, session["id"])["requests"] == 1


def test_a_start_that_never_reached_the_agent_fails_its_part(app, host):
    """The console recorded the join but the answer was lost: at stop the
    agent says it was not profiling, and the session still ends."""
    from datetime import datetime, timezone

    from dashapp.store.models import ProfilePart
    host_app, mon = host
    store = _store(app)
    session = svc.start_session(store, actor="otto", memory=False)
    with store.engine.begin() as conn:
        conn.execute(ProfilePart.__table__.insert().values(
            session_id=session["id"], process=mon.shipper.process, status="running",
            started_at=datetime.now(timezone.utc), app="shop"))
    exchange(mon)
    assert host_app.__dict__["full_dispatch_request"].__name__ != "ops_profiled_dispatch"
    svc.stop_session(store, actor="otto")
    exchange(mon)
    summary = svc.session_summary(store, session["id"])
    assert summary["status"] == "done"
    (process,) = summary["processes"]
    assert process["status"] == "failed" and "was not profiling" in process["error"]


def test_parts_from_an_agent_are_bounded():
    from dashapp.ingest.profiler import MAX_DEPTH, clean_memory, clean_tree
    deep = {"function": "f", "file": "x.py", "line": 1, "self": 0.1, "total": 1.0,
            "children": []}
    node = deep
    for _ in range(MAX_DEPTH + 50):
        child = {"function": "g", "file": "x.py", "line": 2, "self": 0.0, "total": 1.0,
                 "children": []}
        node["children"].append(child)
        node = child
    node["children"].append("junk")
    tree = clean_tree(deep)
    assert tree["truncated"] is True
    assert clean_tree("junk") is None
    memory = clean_memory({"by_size": [{"file": "x.py", "line": "7", "size": -1.5}, 3],
                           "peak": 10})
    assert memory["by_size"] == [{"file": "x.py", "line": 0, "size": 0, "count": 0}]
    assert memory["peak"] == 10 and memory["growth"] == []


def test_a_session_no_process_picks_up_fails_with_a_reason(app, monkeypatch):
    from datetime import timedelta
    store = _store(app)
    monkeypatch.setattr(svc, "PICKUP_GRACE", timedelta(0))
    session = svc.start_session(store, actor="otto")
    result = svc.stop_session(store, actor="otto")
    assert result["status"] == "failed"
    assert "No monitored process" in result["error"]
    assert svc.current_session(store) is None
    # A new session may start now.
    assert svc.start_session(store, actor="otto")["id"] == session["id"] + 1


# ------------------------------------------------------------------ the API

def test_api_roles_and_audit(client, app, viewer, operator):
    resp = client.post("/api/profiler/start", json={}, headers=viewer)
    assert resp.status_code == 403
    resp = client.post("/api/profiler/stop", json={}, headers=viewer)
    assert resp.status_code == 403
    assert client.get("/api/profiler/sessions", headers=viewer).status_code == 200

    resp = client.post("/api/profiler/start", json={"duration": 30, "endpoint": "/api/*"},
                       headers=operator)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "requested" and body["endpoint"] == "/api/*"

    again = client.post("/api/profiler/start", json={}, headers=operator)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "session_open"

    listing = client.get("/api/profiler/sessions", headers=viewer).get_json()
    assert listing["current"]["id"] == body["id"]

    resp = client.get(f"/api/profiler/{body['id']}/cpu", headers=viewer)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "not_finished"

    stop = client.post("/api/profiler/stop", json={}, headers=operator)
    assert stop.status_code == 200 and stop.get_json()["status"] in ("stopping", "failed")

    from dashapp.store.models import AuditEvent
    from sqlalchemy import select
    with _store(app).engine.connect() as conn:
        actions = conn.execute(select(AuditEvent.action, AuditEvent.outcome, AuditEvent.actor)
                               .where(AuditEvent.action.like("profiler_%"))
                               .order_by(AuditEvent.id)).all()
    assert [(a, o) for a, o, _ in actions] == [("profiler_start", "success"),
                                                ("profiler_start", "failure"),
                                                ("profiler_stop", "success")]
    assert {actor for *_, actor in actions} == {"otto"}


def test_api_input_errors(client, operator, viewer):
    resp = client.post("/api/profiler/start", json={"interval": 5}, headers=operator)
    assert resp.status_code == 400
    assert "interval" in resp.get_json()["error"]["message"]
    resp = client.post("/api/profiler/start", json={"duration": 0}, headers=operator)
    assert resp.status_code == 400
    assert client.get("/api/profiler/999/results", headers=viewer).status_code == 404
    resp = client.post("/api/profiler/stop", json={}, headers=operator)
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    resp = client.get("/api/profiler/1/export?format=pdf", headers=viewer)
    assert resp.status_code == 400 and "format" in resp.get_json()["error"]["message"]


def test_api_results_and_exports(client, app, host, viewer, operator):
    host_app, mon = host
    start = client.post("/api/profiler/start", json={"interval": 0.001}, headers=operator)
    session_id = start.get_json()["id"]
    exchange(mon)
    for path in ["/slow", "/slow", "/alloc", "/fast"]:
        host_app.test_client().get(path)
    client.post("/api/profiler/stop", json={"id": session_id}, headers=operator)
    exchange(mon)

    summary = client.get(f"/api/profiler/{session_id}/results", headers=viewer).get_json()
    assert summary["status"] == "done" and summary["requests"] == 4
    cpu = client.get(f"/api/profiler/{session_id}/cpu?limit=5", headers=viewer).get_json()
    assert cpu["hotspots"][0]["function"] == "deliberately_slow"
    assert cpu["hotspots"][0]["location"] == f"{__file__}:{cpu['hotspots'][0]['line']}"
    assert cpu["tree"] is None and len(cpu["hotspots"]) <= 5
    mem = client.get(f"/api/profiler/{session_id}/memory", headers=viewer).get_json()
    assert mem["growth"][0]["line"] == ALLOC_LINE

    resp = client.get(f"/api/profiler/{session_id}/export?format=speedscope", headers=viewer)
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    doc = json.loads(resp.data)
    frames = doc["shared"]["frames"]
    profile = doc["profiles"][0]
    assert profile["type"] == "sampled" and len(profile["samples"]) == len(profile["weights"])
    heaviest = profile["samples"][profile["weights"].index(max(profile["weights"]))]
    assert frames[heaviest[-1]]["name"] == "deliberately_slow"

    resp = client.get(f"/api/profiler/{session_id}/export?format=csv", headers=viewer)
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0]["function"] == "deliberately_slow"

    resp = client.get(f"/api/profiler/{session_id}/export?format=html", headers=viewer)
    page = resp.get_data(as_text=True)
    assert resp.mimetype == "text/html" and "deliberately_slow" in page
    assert "<script" not in page and "http://" not in page and "//cdn" not in page


def test_api_delete_is_for_admins_and_keeps_open_sessions(client, admin, operator, viewer,
                                                          monkeypatch):
    from datetime import timedelta
    monkeypatch.setattr(svc, "PICKUP_GRACE", timedelta(0))  # no host: failed at once
    started = client.post("/api/profiler/start", json={}, headers=operator).get_json()
    url = f"/api/profiler/{started['id']}"
    assert client.delete(url, headers=operator).status_code == 403
    resp = client.delete(url, headers=admin)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "session_open"
    client.post("/api/profiler/stop", json={}, headers=operator)
    assert client.delete(url, headers=admin).get_json() == {"id": started["id"],
                                                            "deleted": True}
    assert client.get(url + "/results", headers=viewer).status_code == 404
