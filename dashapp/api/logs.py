"""/api/logs: (being built for issue 6)."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_logs", __name__, url_prefix="/api/logs",
                  abp_tags=[Tag(name="logs", description="Log files and captured records: tail, filter, stats, live stream")])
