"""/api/jobs: (being built for issue 5)."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_jobs", __name__, url_prefix="/api/jobs",
                  abp_tags=[Tag(name="jobs", description="Background job runs, schedules, retry/cancel")])
