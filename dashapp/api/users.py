"""/api/users: User management for admins: accounts, roles, password resets, API tokens (issue 7)."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_users", __name__, url_prefix="/api/users",
                  abp_tags=[Tag(name="users", description="User management for admins: accounts, roles, password resets, API tokens")])
