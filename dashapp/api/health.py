"""/api/health: is the console's store and Redis reachable (no sign-in)."""
from __future__ import annotations

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel

from dashapp.api.common import ErrorBody, example, tidy_docs
from dashapp.security.roles import public

bp = APIBlueprint("api_health", __name__, url_prefix="/api",
                  abp_tags=[Tag(name="health", description="Liveness")])


class HealthResponse(BaseModel):
    model_config = example({'redis': {'embedded': False, 'latency_ms': 4.07, 'ok': True},
                            'status': 'ok',
                            'store': {'backend': 'sqlite', 'latency_ms': 0.39, 'ok': True},
                            'version': '0.1.0'})
    status: str
    store: dict
    redis: dict
    version: str


@bp.get("/health", responses={200: HealthResponse, 400: ErrorBody})
@public
def health():
    """Status is "ok" when the store and Redis answer, else "degraded".

    Always 200 while the console itself runs, so a load balancer keeps it
    in rotation and the body says what is wrong.
    """
    from dashapp import __version__
    ops = current_app.extensions["ops"]
    store = ops.store.ping()
    redis = ops.redis.ping()
    status = "ok" if store["ok"] and redis["ok"] else "degraded"
    return {"status": status, "store": store, "redis": redis, "version": __version__}


tidy_docs(bp)
