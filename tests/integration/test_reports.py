"""Exports of a page's view and scheduled reports, end to end against the
real app: charts rendered by kaleido with the system Chromium, tables as
CSV, bundled as ZIP or one HTML file; scheduled reports built from real
store data and written into the reports folder.

What a user would notice: the ZIP holds one CSV per table and a real PNG
per chart; a cell that would run as a spreadsheet formula does not; a
label with markup is shown as text in the HTML report; a chart that cannot
be drawn is listed as failed, not a broken export; limits are clear 4xx
errors; a scheduled report is written once, into its folder, and old ones
are pruned.
"""
from __future__ import annotations

import base64
import csv
import io
import re
import struct
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from dashapp.services import reports as svc
from dashapp.services import retention
from dashapp.store.models import AuditEvent, BackgroundJob, QueryLog, RequestLog

pytestmark = pytest.mark.skipif(
    not __import__("shutil").which("chromium") and not __import__("os").path.exists(
        "/usr/bin/chromium"), reason="Chromium is needed to render charts")

NOW = datetime.now(timezone.utc)


def figure(title="Latency", n=3):
    return {"data": [{"type": "scatter", "mode": "lines", "name": "p95",
                      "x": list(range(n)), "y": [i * 1.5 for i in range(n)]}],
            "layout": {"title": {"text": title}, "xaxis": {"range": [0, 1]}}}


def payload(fmt="zip", **extra):
    body = {
        "format": fmt, "page": "API metrics", "path": "/endpoints",
        "time_range": "1 h",
        "filters": [{"label": "Method", "value": "GET"},
                    {"label": "<script>alert('x')</script>",
                     "value": "<img src=x onerror=alert(1)>"}],
        "figures": [{"title": "Response time", "figure": figure(), "width": 800, "height": 400},
                    {"title": "Request volume", "figure": {
                        "data": [{"type": "bar", "x": ["a", "b"], "y": [2, 5]}], "layout": {}},
                     "width": 600, "height": 300}],
        "tables": [{"title": "Endpoints",
                    "columns": [{"field": "endpoint", "header": "Endpoint"},
                                {"field": "count", "header": "Requests"},
                                {"field": "note", "header": "Note"}],
                    "rows": [["/api/orders", 120, "=HYPERLINK(\"http://evil\")"],
                             ["/api/items", 7, "+1-2"],
                             ["/api/users", 3, "-12.5"],
                             ["@SUM(A1)", 0, None]]}],
    }
    body.update(extra)
    return body


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def export(client, headers, body):
    return client.post("/api/reports/export", json=body, headers=headers)


# ------------------------------------------------------------------ ZIP

def test_zip_holds_cover_csv_and_real_pngs(client, viewer, app):
    resp = export(client, viewer, payload("zip"))
    assert resp.status_code == 200, resp.get_json()
    assert resp.mimetype == "application/zip"
    assert re.search(r'filename="?api-metrics-\d{8}-\d{6}Z\.zip',
                     resp.headers["Content-Disposition"])
    zf = zipfile.ZipFile(io.BytesIO(resp.data))
    names = zf.namelist()
    assert names[:2] == ["cover.txt", "cover.html"]
    pngs = sorted(n for n in names if n.endswith(".png"))
    assert pngs == ["charts/01-response-time.png", "charts/02-request-volume.png"]
    # rendered at scale 2 of the size the browser reported
    assert png_size(zf.read(pngs[0])) == (1600, 800)
    assert png_size(zf.read(pngs[1])) == (1200, 600)

    cover = zf.read("cover.txt").decode()
    assert "API metrics" in cover and "Time range:  1 h" in cover
    assert "Method: GET" in cover and "By:          vera" in cover
    assert "tables/01-endpoints.csv" in cover

    text = zf.read("tables/01-endpoints.csv").decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Endpoint", "Requests", "Note"]
    assert rows[1] == ["/api/orders", "120", "'=HYPERLINK(\"http://evil\")"]
    assert rows[2][2] == "'+1-2"
    assert rows[3][2] == "-12.5"           # a plain negative number stays a number
    assert rows[4] == ["'@SUM(A1)", "0", ""]

    # the export is in the audit trail: who, which page, which format
    with app.extensions["ops"].store.session() as sess:
        event = sess.scalars(select(AuditEvent).where(
            AuditEvent.action == "report_export")).one()
    assert event.actor == "vera" and event.target == "page:API metrics"
    assert event.details["format"] == "zip" and event.details["rows"] == 4


