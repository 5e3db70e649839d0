"""/api/reports: exports of a page's current view (ZIP of CSV + PNG, or one
HTML report) and the scheduled reports written to OPS_REPORT_DIR.

Thin: validate, call dashapp.services.reports, send the file. Viewers may
export and read written reports; writing one now is for admins. Every
export and every download is audited.
"""
from __future__ import annotations

import io
import logging

from flask import current_app, request, send_file
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from dashapp.api.common import (INPUT_ERRORS, SECURITY, ErrorBody, current_actor, error,
                                example, file_response, guarded, tidy_docs)
from dashapp.security import audit
from dashapp.security.roles import requires
from dashapp.services import reports as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_reports", __name__, url_prefix="/api/reports",
                  abp_tags=[Tag(name="reports", description="Exports of a page's current view (CSV, PNG, ZIP, HTML) and scheduled reports")])

EXPORT_PATH = "/api/reports/export"


_FILE_EXAMPLE = {"name": "report-20261126T070000Z.html", "format": "html", "bytes": 294976,
                 "written_at": "2026-11-26T07:00:04+00:00"}


class ReportFile(BaseModel):
    model_config = example(_FILE_EXAMPLE)
    name: str = Field(description="report-YYYYMMDDTHHMMSSZ.html|zip")
    format: str = Field(description="html or zip")
    bytes: int
    written_at: str = Field(description="ISO 8601, UTC")


class ReportsResponse(BaseModel):
    model_config = example({"folder": "/srv/ops/instance/reports", "schedule": "0 7 * * *",
                            "format": "html", "keep": 30, "reports": [_FILE_EXAMPLE]})
    folder: str = Field(description="Where scheduled reports are written")
    schedule: str | None = Field(description="OPS_REPORT_SCHEDULE (crontab, UTC); null: off")
    format: str = Field(description="OPS_REPORT_FORMAT")
    keep: int = Field(description="How many reports are kept")
    reports: list[ReportFile]


class ReportPath(BaseModel):
    name: str = Field(min_length=1, max_length=64,
                      description="A file name from GET /api/reports/scheduled")


class ReportRunBody(BaseModel):
    model_config = example({"format": "zip"})
    format: str | None = Field(None, pattern="^(html|zip)$",
                               description="html or zip; default OPS_REPORT_FORMAT")


def _ops():
    return current_app.extensions["ops"]


@bp.before_request
def _bounded_body():
    """An export is at most MAX_BODY_BYTES, refused before it is parsed."""
    if request.method != "POST" or request.path != EXPORT_PATH:
        return None
    limit = svc.MAX_BODY_BYTES
    if request.content_length is not None and request.content_length > limit:
        return error(413, "too_large",
                     f"An export may be at most {limit // (1024 * 1024)} MB; "
                     "narrow the page's filters or time range")
    request.max_content_length = limit  # also bounds a body sent without a length
    return None


def _report_error(exc: svc.ReportError):
    return error(404 if "no report" in str(exc) else 400, "report_error", str(exc))


@bp.post("/export", responses={
    200: file_response("The bundle: a ZIP (format zip) or one HTML file (format html)",
                       "application/zip", "text/html", binary=True),
    **INPUT_ERRORS, 413: ErrorBody}, security=SECURITY)
@requires("viewer")
def export(body: svc.ExportRequest):
    """Export what a page shows as one ZIP or one HTML file.

    Its charts become PNG (rendered server-side by kaleido with the system
    Chromium), its tables CSV (text that would run as a spreadsheet formula
    is prefixed with a quote), with a cover naming the page, time range,
    filters, who and when. `format` zip gives
    cover.txt, cover.html, tables/*.csv and charts/*.png; html gives one
    self-contained file. A chart that cannot be rendered is listed as failed
    in the bundle. At most 30 charts, 30 tables, 50,000 rows per table."""
    ops = _ops()
    actor = current_actor()
    report = svc.build_export(body, actor=actor, chromium=ops.settings.chromium)
    name, mimetype, data = svc.bundle(report, body.format)
    audit.record(ops.store, actor=actor, action="report_export", outcome="success",
                 target=f"page:{body.page}"[:255],
                 details={"format": body.format, "path": body.path[:200],
                          "charts": len(report.charts),
                          "charts_failed": sum(1 for c in report.charts if c.error),
                          "tables": len(report.tables),
                          "rows": sum(len(t.rows) for t in report.tables),
                          "bytes": len(data)})
    resp = send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True,
                     download_name=name)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/scheduled", responses={200: ReportsResponse, **INPUT_ERRORS}, security=SECURITY)
@requires("viewer")
def scheduled():
    """Scheduled reports written to the folder, newest first."""
    settings = _ops().settings
    return {"folder": str(settings.reports_folder), "schedule": settings.report_schedule,
            "format": settings.report_format, "keep": svc.KEEP_SCHEDULED,
            "reports": svc.list_scheduled(settings)}


@bp.post("/scheduled/run", responses={201: ReportFile, **INPUT_ERRORS, 503: ErrorBody},
         security=SECURITY)
@requires("admin")
@guarded((svc.ReportError,), _report_error)
def run_now(body: ReportRunBody):
    """Write a report now (the scheduled kind: last 24 hours from the
    services) into the folder, whatever the schedule."""
    ops = _ops()
    actor = current_actor()
    fmt = body.format or ops.settings.report_format
    with audit.audited(ops.store, actor=actor, action="report_run", target="reports",
                       details={"format": fmt}) as info:
        try:
            path = svc.write_report(ops, fmt=fmt, actor=actor)
        except OSError as exc:
            info["error"] = str(exc)[:200]
            raise svc.ReportError(f"cannot write into the reports folder: {exc.strerror or exc}")
        info["file"] = path.name
    found = next(r for r in svc.list_scheduled(ops.settings) if r["name"] == path.name)
    return found, 201


@bp.get("/scheduled/<name>", responses={
    200: file_response("The report file", "text/html", "application/zip", binary=True),
    304: {"description": "Not modified (If-None-Match / If-Modified-Since)"},
    **INPUT_ERRORS, 404: ErrorBody}, security=SECURITY)
@requires("viewer")
@guarded((svc.ReportError,), _report_error)
def download(path: ReportPath):
    """One written report (name from the list; it must be in the folder)."""
    ops = _ops()
    file = svc.scheduled_path(ops.settings, path.name)
    audit.record(ops.store, actor=current_actor(), action="report_download",
                 outcome="success", target=f"report:{file.name}")
    mimetype = "application/zip" if file.suffix == ".zip" else "text/html; charset=utf-8"
    resp = send_file(file, mimetype=mimetype, as_attachment=True, download_name=file.name,
                     conditional=True)
    resp.headers["Cache-Control"] = "no-store"
    return resp


tidy_docs(bp)
