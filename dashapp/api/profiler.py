"""/api/profiler: (being built for issue 6)."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_profiler", __name__, url_prefix="/api/profiler",
                  abp_tags=[Tag(name="profiler", description="Profiling sessions: CPU hotspots, memory, exports")])
