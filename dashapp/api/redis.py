"""/api/redis: the Redis server monitor (issue 4; being built)."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_redis", __name__, url_prefix="/api/redis",
                  abp_tags=[Tag(name="redis", description="Redis server health, memory, "
                                                          "keyspace, clients, slowlog")])
