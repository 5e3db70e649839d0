"""/api/cache: cache namespaces, keys and clearing (issue 4; being built)."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_cache", __name__, url_prefix="/api/cache",
                  abp_tags=[Tag(name="cache", description="Cache namespaces, keys, clearing")])
