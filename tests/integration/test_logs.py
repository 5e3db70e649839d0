"""The log viewer's service and API against real files, a real store and Redis:
tail, filter and stream on plain, JSON, rotated and truncated logs; the
folder boundary; captured host records; the stream bound."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from flask import Flask

from tests.conftest import ADMIN_PASSWORD
from tests.helpers import token_for

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def _plain(i: int, level: str = "INFO", logger: str = "shop.orders", msg: str | None = None,
           when: datetime | None = None) -> str:
    when = when or T0 + timedelta(seconds=i)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S") + ",000"
    return f"{stamp} {level} {logger}: {msg or f'order {i} placed'}\n"


@pytest.fixture
def logdir(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(settings, logdir):
    """conftest's settings (so its `app` and `client`) reading `logdir`."""
    return settings.model_copy(update={"log_files": f"{logdir}/app.log*,{logdir}/*.jsonl",
                                       "log_dirs": str(logdir), "log_max_streams": 2})


@pytest.fixture
def auth(client, app):
    return token_for(client, app, "vera", "viewer-pass-1234", role="viewer")


def _write(path, lines, mode="w"):
    with open(path, mode, encoding="utf-8") as fh:
        fh.writelines(lines)


# ----------------------------------------------------------------- tail

def test_tail_reads_the_last_lines_of_a_large_file_in_order(client, auth, logdir):
    # ~600 KB: many 64 KiB blocks, so the backwards reader crosses block edges.
    _write(logdir / "app.log", [_plain(i, "ERROR" if i % 7 == 0 else "INFO")
                                for i in range(12_000)])
    resp = client.get("/api/logs/tail?source=app.log&lines=250", headers=auth)
    assert resp.status_code == 200, resp.get_json()
    records = resp.get_json()["records"]
    assert [r["message"] for r in records] == [f"order {i} placed"
                                               for i in range(11_750, 12_000)]
    assert records[-1]["level"] == "INFO" and records[-1]["logger"] == "shop.orders"
    assert records[0]["level"] == ("ERROR" if 11_750 % 7 == 0 else "INFO")
    assert records[-1]["time"].startswith("2026-11-26T15:19:59")


def test_tail_of_a_json_lines_log_gives_fields_and_extras(client, auth, logdir):
    rows = [{"timestamp": "2026-11-26T12:00:00Z", "level": "warn", "logger": "api",
             "message": "slow response", "request_id": "req-1", "route": "/orders",
             "password": "hunter2"},
            {"time": "2026-11-26T12:00:01+00:00", "levelname": "ERROR", "name": "db",
             "msg": "deadlock token=abc123", "user_id": 7}]
    _write(logdir / "svc.jsonl", [json.dumps(r) + "\n" for r in rows])
    resp = client.get(f"/api/logs/tail?source={logdir}/svc.jsonl&lines=10", headers=auth)
    body = resp.get_json()
    assert resp.status_code == 200, body
    first, second = body["records"]
    assert (first["level"], first["logger"], first["request_id"]) == ("WARNING", "api", "req-1")
    assert first["extra"]["route"] == "/orders"
    assert first["extra"]["password"] == "***"          # secrets never leave
    assert (second["level"], second["logger"]) == ("ERROR", "db")
    assert second["message"] == "deadlock token=***"
    assert "hunter2" not in resp.get_data(as_text=True)


def test_tail_of_an_empty_file_and_a_file_without_final_newline(client, auth, logdir):
    (logdir / "app.log").write_text("")
    assert client.get("/api/logs/tail?source=app.log",
                          headers=auth).get_json()["records"] == []
    (logdir / "app.log").write_text(_plain(1) + _plain(2).rstrip("\n"))
    records = client.get("/api/logs/tail?source=app.log&lines=1",
                             headers=auth).get_json()["records"]
    assert [r["message"] for r in records] == ["order 2 placed"]


# ----------------------------------------------------------------- boundary