def test_html_report_is_self_contained_and_escapes_user_text(client, viewer):
    resp = export(client, viewer, payload("html"))
    assert resp.status_code == 200, resp.get_json()
    assert resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x" not in page
    # charts embedded as PNG data URIs; nothing is loaded from elsewhere
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2
    assert png_size(base64.b64decode(images[0])) == (1600, 800)
    assert not re.search(r'(src|href)="https?:', page)
    # cover with page, range, filters, who, when (UTC); tables as HTML tables
    assert "<h1>API metrics</h1>" in page and "1 h" in page and "vera" in page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)
    assert "<td>/api/orders</td>" in page and "=HYPERLINK(&quot;http://evil&quot;)" in page


def test_a_chart_that_cannot_render_is_listed_not_fatal(client, viewer):
    body = payload("zip")
    body["figures"].append({"title": "Shops on a map", "figure": {
        "data": [{"type": "scattermap", "lat": [1], "lon": [2]}], "layout": {}}})
    resp = export(client, viewer, body)
    assert resp.status_code == 200
    zf = zipfile.ZipFile(io.BytesIO(resp.data))
    assert len([n for n in zf.namelist() if n.endswith(".png")]) == 2
    cover = zf.read("cover.txt").decode()
    assert "Charts that could not be rendered:" in cover
    assert "Shops on a map: map charts cannot be exported" in cover

    body["format"] = "html"
    page = export(client, viewer, body).get_data(as_text=True)
    assert "This chart could not be rendered: map charts cannot be exported" in page


def test_no_chromium_means_charts_listed_as_failed(tmp_path):
    req = svc.ExportRequest(**payload("zip"))
    report = svc.build_export(req, actor="t", chromium=None)
    assert all(c.png is None and "no Chromium" in c.error for c in report.charts)
    name, mime, data = svc.bundle(report, "zip")
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert not [n for n in zf.namelist() if n.endswith(".png")]
    assert "tables/01-endpoints.csv" in zf.namelist()


def test_a_missing_browser_is_a_failed_chart_then_the_real_one_works():
    chart = svc.render_chart("Latency", figure(), "/nonexistent/chromium")
    assert chart.png is None and "did not start" in chart.error
    chart = svc.render_chart("Latency", figure(), "/usr/bin/chromium", width=300, height=200)
    assert png_size(chart.png) == (600, 400)


def test_layout_images_from_urls_are_never_fetched():
    fig = {"data": [], "layout": {"images": [
        {"source": "http://169.254.169.254/latest/meta-data", "x": 0, "y": 0},
        {"source": "data:image/png;base64,AAAA", "x": 0, "y": 0}]}}
    clean = svc.sanitize_figure(fig)
    assert [i["source"] for i in clean["layout"]["images"]] == ["data:image/png;base64,AAAA"]


# --------------------------------------------------------------- bounds

@pytest.mark.parametrize("change, field", [
    (lambda b: b.update(figures=[b["figures"][0]] * 31), "figures"),
    (lambda b: b.update(tables=[b["tables"][0]] * 31), "tables"),
    (lambda b: b["tables"][0].update(rows=[["x", 1, None]] * 50_001), "tables.0.rows"),
    (lambda b: b.update(page="p" * 201), "page"),
    (lambda b: b["filters"][0].update(label="l" * 201), "filters.0.label"),
    (lambda b: b["tables"][0].update(rows=[["a", 1, 2, 3]]), "tables.0.rows"),
    (lambda b: b["figures"][0].update(width=99999), "figures.0.width"),
    (lambda b: b["figures"][0].update(figure={"data": "nope"}), "figures.0.figure"),
    (lambda b: b.update(format="pdf"), "format"),
])
def test_bounds_are_400_naming_the_field(client, viewer, change, field):
    body = payload("zip")
    change(body)
    resp = export(client, viewer, body)
    assert resp.status_code == 400, resp.status_code
    err = resp.get_json()["error"]
    assert err["code"] == "invalid_request"
    assert err["message"].startswith(field), err["message"]


def test_an_oversized_export_is_413(client, viewer):
    big = "x" * (svc.MAX_BODY_BYTES + 10)
    resp = client.post("/api/reports/export", data=big, headers={
        **viewer, "Content-Type": "application/json"})
    assert resp.status_code == 413
    assert "at most" in resp.get_json()["error"]["message"]


