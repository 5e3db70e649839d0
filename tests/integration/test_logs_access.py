"""What a viewer can make the log viewer read and run, against real files,
a real store and Redis: patterns are RE2's (refused with a reason when they
need backtracking), rotated siblings and hard links cannot lead out of the
log folders, OPS_LOG_FILES alone exposes only its files, and one user cannot
hold every live stream."""
from __future__ import annotations

import json
import os

import dash
import pytest

from tests.helpers import token_for
from tests.integration.test_logs import _plain, _write, logdir  # noqa: F401 (fixture)
from tests.integration.test_logs_page import _call, page_module

SECRET = "SECRET_KEY=do-not-show-this"


@pytest.fixture
def outside(tmp_path):
    """A file outside the log folder, like the console's secret key."""
    path = tmp_path / "secret_key"
    path.write_text(SECRET + "\n")
    return path


@pytest.fixture
def settings(settings, logdir):
    """OPS_LOG_DIRS set: every file of `logdir` may be read."""
    return settings.model_copy(update={"log_files": f"{logdir}/app.log*",
                                       "log_dirs": str(logdir), "log_max_streams": 4,
                                       "log_streams_per_user": 2})


@pytest.fixture
def auth(client, app):
    return token_for(client, app, "vera", "viewer-pass-1234", role="viewer")


def _files_app(settings, log_files: str):
    """A console configured with OPS_LOG_FILES only (OPS_LOG_DIRS unset)."""
    from dashapp import create_app
    return create_app(settings.model_copy(update={"log_files": log_files,
                                                  "log_dirs": None})).server


# ----------------------------------------------------------------- patterns

REFUSED = {r"(?=order)\w+": "lookahead/lookbehind and backreferences are not supported",
           r"(?<!re-)order": "lookahead/lookbehind and backreferences are not supported",
           r"(o)rder \1": "lookahead/lookbehind and backreferences are not supported",
           r"(?P<w>o)(?P=w)": "lookahead/lookbehind and backreferences are not supported",
           r"(?>order)": "atomic groups and possessive quantifiers",
           r"a{5000}": "a repetition count is at most 1000"}


def test_patterns_needing_backtracking_get_a_400_that_says_why(client, auth, logdir):
    _write(logdir / "app.log", [_plain(1, msg="order placed")])
    for pattern, reason in REFUSED.items():
        for route in ("filter", "tail", "stats", "export", "stream"):
            resp = client.get(f"/api/logs/{route}", headers=auth, query_string={
                "source": "app.log", "q": pattern, "regex": "true"})
            body = resp.get_json()
            assert resp.status_code == 400, (route, pattern, body)
            assert body["error"]["code"] == "invalid_request"
            assert body["error"]["message"].startswith("q: " + reason), body
            if "lookahead" in reason:
                assert "(patterns run in linear time)" in body["error"]["message"]
    # the same text searched literally is fine
    plain = client.get("/api/logs/filter", headers=auth, query_string={
        "source": "app.log", "q": r"(?=order)"})
    assert plain.status_code == 200 and plain.get_json()["records"] == []
    too_long = client.get("/api/logs/filter", headers=auth, query_string={
        "source": "app.log", "q": "a" * 501, "regex": "true"})
    assert too_long.status_code == 400


def test_the_logs_page_names_a_refused_pattern(app, logdir):
    page = page_module()
    _write(logdir / "app.log", [_plain(1)])
    levels = ["ERROR", "INFO"]
    (config, error), _ = _call(app, page.configure, "app.log", levels, r"(?<=x)y", ["on"],
                               "", "")
    assert config is dash.no_update and error is not None
    shown = json.dumps(error.to_plotly_json(), default=str)
    assert "lookahead/lookbehind and backreferences are not supported" in shown
    download, props = _call(app, page.export, 1, 0, "app.log", levels, r"(a)\1", ["on"],
                            "", "", triggered="logs-export-json")
    assert "not supported" in props["shell-toast-store"]["data"]["message"]


def test_python_syntax_keeps_its_meaning_under_re2(client, auth, logdir):
    _write(logdir / "app.log", [_plain(1, msg="order 12 shipped"), _plain(2, msg="Order 7"),
                                _plain(3, msg="reorder 123456 later")])

    def found(q, **more):
        body = client.get("/api/logs/filter", headers=auth, query_string={
            "source": "app.log", "q": q, "regex": "true", **more}).get_json()
        assert "records" in body, body
        return [r["message"] for r in body["records"]]
    assert found(r"\d+\Z") == ["Order 7"]                     # \Z: end of the message
    assert found(r"\A[Oo]rder") == ["Order 7", "order 12 shipped"]
    assert found(r"\border \d{,2}\b") == ["Order 7", "order 12 shipped"]
    assert found(r"(?i)^ORDER (?P<n>\d+)") == ["Order 7", "order 12 shipped"]
    assert found(r"[^a-z ]{6}") == ["reorder 123456 later"]
    assert found(r"Ord[e]r", case="true") == ["Order 7"]


# ----------------------------------------------------------------- rotated siblings

