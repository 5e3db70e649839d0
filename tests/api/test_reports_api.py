"""/api/reports: who may export, run and download reports, and what a bad
request gets back (a 4xx naming the problem, never a 500)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from dashapp.store.models import AuditEvent

SMALL = {"format": "html", "page": "Jobs", "time_range": "24 h",
         "tables": [{"title": "Runs", "columns": [{"field": "id", "header": "Run"}],
                     "rows": [[1], [2]]}]}


def test_signed_out_callers_get_401(client):
    assert client.post("/api/reports/export", json=SMALL).status_code == 401
    assert client.get("/api/reports/scheduled").status_code == 401
    assert client.post("/api/reports/scheduled/run", json={}).status_code == 401
    assert client.get("/api/reports/scheduled/report-20200101T000000Z.html").status_code == 401


def test_viewer_exports_but_cannot_write_a_scheduled_report(client, viewer):
    resp = client.post("/api/reports/export", json=SMALL, headers=viewer)
    assert resp.status_code == 200
    assert '<td class="num">2</td>' in resp.get_data(as_text=True)
    assert resp.headers["Cache-Control"] == "no-store"
    resp = client.post("/api/reports/scheduled/run", json={}, headers=viewer)
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"]


@pytest.mark.parametrize("fmt", ["html", "zip"])
def test_admin_writes_one_now_and_viewer_lists_and_downloads_it(client, admin, viewer, app,
                                                                 fmt):
    listed = client.get("/api/reports/scheduled", headers=viewer).get_json()
    assert listed["reports"] == [] and listed["schedule"] is None
    resp = client.post("/api/reports/scheduled/run", json={"format": fmt}, headers=admin)
    assert resp.status_code == 201, resp.get_json()
    written = resp.get_json()
    assert written["format"] == fmt and written["bytes"] > 0
    listed = client.get("/api/reports/scheduled", headers=viewer).get_json()
    assert [r["name"] for r in listed["reports"]] == [written["name"]]
    got = client.get(f"/api/reports/scheduled/{written['name']}", headers=viewer)
    assert got.status_code == 200 and len(got.data) == written["bytes"]
    assert got.data.startswith(b"PK" if fmt == "zip" else b"<!DOCTYPE html>")
    with app.extensions["ops"].store.session() as sess:
        actions = sess.scalars(select(AuditEvent.action).where(
            AuditEvent.action.like("report_%")).order_by(AuditEvent.id)).all()
    assert actions == ["report_run", "report_download"]


def test_bad_names_and_formats(client, admin):
    assert client.post("/api/reports/scheduled/run", json={"format": "pdf"},
                       headers=admin).status_code == 400
    resp = client.get("/api/reports/scheduled/notes.txt", headers=admin)
    assert resp.status_code == 400 and "report file name" in resp.get_json()["error"]["message"]
    resp = client.get("/api/reports/scheduled/report-20200101T000000Z.zip", headers=admin)
    assert resp.status_code == 404
    resp = client.get("/api/reports/scheduled/..%2F..%2Fops.db", headers=admin)
    assert resp.status_code in (400, 404)


@pytest.mark.parametrize("body", [
    None, "not json", {"format": "zip"}, {"format": "zip", "page": ""},
    {"format": "zip", "page": "x", "figures": [{"figure": {"data": [1, 2]}}]},
    {"format": "zip", "page": "x", "tables": [{"columns": []}]},
    {"format": "zip", "page": "x", "filters": [{"label": "a"}]},
])
def test_malformed_exports_are_400(client, viewer, body):
    if isinstance(body, str):
        resp = client.post("/api/reports/export", data=body, headers={
            **viewer, "Content-Type": "application/json"})
    else:
        resp = client.post("/api/reports/export", json=body, headers=viewer)
    assert resp.status_code == 400, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.get_json()["error"]["message"]


def test_routes_are_in_the_openapi_document(client, viewer):
    doc = client.get("/api/openapi.json", headers=viewer).get_json()
    for path in ("/api/reports/export", "/api/reports/scheduled",
                 "/api/reports/scheduled/run", "/api/reports/scheduled/{name}"):
        assert path in doc["paths"], path
