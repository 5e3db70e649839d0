"""/api/config: (being built for issue 5)."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_config", __name__, url_prefix="/api/config",
                  abp_tags=[Tag(name="config_files", description="Configuration files: read, validate, edit, history, rollback")])
