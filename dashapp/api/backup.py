"""/api/backup: (being built for issue 5)."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_backup", __name__, url_prefix="/api/backup",
                  abp_tags=[Tag(name="backups", description="Database backups, restores, drills, schedules")])