# ------------------------------------------------------ scheduled reports

def seed(store):
    """Requests, SQL and a failed job of the last hour."""
    base = NOW - timedelta(minutes=30)
    with store.session() as sess:
        for i in range(60):
            sess.add(RequestLog(time=base + timedelta(seconds=20 * i), endpoint="/api/orders",
                                method="GET", status=500 if i % 10 == 0 else 200,
                                duration_ms=20 + i, request_id=f"r{i}", process="h:1"))
            sess.add(QueryLog(time=base + timedelta(seconds=20 * i), fingerprint="fp1",
                              sql="SELECT * FROM orders WHERE id = ?", duration_ms=5 + i,
                              rows=1, request_id=f"r{i}", endpoint="/api/orders",
                              process="h:1"))
        sess.add(BackgroundJob(job_id="nightly-<export>", name="Nightly", func="m:f",
                               status="failed", origin="schedule", process="h:1", time=base,
                               started_at=base, finished_at=base, duration_ms=12,
                               error_type="ValueError", error_message="bad =row"))
    retention.rollup_requests(store, now=NOW + timedelta(minutes=5))
    retention.rollup_hours(store)


def test_scheduled_report_from_the_services(app):
    ops = app.extensions["ops"]
    seed(ops.store)
    report = svc.build_scheduled(ops, now=NOW)
    titles = [t.title for t in report.tables]
    assert titles == ["Overview", "Endpoints (last 24 h)", "Slowest SQL (by p95, last 24 h)",
                      "Failed jobs (last 24 h)", "Backups"], report.notes
    endpoints = report.tables[1]
    assert endpoints.rows[0][:3] == ["GET", "/api/orders", 60]
    assert report.tables[2].rows[0][0] == "SELECT * FROM orders WHERE id = ?"
    assert report.tables[3].rows[0][1] == "nightly-<export>"
    assert [c.title for c in report.charts] == [
        "Response time (p50, p95, p99)", "Request volume", "Error rate (5xx)"]
    assert all(c.png and png_size(c.png)[0] > 0 for c in report.charts)
    page = svc.report_html(report)
    assert "nightly-&lt;export&gt;" in page and "Last 24 hours" in page


def test_write_scheduled_once_per_minute_atomic_and_pruned(app, tmp_path):
    ops = app.extensions["ops"]
    folder = ops.settings.reports_folder
    first = svc.write_scheduled(ops, now=NOW.replace(second=1))
    # a second worker firing in the same minute writes nothing
    assert svc.write_scheduled(ops, now=NOW.replace(second=3)) is None
    assert first is not None and first.parent == folder
    assert re.fullmatch(r"report-\d{8}T\d{6}Z\.html", first.name)
    assert first.read_text().startswith("<!DOCTYPE html>")
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    # old ones beyond the last 30 are removed; other files are left alone
    (folder / "notes.txt").write_text("mine")
    for i in range(35):
        (folder / f"report-2020010{1 + i // 10}T00{i % 10:02d}00Z.zip").write_bytes(b"old")
    ops.settings.report_format = "zip"
    path = svc.write_report(ops, now=NOW + timedelta(minutes=1))
    kept = [r["name"] for r in svc.list_scheduled(ops.settings)]
    assert len(kept) == svc.KEEP_SCHEDULED and kept[0] == path.name
    assert first.name in kept and (folder / "notes.txt").exists()
    zf = zipfile.ZipFile(path)
    assert "cover.txt" in zf.namelist() and "tables/02-endpoints-last-24-h.csv" in zf.namelist()
    with ops.store.session() as sess:
        outcomes = sess.scalars(select(AuditEvent.outcome).where(
            AuditEvent.action == "report_scheduled")).all()
    assert outcomes == ["success"]


def test_scheduled_names_must_stay_inside_the_folder(app, tmp_path):
    settings = app.extensions["ops"].settings
    settings.reports_folder.mkdir(parents=True, exist_ok=True)
    (tmp_path / "report-20200101T000000Z.html").write_text("outside")
    for name in ("../report-20200101T000000Z.html", "ops.db", "report-x.html",
                 "/etc/passwd", "report-20200101T000000Z.html/../x"):
        with pytest.raises(svc.ReportError):
            svc.scheduled_path(settings, name)
    with pytest.raises(svc.ReportError, match="no report"):
        svc.scheduled_path(settings, "report-20200101T000000Z.html")
