"""/api/alerts: Alert rules, firing/resolved alerts and webhook deliveries (issue 7)."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_alerts", __name__, url_prefix="/api/alerts",
                  abp_tags=[Tag(name="alerts", description="Alert rules, firing/resolved alerts and webhook deliveries")])
