"""/api/ml: (being built for issue 6)."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("api_ml", __name__, url_prefix="/api/ml",
                  abp_tags=[Tag(name="ml", description="ML models: metrics, predictions, history, features, drift")])
