"""/api/queries (issue 3): being built."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_queries", __name__, url_prefix="/api/queries",
                  abp_tags=[Tag(name="queries")])
