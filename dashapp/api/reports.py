"""/api/reports: Exports of a page's current view (CSV, PNG, ZIP, HTML) and scheduled reports (issue 7)."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_reports", __name__, url_prefix="/api/reports",
                  abp_tags=[Tag(name="reports", description="Exports of a page's current view (CSV, PNG, ZIP, HTML) and scheduled reports")])
