"""/api/modules: which modules exist, where their pages are, which are built."""
from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel

from dashapp.api.common import INPUT_ERRORS, SECURITY, example, tidy_docs
from dashapp.modules import MODULES
from dashapp.security.roles import requires

bp = APIBlueprint("api_modules", __name__, url_prefix="/api",
                  abp_tags=[Tag(name="overview", description="Every module at a glance")])


class ModuleInfo(BaseModel):
    key: str
    title: str
    path: str
    summary: str
    built: bool
    issue: int | None


class ModuleList(BaseModel):
    model_config = example({'modules': [{'built': True,
                                         'issue': None,
                                         'key': 'overview',
                                         'path': '/',
                                         'summary': 'Health of every module at a glance.',
                                         'title': 'Overview'}]})
    modules: list[ModuleInfo]


@bp.get("/modules", responses={200: ModuleList, **INPUT_ERRORS}, security=SECURITY)
@requires("viewer")
def list_modules():
    """The console's modules in sidebar order; `built` is false until its issue lands."""
    return {"modules": [{"key": m.key, "title": m.title, "path": m.path,
                         "summary": m.summary, "built": m.built, "issue": m.issue}
                        for m in MODULES]}


tidy_docs(bp)
