"""/api/overview: the data behind the overview page."""
from __future__ import annotations

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel

from dashapp.api.common import AUTH_ERRORS, SECURITY
from dashapp.security.roles import requires
from dashapp.services.overview import overview as build_overview

bp = APIBlueprint("api_overview", __name__, url_prefix="/api",
                  abp_tags=[Tag(name="overview", description="Every module at a glance")])


class OverviewResponse(BaseModel):
    generated_at: float
    console: dict
    cards: list[dict]


@bp.get("/overview", responses={200: OverviewResponse, **AUTH_ERRORS}, security=SECURITY)
@requires("viewer")
def get_overview():
    """One card per module: whether it is built and a live figure for it."""
    return build_overview(current_app.extensions["ops"])
