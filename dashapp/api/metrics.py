"""/api/metrics (issue 3): being built."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_metrics", __name__, url_prefix="/api/metrics",
                  abp_tags=[Tag(name="metrics")])
