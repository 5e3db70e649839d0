"""GET /api/audit: filters, paging and the CSV export, against the real app."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

from dashapp.security import audit
from dashapp.store.models import AuditEvent


def _seed(app) -> None:
    """A small trail with known actors, actions, targets, IPs and times."""
    store = app.extensions["ops"].store
    now = datetime.now(timezone.utc)
    rows = [
        ("alice", "cache_delete", "success", "cache:shop:product:1", "10.0.0.1", 5),
        ("alice", "backup_restore", "failure", "backup:nightly.sql", "10.0.0.1", 4),
        ("bob", "login", "failure", "", "10.0.0.2", 3),
        ("bob", "permission_denied", "denied", "POST /api/config/app.yaml", "10.0.0.2", 2),
        ("carol", "config_save", "success", "=HYPERLINK(\"http://evil\")", "10.0.0.3", 1),
        ("carol", "job_retry", "success", "100% done_job", "10.0.0.3", 0),
    ]
    with store.session() as sess:
        for actor, action, outcome, target, ip, hours_ago in rows:
            sess.add(AuditEvent(actor=actor, action=action, outcome=outcome, target=target,
                                ip=ip, time=now - timedelta(hours=hours_ago, minutes=1),
                                details={"note": f"+{actor}"}))


def _get(client, admin, **query):
    resp = client.get("/api/audit", query_string=query, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_filters(app, client, admin):
    _seed(app)
    assert {e["action"] for e in _get(client, admin, actor="alice")["events"]} == \
        {"cache_delete", "backup_restore"}
    assert [e["actor"] for e in _get(client, admin, outcome="denied")["events"]] == ["bob"]
    assert [e["action"] for e in _get(client, admin, action="login,job_retry")["events"]] \
        == ["job_retry", "login"]
    # target: a case-insensitive substring; % and _ are literal, not wildcards
    assert [e["actor"] for e in _get(client, admin, target="SHOP:product")["events"]] \
        == ["alice"]
    assert [e["action"] for e in _get(client, admin, target="100%")["events"]] \
        == ["job_retry"]
    assert _get(client, admin, target="0%_")["events"] == []
    assert {e["actor"] for e in _get(client, admin, ip="10.0.0.2")["events"]} == {"bob"}
    now = datetime.now(timezone.utc)
    window = _get(client, admin, since=(now - timedelta(hours=3, minutes=30)).isoformat(),
                  until=(now - timedelta(hours=1, minutes=30)).isoformat())
    assert [e["action"] for e in window["events"]] == ["permission_denied", "login"]
    naive = _get(client, admin, since=(now - timedelta(minutes=30)).replace(
        tzinfo=None).isoformat(), actor="carol")
    assert [e["action"] for e in naive["events"]] == ["job_retry"]


def test_bad_filters_are_400(client, admin):
    for query, field in (({"outcome": "maybe"}, "outcome"), ({"limit": 0}, "limit"),
                         ({"limit": 5000}, "limit"), ({"since": "yesterday"}, "since"),
                         ({"format": "xml"}, "format")):
        resp = client.get("/api/audit", query_string=query, headers=admin)
        assert resp.status_code == 400, query
        assert resp.get_json()["error"]["fields"][0]["field"] == field
    resp = client.get("/api/audit", query_string={"since": "2026-01-02T00:00:00",
                                                  "until": "2026-01-01T00:00:00"},
                      headers=admin)
    assert resp.status_code == 400 and "since must be before until" in \
        resp.get_json()["error"]["message"]
    resp = client.get("/api/audit", query_string={"offset": 5, "before_id": 3}, headers=admin)
    assert resp.status_code == 400


def test_offset_and_keyset_paging_agree(app, client, admin):
    store = app.extensions["ops"].store
    for i in range(25):
        audit.record(store, actor="pager", action="cache_delete", outcome="success",
                     target=f"key:{i}")
    seen, before = [], None
    while True:
        query = {"actor": "pager", "limit": 10}
        if before:
            query["before_id"] = before
        page = _get(client, admin, **query)
        seen += [e["target"] for e in page["events"]]
        if not page["has_more"]:
            assert page["next_before_id"] is None
            break
        before = page["next_before_id"]
    assert seen == [f"key:{i}" for i in reversed(range(25))]
    by_offset = _get(client, admin, actor="pager", limit=10, offset=20)["events"]
    assert [e["target"] for e in by_offset] == seen[20:]


def test_csv_export_is_filtered_complete_and_formula_safe(app, client, admin):
    _seed(app)
    store = app.extensions["ops"].store
    for i in range(1500):  # more than one batch of the stream
        audit.record(store, actor="bulk", action="cache_delete", outcome="success",
                     target=f"k{i}", ip="10.9.9.9")
    resp = client.get("/api/audit", query_string={"format": "csv", "actor": "bulk"},
                      headers=admin)
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0] == ["id", "time", "actor", "action", "target", "outcome", "ip", "details"]
    assert len(rows) == 1 + 1500 and rows[1][4] == "k1499" and rows[-1][4] == "k0"

    resp = client.get("/api/audit", query_string={"format": "csv", "actor": "carol"},
                      headers=admin)
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    formula = next(r for r in rows if r["action"] == "config_save")
    assert formula["target"] == "'=HYPERLINK(\"http://evil\")"
    assert formula["details"] == '{"note": "+carol"}'  # starts with {, left alone
    from dashapp.services.users import csv_safe
    assert [csv_safe(v) for v in ("+1", "-2", "@x", "=y", "\tz", "ok", 5)] == \
        ["'+1", "'-2", "'@x", "'=y", "'\tz", "ok", 5]
    # The export itself is in the trail.
    exports = _get(client, admin, action="audit_export")["events"]
    assert exports[0]["actor"] == "admin" and exports[0]["details"] == {"actor": "carol"}


def test_only_admins_read_the_trail(client, operator, viewer):
    for headers in (operator, viewer):
        assert client.get("/api/audit", headers=headers).status_code == 403
        assert client.get("/api/audit", query_string={"format": "csv"},
                          headers=headers).status_code == 403
    assert client.get("/api/audit", query_string={"format": "csv"}).status_code == 401