def test_paths_outside_the_log_folders_are_refused(client, auth, logdir, tmp_path):
    secret = tmp_path / "secret.log"
    secret.write_text(_plain(1, msg="do not show"))
    (logdir / "escape.log").symlink_to(secret)
    (logdir / "app.log").write_text(_plain(1))
    for source in ("../secret.log", str(secret), "escape.log", f"{logdir}/../secret.log",
                   "/etc/passwd"):
        resp = client.get("/api/logs/tail", query_string={"source": source},
                              headers=auth)
        assert resp.status_code == 400, (source, resp.get_json())
        assert resp.get_json()["error"]["code"] == "outside_log_folders"
        assert "do not show" not in resp.get_data(as_text=True)
    for route in ("filter", "stats", "stream", "export"):
        resp = client.get(f"/api/logs/{route}", query_string={"source": "../secret.log"},
                              headers=auth)
        assert resp.status_code == 400, route
    missing = client.get("/api/logs/tail?source=nope.log", headers=auth)
    assert missing.status_code == 404
    listed = client.get("/api/logs/sources", headers=auth).get_json()
    names = [s["name"] for s in listed["sources"]]
    assert "app.log" in names and "captured" in [s["source"] for s in listed["sources"]]
    assert "escape.log" not in names


def test_reading_needs_a_sign_in(client, logdir):
    (logdir / "app.log").write_text(_plain(1))
    assert client.get("/api/logs/tail?source=app.log").status_code == 401


# ----------------------------------------------------------------- filter

