"""/api/overview: the data behind the overview page."""
from __future__ import annotations

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from dashapp.api.common import INPUT_ERRORS, SECURITY, example, tidy_docs
from dashapp.security.roles import requires
from dashapp.services.overview import overview as build_overview

bp = APIBlueprint("api_overview", __name__, url_prefix="/api",
                  abp_tags=[Tag(name="overview", description="Every module at a glance")])


class OverviewResponse(BaseModel):
    model_config = example({'alerts': {'firing': [],
                                       'firing_count': 0,
                                       'resolved': [],
                                       'resolved_hours': 24,
                                       'rules': 0},
                            'cards': [{'built': True,
                                       'detail': '75 keys',
                                       'href': '/cache',
                                       'icon': 'lightning-charge',
                                       'issue': 4,
                                       'key': 'cache',
                                       'label': 'keyspace hit rate',
                                       'source': 'Redis INFO',
                                       'status': 'muted',
                                       'summary': 'Hit rates per namespace, browse, inspect and clear '
                                                  'keys.',
                                       'title': 'Cache',
                                       'value': '94.6%'}],
                            'console': {'demo_running': True,
                                        'redis': {'embedded': False, 'ok': True},
                                        'store': {'backend': 'sqlite', 'latency_ms': 0.16, 'ok': True},
                                        'uptime_seconds': 67},
                            'generated_at': 1795732486.8303})
    generated_at: float
    console: dict
    cards: list[dict]
    alerts: dict | None = Field(None, description="Firing and recently resolved "
                                "alerts; null when the store cannot be read")


@bp.get("/overview", responses={200: OverviewResponse, **INPUT_ERRORS}, security=SECURITY)
@requires("viewer")
def get_overview():
    """One card per module: whether it is built and a live figure for it."""
    return build_overview(current_app.extensions["ops"])


tidy_docs(bp)