def test_rotated_siblings_linking_outside_the_folder_are_skipped(client, auth, logdir,
                                                                 outside, tmp_path):
    _write(logdir / "app.log", [_plain(i, "ERROR", msg=f"current {i}") for i in range(3)])
    (logdir / "app.log.1").symlink_to(outside)            # a symlink out
    os.link(outside, logdir / "app.log.2")                # a hard link to it
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (logdir / "app.log.3").symlink_to(passwd)
    _write(logdir / "app.log.4", [_plain(i, "ERROR", msg=f"rotated {i}") for i in range(2)])
    records, cursor = [], None
    while True:
        query = {"source": "app.log", "limit": 2}
        if cursor:
            query["cursor"] = cursor
        body = client.get("/api/logs/filter", query_string=query, headers=auth).get_json()
        assert "records" in body, body
        records += body["records"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    text = json.dumps(records)
    assert "do-not-show" not in text and "root:x:0" not in text
    assert [r["message"] for r in records] == [
        "current 2", "current 1", "current 0", "rotated 1", "rotated 0"]
    assert body["files"] == ["app.log", "app.log.4"]
    # named outright, the siblings are refused too, and not listed
    for name, code in (("app.log.1", "outside_log_folders"), ("app.log.2", "hard_linked"),
                       ("app.log.3", "outside_log_folders")):
        resp = client.get("/api/logs/tail", query_string={"source": name}, headers=auth)
        assert resp.status_code == 400, (name, resp.get_json())
        assert resp.get_json()["error"]["code"] == code
        assert "do-not-show" not in resp.get_data(as_text=True)
    listed = client.get("/api/logs/sources", headers=auth).get_json()
    assert [s["name"] for s in listed["sources"] if s["kind"] == "file"] == [
        "app.log", "app.log.4"]


# ----------------------------------------------------------------- OPS_LOG_FILES only

def test_without_log_dirs_only_the_configured_files_are_readable(settings, logdir,
                                                                 redis_client):
    _write(logdir / "app.log", [_plain(1, msg="current")])
    _write(logdir / "app.log.1", [_plain(0, msg="rotated")])
    (logdir / ".env").write_text("OPS_SECRET=do-not-show-this\n")
    (logdir / "settings.py").write_text("SECRET_KEY = 'do-not-show-this'\n")
    (logdir / "other.log").write_text(_plain(2, msg="not configured"))
    (logdir / "app.log.2").symlink_to(logdir / "settings.py")   # a sibling that is not one
    server = _files_app(settings, str(logdir / "app.log"))
    try:
        client = server.test_client()
        auth = token_for(client, server, "vera", "viewer-pass-1234", role="viewer")
        for source in (".env", "settings.py", "other.log", "app.log.2",
                       str(logdir / ".env"), f"{logdir}/../logs/settings.py"):
            for route in ("tail", "filter", "export"):
                resp = client.get(f"/api/logs/{route}", query_string={"source": source},
                                  headers=auth)
                assert resp.status_code == 400, (source, route, resp.get_json())
                assert resp.get_json()["error"]["code"] == "outside_log_folders"
                assert "do-not-show" not in resp.get_data(as_text=True)
        refused = client.get("/api/logs/tail?source=.env", headers=auth).get_json()
        assert "OPS_LOG_FILES" in refused["error"]["message"]
        body = client.get("/api/logs/filter?source=app.log", headers=auth).get_json()
        assert [r["message"] for r in body["records"]] == ["current", "rotated"]
        rotated = client.get("/api/logs/tail?source=app.log.1", headers=auth)
        assert rotated.status_code == 200
        assert [s["name"] for s in client.get("/api/logs/sources", headers=auth)
                .get_json()["sources"] if s["kind"] == "file"] == ["app.log"]
    finally:
        server.extensions["ops"].close()
    # a glob names what it matches, but not a symlink it happens to match
    (logdir / "evil.log").symlink_to(logdir / "settings.py")
    server = _files_app(settings, f"{logdir}/*.log")
    try:
        client = server.test_client()
        auth = token_for(client, server, "vera", "viewer-pass-1234")
        assert client.get("/api/logs/tail?source=other.log", headers=auth).status_code == 200
        resp = client.get("/api/logs/tail?source=evil.log", headers=auth)
        assert resp.status_code == 400 and "do-not-show" not in resp.get_data(as_text=True)
        assert client.get("/api/logs/tail?source=.env", headers=auth).status_code == 400
    finally:
        server.extensions["ops"].close()


# ----------------------------------------------------------------- hard links

def test_files_with_more_than_one_hard_link_are_refused(client, auth, logdir, outside):
    _write(logdir / "app.log", [_plain(1, msg="fine")])
    os.link(outside, logdir / "app.log.key")     # matched by the glob, inside the folder
    os.link(logdir / "app.log", logdir / "app.log.copy")  # even a second name of a log
    for name in ("app.log.key", "app.log.copy", str(logdir / "app.log.key")):
        for route in ("tail", "filter", "stats", "export", "stream"):
            resp = client.get(f"/api/logs/{route}", query_string={"source": name},
                              headers=auth)
            body = resp.get_json()
            assert resp.status_code == 400, (name, route, body)
            assert body["error"]["code"] == "hard_linked"
            assert "more than one hard link" in body["error"]["message"]
    assert "do-not-show" not in json.dumps(client.get("/api/logs/sources",
                                                      headers=auth).get_json())
    names = [s["name"] for s in client.get("/api/logs/sources", headers=auth)
             .get_json()["sources"]]
    assert "app.log.key" not in names and "app.log.copy" not in names
    # once the extra name is gone, the log reads again
    os.unlink(logdir / "app.log.copy")
    assert client.get("/api/logs/tail?source=app.log", headers=auth).status_code == 200


# ----------------------------------------------------------------- stream slots

def test_one_user_cannot_take_every_live_stream(client, app, auth, logdir):
    (logdir / "app.log").write_text(_plain(1))
    other = token_for(client, app, "olga", "operator-pass-1234", role="operator")
    held = []
    try:
        for _ in range(2):
            resp = client.get("/api/logs/stream?source=app.log", headers=auth,
                              buffered=False)
            assert resp.status_code == 200
            next(iter(resp.response))            # started: holds a slot
            held.append(resp)
        refused = client.get("/api/logs/stream?source=app.log", headers=auth)
        assert refused.status_code == 429
        error = refused.get_json()["error"]
        assert error["code"] == "too_many_streams"
        assert "at most 2 live log streams per user" in error["message"]
        # another user still gets one: the process has 4
        theirs = client.get("/api/logs/stream?source=app.log", headers=other,
                            buffered=False)
        assert theirs.status_code == 200
        theirs.close()
    finally:
        for resp in held:
            resp.close()
    again = client.get("/api/logs/stream?source=app.log", headers=auth, buffered=False)
    assert again.status_code == 200
    again.close()


def test_a_stream_closed_before_it_started_gives_its_slot_back(settings, logdir):
    from dashapp.services import logs as svc
    (logdir / "app.log").write_text(_plain(1))
    slots = svc.StreamSlots(4, per_user=1)
    svc.stream(settings, None, "app.log", svc.Filters(), slots, user="vera").close()
    assert slots.held_by("vera") == 0 and slots.active == 0
    events = svc.stream(settings, None, "app.log", svc.Filters(), slots, user="vera")
    with pytest.raises(svc.TooManyStreams, match="per user"):
        svc.stream(settings, None, "app.log", svc.Filters(), slots, user="vera")
    events.close()
    svc.stream(settings, None, "app.log", svc.Filters(), slots, user="vera").close()


def test_streamed_records_carry_the_matches_for_the_page_to_highlight(settings, app, logdir):
    """The page highlights these spans (JavaScript string indexes) instead of
    running the pattern in the browser."""
    from dashapp.services import logs as svc
    from tests.integration.test_logs import _events, _messages
    _write(logdir / "app.log", [_plain(1, msg="\U0001F600 card declined, declined again"),
                                _plain(2, msg="order placed")])
    events = svc.stream(settings, app.extensions["ops"].store, "app.log",
                        svc.Filters(text=r"(?i)DECLINED\b", regex=True),
                        svc.StreamSlots(1), backlog=5, max_seconds=5, poll=0.02)
    try:
        got = _events(events, lambda ev: _messages(ev))
    finally:
        events.close()
    records = [e["data"] for e in got if e["event"] == "message"]
    assert [r["message"] for r in records] == ["\U0001F600 card declined, declined again"]
    text16 = records[0]["message"].encode("utf-16-le")
    assert [text16[2 * a:2 * b].decode("utf-16-le") for a, b in records[0]["marks"]] == [
        "declined", "declined"]
    assert records[0]["marks"][0] == [8, 16]      # the emoji is two UTF-16 code units


def test_a_long_scan_answers_partial_and_goes_on_from_its_cursor(client, auth, logdir,
                                                                 monkeypatch):
    """A slow pattern over a big file cannot hold a request for minutes: the
    filter answers after SCAN_SECONDS with what it found and a cursor (here
    the budget is 0 s and chunks 64 KiB, so every chunk is one answer)."""
    from dashapp.services import logs as svc
    monkeypatch.setattr(svc, "SCAN_SECONDS", 0.0)
    monkeypatch.setattr(svc, "SCAN_CHUNK", 64 * 1024)
    _write(logdir / "app.log.1", [_plain(i, msg=f"old {i}" + (" hit" if i % 500 == 0 else ""))
                                  for i in range(3000)])
    _write(logdir / "app.log", [_plain(i, msg=f"new {i}" + (" hit" if i % 500 == 0 else ""))
                                for i in range(3000)])
    seen, cursor, answers, partial = [], None, 0, 0
    while True:
        query = {"source": "app.log", "q": r"\d+ hit", "regex": "true", "limit": 100}
        if cursor:
            query["cursor"] = cursor
        body = client.get("/api/logs/filter", query_string=query, headers=auth).get_json()
        seen += [r["message"] for r in body["records"]]
        partial += body["partial"]
        answers += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert partial >= 4 and answers > 4
    assert seen == [f"new {i} hit" for i in range(2500, -1, -500)] + \
        [f"old {i} hit" for i in range(2500, -1, -500)]