def test_filter_by_regex_and_level_pages_into_rotated_files(client, auth, logdir):
    _write(logdir / "app.log.1", [_plain(i, "ERROR" if i % 10 == 0 else "INFO",
                                         msg=f"payment {i} failed code=E{i % 3}")
                                  for i in range(0, 500)])
    _write(logdir / "app.log", [_plain(i, "ERROR" if i % 10 == 0 else "INFO",
                                       msg=f"payment {i} failed code=E{i % 3}")
                                for i in range(500, 1000)])
    expected = [i for i in range(999, -1, -1) if i % 10 == 0 and i % 3 == 1]
    seen, cursor, pages = [], None, 0
    while True:
        query = {"source": "app.log", "level": "ERROR", "q": r"code=E1\b", "regex": "true",
                 "limit": 7}
        if cursor:
            query["cursor"] = cursor
        resp = client.get("/api/logs/filter", query_string=query, headers=auth)
        body = resp.get_json()
        assert resp.status_code == 200, body
        seen += [int(r["message"].split()[1]) for r in body["records"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == expected                       # newest first, no gaps, no repeats
    assert pages >= 5
    assert body["highlight"] == {"pattern": r"code=E1\b", "flags": "gi"}


def test_filter_by_request_id_logger_and_time(client, auth, logdir):
    lines = [_plain(i, logger="shop.orders" if i % 2 else "shop.cart",
                    msg=f"step {i} request_id=r{i % 5}") for i in range(100)]
    _write(logdir / "app.log", lines)
    body = client.get("/api/logs/filter", query_string={
        "source": "app.log", "request_id": "r3", "logger": "shop.orders",
        "since": (T0 + timedelta(seconds=20)).isoformat(),
        "until": (T0 + timedelta(seconds=80)).isoformat()}, headers=auth).get_json()
    got = [int(r["message"].split()[1]) for r in body["records"]]
    assert got == [i for i in range(80, 19, -1) if i % 5 == 3 and i % 2]
    assert all(r["request_id"] == "r3" for r in body["records"])
    # a logger filter keeps children ("shop" has both) but not look-alikes
    assert len(client.get("/api/logs/filter?source=app.log&logger=shop&limit=1000",
                              headers=auth).get_json()["records"]) == 100
    assert client.get("/api/logs/filter?source=app.log&logger=sho",
                          headers=auth).get_json()["records"] == []


def test_filter_regex_anchors_and_case_apply_to_the_message(client, auth, logdir):
    _write(logdir / "app.log", [_plain(1, msg="Order shipped"), _plain(2, msg="re-order later"),
                                _plain(3, msg="order placed via redis://:pw@cache/0")])
    anchored = client.get("/api/logs/filter", query_string={
        "source": "app.log", "q": "^order", "regex": "true"}, headers=auth).get_json()
    assert [r["message"] for r in anchored["records"]] == [
        "order placed via redis://:***@cache/0", "Order shipped"]
    exact = client.get("/api/logs/filter", query_string={
        "source": "app.log", "q": "Order", "case": "true"}, headers=auth).get_json()
    assert [r["message"] for r in exact["records"]] == ["Order shipped"]
    loose = client.get("/api/logs/filter?source=app.log&q=ORDER", headers=auth).get_json()
    assert len(loose["records"]) == 3


def test_filter_refuses_bad_input_naming_the_field(client, auth, logdir):
    (logdir / "app.log").write_text(_plain(1))
    bad_regex = client.get("/api/logs/filter?source=app.log&regex=true&q=(unclosed",
                               headers=auth)
    assert bad_regex.status_code == 400
    assert bad_regex.get_json()["error"]["message"].startswith("q:")
    bad_level = client.get("/api/logs/filter?source=app.log&level=LOUD", headers=auth)
    assert bad_level.status_code == 400 and "level" in bad_level.get_json()["error"]["message"]
    bad_cursor = client.get("/api/logs/filter?source=app.log&cursor=zz", headers=auth)
    assert bad_cursor.status_code == 400
    too_many = client.get("/api/logs/filter?source=app.log&limit=5000", headers=auth)
    assert too_many.status_code == 400
    assert "limit" in too_many.get_json()["error"]["message"]


def test_filter_after_truncation_reads_the_new_content(client, auth, logdir):
    _write(logdir / "app.log", [_plain(i, "ERROR") for i in range(50)])
    _write(logdir / "app.log", [_plain(7, "ERROR", msg="after truncate")])
    body = client.get("/api/logs/filter?source=app.log&level=ERROR",
                          headers=auth).get_json()
    assert [r["message"] for r in body["records"]] == ["after truncate"]


# ----------------------------------------------------------------- stats, export

def test_stats_count_levels_loggers_and_errors(app, settings, logdir):
    from dashapp.services import logs as svc
    now = datetime.now(timezone.utc).replace(microsecond=0)
    lines = []
    for i in range(60):
        level = "ERROR" if i % 4 == 0 else "WARNING" if i % 4 == 1 else "INFO"
        msg = f"charge {i} declined" if level == "ERROR" else f"tick {i}"
        lines.append(_plain(i, level, "pay" if i % 4 == 0 else "web", msg,
                            when=now - timedelta(seconds=120 - i)))
    lines.insert(0, _plain(0, "ERROR", msg="too old", when=now - timedelta(hours=3)))
    _write(logdir / "app.log", lines)
    result = svc.stats(settings, app.extensions["ops"].store, "app.log",
                       minutes=30, now=now)
    assert result["totals"] == {"DEBUG": 0, "INFO": 30, "WARNING": 15, "ERROR": 15,
                                "CRITICAL": 0}
    assert sum(p["count"] for p in result["series"]) == 60
    assert result["top_loggers"] == [{"logger": "web", "count": 45},
                                     {"logger": "pay", "count": 15}]
    assert result["top_errors"][0] == {"message": "charge # declined", "count": 15,
                                       "last": result["top_errors"][0]["last"]}
    assert result["complete"] is True


def test_export_of_filtered_records_as_json_and_txt(client, auth, logdir):
    _write(logdir / "app.log", [_plain(i, "ERROR" if i % 2 else "INFO") for i in range(10)])
    as_json = client.get("/api/logs/export?source=app.log&level=ERROR&format=json",
                             headers=auth)
    assert as_json.status_code == 200
    assert "attachment" in as_json.headers["Content-Disposition"]
    records = json.loads(as_json.get_data(as_text=True))
    assert [r["message"] for r in records] == [f"order {i} placed" for i in (1, 3, 5, 7, 9)]
    as_txt = client.get("/api/logs/export?source=app.log&level=ERROR&format=txt",
                            headers=auth).get_data(as_text=True).splitlines()
    assert as_txt[0] == "2026-11-26T12:00:01+00:00 ERROR shop.orders: order 1 placed"
    assert len(as_txt) == 5


# ----------------------------------------------------------------- stream

def _events(chunks, want, timeout=10.0):
    """Read SSE events from an iterator until `want(events)` is true."""
    events, buffer = [], ""
    deadline = time.monotonic() + timeout
    for chunk in chunks:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = {}
            for line in block.splitlines():
                if line.startswith(":"):
                    continue
                key, _, value = line.partition(": ")
                fields[key] = value
            if "data" in fields:
                events.append({"event": fields.get("event", "message"),
                               "id": fields.get("id"), "data": json.loads(fields["data"])})
        if want(events) or time.monotonic() > deadline:
            return events
    return events


def _messages(events):
    return [e["data"]["message"] for e in events if e["event"] == "message"]


def test_sse_stream_delivers_new_lines_over_http(client, auth, logdir):
    path = logdir / "app.log"
    _write(path, [_plain(i) for i in range(5)])
    resp = client.get("/api/logs/stream?source=app.log&backlog=2", headers=auth,
                          buffered=False)
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Accel-Buffering"] == "no"
    chunks = iter(resp.response)
    try:
        first = _events(chunks, lambda ev: len(_messages(ev)) >= 2)
        assert first[0]["event"] == "hello"
        assert _messages(first) == ["order 3 placed", "order 4 placed"]
        threading.Timer(0.3, _write, (path, [_plain(5, "ERROR", msg="fresh line")], "a")).start()
        later = _events(chunks, lambda ev: "fresh line" in _messages(ev))
        fresh = [e for e in later if e["event"] == "message"][-1]
        assert fresh["data"]["level"] == "ERROR" and fresh["data"]["message"] == "fresh line"
    finally:
        resp.close()


def test_stream_follows_rotation_and_truncation_with_filters(settings, app, logdir):
    from dashapp.services import logs as svc
    path = logdir / "app.log"
    _write(path, [_plain(0, "ERROR", msg="old error")])
    slots = svc.StreamSlots(1)
    gen = svc.stream(settings, app.extensions["ops"].store, "app.log",
                     svc.Filters(levels=("ERROR",)), slots, backlog=5, poll=0.02,
                     max_seconds=20)
    try:
        assert _messages(_events(gen, lambda ev: _messages(ev))) == ["old error"]

        def rotate():
            _write(path, [_plain(1, "INFO", msg="noise"), _plain(2, "ERROR", msg="last before")],
                   "a")
            os.rename(path, str(path) + ".1")
            _write(path, [_plain(3, "ERROR", msg="first after rotation")])
        threading.Timer(0.2, rotate).start()
        got = _events(gen, lambda ev: "first after rotation" in _messages(ev))
        assert _messages(got) == ["last before", "first after rotation"]
        assert {"event": "reset"}.items() <= [e for e in got if e["event"] == "reset"][0].items()

        def truncate():
            _write(path, [_plain(4, "ERROR", msg="x")])  # "w": truncated, shorter
        threading.Timer(0.2, truncate).start()
        got = _events(gen, lambda ev: "x" in _messages(ev))
        assert [e["data"].get("reason") for e in got if e["event"] == "reset"] == ["truncated"]
        assert _messages(got) == ["x"]
        # the slot is taken while the stream is open...
        with pytest.raises(svc.TooManyStreams):
            svc.stream(settings, None, "app.log", svc.Filters(), slots)
    finally:
        gen.close()
    # ...and given back when the client goes away
    svc.stream(settings, None, "app.log", svc.Filters(), slots).close()


def test_streams_beyond_the_bound_get_429(client, auth, logdir):
    (logdir / "app.log").write_text(_plain(1))
    open_ones = [client.get("/api/logs/stream?source=app.log", headers=auth,
                                buffered=False) for _ in range(2)]
    try:
        for resp in open_ones:
            next(iter(resp.response))     # started: holds a slot
        refused = client.get("/api/logs/stream?source=app.log", headers=auth)
        assert refused.status_code == 429
        assert refused.get_json()["error"]["code"] == "too_many_streams"
    finally:
        for resp in open_ones:
            resp.close()
    again = client.get("/api/logs/stream?source=app.log", headers=auth, buffered=False)
    assert again.status_code == 200
    again.close()


# ----------------------------------------------------------------- captured

def test_captured_host_records_are_listed_with_their_request_id(settings, client,
                                                                auth):
    from dashapp import monitor
    host = Flask("host")
    host_log = logging.getLogger("hostapp.orders")
    host_log.setLevel(logging.INFO)

    @host.get("/buy/<int:n>")
    def buy(n):
        host_log.warning("order %d failed password=%s", n, "s3cret", extra={"sku": f"A{n}"})
        return {"n": n}

    mon = monitor(host, settings=settings)
    try:
        host.test_client().get("/buy/41")
        host.test_client().get("/buy/42")
        host_log.info("outside a request")
        mon.flush()
    finally:
        mon.close()
    body = client.get("/api/logs/filter?source=captured&logger=hostapp&q=failed",
                          headers=auth).get_json()
    records = body["records"]
    assert [r["message"] for r in records] == ["order 42 failed password=***",
                                               "order 41 failed password=***"]
    assert all(r["request_id"] and r["level"] == "WARNING" for r in records)
    assert records[0]["request_id"] != records[1]["request_id"]
    assert records[0]["extra"]["sku"] == "A42"
    # the request id finds the record again, and the request's own row exists
    rid = records[1]["request_id"]
    by_id = client.get(f"/api/logs/filter?source=captured&request_id={rid}",
                           headers=auth).get_json()["records"]
    assert [r["message"] for r in by_id] == ["order 41 failed password=***"]
    tail = client.get("/api/logs/tail?source=captured&lines=5&logger=hostapp",
                          headers=auth).get_json()["records"]
    assert tail[-1]["message"] == "outside a request" and tail[-1]["request_id"] is None
    stats = client.get("/api/logs/stats?source=captured&logger=hostapp",
                           headers=auth).get_json()
    assert stats["totals"]["WARNING"] == 2 and stats["totals"]["INFO"] == 1
    # after close() the handler is gone from the host's logging
    from ops_agent.logging import CaptureHandler
    assert not [h for h in logging.getLogger().handlers if isinstance(h, CaptureHandler)]


def test_retention_purges_old_captured_records(app):
    from sqlalchemy import func, select

    from dashapp.services.retention import apply_retention
    from dashapp.store.models import LogRecord
    store = app.extensions["ops"].store
    now = datetime.now(timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(LogRecord.__table__.insert(), [
            {"time": now - timedelta(days=d), "level": "INFO", "levelno": 20, "logger": "x",
             "message": f"{d} days old", "process": "p"} for d in (0, 3, 10)])
    result = apply_retention(store, retention_days=7, rollup_days=90, now=now)
    assert result["log_records"] == 1
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(LogRecord)) == 2


def test_default_sources_are_the_demo_log(tmp_path):
    from dashapp.config import load_settings
    s = load_settings(instance_dir=tmp_path, demo=True, admin_password=ADMIN_PASSWORD)
    log = tmp_path / "demo" / "logs" / "shop.log"
    assert s.log_file_patterns == [str(log), f"{log}.*"]
    assert s.log_folders == [log.parent]
    off = load_settings(instance_dir=tmp_path, demo=False, admin_password=ADMIN_PASSWORD)
    assert off.log_file_patterns == [] and off.log_folders == []
